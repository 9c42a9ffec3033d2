"""`GET /`: what a person or a program that finds the service sees first. Pure.

JSON for programs (and `curl`), a small HTML page for a browser (an `Accept` that prefers `text/html`).
"""

from __future__ import annotations

import html

# name -> (path, what is there), in the order a newcomer needs them
LINKS = {
    "docs": ("/docs", "the API reference, readable"),
    "dashboard": ("/dashboard", "the live dashboard"),
    "openapi": ("/openapi.json", "the OpenAPI 3.1 document"),
    "healthz": ("/healthz", "liveness and log health"),
    "metrics": ("/metrics", "Prometheus metrics"),
    "proxy": ("/v1/chat/completions", 'the OpenAI-compatible proxy (model "auto")'),
}


def index(version: str) -> dict[str, object]:
    return {"service": "banditroute", "version": version, "links": {name: path for name, (path, _) in LINKS.items()}}


def index_html(version: str) -> str:
    items = "\n".join(
        f'<li><a href="{html.escape(path)}"><code>{html.escape(path)}</code></a>: {html.escape(what)}</li>'
        for path, what in LINKS.values()
    )
    return (
        "<!doctype html>\n<html lang=en><head><meta charset=utf-8><title>banditroute</title></head>\n"
        f"<body><h1>banditroute {html.escape(version)}</h1>\n<p>A learning LLM router. Start here:</p>\n"
        f"<ul>\n{items}\n</ul>\n</body></html>\n"
    )


def prefers_html(accept: str) -> bool:
    """Whether an `Accept` header ranks `text/html` above `application/json` (by q, then by order)."""
    ranks: dict[str, tuple[float, int]] = {}
    for position, item in enumerate(accept.split(",")):
        media, *params = (p.strip() for p in item.split(";"))
        q = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        ranks.setdefault(media.lower(), (q, -position))
    html_rank = ranks.get("text/html")
    if html_rank is None or html_rank[0] <= 0:
        return False
    json_rank = ranks.get("application/json")
    return json_rank is None or html_rank > json_rank
