"""job state: the rows the job lifecycle writes a job's state on are found by their job

Revision ID: 0004
Revises: 0003
"""
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

INDEXES = (("export_jobs", "idx_export_jobs_job"), ("import_jobs", "idx_import_jobs_job"),
           ("test_sessions", "idx_test_sessions_job"))


def upgrade() -> None:
    for table, name in INDEXES:
        with op.batch_alter_table(table) as batch_op:
            batch_op.create_index(name, ["job_id"], unique=False)


def downgrade() -> None:
    for table, name in INDEXES:
        with op.batch_alter_table(table) as batch_op:
            batch_op.drop_index(name)
