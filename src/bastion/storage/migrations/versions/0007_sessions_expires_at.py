"""sessions: index on expires_at

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-24 09:10:00.000000

The ``bastion_active_sessions`` gauge is a COUNT of the sessions neither revoked nor expired,
run at start, after each login and logout and periodically (SPEC §6). Ended sessions stay in
the table; the index keeps the count to the unexpired ones.
"""

from __future__ import annotations

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("sessions", schema=None) as batch_op:
        batch_op.create_index("ix_sessions_expires_at", ["expires_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("sessions", schema=None) as batch_op:
        batch_op.drop_index("ix_sessions_expires_at")
