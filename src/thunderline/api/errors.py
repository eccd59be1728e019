"""API errors: one JSON body for every 4xx/5xx, ``{"error": {"code", "message", "details"}}``.

Routes raise :class:`ApiError`; the handlers installed by :func:`install_handlers` turn it, the
request validation errors of FastAPI, Starlette's HTTP errors (including its ``400 Invalid
multipart data``) and :class:`~thunderline.errors.ThunderlineError` into that body, so a client
always learns what was wrong in the same shape. Anything else is logged with its traceback and
answered ``500 internal`` without details.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from thunderline.errors import BackendError, ChecksumMismatch, ThunderlineError
from thunderline.voxel.errors import VoxelNotFoundError

_log = logging.getLogger("thunderline.api")


class ErrorDetail(BaseModel):
    """The body of every API error: a machine-readable code, a message and details."""

    code: str = Field(description="Short machine-readable reason, e.g. `payload_too_large`.")
    message: str = Field(description="What was wrong, for a person.")
    details: dict[str, Any] = Field(default_factory=dict)


class ErrorBody(BaseModel):
    """The body of every error response."""

    error: ErrorDetail


class ApiError(Exception):
    """An error answered with ``status`` and an :class:`ErrorBody`."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details or {}
        self.headers = headers


def error_response(
    status: int,
    code: str,
    message: str,
    details: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """A JSON error response in the API's one error shape."""
    body = ErrorBody(error=ErrorDetail(code=code, message=message, details=details or {}))
    return JSONResponse(body.model_dump(mode="json"), status_code=status, headers=headers)


_STARLETTE_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
}


async def _api_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return error_response(exc.status, exc.code, exc.message, exc.details, exc.headers)


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = [
        {
            "where": ".".join(str(p) for p in err.get("loc", ())),
            "problem": str(err.get("msg", "")),
        }
        for err in exc.errors()
    ]
    summary = "; ".join(f"{p['where']}: {p['problem']}" for p in problems[:5])
    return error_response(
        400, "invalid_request", f"invalid request: {summary}", {"problems": problems}
    )


def _allowed_methods(request: Request) -> str | None:
    """Every method the API documents at this path, from the OpenAPI paths.

    Starlette names only the first matching route's, and ``/v1/voxels/{id}`` has a GET and a
    DELETE route.
    """
    import re

    table = getattr(request.app.state, "allowed_methods", None)
    if table is None:
        table = [
            (
                re.compile(re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(path))),
                sorted(m.upper() for m in item if m in _HTTP_METHODS),
            )
            for path, item in request.app.openapi().get("paths", {}).items()
        ]
        request.app.state.allowed_methods = table
    for pattern, methods in table:
        if pattern.fullmatch(request.url.path):
            return ", ".join(methods) or None
    return None


_HTTP_METHODS = frozenset({"get", "put", "post", "delete", "options", "head", "patch", "trace"})


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = _STARLETTE_CODES.get(exc.status_code, "http_error")
    message = str(exc.detail)
    if exc.status_code == 400 and "multipart" in message.lower():
        code = "malformed_multipart"
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        allowed = _allowed_methods(request)
        if allowed:
            headers["Allow"] = allowed
    return error_response(exc.status_code, code, message, headers=headers)


async def _thunderline_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ThunderlineError)
    if isinstance(exc, VoxelNotFoundError):
        return error_response(404, "voxel_not_found", str(exc))
    if isinstance(exc, ChecksumMismatch):
        return error_response(502, "checksum_mismatch", str(exc))
    if isinstance(exc, BackendError):
        return error_response(503, "backend_unavailable", str(exc))
    return error_response(422, exc.reason, str(exc))


async def _internal_error(_request: Request, exc: Exception) -> JSONResponse:
    _log.error("unhandled error in the API", exc_info=exc)
    return error_response(500, "internal", "internal error (logged on the server)")


def install_handlers(app: FastAPI) -> None:
    """Map every exception the app can raise to the one error shape (never a bare 500 page)."""
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(ThunderlineError, _thunderline_error)
    app.add_exception_handler(Exception, _internal_error)


def responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries with the error body for these status codes."""
    text = {
        400: "Bad request (the body names the problem)",
        401: "Missing or unknown bearer token",
        403: "The token's scope does not allow this",
        404: "Not found",
        408: "The client sent the body too slowly",
        409: "Conflict",
        413: "The upload is larger than TL_MAX_ARTIFACT_BYTES",
        429: "The ingest queue is full (see Retry-After)",
        431: "Request headers too large",
        502: "Stored bytes failed their checksum",
        503: "A backend is unavailable",
    }
    return {s: {"model": ErrorBody, "description": text.get(s, "Error")} for s in statuses}
