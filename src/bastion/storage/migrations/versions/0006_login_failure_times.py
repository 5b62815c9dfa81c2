"""login failures: times of the recent failures instead of a fixed window's count

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-24 09:00:00.000000

SPEC §5 asks for a rolling window: a count since the first failure, reset once the window has
passed, let a burst straddling the reset go unlocked. Existing counts are carried over as that
many failures at the row's last update, so no name in the middle of a burst gets fresh attempts.
"""

from __future__ import annotations

import json

import sqlalchemy as sa
from alembic import op

import bastion.storage.models

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

CARRIED_OVER_MAX = 100
"""More failures than any sensible threshold; older ones could not lock anything anyway."""


def _rows(*columns: sa.ColumnClause[object]) -> sa.TableClause:
    return sa.table("login_failures", sa.column("username", sa.String()), *columns)


def upgrade() -> None:
    with op.batch_alter_table("login_failures", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("recent_failures", sa.Text(), server_default="[]", nullable=False)
        )
    old = _rows(
        sa.column("failures", sa.Integer()),
        sa.column("updated_at", bastion.storage.models.UTCDateTime(timezone=True)),
        sa.column("recent_failures", sa.Text()),
    )
    bind = op.get_bind()
    for username, failures, updated_at in bind.execute(
        sa.select(old.c.username, old.c.failures, old.c.updated_at).where(old.c.failures > 0)
    ):
        times = [round(updated_at.timestamp(), 3)] * min(failures, CARRIED_OVER_MAX)
        bind.execute(
            old.update().where(old.c.username == username).values(recent_failures=json.dumps(times))
        )
    with op.batch_alter_table("login_failures", schema=None) as batch_op:
        batch_op.drop_column("window_started_at")
        batch_op.drop_column("failures")


def downgrade() -> None:
    with op.batch_alter_table("login_failures", schema=None) as batch_op:
        batch_op.add_column(sa.Column("failures", sa.Integer(), server_default="0", nullable=False))
        batch_op.add_column(
            sa.Column(
                "window_started_at",
                bastion.storage.models.UTCDateTime(timezone=True),
                nullable=True,
            )
        )
    new = _rows(
        sa.column("recent_failures", sa.Text()),
        sa.column("failures", sa.Integer()),
        sa.column("updated_at", bastion.storage.models.UTCDateTime(timezone=True)),
        sa.column("window_started_at", bastion.storage.models.UTCDateTime(timezone=True)),
    )
    bind = op.get_bind()
    for username, recent in bind.execute(sa.select(new.c.username, new.c.recent_failures)):
        bind.execute(
            new.update()
            .where(new.c.username == username)
            .values(failures=len(json.loads(recent or "[]")))
        )
    bind.execute(new.update().values(window_started_at=new.c.updated_at))
    with op.batch_alter_table("login_failures", schema=None) as batch_op:
        batch_op.alter_column(
            "window_started_at",
            existing_type=bastion.storage.models.UTCDateTime(timezone=True),
            nullable=False,
        )
        batch_op.alter_column("failures", existing_type=sa.Integer(), server_default=None)
        batch_op.drop_column("recent_failures")
