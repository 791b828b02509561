"""Rows per tract layer: layers sharing one database keep their versions, events and what
serves apart. Rows already there belong to the layer "default" (a deployment of one layer).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-07
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

DEFAULT_LAYER = "default"
KEYS = {"versions": "version", "serving": "slot"}  # tables whose key gains the layer


def layer_column() -> sa.Column[str]:
    return sa.Column("layer", sa.String(40), nullable=False, server_default=DEFAULT_LAYER)


def keyed(table: str, key: list[str]) -> sa.Table:
    """The table as it is once `key` is its primary key (SQLite rebuilds it from this)."""
    tables: dict[str, list[Any]] = {
        "versions": [
            sa.Column("version", sa.String(64), nullable=False),
            sa.Column("family", sa.String(64), nullable=False),
            sa.Column("created_at", sa.String(40), nullable=False),
            sa.Column("data_version", sa.String(160), nullable=False),
            sa.Column("metrics", sa.JSON(), nullable=False),
            sa.Column("manifest", sa.JSON(), nullable=False),
        ],
        "serving": [
            sa.Column("slot", sa.String(64), nullable=False),
            sa.Column("bundle_id", sa.String(240), nullable=False),
            sa.Column("version", sa.String(64), nullable=False),
            sa.Column("updated_at", sa.String(40), nullable=False),
        ],
    }
    columns = tables[table]
    if "layer" in key:
        columns.append(layer_column())
    return sa.Table(table, sa.MetaData(), *columns, sa.PrimaryKeyConstraint(*key))


def rekey(table: str, key: list[str]) -> None:
    """Make `key` the table's primary key: PostgreSQL names a table's key <table>_pkey; SQLite
    cannot alter a key, so the table is copied into one keyed so."""
    if op.get_bind().dialect.name == "sqlite":
        with op.batch_alter_table(table, copy_from=keyed(table, key), recreate="always"):
            pass
        return
    op.drop_constraint(f"{table}_pkey", table, type_="primary")
    op.create_primary_key(f"{table}_pkey", table, key)


def upgrade() -> None:
    for table, key in KEYS.items():
        op.add_column(table, layer_column())
        rekey(table, [key, "layer"])
    op.add_column("events", layer_column())
    op.create_index("ix_events_layer", "events", ["layer"])


def downgrade() -> None:
    """Back to one layer: only the rows of "default" are kept."""
    op.drop_index("ix_events_layer", table_name="events")
    for table, key in KEYS.items():
        op.execute(sa.text(f"DELETE FROM {table} WHERE layer <> '{DEFAULT_LAYER}'"))
        rekey(table, [key])
        if op.get_bind().dialect.name != "sqlite":  # SQLite's copy left it out
            op.drop_column(table, "layer")
    op.execute(sa.text(f"DELETE FROM events WHERE layer <> '{DEFAULT_LAYER}'"))
    with op.batch_alter_table("events") as batch:
        batch.drop_column("layer")
