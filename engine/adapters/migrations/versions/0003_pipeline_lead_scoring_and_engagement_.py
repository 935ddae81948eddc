"""pipeline: lead scoring and engagement, drafts, shadow runs, envelopes, check runs

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""
from alembic import op
import sqlalchemy as sa

from engine.adapters.models import UTCDateTime  # noqa: F401

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('check_run',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('at', UTCDateTime(), nullable=True),
    sa.Column('ok', sa.Boolean(), nullable=False),
    sa.Column('results', sa.JSON(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('check_run', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_check_run_kind'), ['kind'], unique=False)

    op.create_table('shadow_run',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('started_at', UTCDateTime(), nullable=True),
    sa.Column('finished_at', UTCDateTime(), nullable=True),
    sa.Column('contacts', sa.Integer(), nullable=False),
    sa.Column('summary', sa.JSON(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('draft',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('lead_id', sa.Integer(), nullable=False),
    sa.Column('sequence', sa.String(length=16), nullable=False),
    sa.Column('step', sa.Integer(), nullable=False),
    sa.Column('template_id', sa.String(length=100), nullable=False),
    sa.Column('template_version', sa.String(length=32), nullable=False),
    sa.Column('subject', sa.Text(), nullable=False),
    sa.Column('html', sa.Text(), nullable=False),
    sa.Column('text', sa.Text(), nullable=True),
    sa.Column('provider', sa.String(length=32), nullable=False),
    sa.Column('provenance', sa.JSON(), nullable=True),
    sa.Column('flags', sa.JSON(), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('created_at', UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['lead_id'], ['lead.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('lead_id', 'sequence', 'step', name='uq_draft_lead_step')
    )
    with op.batch_alter_table('draft', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_draft_lead_id'), ['lead_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_draft_status'), ['status'], unique=False)

    op.create_table('envelope',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('lead_id', sa.Integer(), nullable=False),
    sa.Column('stage', sa.String(length=32), nullable=False),
    sa.Column('envelope', sa.JSON(), nullable=True),
    sa.Column('created_at', UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['lead_id'], ['lead.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('envelope', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_envelope_lead_id'), ['lead_id'], unique=False)

    with op.batch_alter_table('lead', schema=None) as batch_op:
        batch_op.add_column(sa.Column('region', sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column('last_open_at', UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column('last_click_at', UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column('last_reply_at', UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column('last_visit_at', UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column('website_visits', sa.Integer(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('score', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('icp', sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column('disqualified_reason', sa.String(length=300), nullable=True))
        batch_op.add_column(sa.Column('route', sa.String(length=16), nullable=True))



def downgrade():
    with op.batch_alter_table('lead', schema=None) as batch_op:
        batch_op.drop_column('route')
        batch_op.drop_column('disqualified_reason')
        batch_op.drop_column('icp')
        batch_op.drop_column('score')
        batch_op.drop_column('website_visits')
        batch_op.drop_column('last_visit_at')
        batch_op.drop_column('last_reply_at')
        batch_op.drop_column('last_click_at')
        batch_op.drop_column('last_open_at')
        batch_op.drop_column('region')

    with op.batch_alter_table('envelope', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_envelope_lead_id'))

    op.drop_table('envelope')
    with op.batch_alter_table('draft', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_draft_status'))
        batch_op.drop_index(batch_op.f('ix_draft_lead_id'))

    op.drop_table('draft')
    op.drop_table('shadow_run')
    with op.batch_alter_table('check_run', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_check_run_kind'))

    op.drop_table('check_run')
