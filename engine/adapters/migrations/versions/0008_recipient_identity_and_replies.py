"""recipient identity keys, classified replies, out-of-office pauses

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06
"""
from alembic import op
import sqlalchemy as sa

from engine.adapters.models import UTCDateTime

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade():
    from engine.core.identity import address_domain, canonical_address

    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.add_column(sa.Column('to_key', sa.String(length=320), nullable=True))
        batch_op.create_index(batch_op.f('ix_outbox_to_key'), ['to_key'], unique=False)
    with op.batch_alter_table('suppression', schema=None) as batch_op:
        batch_op.add_column(sa.Column('address_key', sa.String(length=320), nullable=True))
        batch_op.create_index(batch_op.f('ix_suppression_address_key'), ['address_key'], unique=False)
    with op.batch_alter_table('lead', schema=None) as batch_op:
        batch_op.add_column(sa.Column('email_key', sa.String(length=320), nullable=True))
        batch_op.create_index(batch_op.f('ix_lead_email_key'), ['email_key'], unique=False)
        batch_op.add_column(sa.Column('reply_class', sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column('paused_until', UTCDateTime(), nullable=True))
    op.create_table(
        'reply',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('lead_id', sa.Integer(), nullable=True),
        sa.Column('email', sa.String(length=320), nullable=True),
        sa.Column('received_at', UTCDateTime(), nullable=True),
        sa.Column('label', sa.String(length=32), nullable=False),
        sa.Column('confidence', sa.Float(), nullable=False),
        sa.Column('return_date', UTCDateTime(), nullable=True),
        sa.Column('referral', sa.String(length=320), nullable=True),
        sa.Column('subject', sa.Text(), nullable=True),
        sa.Column('excerpt', sa.Text(), nullable=True),
        sa.Column('source', sa.String(length=300), nullable=True),
        sa.Column('second_opinion', sa.String(length=32), nullable=True),
        sa.Column('cancelled', sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(['lead_id'], ['lead.id']),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index(op.f('ix_reply_lead_id'), 'reply', ['lead_id'], unique=False)
    op.create_index(op.f('ix_reply_label'), 'reply', ['label'], unique=False)

    # existing rows get their keys (the default address rules; `alpha init` re-keys them with the configured ones)
    conn = op.get_bind()
    for oid, to in conn.execute(sa.text("SELECT id, to_email FROM outbox WHERE to_email IS NOT NULL")).all():
        conn.execute(sa.text("UPDATE outbox SET to_key = :k, to_domain = :d WHERE id = :i"),
                     {"k": canonical_address(to)[:320], "d": address_domain(to)[:255] or None, "i": oid})
    for lid, email in conn.execute(sa.text("SELECT id, email FROM lead")).all():
        conn.execute(sa.text("UPDATE lead SET email_key = :k WHERE id = :i"), {"k": canonical_address(email)[:320], "i": lid})
    for (email,) in conn.execute(sa.text("SELECT email FROM suppression")).all():
        conn.execute(sa.text("UPDATE suppression SET address_key = :k WHERE email = :e"),
                     {"k": canonical_address(email)[:320], "e": email})


def downgrade():
    op.drop_index(op.f('ix_reply_label'), table_name='reply')
    op.drop_index(op.f('ix_reply_lead_id'), table_name='reply')
    op.drop_table('reply')
    with op.batch_alter_table('lead', schema=None) as batch_op:
        batch_op.drop_column('paused_until')
        batch_op.drop_column('reply_class')
        batch_op.drop_index(batch_op.f('ix_lead_email_key'))
        batch_op.drop_column('email_key')
    with op.batch_alter_table('suppression', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_suppression_address_key'))
        batch_op.drop_column('address_key')
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_outbox_to_key'))
        batch_op.drop_column('to_key')
