"""revoked_access_tokens: when each jti was denied

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 04:30:00.000000

Every worker polls for the access tokens denied since its last look, so that a revocation
made on one node is refused on all of them within a second (SPEC §4.2, §7).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import bastion.storage.models

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("revoked_access_tokens", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "revoked_at", bastion.storage.models.UTCDateTime(timezone=True), nullable=True
            )
        )
        batch_op.create_index("ix_revoked_access_tokens_revoked_at", ["revoked_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("revoked_access_tokens", schema=None) as batch_op:
        batch_op.drop_index("ix_revoked_access_tokens_revoked_at")
        batch_op.drop_column("revoked_at")
