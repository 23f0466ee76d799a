"""annotation rounds record a failed training and its retries

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-02 10:00:00.000000
"""

from alembic import op
import sqlalchemy as sa
import medal.db.schema.base


revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('annotation_rounds', schema=None) as batch_op:
        batch_op.add_column(sa.Column('attempt', sa.Integer(), server_default='1', nullable=False, comment='Training attempt: 2, 3 … after retries'))
        batch_op.add_column(sa.Column('failure_code', sa.String(length=32), nullable=True, comment='Why training failed (round.failed.v1 code)'))
        batch_op.add_column(sa.Column('failure_reason', sa.String(length=2000), nullable=True, comment='What went wrong and what to fix (no PHI)'))
        batch_op.add_column(sa.Column('failed_at', medal.db.schema.base.UTCDateTime(timezone=True), nullable=True))
        batch_op.alter_column('state', existing_type=sa.String(length=16), comment='open | completed | training-failed', existing_comment='open | completed', existing_nullable=False)


def downgrade() -> None:
    with op.batch_alter_table('annotation_rounds', schema=None) as batch_op:
        batch_op.alter_column('state', existing_type=sa.String(length=16), comment='open | completed', existing_comment='open | completed | training-failed', existing_nullable=False)
        batch_op.drop_column('failed_at')
        batch_op.drop_column('failure_reason')
        batch_op.drop_column('failure_code')
        batch_op.drop_column('attempt')
