"""The Celery application shared by every pool."""
from celery import Celery

app = Celery("vru", include=[
    "tasks.pool_probe", "tasks.maintenance", "tasks.compatibility", "tasks.detection", "tasks.evaluation",
    "tasks.transfer", "tasks.validation", "tasks.model_check",
])
app.config_from_object("celeryconfig")
