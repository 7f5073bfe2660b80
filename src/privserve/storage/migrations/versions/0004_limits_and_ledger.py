"""Per-key limits, quotas and priority; the usage ledger; quota counters and their holds.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("api_keys") as table:
        table.add_column(sa.Column("rpm", sa.Integer(), nullable=True))
        table.add_column(sa.Column("tpm", sa.Integer(), nullable=True))
        table.add_column(sa.Column("concurrency", sa.Integer(), nullable=True))
        table.add_column(sa.Column("quota_tokens", sa.BigInteger(), nullable=True))
        table.add_column(sa.Column("quota_period", sa.String(8), nullable=True))
        table.add_column(
            sa.Column("priority", sa.String(12), nullable=False, server_default="interactive")
        )
    # Bumped by every change to a key, so servers know when to read keys again; the
    # ledger's constant writes must not look like key changes. Triggers bump it, so a change
    # made with plain SQL counts too.
    epoch = op.create_table("key_epoch", sa.Column("version", sa.BigInteger(), nullable=False))
    op.bulk_insert(epoch, [{"version": 0}])
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            # Servers LISTEN on the channel, so they need not ask on every request.
            "CREATE FUNCTION bump_key_epoch() RETURNS trigger AS $$ BEGIN "
            "UPDATE key_epoch SET version = version + 1; "
            "PERFORM pg_notify('privserve_keys', ''); RETURN NULL; END; $$ LANGUAGE plpgsql"
        )
        op.execute(
            "CREATE TRIGGER api_keys_changed AFTER INSERT OR UPDATE OR DELETE ON api_keys "
            "FOR EACH STATEMENT EXECUTE FUNCTION bump_key_epoch()"
        )
    else:
        for event in ("INSERT", "UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER api_keys_{event.lower()}_epoch AFTER {event} ON api_keys "
                "BEGIN UPDATE key_epoch SET version = version + 1; END"
            )
    op.create_table(
        "usage_ledger",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
        sa.Column("request_id", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("key_id", sa.Integer(), nullable=False),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("endpoint", sa.String(40), nullable=False),
        sa.Column("prompt_tokens", sa.Integer(), nullable=False),
        sa.Column("cached_tokens", sa.Integer(), nullable=False),
        sa.Column("completion_tokens", sa.Integer(), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=False),
        sa.Column("finish_reason", sa.String(20), nullable=True),
        sa.Column("ttft_ms", sa.Float(), nullable=True),
        sa.Column("duration_ms", sa.Float(), nullable=False),
    )
    op.create_index("ix_usage_ledger_created_at", "usage_ledger", ["created_at"])
    op.create_index("ix_usage_ledger_key_id", "usage_ledger", ["key_id", "created_at"])
    op.create_index("ix_usage_ledger_request_id", "usage_ledger", ["request_id"])
    op.create_table(
        "quota_counters",
        sa.Column("key_id", sa.Integer(), primary_key=True),
        sa.Column("period", sa.String(16), primary_key=True),
        sa.Column("used", sa.BigInteger(), nullable=False),
        sa.Column("reserved", sa.BigInteger(), nullable=False),
    )
    op.create_table(
        "quota_holds",
        sa.Column("request_id", sa.String(64), primary_key=True),
        sa.Column("key_id", sa.Integer(), nullable=False),
        sa.Column("period", sa.String(16), nullable=False),
        sa.Column("tokens", sa.BigInteger(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_quota_holds_expires_at", "quota_holds", ["expires_at"])


def downgrade() -> None:
    op.drop_table("quota_holds")
    op.drop_table("quota_counters")
    op.drop_table("usage_ledger")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER api_keys_changed ON api_keys")
        op.execute("DROP FUNCTION bump_key_epoch()")
    else:
        for event in ("insert", "update", "delete"):
            op.execute(f"DROP TRIGGER api_keys_{event}_epoch")
    op.drop_table("key_epoch")
    with op.batch_alter_table("api_keys") as table:
        for column in ("priority", "quota_period", "quota_tokens", "concurrency", "tpm", "rpm"):
            table.drop_column(column)
