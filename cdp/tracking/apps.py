from django.apps import AppConfig


class TrackingConfig(AppConfig):
    name = "cdp.tracking"
    label = "tracking"
    verbose_name = "Tracking API intake"
