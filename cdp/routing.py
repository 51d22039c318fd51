"""Websocket routes; the live debugger adds its consumers here."""

from django.urls import URLPattern

websocket_urlpatterns: list[URLPattern] = []
