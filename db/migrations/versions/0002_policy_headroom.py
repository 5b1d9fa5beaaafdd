"""What the requester had left when the policy looked (shown on the card).

Revision ID: 0002
Revises: 0001
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("vm_requests") as batch_op:
        batch_op.add_column(
            sa.Column("policy_headroom", sa.Text(), nullable=False, server_default="")
        )


def downgrade() -> None:
    with op.batch_alter_table("vm_requests") as batch_op:
        batch_op.drop_column("policy_headroom")
