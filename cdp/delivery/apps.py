from django.apps import AppConfig


class DeliveryConfig(AppConfig):
    name = "cdp.delivery"
    label = "delivery"
    verbose_name = "Deliveries"
