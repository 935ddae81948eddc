"""hot-lead escalations in the approval queue

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-23
"""
from alembic import op
import sqlalchemy as sa

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('approval', schema=None) as batch_op:
        batch_op.add_column(sa.Column('kind', sa.String(length=16), nullable=False, server_default='send'))
        batch_op.add_column(sa.Column('lead_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('summary', sa.Text(), nullable=True))
        batch_op.alter_column('outbox_id', existing_type=sa.Integer(), nullable=True)
        batch_op.create_index(batch_op.f('ix_approval_kind'), ['kind'], unique=False)
        batch_op.create_index(batch_op.f('ix_approval_lead_id'), ['lead_id'], unique=False)
        batch_op.create_foreign_key('fk_approval_lead_id_lead', 'lead', ['lead_id'], ['id'])


def downgrade():
    op.execute("DELETE FROM approval WHERE outbox_id IS NULL")
    with op.batch_alter_table('approval', schema=None) as batch_op:
        batch_op.drop_constraint('fk_approval_lead_id_lead', type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_approval_lead_id'))
        batch_op.drop_index(batch_op.f('ix_approval_kind'))
        batch_op.alter_column('outbox_id', existing_type=sa.Integer(), nullable=False)
        batch_op.drop_column('summary')
        batch_op.drop_column('lead_id')
        batch_op.drop_column('kind')
