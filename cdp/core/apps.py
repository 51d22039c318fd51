from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "cdp.core"
    label = "core"
    verbose_name = "Workspaces and sources"
