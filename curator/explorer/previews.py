"""What the hover map fetches from the explorer's own server (never from another host):
plotly.js from the plotly package, and per item a thumbnail and a small JSON card (label,
issues). ASGI middleware inside the Host guard (:mod:`.host_guard`), so the same loopback
rule applies; only GET on ``/_curator/...`` is answered here, the rest goes to Streamlit."""

from __future__ import annotations

import json
import os
from pathlib import Path

PREFIX = "/_curator/"
HOVER_PX = 128


def plotly_js() -> Path:
    import plotly

    return Path(plotly.__file__).with_name("package_data") / "plotly.min.js"


class PreviewRoutes:
    def __init__(self, app):
        self.app = app
        self._plotly: bytes | None = None

    async def __call__(self, scope, receive, send):
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if not path.startswith(PREFIX) or scope.get("method") != "GET":
            await self.app(scope, receive, send)
            return
        status, ctype, body, cache = self.answer(path[len(PREFIX):])
        headers = [(b"content-type", ctype.encode()), (b"content-length", str(len(body)).encode()),
                   (b"cache-control", cache.encode()), (b"x-content-type-options", b"nosniff")]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    def answer(self, rest: str) -> tuple[int, str, bytes, str]:
        from . import data as D

        if rest == "plotly.min.js":
            if self._plotly is None:
                self._plotly = plotly_js().read_bytes()
            return 200, "text/javascript; charset=utf-8", self._plotly, "max-age=86400"
        kind, _, item = rest.partition("/")
        root = os.environ.get("CURATOR_PROJECT")
        if kind not in ("thumb", "item") or not item.isdigit() or not root:
            return 404, "text/plain", b"not found\n", "no-store"
        d = D.load(root)
        i = int(item)
        if not 0 <= i < d.n:
            return 404, "text/plain", b"no such item\n", "no-store"
        if kind == "thumb":
            data, mime = D.thumbnail(d, i, HOVER_PX)
            return 200, mime, data, "max-age=300"
        card = {"id": i, "label": str(d.labels[i]), "path": str(d.paths[i]),
                "issues": [{"issue": x.issue, "score": round(x.score, 3), "severity": x.severity,
                            "suggested": x.suggested_label} for x in sorted(d.item_issues.get(i, []), key=lambda x: -x.score)]}
        return 200, "application/json", json.dumps(card).encode(), "no-store"
