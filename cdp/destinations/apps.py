from django.apps import AppConfig


class DestinationsConfig(AppConfig):
    name = "cdp.destinations"
    label = "destinations"
    verbose_name = "Destinations and subscriptions"

    def ready(self) -> None:
        from cdp.destinations import registry

        registry.load_builtin_types()
