"""The Celery application shared by every pool."""
from celery import Celery

app = Celery("vru", include=["tasks.probe", "tasks.maintenance"])
app.config_from_object("celeryconfig")
