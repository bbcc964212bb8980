"""Stored data: data given in memory (a DataFrame, arrays) kept in the study's own database.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Plain types only: a revision must keep meaning the same schema whatever tables.py later becomes.
    op.create_table(
        "hp_stored_data",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("format", sa.String(16), nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("hp_stored_data")
