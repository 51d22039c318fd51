from django.apps import AppConfig


class DebuggerConfig(AppConfig):
    name = "cdp.debugger"
    label = "debugger"
    verbose_name = "Live debugger"
