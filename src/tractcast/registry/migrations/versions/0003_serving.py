"""What serves, by bundle: replicas on other hosts read it instead of the store's `current` link.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "serving",
        sa.Column("slot", sa.String(64), primary_key=True),
        sa.Column("bundle_id", sa.String(240), nullable=False),
        sa.Column("version", sa.String(64), nullable=False),
        sa.Column("updated_at", sa.String(40), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("serving")
