"""console sessions (server-side, revocable), login throttle, component heartbeats, address-rules fingerprint

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06
"""
from alembic import op
import sqlalchemy as sa

from engine.adapters.models import UTCDateTime

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('control_state', schema=None) as batch_op:
        batch_op.add_column(sa.Column('address_rules_fp', sa.String(length=64), nullable=True))
    op.create_table(
        'console_session',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('token_hash', sa.String(length=64), nullable=False),
        sa.Column('username', sa.String(length=64), nullable=False),
        sa.Column('password_stamp', sa.String(length=64), nullable=False),
        sa.Column('created_at', UTCDateTime(), nullable=True),
        sa.Column('last_seen_at', UTCDateTime(), nullable=True),
        sa.Column('expires_at', UTCDateTime(), nullable=True),
        sa.Column('revoked_at', UTCDateTime(), nullable=True),
        sa.Column('revoked_reason', sa.String(length=64), nullable=True),
        sa.Column('client', sa.String(length=200), nullable=True),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index(op.f('ix_console_session_token_hash'), 'console_session', ['token_hash'], unique=True)
    op.create_index(op.f('ix_console_session_username'), 'console_session', ['username'], unique=False)
    op.create_table(
        'login_attempt',
        sa.Column('key', sa.String(length=200), nullable=False),
        sa.Column('failures', sa.Integer(), nullable=False),
        sa.Column('first_failed_at', UTCDateTime(), nullable=True),
        sa.Column('last_failed_at', UTCDateTime(), nullable=True),
        sa.Column('locked_until', UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint('key'),
    )
    op.create_table(
        'heartbeat',
        sa.Column('component', sa.String(length=64), nullable=False),
        sa.Column('instance', sa.String(length=200), nullable=False),
        sa.Column('started_at', UTCDateTime(), nullable=True),
        sa.Column('beat_at', UTCDateTime(), nullable=True),
        sa.Column('info', sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint('component', 'instance'),
    )


def downgrade():
    op.drop_table('heartbeat')
    op.drop_table('login_attempt')
    op.drop_index(op.f('ix_console_session_username'), table_name='console_session')
    op.drop_index(op.f('ix_console_session_token_hash'), table_name='console_session')
    op.drop_table('console_session')
    with op.batch_alter_table('control_state', schema=None) as batch_op:
        batch_op.drop_column('address_rules_fp')
