"""approval queue: roster type, SLA, expiry, escalation, edits

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23
"""
from alembic import op
import sqlalchemy as sa

from engine.adapters.models import UTCDateTime  # noqa: F401

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('approval', schema=None) as batch_op:
        batch_op.add_column(sa.Column('action_type', sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column('sla_due_at', UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column('expires_at', UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column('escalated_at', UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column('escalated_to', sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column('edited_by', sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column('edited_at', UTCDateTime(), nullable=True))
        batch_op.create_index(batch_op.f('ix_approval_action_type'), ['action_type'], unique=False)



def downgrade():
    with op.batch_alter_table('approval', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_approval_action_type'))
        batch_op.drop_column('edited_at')
        batch_op.drop_column('edited_by')
        batch_op.drop_column('escalated_to')
        batch_op.drop_column('escalated_at')
        batch_op.drop_column('expires_at')
        batch_op.drop_column('sla_due_at')
        batch_op.drop_column('action_type')

