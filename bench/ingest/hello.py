"""Baseline: the least an ASGI app can do for a POST — read the whole body, answer 200 with JSON."""

_OK = b'{"success":true}'
_HEADERS = [(b"content-type", b"application/json"), (b"content-length", str(len(_OK)).encode())]


async def app(scope, receive, send):
    if scope["type"] != "http":  # lifespan: nothing to set up
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
            message = await receive()
        if message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
        return
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    await send({"type": "http.response.start", "status": 200, "headers": _HEADERS})
    await send({"type": "http.response.body", "body": _OK})
