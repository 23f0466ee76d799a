"""annotation masks record who approved them; the audit trail is searchable by actor and subject (views)

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-10 10:00:00.000000
"""

from alembic import op
import sqlalchemy as sa
import medal.db.schema.base


revision = '0022'
down_revision = '0021'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('annotation_masks', schema=None) as batch_op:
        batch_op.add_column(sa.Column('approved_by', sa.String(length=128), nullable=True, comment='The reviewer who approved this version'))
        batch_op.add_column(sa.Column('approved_at', medal.db.schema.base.UTCDateTime(timezone=True), nullable=True))
    # No batch mode on the audit table: SQLite's table copy would drop its append-only triggers.
    op.create_index(op.f('ix_access_audit_actor_subject_id'), 'access_audit', ['actor', 'subject_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_access_audit_actor_subject_id'), table_name='access_audit')
    with op.batch_alter_table('annotation_masks', schema=None) as batch_op:
        batch_op.drop_column('approved_at')
        batch_op.drop_column('approved_by')
