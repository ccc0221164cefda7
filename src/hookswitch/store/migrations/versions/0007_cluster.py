"""cluster: which node holds a leg and sends a delivery; a binding's Path (through the edge)

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06 02:40:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # 'default' is the node id of a single server: rows written before this revision are
    # that server's.
    with op.batch_alter_table('legs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('node_id', sa.String(length=64), nullable=False,
                                      server_default='default'))
        batch_op.create_index(batch_op.f('ix_legs_node_id'), ['node_id'], unique=False)
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.add_column(sa.Column('node_id', sa.String(length=64), nullable=False,
                                      server_default='default'))
        batch_op.create_index(batch_op.f('ix_deliveries_node_id'), ['node_id'], unique=False)
    with op.batch_alter_table('bindings', schema=None) as batch_op:
        batch_op.add_column(sa.Column('path', sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('bindings', schema=None) as batch_op:
        batch_op.drop_column('path')
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_deliveries_node_id'))
        batch_op.drop_column('node_id')
    with op.batch_alter_table('legs', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_legs_node_id'))
        batch_op.drop_column('node_id')
