"""index class_session.ended_at: retention purges sessions by their end

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-07 14:32:08.196650
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(op.f("ix_class_session_ended_at"), "class_session", ["ended_at"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_class_session_ended_at"), table_name="class_session")
