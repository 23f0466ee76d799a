"""trainer: round attempts and failures, promotions by a caller; pool and selection no longer kept

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-01 21:10:00.000000

- ``trainer_rounds``: ``attempt`` (a person may retry a failed round), ``failure_code``,
  ``failure_reason``, ``failed_at``; ``pool_key`` and ``selection`` dropped (only query uses them,
  and it takes them from ``round.completed.v1``).
- ``trainer_jobs``: ``round_attempt``; unique per (round, attempt, member), so the jobs of a failed
  attempt stay as history beside those of the retry.
- ``trainer_model_versions``: ``promoted_by`` (the caller's id) replaces ``promoted_by_person``.
"""

from alembic import op
import sqlalchemy as sa
import medal.db.schema.base


revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('trainer_rounds', schema=None) as batch_op:
        batch_op.add_column(sa.Column('attempt', sa.Integer(), server_default='1', nullable=False, comment='1, then 2, 3 … each time a person retries it'))
        batch_op.add_column(sa.Column('failure_code', sa.String(length=32), nullable=True, comment='bad-training-data | attempts-exhausted | round-rejected'))
        batch_op.add_column(sa.Column('failure_reason', sa.Text(), nullable=True, comment='What went wrong and what to fix (no PHI)'))
        batch_op.add_column(sa.Column('failed_at', medal.db.schema.base.UTCDateTime(timezone=True), nullable=True))
        batch_op.alter_column('labelled_set_key', existing_type=sa.String(length=512), existing_nullable=False, comment='Labelled set of the current attempt')
        batch_op.drop_column('pool_key')
        batch_op.drop_column('selection')

    with op.batch_alter_table('trainer_jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('round_attempt', sa.Integer(), server_default='1', nullable=False, comment="The round's attempt it trains for"))
        batch_op.drop_constraint('uq_trainer_jobs_round_id_member_index', type_='unique')
        batch_op.create_unique_constraint(batch_op.f('uq_trainer_jobs_round_id_round_attempt_member_index'), ['round_id', 'round_attempt', 'member_index'])

    with op.batch_alter_table('trainer_model_versions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('promoted_by', sa.String(length=128), nullable=True, comment='Who made it current by a promote or roll-back request (null: the trainer, as it was registered); while the current version has one, new versions wait as candidates'))
    # Before 0015 only the fact was kept, not the person: keep the fact.
    op.execute("UPDATE trainer_model_versions SET promoted_by = 'unknown' WHERE promoted_by_person")
    with op.batch_alter_table('trainer_model_versions', schema=None) as batch_op:
        batch_op.drop_column('promoted_by_person')


def downgrade() -> None:
    with op.batch_alter_table('trainer_model_versions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('promoted_by_person', sa.Boolean(), server_default='0', nullable=False, comment='Made current by a promote or roll-back request: new versions then wait as candidates'))
    op.execute("UPDATE trainer_model_versions SET promoted_by_person = (promoted_by IS NOT NULL)")
    with op.batch_alter_table('trainer_model_versions', schema=None) as batch_op:
        batch_op.drop_column('promoted_by')

    # Jobs of retried attempts have no place in the old shape: only each round's first attempt stays.
    op.execute("DELETE FROM trainer_jobs WHERE round_attempt <> 1")
    with op.batch_alter_table('trainer_jobs', schema=None) as batch_op:
        batch_op.drop_constraint('uq_trainer_jobs_round_id_round_attempt_member_index', type_='unique')
        batch_op.create_unique_constraint(batch_op.f('uq_trainer_jobs_round_id_member_index'), ['round_id', 'member_index'])
        batch_op.drop_column('round_attempt')

    # The pool and the selection spec are not known any more: old code reading them needs the round again.
    with op.batch_alter_table('trainer_rounds', schema=None) as batch_op:
        batch_op.add_column(sa.Column('selection', sa.Text(), server_default='{}', nullable=False, comment='SelectionSpec as JSON'))
        batch_op.add_column(sa.Column('pool_key', sa.String(length=512), server_default='', nullable=False))
        batch_op.alter_column('labelled_set_key', existing_type=sa.String(length=512), existing_nullable=False, comment=None)
        batch_op.drop_column('failed_at')
        batch_op.drop_column('failure_reason')
        batch_op.drop_column('failure_code')
        batch_op.drop_column('attempt')
