from django.apps import AppConfig


class ProcessingConfig(AppConfig):
    name = "cdp.processing"
    label = "processing"
    verbose_name = "Events"
