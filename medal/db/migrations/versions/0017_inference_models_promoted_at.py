"""inference models: when the trainer promoted each version (the promotion sent last wins)

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-02 10:05:00.000000
"""

from alembic import op
import sqlalchemy as sa
import medal.db.schema.base


revision = '0017'
down_revision = '0016'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('inference_models', schema=None) as batch_op:
        batch_op.add_column(sa.Column('promoted_at', medal.db.schema.base.UTCDateTime(timezone=True), nullable=True, comment='When the trainer promoted it last (message time)'))


def downgrade() -> None:
    with op.batch_alter_table('inference_models', schema=None) as batch_op:
        batch_op.drop_column('promoted_at')
