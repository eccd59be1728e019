"""The console's search page (``/search``): a query box, a facet sidebar and highlighted hits.

Each facet value in the sidebar shows its count and is a link that adds the facet as a field
filter to the query. Server-rendered like the other pages; a malformed query is shown with its
position, never an error page.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from thunderline.api.console import _login_redirect, _page, _service, _user, human_bytes
from thunderline.ids import AmbiguousIdError
from thunderline.search.engine import SearchResult
from thunderline.search.query import QuerySyntaxError, QueryTooLongError
from thunderline.search.similar import NoEmbeddingError
from thunderline.voxel.errors import VoxelNotFoundError

router = APIRouter(include_in_schema=False)
_FIELD_OF_FACET = {"entity.type": "entity.type", "entity": "entity", "model": "model"}


def facet_filter(name: str, value: str) -> str:
    """The query filter a facet link adds (quoted when the value has spaces or quotes)."""
    field = _FIELD_OF_FACET.get(name, name)
    if any(c.isspace() or c in '"()' for c in value):
        return f'{field}:"{value.replace(chr(34), " ")}"'
    return f"{field}:{value}"


@router.get("/search", response_class=HTMLResponse, response_model=None)
async def search_page(
    request: Request, q: str = "", order: str = "relevance", cursor: str = "", similar: str = ""
) -> Response:
    """The search page: 20 hits of ``q`` (with facets), or of the voxels most like ``similar``.

    ``order=time`` lists the newest first; ``cursor`` is the next-page link's. Signed-out
    users are sent to the login page. A malformed query, an unknown or ambiguous ``similar``
    id, or one without an embedding is shown on the page as a message.
    """
    user = _user(request)
    if user is None:
        return _login_redirect(request)
    error: dict[str, Any] | None = None
    result: SearchResult | None = None
    store = _service(request).require_voxels()
    similar = similar[:64]
    try:
        if similar:
            result = await asyncio.to_thread(
                store.similar, similar, q, limit=20, cursor=cursor or None
            )
        else:
            result = await asyncio.to_thread(
                store.search,
                q,
                order="time" if order == "time" else "relevance",
                limit=20,
                cursor=cursor or None,
                facets=True,
            )
    except QueryTooLongError as exc:  # its length and the limit; no caret under 1000+ chars
        error = {"message": str(exc), "position": None}
    except QuerySyntaxError as exc:
        error = {"message": str(exc), "position": exc.position if q else None}
    except (NoEmbeddingError, VoxelNotFoundError, AmbiguousIdError) as exc:
        error = {"message": str(exc), "position": None}
    facets = []
    if result is not None:
        for name, values in result.facets.items():
            if values:
                links = [
                    {
                        "value": v.value,
                        "count": v.count,
                        "query": f"{q} {facet_filter(name, v.value)}".strip(),
                    }
                    for v in values
                ]
                facets.append({"name": name, "entries": links})
    return _page(
        request,
        "search.html",
        user,
        q=q,
        order=order,
        result=result,
        facets=facets,
        error=error,
        similar=similar,
        human_bytes=human_bytes,
    )
