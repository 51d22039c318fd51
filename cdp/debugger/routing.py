from django.urls import URLPattern, path

from cdp.debugger import consumers

websocket_urlpatterns: list[URLPattern] = [
    path("ws/debug/sources/<int:source_id>/", consumers.SourceDebugConsumer.as_asgi(), name="debug-source"),
    path(
        "ws/debug/destinations/<int:destination_id>/",
        consumers.DestinationDebugConsumer.as_asgi(),
        name="debug-destination",
    ),
]
