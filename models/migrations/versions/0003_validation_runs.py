"""validation runs: one model over a test set; free per-video tags

Revision ID: 0003
Revises: 0002
"""
import sqlalchemy as sa
from alembic import op

import models.types

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("videos") as batch_op:
        batch_op.add_column(sa.Column("tags", sa.JSON(), nullable=False, server_default="[]"))
    op.create_table(
        "validation_runs",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("project_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("model", sa.JSON(), nullable=False),
        sa.Column("request", sa.JSON(), nullable=False),
        sa.Column("evaluation", sa.JSON(), nullable=False),
        sa.Column("baseline_run_id", sa.Uuid(), nullable=True),
        sa.Column("gates", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("videos_total", sa.Integer(), nullable=False),
        sa.Column("videos_done", sa.Integer(), nullable=False),
        sa.Column("videos_failed", sa.Integer(), nullable=False),
        sa.Column("aggregation_job_id", sa.Uuid(), nullable=True),
        sa.Column("metrics", sa.JSON(), nullable=True),
        sa.Column("comparison", sa.JSON(), nullable=True),
        sa.Column("gate_status", sa.String(length=20), nullable=True),
        sa.Column("gate_results", sa.JSON(), nullable=True),
        sa.Column("report_path", sa.String(length=500), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("cancel_requested", sa.Boolean(), nullable=False),
        sa.Column("created_by", sa.Uuid(), nullable=True),
        sa.Column("created_at", models.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("finished_at", models.types.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["aggregation_job_id"], ["jobs.id"], ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["baseline_run_id"], ["validation_runs.id"], ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["created_by"], ["users.id"], ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["project_id"], ["projects.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("validation_runs") as batch_op:
        batch_op.create_index("idx_validation_runs_project_created", ["project_id", "created_at"], unique=False)
    op.create_table(
        "validation_run_videos",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("run_id", sa.Uuid(), nullable=False),
        sa.Column("video_id", sa.Uuid(), nullable=False),
        sa.Column("test_session_id", sa.Uuid(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("evaluation_job_id", sa.Uuid(), nullable=True),
        sa.Column("matches_path", sa.String(length=500), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("finished_at", models.types.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["run_id"], ["validation_runs.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["test_session_id"], ["test_sessions.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["video_id"], ["videos.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("run_id", "video_id", name="uq_validation_run_videos_run_video"),
    )
    with op.batch_alter_table("validation_run_videos") as batch_op:
        batch_op.create_index("idx_validation_run_videos_test_session", ["test_session_id"], unique=False)


def downgrade() -> None:
    op.drop_table("validation_run_videos")
    op.drop_table("validation_runs")
    with op.batch_alter_table("videos") as batch_op:
        batch_op.drop_column("tags")
