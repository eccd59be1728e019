"""The ASGI application: ``/v1`` API, health, ``/metrics``, and the web console at ``/``."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.staticfiles import StaticFiles
from starlette.routing import Route

from thunderline.api.auth import RevocationGuard
from thunderline.api.errors import install_handlers
from thunderline.api.httpmetrics import OPEN_DLQ, HttpMetrics
from thunderline.api.metrics import metrics_app
from thunderline.api.service import ApiService
from thunderline.config import Settings

STATIC_DIR = Path(__file__).resolve().parent / "static"
ASGIApp = Any


class HeaderLimit:
    """Refuse a request whose headers add up to more than ``limit`` bytes: 431 with a JSON body."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        """ASGI entry: a request whose headers pass the limit gets 431 before any route runs."""
        if scope["type"] == "http":
            total = sum(len(k) + len(v) + 4 for k, v in scope.get("headers", ()))
            if total > self.limit:
                body = json.dumps(
                    {
                        "error": {
                            "code": "headers_too_large",
                            "message": f"request headers are {total} bytes; the limit is "
                            f"{self.limit} (TL_API_MAX_HEADER_BYTES)",
                            "details": {"limit": self.limit},
                        }
                    }
                ).encode()
                await send(
                    {
                        "type": "http.response.start",
                        "status": 431,
                        "headers": [
                            (b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close"),
                        ],
                    }
                )
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)


class _AsgiEndpoint:
    """An ASGI app as a route endpoint (Starlette treats plain functions as request handlers)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)


def create_app(
    settings: Settings, service: ApiService | None = None, *, instrument: bool = True
) -> FastAPI:
    """The application; the service (pipeline, stores) starts and stops with it.

    ``instrument=False`` leaves out the HTTP metrics middleware (its benchmark's baseline).
    """
    from thunderline.api import console, routes
    from thunderline.search import api as search_api
    from thunderline.search import console as search_console
    from thunderline.sources import console as sources_console

    service = service or ApiService(settings)

    def open_dlq() -> int | None:
        try:
            store = service.outcomes
        except RuntimeError:  # not started (or stopping): no sample rather than a wrong 0
            return None
        return store.counts().get("open", 0)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await service.start()
        remove = OPEN_DLQ.attach(open_dlq)
        try:
            yield
        finally:
            remove()
            await service.stop()

    app = FastAPI(
        title="Thunderline",
        version="1",
        summary="Feed files to the pipeline and query its voxels, lineage and dead letters.",
        lifespan=lifespan,
        docs_url=None,  # the Swagger UI loads its assets from a CDN: not served
        redoc_url=None,
    )
    app.state.service = service
    install_handlers(app)
    app.include_router(routes.router)
    app.include_router(search_api.router)
    app.include_router(routes.health_router)
    app.include_router(console.router)
    app.include_router(search_console.router)
    app.include_router(sources_console.router)
    app.router.routes.append(
        Route("/metrics", _AsgiEndpoint(metrics_app()), include_in_schema=False)
    )
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    origins = [o.strip() for o in settings.api.cors_origins.split(",") if o.strip()]
    if origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=origins,
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type"],
        )
    app.add_middleware(RevocationGuard, watch=service.revocations)
    app.add_middleware(HeaderLimit, limit=settings.api.max_header_bytes)
    if instrument:
        app.add_middleware(HttpMetrics)  # outermost: refused requests (431) are counted too
    return app
