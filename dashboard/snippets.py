"""Install snippets shown on a source page; each works against this server exactly as shown."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest

from cdp.core.models import Source


def server_origin(request: HttpRequest) -> str:
    """Where clients reach this server: CDP_PUBLIC_URL when set, else the address the page was loaded from."""
    return settings.CDP_PUBLIC_URL or f"{request.scheme}://{request.get_host()}"


def browser_snippet(source: Source, origin: str) -> str:
    return f"""<script>
  (function () {{
    var analytics = (window.analytics = window.analytics || []);
    if (analytics.initialize || analytics.invoked) return;
    analytics.invoked = true;
    analytics.methods = ["track", "identify", "page", "screen", "group", "alias", "ready", "reset",
      "debug", "on", "once", "off", "trackLink", "trackForm", "setAnonymousId", "addSourceMiddleware"];
    analytics.methods.forEach(function (method) {{
      analytics[method] = function () {{
        var args = Array.prototype.slice.call(arguments);
        args.unshift(method);
        analytics.push(args);
        return analytics;
      }};
    }});
    analytics._writeKey = "{source.write_key}";
    analytics._cdn = "{origin}";
    var script = document.createElement("script");
    script.async = true;
    script.src = analytics._cdn + "/analytics.js/v1/" + analytics._writeKey + "/analytics.min.js";
    document.head.appendChild(script);
    analytics.page();
  }})();
</script>"""


def python_snippet(source: Source, origin: str) -> str:
    return f"""# pip install segment-analytics-python
import segment.analytics as analytics

analytics.write_key = "{source.write_key}"
analytics.host = "{origin}"

analytics.identify("user-123", {{"email": "ada@example.com", "name": "Ada"}})
analytics.track("user-123", "Order Completed", {{"total": 42.5}})
analytics.flush()"""


def node_snippet(source: Source, origin: str) -> str:
    return f"""// npm install @segment/analytics-node
const {{ Analytics }} = require("@segment/analytics-node");

const analytics = new Analytics({{ writeKey: "{source.write_key}", host: "{origin}" }});

analytics.identify({{ userId: "user-123", traits: {{ email: "ada@example.com", name: "Ada" }} }});
analytics.track({{ userId: "user-123", event: "Order Completed", properties: {{ total: 42.5 }} }});
analytics.closeAndFlush();"""


def curl_snippet(source: Source, origin: str) -> str:
    return f"""curl {origin}/v1/track \\
  -u "{source.write_key}:" \\
  -H "Content-Type: application/json" \\
  -d '{{"userId": "user-123", "event": "Order Completed", "properties": {{"total": 42.5}}}}'"""
