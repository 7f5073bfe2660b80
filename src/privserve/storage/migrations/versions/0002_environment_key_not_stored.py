"""The environment's key is no longer stored: revoke those earlier start-ups stored.

A key from PRIVSERVE_API_KEY is valid exactly while the server is started with it; a stored
copy would outlive the variable.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_api_keys = sa.table(
    "api_keys",
    sa.column("name", sa.String),
    sa.column("revoked_at", sa.DateTime(timezone=True)),
)


def upgrade() -> None:
    op.execute(
        _api_keys.update()
        .where(_api_keys.c.name == "PRIVSERVE_API_KEY", _api_keys.c.revoked_at.is_(None))
        .values(revoked_at=sa.func.current_timestamp())
    )


def downgrade() -> None:
    pass  # a revoked key stays revoked
