from typing import Any

from django.apps import AppConfig
from django.db.models.signals import post_migrate


def _install_config_version(using: str = "default", **_kwargs: Any) -> None:
    from cdp.processing import config_version

    config_version.install(using)


class ProcessingConfig(AppConfig):
    name = "cdp.processing"
    label = "processing"
    verbose_name = "Events"

    def ready(self) -> None:
        # After every migrate (and flush): a migration may have rebuilt a watched table without its triggers.
        post_migrate.connect(_install_config_version, sender=self, dispatch_uid="cdp.processing.config_version")
