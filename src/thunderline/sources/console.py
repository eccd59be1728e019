"""The console's lifecycle pages: sources, duplicates, webhooks and result versions.

Sources (``/sources``: state, add, pause, resume), duplicates (``/duplicates``), webhook
deliveries (``/webhooks``), and the result versions card of the voxel page
(:func:`result_versions`). Server-rendered like the other pages; the add/pause/resume buttons
call ``POST /v1/sources`` (admin) from ``/static/sources.js``.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from thunderline import names
from thunderline.api.console import _login_redirect, _page, _service, _user
from thunderline.sources.reprocess_cli import _gist
from thunderline.voxel.results import ResultVersions
from thunderline.voxel.schema import Voxel

router = APIRouter(include_in_schema=False)


def _when(unix: float | None) -> str:
    if unix is None:
        return "-"
    return datetime.fromtimestamp(unix, UTC).strftime("%Y-%m-%d %H:%M:%S")


def result_versions(results: ResultVersions, voxel: Voxel) -> list[dict[str, Any]]:
    """Per stage, its result versions side by side (one column each).

    Each column says who made it, when, which run, which is current, and a line of the result.
    """
    out = []
    for stage, versions in results.versions(voxel).items():
        out.append(
            {
                "stage": stage,
                "versions": [
                    {
                        "seq": v.seq,
                        "producer": v.producer,
                        "current": v.current,
                        "run": (v.run_id or "ingest")[:8],
                        "when": _when(v.created_unix),
                        "gist": _gist(stage, v.result),
                    }
                    for v in versions
                ],
            }
        )
    return out


@router.get("/sources", response_class=HTMLResponse, response_model=None)
async def sources_page(request: Request) -> Response:
    """The ``/sources`` page: each source root, paused or not, its entries by state, last pass."""
    user = _user(request)
    if user is None:
        return _login_redirect(request)
    ledger = _service(request).require_ledger()

    def read() -> list[dict[str, Any]]:
        rows = []
        for root in ledger.roots():
            last = root.last_summary or {}
            rows.append(
                {
                    "uri": root.uri,
                    "shown": names.shown(root.uri),
                    "paused": root.paused,
                    "entries": ledger.counts(root.uri),
                    "last_sync": _when(root.last_sync_unix),
                    "last": last,
                }
            )
        return rows

    return _page(request, "sources.html", user, roots=await asyncio.to_thread(read))


@router.get("/duplicates", response_class=HTMLResponse, response_model=None)
async def duplicates_page(request: Request) -> Response:
    """The ``/duplicates`` page: content stored more than once, under ``TL_DUPLICATE_POLICY``."""
    from thunderline.voxel import lifecycle

    user = _user(request)
    if user is None:
        return _login_redirect(request)
    service = _service(request)
    store: Any = service.require_voxels()
    groups = await asyncio.to_thread(lifecycle.duplicate_groups, store, limit=200)
    return _page(
        request,
        "duplicates.html",
        user,
        policy=service.settings.duplicate_policy,
        groups=[
            {
                "sha": g.payload_sha256,
                "voxels": g.voxel_ids,
                "linked": len(set(g.linked_entries)) + len(g.linked_artifacts),
                "sources": [names.shown(s) for s in g.sources[:5]],
            }
            for g in groups
        ],
    )


@router.get("/webhooks", response_class=HTMLResponse, response_model=None)
async def webhooks_page(request: Request, status: str = "") -> Response:
    """The ``/webhooks`` page (admin only): webhook rules and deliveries, filtered by ``status``.

    ``status`` is ``pending``, ``delivered`` or ``failed``; anything else shows every delivery.
    """
    user = _user(request)
    if user is None:
        return _login_redirect(request)
    if user.scope != "admin":  # the delivery log is admin-only, as in the API
        return _page(request, "webhooks.html", user, denied=True, rules=[], items=[], status="")
    hooks = _service(request).require_webhooks()
    chosen = status if status in ("pending", "delivered", "failed") else None

    def read() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        rules = [e.to_json_dict() for e in hooks.endpoints()]
        items = hooks.deliveries(status=chosen, limit=200)
        for item in items:
            item["created"] = _when(item["created_unix"])
            last = item["attempt_log"][-1] if item["attempt_log"] else {}
            item["last"] = str(last.get("status_code") or last.get("error") or "-")
        return rules, items

    rules, items = await asyncio.to_thread(read)
    return _page(
        request, "webhooks.html", user, denied=False, rules=rules, items=items, status=chosen or ""
    )
