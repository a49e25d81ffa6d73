"""initial schema

Revision ID: 0001
Revises: 
Create Date: 2026-11-24 21:29:21.241833
"""
from alembic import op
import sqlalchemy as sa
import models.types


revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('audit_log',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('at', models.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('user_id', sa.Uuid(), nullable=True),
    sa.Column('username', sa.String(length=150), nullable=True),
    sa.Column('action', sa.String(length=50), nullable=False),
    sa.Column('resource_type', sa.String(length=50), nullable=False),
    sa.Column('resource_id', sa.String(length=64), nullable=True),
    sa.Column('details', sa.JSON(), nullable=False),
    sa.Column('ip', sa.String(length=64), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.create_index('idx_audit_log_at', ['at'], unique=False)
        batch_op.create_index('idx_audit_log_resource', ['resource_type', 'resource_id'], unique=False)
        batch_op.create_index('idx_audit_log_user', ['user_id'], unique=False)

    op.create_table('users',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('username', sa.String(length=150), nullable=False),
    sa.Column('password_hash', sa.String(length=255), nullable=False),
    sa.Column('role', sa.String(length=20), nullable=False),
    sa.Column('is_active', sa.Boolean(), nullable=False),
    sa.Column('token_version', sa.Integer(), nullable=False),
    sa.Column('created_at', models.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', models.types.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint("role IN ('admin','annotator','viewer')", name='ck_users_role'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('username')
    )
    op.create_table('projects',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('camera_metadata', sa.JSON(), nullable=False),
    sa.Column('labels', sa.JSON(), nullable=False),
    sa.Column('created_by', sa.Uuid(), nullable=True),
    sa.Column('created_at', models.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', models.types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['created_by'], ['users.id'], ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('jobs',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('queue', sa.String(length=32), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('progress_percent', sa.Float(), nullable=False),
    sa.Column('stage', sa.String(length=255), nullable=False),
    sa.Column('seq', sa.BigInteger(), nullable=False),
    sa.Column('params', sa.JSON(), nullable=False),
    sa.Column('result', sa.JSON(), nullable=True),
    sa.Column('checkpoint', sa.JSON(), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('project_id', sa.Uuid(), nullable=True),
    sa.Column('created_by', sa.Uuid(), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('max_attempts', sa.Integer(), nullable=False),
    sa.Column('claim_token', sa.String(length=36), nullable=True),
    sa.Column('worker', sa.String(length=255), nullable=True),
    sa.Column('worker_pid', sa.Integer(), nullable=True),
    sa.Column('heartbeat_at', models.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('cancel_requested', sa.Boolean(), nullable=False),
    sa.Column('dispatched_at', models.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('created_at', models.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('started_at', models.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('finished_at', models.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('updated_at', models.types.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint("status IN ('pending','processing','completed','failed','cancelled')", name='ck_jobs_status'),
    sa.CheckConstraint('progress_percent >= 0 AND progress_percent <= 100', name='ck_jobs_progress'),
    sa.ForeignKeyConstraint(['created_by'], ['users.id'], ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.create_index('idx_jobs_project_created', ['project_id', 'created_at'], unique=False)
        batch_op.create_index('idx_jobs_status_created', ['status', 'created_at'], unique=False)
        batch_op.create_index('idx_jobs_undispatched', ['dispatched_at', 'status'], unique=False)

    op.create_table('project_members',
    sa.Column('project_id', sa.Uuid(), nullable=False),
    sa.Column('user_id', sa.Uuid(), nullable=False),
    sa.Column('role', sa.String(length=20), nullable=False),
    sa.Column('created_at', models.types.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint("role IN ('admin','annotator','viewer')", name='ck_project_members_role'),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('project_id', 'user_id')
    )
    with op.batch_alter_table('project_members', schema=None) as batch_op:
        batch_op.create_index('idx_project_members_user', ['user_id'], unique=False)

    op.create_table('project_requirements',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('project_id', sa.Uuid(), nullable=False),
    sa.Column('requirement_type', sa.String(length=50), nullable=False),
    sa.Column('requirement_value', sa.JSON(), nullable=False),
    sa.Column('weight', sa.Float(), nullable=False),
    sa.Column('created_at', models.types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('project_requirements', schema=None) as batch_op:
        batch_op.create_index('idx_project_requirements_project', ['project_id'], unique=False)

    op.create_table('videos',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('project_id', sa.Uuid(), nullable=True),
    sa.Column('filename', sa.String(length=255), nullable=False),
    sa.Column('storage_path', sa.String(length=500), nullable=False),
    sa.Column('size_bytes', sa.BigInteger(), nullable=False),
    sa.Column('checksum', sa.String(length=64), nullable=False),
    sa.Column('fps', sa.Float(), nullable=False),
    sa.Column('frame_count', sa.Integer(), nullable=False),
    sa.Column('width', sa.Integer(), nullable=False),
    sa.Column('height', sa.Integer(), nullable=False),
    sa.Column('duration', sa.Float(), nullable=False),
    sa.Column('codec', sa.String(length=16), nullable=False),
    sa.Column('variable_frame_rate', sa.Boolean(), nullable=False),
    sa.Column('uploaded_by', sa.Uuid(), nullable=True),
    sa.Column('created_at', models.types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['uploaded_by'], ['users.id'], ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('videos', schema=None) as batch_op:
        batch_op.create_index('idx_videos_checksum', ['checksum'], unique=False)
        batch_op.create_index('idx_videos_project', ['project_id'], unique=False)

    op.create_table('annotation_sessions',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('project_id', sa.Uuid(), nullable=False),
    sa.Column('video_id', sa.Uuid(), nullable=False),
    sa.Column('annotator_id', sa.String(length=36), nullable=False),
    sa.Column('session_name', sa.String(length=255), nullable=False),
    sa.Column('annotation_type', sa.String(length=50), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('start_time', models.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('end_time', models.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('metadata', sa.JSON(), nullable=False),
    sa.Column('created_at', models.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', models.types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['video_id'], ['videos.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('annotation_sessions', schema=None) as batch_op:
        batch_op.create_index('idx_annotation_sessions_project_video', ['project_id', 'video_id'], unique=False)

    op.create_table('export_jobs',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('job_id', sa.Uuid(), nullable=True),
    sa.Column('job_name', sa.String(length=255), nullable=False),
    sa.Column('export_type', sa.String(length=50), nullable=False),
    sa.Column('format', sa.String(length=20), nullable=False),
    sa.Column('scope_filter', sa.JSON(), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('progress_percent', sa.Integer(), nullable=False),
    sa.Column('file_path', sa.String(length=500), nullable=True),
    sa.Column('file_size', sa.BigInteger(), nullable=True),
    sa.Column('sha256', sa.String(length=64), nullable=True),
    sa.Column('download_count', sa.Integer(), nullable=False),
    sa.Column('created_by', sa.String(length=36), nullable=False),
    sa.Column('created_at', models.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('completed_at', models.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('expires_at', models.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('error_message', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['job_id'], ['jobs.id'], ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('export_jobs', schema=None) as batch_op:
        batch_op.create_index('idx_export_jobs_status_created', ['status', 'created_at'], unique=False)

    op.create_table('import_jobs',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('job_id', sa.Uuid(), nullable=True),
    sa.Column('job_name', sa.String(length=255), nullable=False),
    sa.Column('import_type', sa.String(length=50), nullable=False),
    sa.Column('source_format', sa.String(length=20), nullable=False),
    sa.Column('file_path', sa.String(length=500), nullable=False),
    sa.Column('validation_status', sa.String(length=20), nullable=False),
    sa.Column('import_status', sa.String(length=20), nullable=False),
    sa.Column('progress_percent', sa.Integer(), nullable=False),
    sa.Column('records_processed', sa.Integer(), nullable=False),
    sa.Column('records_total', sa.Integer(), nullable=False),
    sa.Column('validation_errors', sa.JSON(), nullable=False),
    sa.Column('import_errors', sa.JSON(), nullable=False),
    sa.Column('created_by', sa.String(length=36), nullable=False),
    sa.Column('created_at', models.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('completed_at', models.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('error_message', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['job_id'], ['jobs.id'], ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('import_jobs', schema=None) as batch_op:
        batch_op.create_index('idx_import_jobs_status_created', ['import_status', 'created_at'], unique=False)

    op.create_table('project_video_assignments',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('project_id', sa.Uuid(), nullable=False),
    sa.Column('video_id', sa.Uuid(), nullable=False),
    sa.Column('assignment_type', sa.String(length=20), nullable=False),
    sa.Column('compatibility_score', sa.Float(), nullable=False),
    sa.Column('assignment_reason', sa.Text(), nullable=True),
    sa.Column('assigned_by', sa.String(length=36), nullable=False),
    sa.Column('assigned_at', models.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('metadata', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['video_id'], ['videos.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('project_id', 'video_id', name='uq_project_video_assignments_project_video')
    )
    with op.batch_alter_table('project_video_assignments', schema=None) as batch_op:
        batch_op.create_index('idx_project_video_assignments_project', ['project_id'], unique=False)
        batch_op.create_index('idx_project_video_assignments_compatibility', [sa.text('compatibility_score DESC')], unique=False)

    op.create_table('video_compatibility_cache',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('video_id', sa.Uuid(), nullable=False),
    sa.Column('compatibility_vector', sa.JSON(), nullable=False),
    sa.Column('extractor_version', sa.String(length=32), nullable=False),
    sa.Column('video_checksum', sa.String(length=64), nullable=False),
    sa.Column('last_updated', models.types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['video_id'], ['videos.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('video_id', name='uq_video_compatibility_cache_video')
    )
    with op.batch_alter_table('video_compatibility_cache', schema=None) as batch_op:
        batch_op.create_index('idx_video_compatibility_cache_updated', ['last_updated'], unique=False)

    op.create_table('test_sessions',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('project_id', sa.Uuid(), nullable=False),
    sa.Column('video_id', sa.Uuid(), nullable=False),
    sa.Column('job_id', sa.Uuid(), nullable=True),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('source', sa.String(length=20), nullable=False),
    sa.Column('model', sa.JSON(), nullable=False),
    sa.Column('config', sa.JSON(), nullable=False),
    sa.Column('ground_truth_session_id', sa.Uuid(), nullable=True),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('metrics', sa.JSON(), nullable=True),
    sa.Column('created_by', sa.Uuid(), nullable=True),
    sa.Column('created_at', models.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('completed_at', models.types.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['created_by'], ['users.id'], ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['ground_truth_session_id'], ['annotation_sessions.id'], ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['job_id'], ['jobs.id'], ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['video_id'], ['videos.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('test_sessions', schema=None) as batch_op:
        batch_op.create_index('idx_test_sessions_project_video', ['project_id', 'video_id'], unique=False)

    op.create_table('video_annotations',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('annotation_session_id', sa.Uuid(), nullable=False),
    sa.Column('video_id', sa.Uuid(), nullable=False),
    sa.Column('start_timestamp', sa.Float(), nullable=False),
    sa.Column('end_timestamp', sa.Float(), nullable=False),
    sa.Column('annotation_type', sa.String(length=50), nullable=False),
    sa.Column('class_label', sa.String(length=100), nullable=False),
    sa.Column('bounding_box', sa.JSON(), nullable=True),
    sa.Column('confidence', sa.Float(), nullable=False),
    sa.Column('annotator_notes', sa.Text(), nullable=True),
    sa.Column('keyframe_data', sa.JSON(), nullable=False),
    sa.Column('validation_status', sa.String(length=20), nullable=False),
    sa.Column('validated_by', sa.Uuid(), nullable=True),
    sa.Column('validated_at', models.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('validation_reason', sa.Text(), nullable=True),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('created_at', models.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', models.types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['annotation_session_id'], ['annotation_sessions.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['validated_by'], ['users.id'], ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['video_id'], ['videos.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('video_annotations', schema=None) as batch_op:
        batch_op.create_index('idx_video_annotations_session_time', ['annotation_session_id', 'start_timestamp'], unique=False)
        batch_op.create_index('idx_video_annotations_video', ['video_id'], unique=False)

    op.create_table('annotation_keyframes',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('annotation_id', sa.Uuid(), nullable=False),
    sa.Column('frame_number', sa.Integer(), nullable=False),
    sa.Column('timestamp', sa.Float(), nullable=False),
    sa.Column('frame_data', sa.JSON(), nullable=False),
    sa.Column('screenshot_path', sa.String(length=500), nullable=True),
    sa.Column('created_at', models.types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['annotation_id'], ['video_annotations.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('annotation_keyframes', schema=None) as batch_op:
        batch_op.create_index('idx_annotation_keyframes_annotation_frame', ['annotation_id', 'frame_number'], unique=False)

    op.create_table('detection_events',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('test_session_id', sa.Uuid(), nullable=False),
    sa.Column('frame_number', sa.Integer(), nullable=False),
    sa.Column('detection_index', sa.Integer(), nullable=False),
    sa.Column('timestamp', sa.Float(), nullable=False),
    sa.Column('class_label', sa.String(length=100), nullable=False),
    sa.Column('confidence', sa.Float(), nullable=False),
    sa.Column('x1', sa.Float(), nullable=False),
    sa.Column('y1', sa.Float(), nullable=False),
    sa.Column('x2', sa.Float(), nullable=False),
    sa.Column('y2', sa.Float(), nullable=False),
    sa.Column('track_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['test_session_id'], ['test_sessions.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('test_session_id', 'frame_number', 'detection_index', name='uq_detection_events_frame_index')
    )
    with op.batch_alter_table('detection_events', schema=None) as batch_op:
        batch_op.create_index('idx_detection_events_session_frame', ['test_session_id', 'frame_number'], unique=False)
        batch_op.create_index('idx_detection_events_session_track', ['test_session_id', 'track_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('detection_events', schema=None) as batch_op:
        batch_op.drop_index('idx_detection_events_session_track')
        batch_op.drop_index('idx_detection_events_session_frame')

    op.drop_table('detection_events')
    with op.batch_alter_table('annotation_keyframes', schema=None) as batch_op:
        batch_op.drop_index('idx_annotation_keyframes_annotation_frame')

    op.drop_table('annotation_keyframes')
    with op.batch_alter_table('video_annotations', schema=None) as batch_op:
        batch_op.drop_index('idx_video_annotations_video')
        batch_op.drop_index('idx_video_annotations_session_time')

    op.drop_table('video_annotations')
    with op.batch_alter_table('test_sessions', schema=None) as batch_op:
        batch_op.drop_index('idx_test_sessions_project_video')

    op.drop_table('test_sessions')
    with op.batch_alter_table('video_compatibility_cache', schema=None) as batch_op:
        batch_op.drop_index('idx_video_compatibility_cache_updated')

    op.drop_table('video_compatibility_cache')
    with op.batch_alter_table('project_video_assignments', schema=None) as batch_op:
        batch_op.drop_index('idx_project_video_assignments_compatibility')
        batch_op.drop_index('idx_project_video_assignments_project')

    op.drop_table('project_video_assignments')
    with op.batch_alter_table('import_jobs', schema=None) as batch_op:
        batch_op.drop_index('idx_import_jobs_status_created')

    op.drop_table('import_jobs')
    with op.batch_alter_table('export_jobs', schema=None) as batch_op:
        batch_op.drop_index('idx_export_jobs_status_created')

    op.drop_table('export_jobs')
    with op.batch_alter_table('annotation_sessions', schema=None) as batch_op:
        batch_op.drop_index('idx_annotation_sessions_project_video')

    op.drop_table('annotation_sessions')
    with op.batch_alter_table('videos', schema=None) as batch_op:
        batch_op.drop_index('idx_videos_project')
        batch_op.drop_index('idx_videos_checksum')

    op.drop_table('videos')
    with op.batch_alter_table('project_requirements', schema=None) as batch_op:
        batch_op.drop_index('idx_project_requirements_project')

    op.drop_table('project_requirements')
    with op.batch_alter_table('project_members', schema=None) as batch_op:
        batch_op.drop_index('idx_project_members_user')

    op.drop_table('project_members')
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_index('idx_jobs_undispatched')
        batch_op.drop_index('idx_jobs_status_created')
        batch_op.drop_index('idx_jobs_project_created')

    op.drop_table('jobs')
    op.drop_table('projects')
    op.drop_table('users')
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.drop_index('idx_audit_log_user')
        batch_op.drop_index('idx_audit_log_resource')
        batch_op.drop_index('idx_audit_log_at')

    op.drop_table('audit_log')
