import gc
import os

from celery import Celery
from celery.signals import worker_process_init, worker_ready

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cdp.settings")

app = Celery("cdp")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_ready.connect
@worker_process_init.connect
def freeze_startup_objects(**_: object) -> None:
    """Leave what start-up made (modules, settings, the app's registries) out of garbage collection: a
    worker allocates thousands of short-lived containers a second, and every full collection would walk
    those hundreds of thousands of long-lived objects again."""
    gc.collect()
    gc.freeze()
