"""access: project API keys, project members, the append-only audit trail

Revision ID: 0020
Revises: 0019
Create Date: 2026-11-29 10:00:00.000000
"""

from alembic import op
import sqlalchemy as sa
import medal.db.schema.base


revision = '0020'
down_revision = '0019'
branch_labels = None
depends_on = None

APPEND_ONLY = "the audit trail is append-only"

POSTGRES_UP = [
    f"""
    CREATE FUNCTION access_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION '{APPEND_ONLY}' USING ERRCODE = 'insufficient_privilege';
    END
    $$
    """,
    "CREATE TRIGGER access_audit_no_update_or_delete BEFORE UPDATE OR DELETE ON access_audit "
    "FOR EACH ROW EXECUTE FUNCTION access_audit_append_only()",
    "CREATE TRIGGER access_audit_no_truncate BEFORE TRUNCATE ON access_audit "
    "FOR EACH STATEMENT EXECUTE FUNCTION access_audit_append_only()",
    # Where the application connects as a role other than the owner, it may only read and append.
    "REVOKE UPDATE, DELETE, TRUNCATE ON access_audit FROM PUBLIC",
]
POSTGRES_DOWN = [
    "DROP TRIGGER IF EXISTS access_audit_no_truncate ON access_audit",
    "DROP TRIGGER IF EXISTS access_audit_no_update_or_delete ON access_audit",
    "DROP FUNCTION IF EXISTS access_audit_append_only()",
]
SQLITE_UP = [
    f"CREATE TRIGGER access_audit_no_update BEFORE UPDATE ON access_audit BEGIN SELECT RAISE(ABORT, '{APPEND_ONLY}'); END",
    f"CREATE TRIGGER access_audit_no_delete BEFORE DELETE ON access_audit BEGIN SELECT RAISE(ABORT, '{APPEND_ONLY}'); END",
]
SQLITE_DOWN = ["DROP TRIGGER IF EXISTS access_audit_no_update", "DROP TRIGGER IF EXISTS access_audit_no_delete"]


def upgrade() -> None:
    op.create_table('access_api_keys',
    sa.Column('id', sa.String(length=16), nullable=False, comment='Key id: the part after medal_ in the key itself'),
    sa.Column('project', sa.String(length=63), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False, comment='annotator, reviewer or project-admin'),
    sa.Column('label', sa.String(length=100), server_default='', nullable=False),
    sa.Column('secret_sha256', sa.String(length=64), nullable=False, comment='SHA-256 of the whole key; the key is never stored'),
    sa.Column('created_by', sa.String(length=255), nullable=False),
    sa.Column('created_at', medal.db.schema.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('last_used_at', medal.db.schema.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('revoked_at', medal.db.schema.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('revoked_by', sa.String(length=255), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_access_api_keys'))
    )
    with op.batch_alter_table('access_api_keys', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_access_api_keys_project'), ['project'], unique=False)

    op.create_table('access_audit',
    sa.Column('seq', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('at', medal.db.schema.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('actor', sa.String(length=255), nullable=False, comment='Caller.id'),
    sa.Column('actor_kind', sa.String(length=16), nullable=False),
    sa.Column('actor_name', sa.String(length=200), server_default='', nullable=False),
    sa.Column('action', sa.String(length=32), nullable=False),
    sa.Column('project', sa.String(length=63), nullable=True, comment='None for platform-wide actions'),
    sa.Column('subject_type', sa.String(length=32), nullable=False, comment='image, task, mask, model, export, key, member …'),
    sa.Column('subject_id', sa.String(length=255), nullable=False),
    sa.Column('details', sa.JSON(), nullable=False, comment='Ids and versions only, never PHI (e.g. model suggestion)'),
    sa.PrimaryKeyConstraint('seq', name=op.f('pk_access_audit'))
    )
    with op.batch_alter_table('access_audit', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_access_audit_project_seq'), ['project', 'seq'], unique=False)

    op.create_table('access_members',
    sa.Column('project', sa.String(length=63), nullable=False),
    sa.Column('subject', sa.String(length=255), nullable=False, comment="The provider's `sub` of the person or client"),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('name', sa.String(length=200), server_default='', nullable=False, comment='Display name, for the members list'),
    sa.Column('granted_by', sa.String(length=255), nullable=False),
    sa.Column('granted_at', medal.db.schema.base.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('project', 'subject', name=op.f('pk_access_members'))
    )
    with op.batch_alter_table('access_members', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_access_members_subject'), ['subject'], unique=False)

    for statement in POSTGRES_UP if op.get_context().dialect.name == 'postgresql' else SQLITE_UP:
        op.execute(statement)


def downgrade() -> None:
    for statement in POSTGRES_DOWN if op.get_context().dialect.name == 'postgresql' else SQLITE_DOWN:
        op.execute(statement)
    with op.batch_alter_table('access_members', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_access_members_subject'))

    op.drop_table('access_members')
    with op.batch_alter_table('access_audit', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_access_audit_project_seq'))

    op.drop_table('access_audit')
    with op.batch_alter_table('access_api_keys', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_access_api_keys_project'))

    op.drop_table('access_api_keys')
