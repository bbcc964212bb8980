"""Copied trials: a trial of another study copied in by ``--warm-start`` names its source.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable, no default: every existing trial was trained in its own study.
    with op.batch_alter_table("hp_trials") as batch:
        batch.add_column(sa.Column("copied_from_study", sa.String(512), nullable=True))
        batch.add_column(sa.Column("copied_from_number", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("hp_trials") as batch:
        batch.drop_column("copied_from_number")
        batch.drop_column("copied_from_study")
