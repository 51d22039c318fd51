"""Websocket routes."""

from django.urls import URLPattern

from cdp.debugger.routing import websocket_urlpatterns as debugger_urlpatterns

websocket_urlpatterns: list[URLPattern] = [*debugger_urlpatterns]
