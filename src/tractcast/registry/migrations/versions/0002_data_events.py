"""Events about data releases: held, accepted, refused, stale feed.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

MODEL_KINDS = ("registered", "promoted", "rejected", "rolled_back")
DATA_KINDS = ("data_held", "data_accepted", "data_refused", "feed_stale")


def kinds_check(kinds: tuple[str, ...]) -> str:
    return "kind IN ({})".format(", ".join(f"'{k}'" for k in kinds))


def events_table(kinds: tuple[str, ...]) -> sa.Table:
    """The events table as it is with these kinds allowed (SQLite rebuilds it from this)."""
    return sa.Table(
        "events",
        sa.MetaData(),
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("at", sa.String(40), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("version", sa.String(64), nullable=False),
        sa.Column("from_version", sa.String(64), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("trigger", sa.String(40), nullable=False),
        sa.CheckConstraint(kinds_check(kinds), name="event_kind"),
        sa.Index("ix_events_version", "version"),
    )


def allow_kinds(kinds: tuple[str, ...]) -> None:
    if op.get_bind().dialect.name == "sqlite":  # no ALTER CONSTRAINT: copy into a new table
        with op.batch_alter_table(
            "events", copy_from=events_table(kinds), recreate="always"
        ) as batch:
            batch.alter_column("kind", existing_type=sa.String(20))
        return
    op.drop_constraint("event_kind", "events", type_="check")
    op.create_check_constraint("event_kind", "events", kinds_check(kinds))


def upgrade() -> None:
    allow_kinds(MODEL_KINDS + DATA_KINDS)


def downgrade() -> None:
    op.execute(sa.text(f"DELETE FROM events WHERE NOT ({kinds_check(MODEL_KINDS)})"))
    allow_kinds(MODEL_KINDS)
