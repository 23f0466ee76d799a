"""query rounds: the pool and selection spec of each round's latest attempt

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-02 10:00:00.000000
"""

from alembic import op
import sqlalchemy as sa
import medal.db.schema.base


revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('query_rounds',
    sa.Column('round_id', sa.String(length=36), nullable=False),
    sa.Column('project', sa.String(length=63), nullable=False),
    sa.Column('round_number', sa.Integer(), nullable=False),
    sa.Column('attempt', sa.Integer(), nullable=False, comment='The latest attempt of the round: a retry replaces the pool'),
    sa.Column('pool_key', sa.String(length=512), nullable=False, comment='Manifest of the unlabelled pool'),
    sa.Column('selection', sa.JSON(), nullable=False, comment='SelectionSpec: strategy, K, k'),
    sa.Column('recorded_at', medal.db.schema.base.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('round_id', name=op.f('pk_query_rounds'))
    )
    with op.batch_alter_table('query_rounds', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_query_rounds_project'), ['project'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('query_rounds', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_query_rounds_project'))

    op.drop_table('query_rounds')
