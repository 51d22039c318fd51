from django.apps import AppConfig


class InsightsConfig(AppConfig):
    name = "cdp.insights"
    label = "insights"
    verbose_name = "Insights"
