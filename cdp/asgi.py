"""The one ASGI application: the Tracking API fast path, Django for everything else, websockets."""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cdp.settings")

from django.core.asgi import get_asgi_application  # noqa: E402

django_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402

from cdp.routing import websocket_urlpatterns  # noqa: E402
from cdp.tracking.app import TrackingApp  # noqa: E402
from cdp.tracking.http import Receive, Scope, Send  # noqa: E402

tracking_app = TrackingApp()


async def http_app(scope: Scope, receive: Receive, send: Send) -> None:
    if TrackingApp.handles(scope["path"]):
        await tracking_app(scope, receive, send)
    else:
        await django_app(scope, receive, send)


application = ProtocolTypeRouter(
    {
        "http": http_app,
        "websocket": AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
    }
)
