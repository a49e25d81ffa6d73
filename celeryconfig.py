"""Celery settings in one place: queues, routes, reliability and monitoring.

Loaded by ``tasks.app`` with ``config_from_object``; every value can be overridden from the
environment through ``settings``.
"""

from kombu import Exchange, Queue

from settings import load_settings, redis_url

_settings = load_settings()

broker_url = redis_url()
broker_connection_retry_on_startup = True
broker_connection_timeout = 3
# Job state lives in the database; the result backend is not needed.
task_ignore_result = True
result_backend = None

# ---------------------------------------------------------------------- queues and routes
task_queues = (
    Queue("gpu", Exchange("gpu", type="direct"), routing_key="gpu"),
    Queue("cpu", Exchange("cpu", type="direct"), routing_key="cpu"),
)
task_default_queue = "cpu"
task_default_exchange = "cpu"
task_default_routing_key = "cpu"
task_create_missing_queues = False

#: The queue each job kind runs on. ``probe`` names its queue per request.
KIND_QUEUES = {
    "detection": "gpu",
    "model_check": "gpu",
    "export": "cpu",
    "import": "cpu",
    "compatibility": "cpu",
    "assignment": "cpu",
    "evaluation": "cpu",
    "validation_aggregate": "cpu",
    "maintenance": "cpu",
}
task_routes = {f"jobs.{kind}": {"queue": queue} for kind, queue in KIND_QUEUES.items()}
task_routes["maintenance.*"] = {"queue": "cpu"}

# ---------------------------------------------------------------------- time limits per kind
#: (soft, hard) seconds. A soft limit raises inside the task so it can clean up.
TIME_LIMITS = {
    "probe": (3600, 3660),
    "detection": (6 * 3600, 6 * 3600 + 300),
    "model_check": (600, 660),
    "export": (2 * 3600, 2 * 3600 + 120),
    "import": (2 * 3600, 2 * 3600 + 120),
    "compatibility": (3600, 3660),
    "assignment": (1800, 1860),
    "evaluation": (3600, 3660),
    "validation_aggregate": (3600, 3660),
}
task_annotations = {
    f"jobs.{kind}": {"soft_time_limit": soft, "time_limit": hard} for kind, (soft, hard) in TIME_LIMITS.items()
}
task_annotations.update({"maintenance.*": {"soft_time_limit": 120, "time_limit": 150}})

# ---------------------------------------------------------------------- reliability
# Acknowledge after the task ran, and requeue when the worker process dies under it.
# The database caps how many times a job may be redelivered (JOB_MAX_ATTEMPTS).
task_acks_late = True
task_reject_on_worker_lost = True
worker_prefetch_multiplier = 1
# An unacknowledged message comes back after this; it must outlast the longest hard limit.
broker_transport_options = {
    "visibility_timeout": max(hard for _, hard in TIME_LIMITS.values()) + 600,
    "socket_connect_timeout": 3,
    "socket_keepalive": True,
    "retry_on_timeout": True,
    "health_check_interval": 10,
}
worker_cancel_long_running_tasks_on_connection_loss = False

# ---------------------------------------------------------------------- monitoring (Flower)
worker_send_task_events = True
task_send_sent_event = True
task_track_started = True
event_queue_expires = 60
event_queue_ttl = 10

# ---------------------------------------------------------------------- periodic maintenance
beat_schedule = {
    "dispatch-outbox": {"task": "maintenance.dispatch_outbox", "schedule": 10.0},
    "reap-stale-jobs": {"task": "maintenance.reap_stale_jobs", "schedule": max(5.0, _settings.stale_after_seconds / 2)},
    "expire-exports": {"task": "maintenance.expire_exports", "schedule": 3600.0},
    "sweep-import-files": {"task": "maintenance.sweep_import_files",
                           "schedule": float(min(3600, max(60, _settings.import_retention_seconds)))},
    "reconcile-validation-runs": {"task": "maintenance.reconcile_validation_runs", "schedule": 10.0},
}
beat_schedule_filename = str(_settings.var_dir / "celerybeat-schedule")

task_serializer = "json"
accept_content = ["json"]
timezone = "UTC"
enable_utc = True
worker_hijack_root_logger = False
