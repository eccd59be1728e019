"""``GET /v1/search`` and ``GET /v1/export``: the HTTP face of search (read scope).

A malformed query or cursor is a 400 ``query_syntax`` / ``bad_cursor`` whose ``details``
carry the ``position`` of the mistake; export streams its rows (constant memory) after the
query has been checked, so a bad query never starts a 200.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from thunderline.api.errors import ApiError, responses
from thunderline.api.routes import AUTH, Id, Reader, _voxel, service_of
from thunderline.search.engine import SearchResult
from thunderline.search.export import encode, encode_parquet
from thunderline.search.query import MAX_QUERY_CHARS, QuerySyntaxError, parse
from thunderline.search.similar import NoEmbeddingError

router = APIRouter(prefix="/v1")


class SnippetSegment(BaseModel):
    """A piece of a hit's snippet: the snippet is these texts in order, hits marked."""

    text: str
    match: bool = Field(description="True for a highlighted hit.")


class SearchHit(BaseModel):
    """One matching voxel: its id, name, labels, size, time, score and highlighted snippet."""

    voxel_id: str
    name: str
    label: str | None
    group: str | None
    lang: str | None
    kind: str | None = Field(description="Document kind (top label of the text classifier).")
    size: int
    ts: datetime
    score: float | None = Field(description="Relevance (higher is better); null by time.")
    snippet: list[SnippetSegment]


class FacetCount(BaseModel):
    """How many of the matches have this value of a facet (a label, a language, an entity...)."""

    value: str
    count: int


class SearchPage(BaseModel):
    """A page of search or similar-document hits, with the cursor of the next page.

    ``next_cursor`` is null on the last page; pass it back as ``cursor`` (with the same
    query) to get the next one. ``facets`` maps a facet name to its value counts (empty
    unless facets were asked for).
    """

    query: str
    order: Literal["relevance", "time"] = Field(description="The order actually used.")
    total: int | None = Field(description="Every match (with facets=true), else null.")
    facet_basis: int | None = Field(
        None,
        description="How many matches the facet counts were made over: every match (equal to "
        "total) unless some were deleted while the query ran; null without facets.",
    )
    next_cursor: str | None
    hits: list[SearchHit]
    facets: dict[str, list[FacetCount]]


def _bad_query(exc: QuerySyntaxError) -> ApiError:
    """400 with the error's details: ``position``; for a query too long, ``length``, ``limit``."""
    return ApiError(400, exc.reason, str(exc), details={"position": exc.position, **exc.details})


def _page(result: SearchResult) -> SearchPage:
    return SearchPage.model_validate(result.as_dict())


# the length is checked by parse(), not by validation: a query over the limit is a 400
# query_syntax that says its length and the limit (QueryTooLongError); maxLength is documented
QueryText = Annotated[
    str,
    Query(
        json_schema_extra={"maxLength": MAX_QUERY_CHARS},
        description='Words, "phrases", AND/OR/NOT, prefix*, and fields: label: group: lang: '
        'kind: entity:"..." entity.type: model:MODEL=LABEL name: after:DATE before:DATE '
        "size>10kb",
    ),
]


async def _similar(
    request: Request, voxel_id: str, q: str, limit: int, cursor: str | None
) -> SearchPage:
    service = service_of(request)
    voxel = await _voxel(service, voxel_id)  # 400 / 404 / 409 for a bad, unknown, ambiguous id
    try:
        result = await asyncio.to_thread(
            service.require_voxels().similar, voxel.id, q, limit=limit, cursor=cursor
        )
    except QuerySyntaxError as exc:
        raise _bad_query(exc) from exc
    except NoEmbeddingError as exc:
        raise ApiError(409, exc.reason, str(exc), details=exc.details) from exc
    return _page(result)


@router.get(
    "/voxels/{voxel_id}/similar",
    response_model=SearchPage,
    responses=responses(*AUTH, 404, 409),
    summary="The text voxels most like this one (sentence embeddings), filtered by a query",
)
async def similar(
    request: Request,
    voxel_id: Id,
    _token: Reader,
    q: QueryText = "",
    limit: Annotated[int, Query(ge=1, le=200)] = 20,
    cursor: Annotated[str | None, Query(max_length=400)] = None,
) -> SearchPage:
    """The text voxels nearest this one by exact cosine over its sentence embedding.

    The embeddings are the stored all-MiniLM-L6-v2 vectors (``thunderline index embed``);
    ``q`` keeps only the voxels it matches. 409 ``no_embedding``: the voxel has no vector.
    """
    return await _similar(request, voxel_id, q, limit, cursor)


@router.get(
    "/search",
    response_model=SearchPage,
    responses=responses(*AUTH, 404, 409),
    summary="Full-text search with snippets, facets and cursor paging",
)
async def search(
    request: Request,
    _token: Reader,
    q: QueryText = "",
    order: Literal["relevance", "time"] = "relevance",
    limit: Annotated[int, Query(ge=1, le=200)] = 20,
    cursor: Annotated[str | None, Query(max_length=400)] = None,
    facets: bool = False,
    similar: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=64,
            description="A voxel id: the voxels most like it (q then only filters; no facets).",
        ),
    ] = None,
) -> SearchPage:
    """Search the voxels' text and traits; hits come with highlighted snippets.

    ``order=relevance`` ranks by score, ``order=time`` lists the newest first (score null).
    Page with ``next_cursor`` passed back as ``cursor``. ``facets=true`` adds the total and
    the 15 commonest values of label, group, lang, kind, entity, entity.type and model
    (exact, counted over every match, see ``facet_basis``). With ``similar=VOXEL_ID`` the hits are the voxels most
    like that one (as ``/voxels/{id}/similar``) and ``q`` only filters them. 400: a
    malformed query (``details.position`` points at the problem); 409 ``no_embedding``:
    the ``similar`` voxel has no vector.
    """
    if similar is not None:
        return await _similar(request, similar, q, limit, cursor)
    store = service_of(request).require_voxels()
    try:
        result = await asyncio.to_thread(
            store.search,
            q,
            order=order,
            limit=limit,
            cursor=cursor,
            facets=facets,
        )
    except QuerySyntaxError as exc:
        raise _bad_query(exc) from exc
    return _page(result)


@router.get(
    "/export",
    responses={
        200: {
            "description": "One row per matching voxel, streamed",
            "content": {
                "application/x-ndjson": {"schema": {"type": "string"}},
                "text/csv": {"schema": {"type": "string"}},
                "application/vnd.apache.parquet": {
                    "schema": {"type": "string", "format": "binary"}
                },
            },
        },
        **responses(*AUTH),
    },
    response_class=StreamingResponse,
    summary="Export the voxels matching a query as JSON Lines, CSV or Parquet (streamed)",
)
async def export(
    request: Request,
    _token: Reader,
    q: QueryText = "",
    format: Literal["jsonl", "csv", "parquet"] = "jsonl",
    text: bool = False,
) -> StreamingResponse:
    """Download every voxel matching ``q`` (all of them for an empty query), one row each.

    The rows (id, name, source, time, labels, size, payload SHA-256, parents, entities,
    model results, metadata) are streamed as they are read, so an export of any size
    starts at once. ``text=true`` adds each voxel's extracted text. Parquet comes one row
    group at a time (zstd). The file name is ``thunderline-export.FORMAT``. 400: a
    malformed query (checked before anything is sent).
    """
    try:
        parse(q)
    except QuerySyntaxError as exc:
        raise _bad_query(exc) from exc
    store = service_of(request).require_voxels()
    rows = store.export_rows(q, with_text=text)
    chunks: Iterator[bytes] = (
        encode_parquet(rows)
        if format == "parquet"
        else (c.encode("utf-8", "surrogatepass") for c in encode(rows, format))
    )

    def take(n: int = 64) -> bytes:
        out = []
        for chunk in chunks:
            if chunk:
                out.append(chunk)
            if out and (len(out) >= n or format == "parquet"):  # Parquet: a row group a chunk
                break
        return b"".join(out)

    # one thread makes every chunk of this export: the rows, the encoders and pyarrow's
    # buffers stay on one thread's heap (spread over the default pool's threads, a Parquet
    # export left a cache on each: 72 MB more RSS after 10k rows, 6 MB on one thread)
    worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tl-export")

    async def body() -> AsyncIterator[bytes]:
        loop = asyncio.get_running_loop()
        try:
            while data := await loop.run_in_executor(worker, take):
                yield data
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:  # the generator ends on its own thread, after any take
                worker.submit(close)
            worker.shutdown(wait=False)

    media = {
        "jsonl": "application/x-ndjson",
        "csv": "text/csv; charset=utf-8",
        "parquet": "application/vnd.apache.parquet",
    }[format]
    filename = f"thunderline-export.{format}"
    return StreamingResponse(
        body(),
        media_type=media,
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
