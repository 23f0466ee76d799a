"""trainer jobs and model registry

Revision ID: 0011
Revises: 0002
Create Date: 2026-11-28 08:24:49.636509
"""

from alembic import op
import sqlalchemy as sa
import medal.db.schema.base


revision = '0011'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('trainer_rounds',
    sa.Column('id', sa.String(length=36), nullable=False, comment='The round id annotation assigned'),
    sa.Column('project', sa.String(length=63), nullable=False),
    sa.Column('round_number', sa.Integer(), nullable=False),
    sa.Column('labels', sa.Integer(), nullable=False),
    sa.Column('labelled_set_key', sa.String(length=512), nullable=False),
    sa.Column('pool_key', sa.String(length=512), nullable=False),
    sa.Column('committee_size', sa.Integer(), nullable=False),
    sa.Column('training', sa.Text(), nullable=False, comment='TrainingSpec as JSON'),
    sa.Column('selection', sa.Text(), nullable=False, comment='SelectionSpec as JSON'),
    sa.Column('seed', sa.BigInteger(), nullable=False),
    sa.Column('correlation_id', sa.String(length=36), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False, comment='training | trained | failed'),
    sa.Column('created_at', medal.db.schema.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', medal.db.schema.base.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_trainer_rounds'))
    )
    with op.batch_alter_table('trainer_rounds', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_trainer_rounds_project'), ['project'], unique=False)

    op.create_table('trainer_jobs',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('round_id', sa.String(length=36), nullable=False),
    sa.Column('project', sa.String(length=63), nullable=False),
    sa.Column('member_index', sa.Integer(), nullable=False),
    sa.Column('seed', sa.BigInteger(), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False, comment='queued | running | done | failed'),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('lease_token', sa.String(length=36), nullable=True),
    sa.Column('lease_owner', sa.String(length=128), nullable=True, comment='host:pid of the worker holding the lease'),
    sa.Column('lease_expires_at', medal.db.schema.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('heartbeat_at', medal.db.schema.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('epoch', sa.Integer(), nullable=True),
    sa.Column('max_epochs', sa.Integer(), nullable=False),
    sa.Column('loss', sa.Float(), nullable=True, comment='Training loss of the last epoch'),
    sa.Column('validation_dice', sa.Float(), nullable=True),
    sa.Column('eta_seconds', sa.Float(), nullable=True),
    sa.Column('weights_key', sa.String(length=512), nullable=True),
    sa.Column('weights_sha256', sa.String(length=64), nullable=True),
    sa.Column('train_seconds', sa.Float(), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('created_at', medal.db.schema.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('started_at', medal.db.schema.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('finished_at', medal.db.schema.base.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['round_id'], ['trainer_rounds.id'], name=op.f('fk_trainer_jobs_round_id_trainer_rounds')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_trainer_jobs')),
    sa.UniqueConstraint('round_id', 'member_index', name=op.f('uq_trainer_jobs_round_id_member_index'))
    )
    with op.batch_alter_table('trainer_jobs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_trainer_jobs_project'), ['project'], unique=False)
        batch_op.create_index('ix_trainer_jobs_state_created_at', ['state', 'created_at'], unique=False)

    op.create_table('trainer_model_versions',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('project', sa.String(length=63), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('round_id', sa.String(length=36), nullable=False),
    sa.Column('round_number', sa.Integer(), nullable=False),
    sa.Column('labels', sa.Integer(), nullable=False),
    sa.Column('labelled_set_key', sa.String(length=512), nullable=False, comment='Snapshot of the labelled set'),
    sa.Column('members', sa.Text(), nullable=False, comment='JSON list of {index, weights_key, sha256, dice, epochs}'),
    sa.Column('validation_dice', sa.Float(), nullable=False, comment="Mean of the members' validation Dice"),
    sa.Column('training', sa.Text(), nullable=False, comment='TrainingSpec as JSON'),
    sa.Column('status', sa.String(length=16), nullable=False, comment='candidate | current | retired'),
    sa.Column('created_at', medal.db.schema.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('promoted_at', medal.db.schema.base.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['round_id'], ['trainer_rounds.id'], name=op.f('fk_trainer_model_versions_round_id_trainer_rounds')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_trainer_model_versions')),
    sa.UniqueConstraint('project', 'version', name=op.f('uq_trainer_model_versions_project_version')),
    sa.UniqueConstraint('round_id', name=op.f('uq_trainer_model_versions_round_id'))
    )


def downgrade() -> None:
    op.drop_table('trainer_model_versions')
    with op.batch_alter_table('trainer_jobs', schema=None) as batch_op:
        batch_op.drop_index('ix_trainer_jobs_state_created_at')
        batch_op.drop_index(batch_op.f('ix_trainer_jobs_project'))

    op.drop_table('trainer_jobs')
    with op.batch_alter_table('trainer_rounds', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_trainer_rounds_project'))

    op.drop_table('trainer_rounds')
