"""Bearer-token authentication and scopes for the API and the console.

A request authenticates with ``Authorization: Bearer <token>`` or, from the web console, with the
``tl_session`` cookie (HttpOnly, SameSite=Strict) holding the same token. A state-changing
request authenticated by the cookie must also carry the ``X-TL-Console: 1`` header, which a
cross-site form cannot send (CORS is off by default), so the cookie alone never replays or
uploads on another site's behalf.

Revocation is immediate for requests already running too: :class:`RevocationGuard` ties every
request that presents a token to a :class:`RevocationWatch`, which ends an open ``/v1/events``
stream, a download or an upload within :data:`REVOCATION_POLL_S` of the token's removal.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request

from thunderline.api.errors import ApiError
from thunderline.api.tokens import Scope, TokenRecord, TokenStore, hash_token
from thunderline.errors import ThunderlineError

ASGIApp = Any
_log = logging.getLogger("thunderline.api")

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
    """The token record of the request, which must allow ``needed``; 401 or 403 otherwise."""
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


#: How often open requests' tokens are checked against the token file (a ``stat`` when nothing
#: changed): ``thunderline tokens revoke`` in another process ends them within this time.
REVOCATION_POLL_S = 0.2


class RevocationWatch:
    """The open requests of each token (by hash), told at once when their token is revoked.

    When a token disappears from the token store (``thunderline tokens revoke``, here or in
    another process), every one of its requests is told at once through its
    :class:`asyncio.Event`.
    """

    def __init__(self, tokens: TokenStore, poll_s: float = REVOCATION_POLL_S) -> None:
        self.tokens = tokens
        self.poll_s = poll_s
        self._open: dict[str, set[asyncio.Event]] = {}
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start the background check that ends streams of revoked tokens."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="tl-revocation")

    async def stop(self) -> None:
        """Stop the background check and wait for it."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def watch(self, digest: str) -> asyncio.Event:
        """An event set when the token with this digest is revoked (for an open stream)."""
        event = asyncio.Event()
        self._open.setdefault(digest, set()).add(event)
        return event

    def unwatch(self, digest: str, event: asyncio.Event) -> None:
        """Forget an event from :meth:`watch` (the stream ended)."""
        events = self._open.get(digest)
        if events is not None:
            events.discard(event)
            if not events:
                del self._open[digest]

    @property
    def watched(self) -> int:
        """How many open streams are watched."""
        return sum(len(events) for events in self._open.values())

    def check(self) -> int:
        """End the requests whose token is no longer known; how many were ended."""
        if not self._open:
            return 0
        try:
            known = {record.sha256 for record in self.tokens.records()}
        except ThunderlineError as exc:  # a damaged token file: no request authenticates now
            _log.warning("cannot read the API tokens (%s): ending every open request", exc)
            known = set()
        ended = 0
        for digest in [d for d in self._open if d not in known]:
            for event in self._open.pop(digest):
                event.set()
                ended += 1
        if ended:
            _log.warning("token revoked: %d open request(s) ended", ended)
        return ended

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.poll_s)
            self.check()


class RevocationGuard:
    """ASGI middleware: a request that presents a known token runs only while the token stays known.

    Revoked mid-request, the request is cancelled at once: 401 if nothing was sent yet, else
    its response (an SSE stream, a download) is ended there.
    """

    def __init__(self, app: ASGIApp, watch: RevocationWatch) -> None:
        self.app = app
        self.watch = watch

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        """ASGI entry: the wrapped app for any request, with revoked tokens refused first."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            token, _ = presented_token(Request(scope))
        except ApiError:
            token = None  # malformed: the route's own check answers 401
        if token is None:
            await self.app(scope, receive, send)
            return
        digest = hash_token(token)
        revoked = self.watch.watch(digest)
        started = False

        async def tracked_send(message: dict[str, Any]) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        request = asyncio.ensure_future(self.app(scope, receive, tracked_send))
        waiter = asyncio.ensure_future(revoked.wait())
        try:
            await asyncio.wait({request, waiter}, return_when=asyncio.FIRST_COMPLETED)
            if request.done():
                request.result()
                return
            request.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await request
            with contextlib.suppress(Exception):  # the peer may be gone, a length unmet
                if started:
                    await send({"type": "http.response.body", "body": b"", "more_body": False})
                else:
                    await _send_revoked(send)
        finally:
            waiter.cancel()
            self.watch.unwatch(digest, revoked)
            if not request.done():
                request.cancel()


async def _send_revoked(send: Any) -> None:
    body = json.dumps(
        {
            "error": {
                "code": "unauthorized",
                "message": "the token was revoked during the request",
                "details": {},
            }
        }
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 401,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"www-authenticate", b'Bearer error="invalid_token"'),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
