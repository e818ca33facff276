"""One metrics label for every path the service does not serve.

BentoML 1.4's traffic-metrics middleware, the outermost layer of the app (outside authentication), labels its
request counters and duration histograms with the raw request path: every distinct path a client invents
becomes new series, so random paths, sent without any token, grow ``/metrics`` and each worker's memory without
bound. The access log and the trace spans quote the path too. :func:`label_unknown_paths` makes the middleware
replace the path of a request for a route the app does not have by :data:`UNKNOWN_PATH` before anything reads
it: metrics, access log and spans see one fixed path, and the router answers 404 as before. Known paths are the
app's own routes and the files of its static folders.
"""

from __future__ import annotations

import os
from typing import Any

import bentoml

UNKNOWN_PATH = "/__unknown__"


def known_paths(app: Any) -> frozenset[str]:
    """Every path the Starlette ``app`` serves: exact routes and the files under its static mounts."""
    from starlette.routing import Mount, Route
    from starlette.staticfiles import StaticFiles

    found: set[str] = set()
    for route in getattr(app, "routes", ()):
        if isinstance(route, Route) and "{" not in route.path:
            found.add(route.path)
        elif isinstance(route, Mount) and isinstance(route.app, StaticFiles) and route.app.directory:
            base = str(route.app.directory)
            for folder, _, files in os.walk(base):
                rel = os.path.relpath(folder, base)
                for name in files:
                    found.add("/".join(p for p in (route.path, "" if rel == "." else rel, name) if p))
    return frozenset(found)


def label_unknown_paths() -> bool:
    """Patch BentoML 1.4's ``RunnerTrafficMetricsMiddleware`` as the module docstring says; returns whether the
    patch is in place (other BentoML versions are left alone)."""
    try:
        from bentoml._internal.server.http import instruments
    except ImportError:
        return False
    middleware = getattr(instruments, "RunnerTrafficMetricsMiddleware", None)
    if middleware is None:
        return False
    if not bentoml.__version__.startswith("1.4."):
        return False
    if getattr(middleware, "_engage_labels_unknown_paths", False):
        return True
    original = middleware.__call__
    known: dict[int, frozenset[str]] = {}

    async def __call__(self, scope, receive, send) -> None:  # noqa: N807 - replaces the class's __call__
        app = scope.get("app")
        if scope["type"] in ("http", "websocket") and app is not None:
            paths = known.get(id(app))
            if paths is None:
                paths = known[id(app)] = known_paths(app)
            if scope["path"] not in paths:
                scope = {**scope, "path": UNKNOWN_PATH, "raw_path": UNKNOWN_PATH.encode()}
        await original(self, scope, receive, send)

    middleware.__call__ = __call__
    middleware._engage_labels_unknown_paths = True
    return True
