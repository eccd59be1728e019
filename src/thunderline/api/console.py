"""The operator web console: server-rendered pages (Jinja2) and a little local JavaScript.

Pages: upload and live run (``/``), voxels (``/voxels``), one voxel (``/voxels/{id}``), dead
letters (``/dlq``), health (``/health``), and ``/login``. The console authenticates with the
same tokens as the API, kept in an HttpOnly, SameSite=Strict cookie after ``/login``; its
scripts call the ``/v1`` API with that cookie and the ``X-TL-Console`` header. Every asset is
served from ``/static`` (no CDN).
"""

from __future__ import annotations

import asyncio
import io
import math
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from thunderline.api.auth import COOKIE, authenticate
from thunderline.api.errors import ApiError
from thunderline.api.schemas import artifact_name, dlq_group_out, voxel_out
from thunderline.api.service import ApiService
from thunderline.api.tokens import Scope, TokenRecord
from thunderline.dlq.store import CONSOLE_MAX
from thunderline.errors import BackendError
from thunderline.ids import AmbiguousIdError, short
from thunderline.summary import voxel_brief
from thunderline.voxel.errors import VoxelNotFoundError
from thunderline.voxel.paging import BadCursorError, VoxelFilter
from thunderline.voxel.schema import Voxel

TEMPLATES = Jinja2Templates(directory=Path(__file__).resolve().parent / "templates")
router = APIRouter(include_in_schema=False)

PREVIEW_BYTES = 64 * 1024
PREVIEW_CHARS = 20_000
IMAGE_TYPES = {"image/png", "image/jpeg", "image/gif", "image/webp"}
STAGES = ["classify", "nlp", "infer", "package"]


def _service(request: Request) -> ApiService:
    service: ApiService = request.app.state.service
    return service


def _user(request: Request) -> TokenRecord | None:
    try:
        return authenticate(request, _service(request).tokens, Scope.READ)
    except ApiError:
        return None


def _login_redirect(request: Request) -> RedirectResponse:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)


def _page(request: Request, template: str, user: TokenRecord, **context: Any) -> HTMLResponse:
    return TEMPLATES.TemplateResponse(
        request,
        template,
        {"user": user, "stages": STAGES, "path": request.url.path, **context},
        headers={
            "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; "
            "style-src 'self'; script-src 'self'; frame-ancestors 'none'",
            "Cache-Control": "no-store",
        },
    )


# ---- login ---------------------------------------------------------------------------------
@router.get("/login", response_class=HTMLResponse)
async def login_page(request: Request, next: str = "/") -> HTMLResponse:
    """The sign-in form (an API token); ``next`` is where to go after (a path on this site)."""
    return TEMPLATES.TemplateResponse(
        request,
        "login.html",
        {"next": _safe_next(next), "error": None, "user": None, "path": "/login"},
    )


def _safe_next(target: str) -> str:
    r"""Only a path on this site (never ``//host`` or ``/\host``, which browsers follow off-site)."""
    if not target.startswith("/") or target[1:2] in {"/", "\\"} or any(c < " " for c in target):
        return "/"
    return target


@router.post("/login", response_model=None)
async def login(request: Request, token: str = Form(""), next: str = Form("/")) -> Response:
    """Sign in with an API token: set the session cookie and redirect (303) to ``next``.

    The cookie holds the token (HttpOnly, SameSite=Strict, Secure over HTTPS) for 7 days.
    An invalid token shows the form again with an error (401).
    """
    record = _service(request).tokens.authenticate(token.strip()) if token.strip() else None
    if record is None:
        return TEMPLATES.TemplateResponse(
            request,
            "login.html",
            {
                "next": _safe_next(next),
                "error": "That token is not valid.",
                "user": None,
                "path": "/login",
            },
            status_code=401,
        )
    response = RedirectResponse(_safe_next(next), status_code=303)
    response.set_cookie(
        COOKIE,
        token.strip(),
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        max_age=7 * 24 * 3600,
    )
    return response


@router.post("/logout")
async def logout() -> RedirectResponse:
    """Sign out: delete the session cookie and redirect (303) to the login page."""
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(COOKIE)
    return response


# ---- pages ---------------------------------------------------------------------------------
@router.get("/", response_class=HTMLResponse, response_model=None)
async def index(request: Request) -> Response:
    """The home page: upload files (showing the size limit) and watch their live run."""
    user = _user(request)
    if user is None:
        return _login_redirect(request)
    return _page(
        request,
        "index.html",
        user,
        limit=human_bytes(_service(request).settings.max_artifact_bytes),
    )


@router.get("/voxels", response_class=HTMLResponse, response_model=None)
async def voxels_page(
    request: Request,
    label: str = "",
    group: str = "",
    q: str = "",
    since: str = "",
    until: str = "",
    cursor: str = "",
    entity_type: str = "",
    model_label: str = "",
) -> Response:
    """The voxels page: 50 voxels a page, newest first, filtered as ``GET /v1/voxels`` is.

    The filters are label, group, entity text, entity type, model label and dates
    (``since`` and ``until``, both YYYY-MM-DD and inclusive); a bad date or cursor is shown
    as a message on the page.
    """
    user = _user(request)
    if user is None:
        return _login_redirect(request)
    error = None
    try:
        first = datetime.combine(date.fromisoformat(since), time.min, UTC) if since else None
        last = (
            datetime.combine(date.fromisoformat(until), time.min, UTC) + timedelta(days=1)
            if until
            else None
        )
    except ValueError:
        first = last = None
        error = "Dates must be YYYY-MM-DD."
    flt = VoxelFilter(
        label=label or None,
        group=group or None,
        q=q or None,
        since=first,
        until=last,
        entity_type=entity_type.strip()[:64] or None,
        model_label=model_label.strip()[:128] or None,
    )
    try:
        items, next_cursor = await asyncio.to_thread(
            _service(request).require_voxels().page, flt, cursor or None, limit=50
        )
    except BadCursorError as exc:
        items, next_cursor, error = [], None, error or str(exc)
    return _page(
        request,
        "voxels.html",
        user,
        items=[voxel_brief(v) for v in items],
        filters={
            "label": label,
            "group": group,
            "q": q,
            "entity_type": entity_type,
            "model_label": model_label,
            "since": since,
            "until": until,
        },
        next_cursor=next_cursor,
        error=error,
    )


@router.get("/voxels/{voxel_id}", response_class=HTMLResponse, response_model=None)
async def voxel_page(request: Request, voxel_id: str) -> Response:
    """One voxel's page: metadata, results and their versions, similar documents, lineage.

    It also shows a payload preview (images, and text with its entities highlighted).

    ``voxel_id`` may be a short id or a unique prefix; an unknown or ambiguous one shows a
    "not found" page.
    """
    user = _user(request)
    if user is None:
        return _login_redirect(request)
    service = _service(request)
    store = service.require_voxels()
    try:
        voxel = await asyncio.to_thread(store.get, voxel_id[:64])
    except (VoxelNotFoundError, AmbiguousIdError) as exc:
        return _page(request, "missing.html", user, message=str(exc))
    context = await asyncio.to_thread(_voxel_context, service, voxel)
    context.update(await asyncio.to_thread(_versions_context, service, voxel))
    context["similar"] = await asyncio.to_thread(_similar_links, store, voxel.id)
    return _page(request, "voxel.html", user, **context)


def _versions_context(service: ApiService, voxel: Voxel) -> dict[str, Any]:
    """The voxel's result versions side by side and its tags (:mod:`thunderline.sources`)."""
    from thunderline.sources.console import result_versions

    return {
        "versions": result_versions(service.require_reprocessor().results, voxel),
        "tags": service.require_webhooks().tags(voxel.id),
    }


def _similar_links(store: Any, voxel_id: str) -> list[dict[str, Any]]:
    """The five voxels most like this one (empty when it has no stored embedding)."""
    from thunderline.search.similar import NoEmbeddingError

    try:
        result = store.similar(voxel_id, limit=5)
    except (NoEmbeddingError, BackendError):
        return []
    return [
        {"id": h.voxel_id, "name": h.name, "label": h.label, "score": h.score} for h in result.hits
    ]


def human_bytes(n: int) -> str:
    """A byte count for people: ``512 bytes``, ``1.5 KiB``, ``20.0 MiB`` (GiB at most)."""
    size = float(n)
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} bytes"


def _voxel_context(service: ApiService, voxel: Voxel) -> dict[str, Any]:
    store = service.require_voxels()
    out = voxel_out(voxel)
    classification = voxel.traits.get("classification") or {}
    mime = str(classification.get("mime") or "")
    preview: dict[str, Any] = {"kind": "none"}
    if mime in IMAGE_TYPES:
        preview = {"kind": "image", "src": f"/v1/voxels/{voxel.id}/payload?disposition=inline"}
    elif classification.get("is_text") and voxel.payload_size <= 4 * 1024 * 1024:
        sink = io.BytesIO()
        try:
            store.copy_payload(voxel, sink)
            text = sink.getvalue()[:PREVIEW_BYTES].decode("utf-8", "replace")
            preview = {
                "kind": "text",
                "segments": highlight(text[:PREVIEW_CHARS], _entities(voxel)),
                "truncated": voxel.payload_size > PREVIEW_BYTES or len(text) > PREVIEW_CHARS,
            }
        except Exception as exc:  # shown on the page: a mismatch must be visible, not hidden
            preview = {"kind": "error", "message": str(exc)}
    inference = (
        voxel.traits.get("inference") if isinstance(voxel.traits.get("inference"), dict) else None
    )
    top_k = []
    if inference:
        for item in inference.get("top_k", [])[:5]:
            score = float(item.get("score", 0.0))
            top_k.append(
                {
                    "label": str(item.get("label")),
                    "score": score,
                    "pct": max(0.0, min(100.0, score * 100)),
                }
            )
    ancestors = store.ancestors(voxel.id)
    descendants = store.descendants(voxel.id)
    graph = lineage_graph(store, voxel, ancestors, descendants)
    return {
        "voxel": out,
        "classification": classification,
        "nlp": voxel.traits.get("nlp") if isinstance(voxel.traits.get("nlp"), dict) else None,
        "entities": _entities(voxel),
        "inference": inference,
        "top_k": top_k,
        "no_confident_label": inference is not None and inference.get("confident") is False,
        "preview": preview,
        "graph": graph,
    }


def _entities(voxel: Voxel) -> list[dict[str, Any]]:
    nlp = voxel.traits.get("nlp")
    if not isinstance(nlp, dict):
        return []
    return [e for e in nlp.get("entities", []) if isinstance(e, dict)]


def highlight(text: str, entities: list[dict[str, Any]]) -> list[tuple[str, str | None]]:
    """The text cut into (piece, entity label or None) segments, for ``<mark>`` in the page.

    An entity is placed at its offsets when the text there matches (the processed text is the
    decoded payload for plain text), else at its next occurrence after the previous entity.
    """
    spans: list[tuple[int, int, str]] = []
    cursor = 0
    for ent in sorted(entities, key=lambda e: int(e.get("start", 0))):
        word = str(ent.get("text", ""))
        if not word:
            continue
        start, end = int(ent.get("start", -1)), int(ent.get("end", -1))
        if not (0 <= start < end <= len(text) and text[start:end] == word):
            start = text.find(word, cursor)
            if start < 0:
                continue
            end = start + len(word)
        if start < cursor:
            continue
        spans.append((start, end, str(ent.get("label", ""))))
        cursor = end
    segments: list[tuple[str, str | None]] = []
    pos = 0
    for start, end, label in spans:
        if start > pos:
            segments.append((text[pos:start], None))
        segments.append((text[start:end], label))
        pos = end
    if pos < len(text):
        segments.append((text[pos:], None))
    return segments


def lineage_graph(
    store: Any, voxel: Voxel, ancestors: list[Any], descendants: list[Any]
) -> dict[str, Any]:
    """Node positions and edges of a layered drawing: ancestors above, descendants below."""
    level: dict[str, int] = {voxel.id: 0}
    for edge in ancestors:
        level.setdefault(edge.parent_id, -edge.depth)
    for edge in descendants:
        level.setdefault(edge.child_id, edge.depth)
    edges = {(e.child_id, e.parent_id) for e in [*ancestors, *descendants]}
    rows: dict[int, list[str]] = {}
    for node_id, lvl in sorted(level.items(), key=lambda kv: (kv[1], kv[0])):
        rows.setdefault(lvl, []).append(node_id)
    width_nodes = max(len(r) for r in rows.values())
    node_w, node_h, gap_x, gap_y = 180, 44, 24, 56
    width = max(1, width_nodes) * (node_w + gap_x) + gap_x
    levels = sorted(rows)
    height = len(levels) * (node_h + gap_y) + gap_y
    pos: dict[str, tuple[float, float]] = {}
    nodes = []
    for li, lvl in enumerate(levels):
        row = rows[lvl]
        offset = (width - len(row) * (node_w + gap_x) + gap_x) / 2
        for i, node_id in enumerate(row):
            x = offset + i * (node_w + gap_x)
            y = gap_y / 2 + li * (node_h + gap_y)
            pos[node_id] = (x, y)
            try:
                node = voxel if node_id == voxel.id else store.get(node_id)
                name, label = artifact_name(node), node.label
            except VoxelNotFoundError:
                name, label = None, None
            title = name or short(node_id)
            nodes.append(
                {
                    "id": node_id,
                    "x": x,
                    "y": y,
                    "w": node_w,
                    "h": node_h,
                    "name": title if len(title) <= 24 else title[:23] + "…",
                    "label": label or "?",
                    "current": node_id == voxel.id,
                }
            )
    lines = []
    for child, parent in sorted(edges):
        if child in pos and parent in pos:
            (cx, cy), (px, py) = pos[child], pos[parent]
            lines.append(
                {"x1": px + node_w / 2, "y1": py + node_h, "x2": cx + node_w / 2, "y2": cy}
            )
    return {
        "width": math.ceil(width),
        "height": math.ceil(height),
        "nodes": nodes,
        "lines": lines,
        "count": len(nodes),
    }


#: The DLQ page's status choices (``all``: every status).
DLQ_PAGE_STATUSES = ("open", "dismissed", "replayed", "resolved", "all")


@router.get("/dlq", response_class=HTMLResponse, response_model=None)
async def dlq_page(request: Request, status: str = "open") -> Response:
    """The dead-letter page: dead letters grouped by (stage, reason, artifact), by status.

    Each group shows its count, first and last seen, retryable or permanent, and the latest
    error, with Replay (retryable groups) and Dismiss. ``status`` is one of
    :data:`DLQ_PAGE_STATUSES` (anything else: ``open``).
    """
    user = _user(request)
    if user is None:
        return _login_redirect(request)
    if status not in DLQ_PAGE_STATUSES:
        status = "open"
    groups, total = await asyncio.to_thread(
        _service(request).require_dlq().groups,
        None if status == "all" else status,
        limit=CONSOLE_MAX,
    )
    return _page(
        request,
        "dlq.html",
        user,
        groups=[dlq_group_out(g) for g in groups],
        total=total,
        status=status,
        statuses=DLQ_PAGE_STATUSES,
    )


@router.get("/health", response_class=HTMLResponse, response_model=None)
async def health_page(request: Request) -> Response:
    """The health page: the readiness checks and the model registry's models.

    When the registry cannot be read, the page says so instead of listing models.
    """
    user = _user(request)
    if user is None:
        return _login_redirect(request)
    service = _service(request)
    readiness = await asyncio.to_thread(service.readiness)
    try:
        models = await asyncio.to_thread(service.models)
    except Exception as exc:
        models = {"enabled": False, "registry": f"unavailable: {exc}", "models": []}
    return _page(request, "health.html", user, readiness=readiness, models=models)
