"""What a key may do: owner, expiry, admin flag, allowed models and client networks.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("api_keys") as table:
        table.add_column(sa.Column("owner", sa.String(200), nullable=True))
        table.add_column(sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True))
        table.add_column(
            sa.Column("is_admin", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        table.add_column(sa.Column("models", sa.Text(), nullable=False, server_default="[]"))
        table.add_column(sa.Column("networks", sa.Text(), nullable=False, server_default="[]"))


def downgrade() -> None:
    with op.batch_alter_table("api_keys") as table:
        for column in ("networks", "models", "is_admin", "expires_at", "owner"):
            table.drop_column(column)
