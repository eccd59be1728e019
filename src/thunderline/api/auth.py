"""Bearer-token authentication and scopes for the API and the console.

A request authenticates with ``Authorization: Bearer <token>`` or, from the web console, with the
``tl_session`` cookie (HttpOnly, SameSite=Strict) holding the same token. A state-changing
request authenticated by the cookie must also carry the ``X-TL-Console: 1`` header, which a
cross-site form cannot send (CORS is off by default), so the cookie alone never replays or
uploads on another site's behalf.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request

from thunderline.api.errors import ApiError
from thunderline.api.tokens import Scope, TokenRecord, TokenStore

COOKIE = "tl_session"
CONSOLE_HEADER = "x-tl-console"
_SAFE = {"GET", "HEAD", "OPTIONS"}


def presented_token(request: Request) -> tuple[str | None, bool]:
    """The token of a request and whether it came from the console cookie."""
    header = request.headers.get("authorization")
    if header is not None:
        kind, _, value = header.partition(" ")
        if kind.lower() != "bearer" or not value.strip():
            raise ApiError(
                401,
                "unauthorized",
                "the Authorization header must be `Bearer <token>`",
                headers={"WWW-Authenticate": 'Bearer error="invalid_request"'},
            )
        return value.strip(), False
    cookie = request.cookies.get(COOKIE)
    return (cookie, True) if cookie else (None, False)


def authenticate(request: Request, tokens: TokenStore, needed: Scope) -> TokenRecord:
    token, from_cookie = presented_token(request)
    if token is None:
        raise ApiError(
            401,
            "unauthorized",
            "a bearer token is required (Authorization: Bearer <token>)",
            headers={"WWW-Authenticate": "Bearer"},
        )
    record = tokens.authenticate(token)
    if record is None:
        raise ApiError(
            401,
            "unauthorized",
            "the token is not valid (unknown or revoked)",
            headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
        )
    if from_cookie and request.method not in _SAFE and request.headers.get(CONSOLE_HEADER) != "1":
        raise ApiError(403, "forbidden", "console requests must carry the X-TL-Console header")
    if not record.scope.allows(needed):
        raise ApiError(
            403,
            "insufficient_scope",
            f"this needs the {needed} scope; the token has {record.scope}",
            headers={"WWW-Authenticate": f'Bearer error="insufficient_scope", scope="{needed}"'},
        )
    return record


def require(needed: Scope) -> Callable[[Request], Coroutine[Any, Any, TokenRecord]]:
    """A FastAPI dependency: the caller's token record, with at least the ``needed`` scope."""

    async def dependency(request: Request) -> TokenRecord:
        tokens: TokenStore = request.app.state.service.tokens
        return authenticate(request, tokens, needed)

    return dependency
