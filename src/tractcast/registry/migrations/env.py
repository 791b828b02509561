"""Alembic environment: runs on the connection `upgrade_schema` hands over, never on a URL
read from a file, so the application's settings are the only source of the database URL."""

from __future__ import annotations

from alembic import context

from tractcast.registry.migrations import VERSION_TABLE
from tractcast.registry.tables import SCHEMA

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through tractcast.registry.migrations.upgrade_schema")

context.configure(
    connection=connection,
    target_metadata=SCHEMA,
    version_table=VERSION_TABLE,
    render_as_batch=connection.dialect.name == "sqlite",  # SQLite alters tables by copying
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
