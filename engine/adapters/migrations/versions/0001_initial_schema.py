"""initial schema

Revision ID: 0001
Revises: 
Create Date: 2026-11-23
"""
from alembic import op
import sqlalchemy as sa

from engine.adapters.models import UTCDateTime  # noqa: F401

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('agent_activity',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('agent', sa.String(length=64), nullable=False),
    sa.Column('action', sa.String(length=64), nullable=False),
    sa.Column('at', UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('agent_activity', schema=None) as batch_op:
        batch_op.create_index('ix_agent_activity_agent_at', ['agent', 'at'], unique=False)

    op.create_table('audit_head',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('last_seq', sa.Integer(), nullable=False),
    sa.Column('last_hash', sa.String(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('audit_log',
    sa.Column('seq', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('at', sa.String(length=32), nullable=False),
    sa.Column('actor', sa.String(length=200), nullable=False),
    sa.Column('agent', sa.String(length=64), nullable=True),
    sa.Column('event', sa.String(length=64), nullable=False),
    sa.Column('action', sa.String(length=64), nullable=True),
    sa.Column('status', sa.String(length=32), nullable=True),
    sa.Column('ref', sa.String(length=200), nullable=True),
    sa.Column('outbox_id', sa.Integer(), nullable=True),
    sa.Column('reasons', sa.Text(), nullable=False),
    sa.Column('data', sa.Text(), nullable=False),
    sa.Column('prev_hash', sa.String(length=64), nullable=False),
    sa.Column('row_hash', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('seq')
    )
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_audit_log_actor'), ['actor'], unique=False)
        batch_op.create_index(batch_op.f('ix_audit_log_agent'), ['agent'], unique=False)
        batch_op.create_index(batch_op.f('ix_audit_log_at'), ['at'], unique=False)
        batch_op.create_index(batch_op.f('ix_audit_log_event'), ['event'], unique=False)
        batch_op.create_index(batch_op.f('ix_audit_log_outbox_id'), ['outbox_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_audit_log_ref'), ['ref'], unique=False)
        batch_op.create_index(batch_op.f('ix_audit_log_status'), ['status'], unique=False)

    op.create_table('breaker',
    sa.Column('name', sa.String(length=32), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('consecutive_failures', sa.Integer(), nullable=False),
    sa.Column('consecutive_successes', sa.Integer(), nullable=False),
    sa.Column('opened_at', UTCDateTime(), nullable=True),
    sa.Column('retry_at', UTCDateTime(), nullable=True),
    sa.Column('trial_started_at', UTCDateTime(), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('last_failure_at', UTCDateTime(), nullable=True),
    sa.Column('last_success_at', UTCDateTime(), nullable=True),
    sa.Column('forced', sa.Boolean(), nullable=False),
    sa.Column('updated_at', UTCDateTime(), nullable=True),
    sa.PrimaryKeyConstraint('name')
    )
    op.create_table('control_state',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kill_switch', sa.Boolean(), nullable=False),
    sa.Column('kill_reason', sa.String(), nullable=True),
    sa.Column('kill_actor', sa.String(), nullable=True),
    sa.Column('kill_changed_at', UTCDateTime(), nullable=True),
    sa.Column('maintenance', sa.Boolean(), nullable=False),
    sa.Column('maintenance_reason', sa.String(), nullable=True),
    sa.Column('maintenance_actor', sa.String(), nullable=True),
    sa.Column('maintenance_changed_at', UTCDateTime(), nullable=True),
    sa.Column('phase', sa.String(), nullable=False),
    sa.Column('phase_reason', sa.String(), nullable=True),
    sa.Column('phase_actor', sa.String(), nullable=True),
    sa.Column('phase_changed_at', UTCDateTime(), nullable=True),
    sa.Column('phase_seeded', sa.Boolean(), nullable=False),
    sa.Column('warmup_phase', sa.Integer(), nullable=False),
    sa.Column('warmup_phase_started_at', UTCDateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('domain_health',
    sa.Column('domain', sa.String(length=255), nullable=False),
    sa.Column('score', sa.Float(), nullable=False),
    sa.Column('cooling', sa.Boolean(), nullable=False),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('updated_at', UTCDateTime(), nullable=True),
    sa.PrimaryKeyConstraint('domain')
    )
    op.create_table('outbox',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('idempotency_key', sa.String(length=200), nullable=False),
    sa.Column('payload_hash', sa.String(length=64), nullable=False),
    sa.Column('agent', sa.String(length=64), nullable=False),
    sa.Column('action', sa.String(length=64), nullable=False),
    sa.Column('channel', sa.String(length=16), nullable=False),
    sa.Column('to_email', sa.String(length=320), nullable=True),
    sa.Column('to_domain', sa.String(length=255), nullable=True),
    sa.Column('from_email', sa.String(length=320), nullable=True),
    sa.Column('subject', sa.Text(), nullable=True),
    sa.Column('html', sa.Text(), nullable=True),
    sa.Column('text', sa.Text(), nullable=True),
    sa.Column('lead_id', sa.String(length=64), nullable=True),
    sa.Column('tier', sa.Integer(), nullable=True),
    sa.Column('record', sa.JSON(), nullable=True),
    sa.Column('headers', sa.JSON(), nullable=True),
    sa.Column('status', sa.String(length=32), nullable=False),
    sa.Column('reasons', sa.JSON(), nullable=True),
    sa.Column('decision', sa.JSON(), nullable=True),
    sa.Column('not_before', UTCDateTime(), nullable=True),
    sa.Column('created_at', UTCDateTime(), nullable=True),
    sa.Column('updated_at', UTCDateTime(), nullable=True),
    sa.Column('reserved_at', UTCDateTime(), nullable=True),
    sa.Column('sent_at', UTCDateTime(), nullable=True),
    sa.Column('provider', sa.String(length=32), nullable=True),
    sa.Column('provider_message_id', sa.String(length=200), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('approval_id', sa.Integer(), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('idempotency_key')
    )
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.create_index('ix_outbox_domain_reserved', ['to_domain', 'reserved_at'], unique=False)
        batch_op.create_index('ix_outbox_from_reserved', ['from_email', 'reserved_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_outbox_lead_id'), ['lead_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_outbox_status'), ['status'], unique=False)
        batch_op.create_index('ix_outbox_status_not_before', ['status', 'not_before'], unique=False)
        batch_op.create_index('ix_outbox_status_reserved', ['status', 'reserved_at'], unique=False)
        batch_op.create_index('ix_outbox_to_status', ['to_email', 'status'], unique=False)

    op.create_table('sandbox_message',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('outbox_id', sa.Integer(), nullable=True),
    sa.Column('action', sa.String(length=64), nullable=False),
    sa.Column('to_email', sa.String(length=320), nullable=True),
    sa.Column('from_email', sa.String(length=320), nullable=True),
    sa.Column('subject', sa.Text(), nullable=True),
    sa.Column('html', sa.Text(), nullable=True),
    sa.Column('text', sa.Text(), nullable=True),
    sa.Column('headers', sa.JSON(), nullable=True),
    sa.Column('payload', sa.JSON(), nullable=True),
    sa.Column('created_at', UTCDateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('sandbox_message', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_sandbox_message_outbox_id'), ['outbox_id'], unique=False)

    op.create_table('suppression',
    sa.Column('email', sa.String(length=320), nullable=False),
    sa.Column('reason', sa.String(length=32), nullable=False),
    sa.Column('source', sa.String(length=200), nullable=True),
    sa.Column('detail', sa.Text(), nullable=True),
    sa.Column('created_at', UTCDateTime(), nullable=True),
    sa.PrimaryKeyConstraint('email')
    )
    op.create_table('approval',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('outbox_id', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('risk', sa.String(length=16), nullable=False),
    sa.Column('requested_by', sa.String(length=64), nullable=False),
    sa.Column('requested_at', UTCDateTime(), nullable=True),
    sa.Column('decided_by', sa.String(length=200), nullable=True),
    sa.Column('decided_at', UTCDateTime(), nullable=True),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['outbox_id'], ['outbox.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('approval', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_approval_outbox_id'), ['outbox_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_approval_status'), ['status'], unique=False)


    # The two singleton rows every process needs: the chain head (the gate lock) and the control plane.
    op.bulk_insert(sa.table("audit_head", sa.column("id", sa.Integer), sa.column("last_seq", sa.Integer),
                            sa.column("last_hash", sa.String)),
                   [{"id": 1, "last_seq": 0, "last_hash": "0" * 64}])
    op.bulk_insert(sa.table("control_state", sa.column("id", sa.Integer), sa.column("kill_switch", sa.Boolean),
                            sa.column("maintenance", sa.Boolean), sa.column("phase", sa.String),
                            sa.column("phase_seeded", sa.Boolean), sa.column("warmup_phase", sa.Integer)),
                   [{"id": 1, "kill_switch": False, "maintenance": False, "phase": "shadow",
                     "phase_seeded": False, "warmup_phase": 1}])


def downgrade():
    with op.batch_alter_table('approval', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_approval_status'))
        batch_op.drop_index(batch_op.f('ix_approval_outbox_id'))

    op.drop_table('approval')
    op.drop_table('suppression')
    with op.batch_alter_table('sandbox_message', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_sandbox_message_outbox_id'))

    op.drop_table('sandbox_message')
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_index('ix_outbox_to_status')
        batch_op.drop_index('ix_outbox_status_reserved')
        batch_op.drop_index('ix_outbox_status_not_before')
        batch_op.drop_index(batch_op.f('ix_outbox_status'))
        batch_op.drop_index(batch_op.f('ix_outbox_lead_id'))
        batch_op.drop_index('ix_outbox_from_reserved')
        batch_op.drop_index('ix_outbox_domain_reserved')

    op.drop_table('outbox')
    op.drop_table('domain_health')
    op.drop_table('control_state')
    op.drop_table('breaker')
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_audit_log_status'))
        batch_op.drop_index(batch_op.f('ix_audit_log_ref'))
        batch_op.drop_index(batch_op.f('ix_audit_log_outbox_id'))
        batch_op.drop_index(batch_op.f('ix_audit_log_event'))
        batch_op.drop_index(batch_op.f('ix_audit_log_at'))
        batch_op.drop_index(batch_op.f('ix_audit_log_agent'))
        batch_op.drop_index(batch_op.f('ix_audit_log_actor'))

    op.drop_table('audit_log')
    op.drop_table('audit_head')
    with op.batch_alter_table('agent_activity', schema=None) as batch_op:
        batch_op.drop_index('ix_agent_activity_agent_at')

    op.drop_table('agent_activity')
