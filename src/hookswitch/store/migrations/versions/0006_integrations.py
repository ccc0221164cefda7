"""integrations: web passwords and sessions, integrations, activations, refresh tokens;
targets of integrations and event kinds

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29 22:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('password_hash', sa.String(length=200), nullable=True))
    op.create_table('web_sessions',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('user_id', sa.String(length=36), nullable=False),
    sa.Column('csrf_token', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_web_sessions_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_web_sessions'))
    )
    with op.batch_alter_table('web_sessions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_web_sessions_user_id'), ['user_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_web_sessions_expires_at'), ['expires_at'], unique=False)
    op.create_table('integrations',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('slug', sa.String(length=63), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('client_id', sa.String(length=100), nullable=False),
    sa.Column('client_secret_hash', sa.String(length=200), nullable=False),
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.Column('activation_url', sa.String(length=2000), nullable=False),
    sa.Column('deactivation_url', sa.String(length=2000), nullable=False),
    sa.Column('redirect_urls', sa.JSON(), nullable=False),
    sa.Column('validation_headers', sa.JSON(), nullable=False),
    sa.Column('logo', sa.String(length=2000), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('removed_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_integrations')),
    sa.UniqueConstraint('slug', name=op.f('uq_integrations_slug')),
    sa.UniqueConstraint('client_id', name=op.f('uq_integrations_client_id'))
    )
    op.create_table('activations',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('integration_id', sa.String(length=36), nullable=False),
    sa.Column('user_id', sa.String(length=36), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('family_id', sa.String(length=36), nullable=False),
    sa.Column('confirmation_key', sa.String(length=200), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('activated_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('ended_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('end_reason', sa.String(length=32), nullable=True),
    sa.ForeignKeyConstraint(['integration_id'], ['integrations.id'], name=op.f('fk_activations_integration_id_integrations'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_activations_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_activations'))
    )
    with op.batch_alter_table('activations', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_activations_integration_id'), ['integration_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_activations_user_id'), ['user_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_activations_state'), ['state'], unique=False)
    op.create_table('refresh_tokens',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('activation_id', sa.String(length=36), nullable=False),
    sa.Column('family_id', sa.String(length=36), nullable=False),
    sa.Column('token_sha256', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('used_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('replaced_by', sa.String(length=36), nullable=True),
    sa.Column('replay', sa.Text(), nullable=True),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['activation_id'], ['activations.id'], name=op.f('fk_refresh_tokens_activation_id_activations'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_refresh_tokens')),
    sa.UniqueConstraint('token_sha256', name=op.f('uq_refresh_tokens_token_sha256'))
    )
    with op.batch_alter_table('refresh_tokens', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_refresh_tokens_activation_id'), ['activation_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_refresh_tokens_family_id'), ['family_id'], unique=False)
    with op.batch_alter_table('api_tokens', schema=None) as batch_op:
        batch_op.add_column(sa.Column('activation_id', sa.String(length=36), nullable=True))
        batch_op.add_column(sa.Column('family_id', sa.String(length=36), nullable=True))
        batch_op.create_index(batch_op.f('ix_api_tokens_activation_id'), ['activation_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_api_tokens_family_id'), ['family_id'], unique=False)
    with op.batch_alter_table('webhooks', schema=None) as batch_op:
        batch_op.add_column(sa.Column('kind', sa.String(length=16), server_default='tenant', nullable=False))
        batch_op.add_column(sa.Column('integration_id', sa.String(length=36), nullable=True))
        batch_op.alter_column('tenant_id', existing_type=sa.String(length=36), nullable=True)
        batch_op.create_foreign_key(batch_op.f('fk_webhooks_integration_id_integrations'), 'integrations', ['integration_id'], ['id'], ondelete='CASCADE')
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.add_column(sa.Column('kind', sa.String(length=16), server_default='call', nullable=False))
    op.create_table('webhook_subscriptions',
    sa.Column('webhook_id', sa.String(length=36), nullable=False),
    sa.Column('user_id', sa.String(length=36), nullable=False),
    sa.ForeignKeyConstraint(['webhook_id'], ['webhooks.id'], name=op.f('fk_webhook_subscriptions_webhook_id_webhooks'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_webhook_subscriptions_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('webhook_id', 'user_id', name=op.f('pk_webhook_subscriptions'))
    )


def downgrade() -> None:
    op.drop_table('webhook_subscriptions')
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.drop_column('kind')
    with op.batch_alter_table('webhooks', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_webhooks_integration_id_integrations'), type_='foreignkey')
        batch_op.alter_column('tenant_id', existing_type=sa.String(length=36), nullable=False)
        batch_op.drop_column('integration_id')
        batch_op.drop_column('kind')
    with op.batch_alter_table('api_tokens', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_api_tokens_family_id'))
        batch_op.drop_index(batch_op.f('ix_api_tokens_activation_id'))
        batch_op.drop_column('family_id')
        batch_op.drop_column('activation_id')
    op.drop_table('refresh_tokens')
    op.drop_table('activations')
    op.drop_table('integrations')
    op.drop_table('web_sessions')
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_column('password_hash')
