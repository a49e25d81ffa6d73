"""model registry: uploaded models as immutable versions, checked before use

Revision ID: 0005
Revises: 0004
"""
import sqlalchemy as sa
from alembic import op

import models.types

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "model_versions",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("version", sa.String(length=50), nullable=False),
        sa.Column("format", sa.String(length=20), nullable=False),
        sa.Column("arch", sa.String(length=100), nullable=True),
        sa.Column("classes", sa.JSON(), nullable=False),
        sa.Column("input_size", sa.Integer(), nullable=False),
        sa.Column("confidence_threshold", sa.Float(), nullable=False),
        sa.Column("nms_threshold", sa.Float(), nullable=False),
        sa.Column("label_map", sa.JSON(), nullable=True),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("storage_path", sa.String(length=500), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("check_job_id", sa.Uuid(), nullable=True),
        sa.Column("created_by", sa.Uuid(), nullable=True),
        sa.Column("created_at", models.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("checked_at", models.types.UTCDateTime(timezone=True), nullable=True),
        sa.CheckConstraint("status IN ('checking','ready','invalid')", name="ck_model_versions_status"),
        sa.ForeignKeyConstraint(["check_job_id"], ["jobs.id"], ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["created_by"], ["users.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name", "version", name="uq_model_versions_name_version"),
    )


def downgrade() -> None:
    op.drop_table("model_versions")
