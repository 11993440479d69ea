"""Refuse requests whose Host header is not the loopback address the explorer serves.

Streamlit accepts any Host header on its pages and its websocket, so a web page the user visits
could rebind its own host name to 127.0.0.1 (DNS rebinding) and drive the explorer from the
browser. Streamlit's ``server.allowedHosts`` covers only the websocket and ignores the port, so
the server child wraps Streamlit's ASGI app in :class:`LoopbackHostGuard` instead (see
:func:`install`), which answers 403 to any HTTP request or websocket handshake whose Host is
not ``127.0.0.1:PORT``, ``localhost:PORT`` or ``[::1]:PORT``.
"""

from __future__ import annotations

from ..errors import CuratorError

LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")


def allowed_hosts(port: int) -> frozenset[str]:
    """The Host header values a browser sends for the loopback server on ``port``."""
    hosts = {f"{name}:{port}" for name in LOOPBACK_NAMES}
    if port == 80:  # browsers leave the default port out
        hosts.update(LOOPBACK_NAMES)
    return frozenset(hosts)


class LoopbackHostGuard:
    """ASGI middleware: pass a request on only when every Host header it carries is allowed."""

    def __init__(self, app, port: int):
        self.app = app
        self.port = int(port)
        self.allowed = allowed_hosts(self.port)

    def host_ok(self, scope) -> bool:
        hosts = [v.decode("latin-1").strip().lower() for k, v in scope.get("headers", ()) if k.lower() == b"host"]
        return bool(hosts) and all(h in self.allowed for h in hosts)

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket") or self.host_ok(scope):
            await self.app(scope, receive, send)
        elif scope["type"] == "websocket":  # closing before accepting makes the server answer 403
            await send({"type": "websocket.close", "code": 1008})
        else:
            body = b"curator explorer: this server answers only to 127.0.0.1 / localhost\n"
            await send({"type": "http.response.start", "status": 403,
                        "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                                    (b"content-length", str(len(body)).encode())]})
            await send({"type": "http.response.body", "body": body})


def install() -> None:
    """Make Streamlit's server wrap its app in :class:`LoopbackHostGuard` (call before it starts).

    Hooks the app factory of Streamlit's Starlette server; a Streamlit without it (older
    versions served through Tornado) would run unguarded, so that is refused."""
    try:
        from streamlit.web.server.starlette import starlette_server
    except ImportError:
        starlette_server = None
    if not callable(getattr(starlette_server, "create_starlette_app", None)):
        raise CuratorError("this Streamlit version cannot be guarded against foreign Host headers; "
                           "upgrade it: pip install -U streamlit")
    make_app = starlette_server.create_starlette_app
    if getattr(make_app, "_curator_guarded", False):
        return

    def guarded_app(runtime):
        from streamlit import config

        from .previews import PreviewRoutes  # thumbnails and plotly.js for the hover map, same guard

        return LoopbackHostGuard(PreviewRoutes(make_app(runtime)), int(config.get_option("server.port")))

    guarded_app._curator_guarded = True
    starlette_server.create_starlette_app = guarded_app


__all__ = ["LOOPBACK_NAMES", "LoopbackHostGuard", "allowed_hosts", "install"]
