"""Optional bearer-token authentication for the scoring endpoints (an ASGI middleware).

The token comes from ``ENGAGE_API_TOKEN`` or from the file named by ``ENGAGE_API_TOKEN_FILE``; with
neither set, authentication is off. Tokens are compared with :func:`hmac.compare_digest` (constant
time). Health, metrics and the OpenAPI pages stay open so probes and docs work without a token.

The header rule is RFC 7235's and RFC 6750's: ``Authorization: Bearer <token>`` where the scheme name is
case-insensitive (``bearer``, ``BEARER``), one or more spaces separate it from the token, and the token must
match exactly (case and every character; a tab or a trailing character makes it another token). HTTP servers
strip whitespace around a header value before it gets here.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

OPEN_PATHS = frozenset({"/livez", "/readyz", "/healthz", "/metrics", "/docs.json", "/", "/favicon.ico"})
OPEN_PREFIXES = ("/static_content",)
MIN_TOKEN_CHARS = 16


def token_from_env(env: Mapping[str, str]) -> str | None:
    """The configured API token, or ``None`` when authentication is off.

    Raises ``ValueError`` for a token that is too short (the message gives its length, never the token) and
    ``OSError`` for a token file that cannot be read.
    """
    direct, file = env.get("ENGAGE_API_TOKEN"), env.get("ENGAGE_API_TOKEN_FILE")
    if direct and file:
        raise ValueError("set ENGAGE_API_TOKEN or ENGAGE_API_TOKEN_FILE, not both")
    if not direct and not file:
        return None
    where = f"ENGAGE_API_TOKEN_FILE ({file})" if file else "ENGAGE_API_TOKEN"
    token = (Path(file).read_text() if file else direct or "").strip()
    if len(token) < MIN_TOKEN_CHARS:
        raise ValueError(
            f"{where}: the API token has {len(token)} characters; it must have at least {MIN_TOKEN_CHARS} "
            "characters"
        )
    return token


def token_matches(header: bytes | None, token: bytes) -> bool:
    """Whether an ``Authorization`` header carries the bearer token (constant-time comparison of the token)."""
    if not header or header[:6].lower() != b"bearer" or header[6:7] != b" ":
        return False
    return hmac.compare_digest(header[6:].lstrip(b" "), token)


class BearerAuthMiddleware:
    """Reject requests to protected paths without ``Authorization: Bearer <token>`` (HTTP 401)."""

    def __init__(self, app: Any, token: str | None = None, env: Mapping[str, str] | None = None):
        import os

        self.app = app
        token = token if token is not None else token_from_env(os.environ if env is None else env)
        self.token = token.encode() if token else None

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if self.token is None or scope["type"] != "http" or self._open(scope["path"]):
            await self.app(scope, receive, send)
            return
        header = dict(scope.get("headers") or []).get(b"authorization")
        if token_matches(header, self.token):
            await self.app(scope, receive, send)
            return
        body = json.dumps({"error": "missing or invalid bearer token"}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 401,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"www-authenticate", b'Bearer realm="engage"'),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    @staticmethod
    def _open(path: str) -> bool:
        return path in OPEN_PATHS or path.startswith(OPEN_PREFIXES)
