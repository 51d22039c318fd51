from django.apps import AppConfig


class ApiConfig(AppConfig):
    name = "cdp.api"
    label = "api"
    verbose_name = "Management API"
