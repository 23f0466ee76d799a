"""ingest keeps original UIDs for projects that opt in, and audits who resolves them

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-03 10:00:00.000000
"""

from alembic import op
import sqlalchemy as sa
import medal.db.schema.base


revision = '0021'
down_revision = '0020'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('ingest_project_settings', schema=None) as batch_op:
        batch_op.add_column(sa.Column('keep_original_uids', sa.Boolean(), server_default=sa.false(), nullable=False, comment='Opt-in: keep the original-to-pseudonym UID mapping (ingest_original_uids); off by default'))
    with op.batch_alter_table('ingest_jobs', schema=None) as batch_op:
        batch_op.alter_column('source', existing_type=sa.String(length=16), comment='upload, zip, stow, cli, dimse or pull', existing_comment='upload, zip, stow or cli', existing_nullable=False)
    op.create_table(
        'ingest_original_uids',
        sa.Column('project', sa.String(length=63), nullable=False),
        sa.Column('uid', sa.String(length=64), nullable=False, comment='Pseudonymous 2.25 UID as stored'),
        sa.Column('level', sa.String(length=8), nullable=False, comment='study, series or instance'),
        sa.Column('original_uid', sa.String(length=64), nullable=False, comment='PHI-adjacent: never logged, never on the bus'),
        sa.Column('created_at', medal.db.schema.base.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('project', 'uid', name=op.f('pk_ingest_original_uids')),
    )
    op.create_table(
        'ingest_original_uid_reads',
        sa.Column('id', sa.String(length=36), nullable=False),
        sa.Column('project', sa.String(length=63), nullable=False),
        sa.Column('caller', sa.String(length=64), nullable=False, comment='Who resolved (the authenticated caller)'),
        sa.Column('purpose', sa.String(length=40), nullable=False, comment='e.g. seg-export'),
        sa.Column('instances', sa.Integer(), nullable=False, comment='How many UIDs were resolved (the UIDs are not kept)'),
        sa.Column('created_at', medal.db.schema.base.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_ingest_original_uid_reads')),
    )
    with op.batch_alter_table('ingest_original_uid_reads', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_ingest_original_uid_reads_project'), ['project'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('ingest_original_uid_reads', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_ingest_original_uid_reads_project'))
    op.drop_table('ingest_original_uid_reads')
    op.drop_table('ingest_original_uids')
    with op.batch_alter_table('ingest_jobs', schema=None) as batch_op:
        batch_op.alter_column('source', existing_type=sa.String(length=16), comment='upload, zip, stow or cli', existing_comment='upload, zip, stow, cli, dimse or pull', existing_nullable=False)
    with op.batch_alter_table('ingest_project_settings', schema=None) as batch_op:
        batch_op.drop_column('keep_original_uids')
