"""Trial configuration keys: the store refuses a second trial of a configuration already tried.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("hp_trials") as batch:
        batch.add_column(sa.Column("config_key", sa.String(64), nullable=True))
    op.create_index("ix_hp_trials_study_config", "hp_trials", ["study_id", "config_key"])
    # Existing trials get the key of their parameters (the same rule as storage.config_key), so a
    # study upgraded mid-search does not train its earlier configurations again.
    trials = sa.table("hp_trials", sa.column("id", sa.Integer()), sa.column("params", sa.JSON()),
                      sa.column("config_key", sa.String(64)))
    bind = op.get_bind()
    for trial_id, params in bind.execute(sa.select(trials.c.id, trials.c.params)).all():
        text = json.dumps(params, sort_keys=True, separators=(",", ":"), default=str)
        key = hashlib.sha256(text.encode("utf-8")).hexdigest()
        bind.execute(sa.update(trials).where(trials.c.id == trial_id).values(config_key=key))


def downgrade() -> None:
    op.drop_index("ix_hp_trials_study_config", table_name="hp_trials")
    with op.batch_alter_table("hp_trials") as batch:
        batch.drop_column("config_key")
