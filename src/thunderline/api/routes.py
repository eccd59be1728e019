"""The ``/v1`` routes and the health endpoints (thin: the work is in the service and queries)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import tempfile
from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from thunderline import names
from thunderline.api.auth import authenticate, presented_token, require
from thunderline.api.disposition import content_disposition
from thunderline.api.errors import ApiError, responses
from thunderline.api.schemas import (
    BRIEF_FIELDS,
    DETAIL_FIELDS,
    DeletionOut,
    DlqDismissed,
    DlqGroupPage,
    DlqGroupReplay,
    DlqItem,
    DlqPage,
    DlqPurged,
    Health,
    IngestAccepted,
    IngestStatus,
    LineageEdge,
    LineageNode,
    LineageOut,
    ModelList,
    Readiness,
    ReplayAccepted,
    ReprocessDryRun,
    ReprocessRequest,
    ReprocessRunOut,
    ReprocessRuns,
    ResultVersionsOut,
    SelectedPage,
    SourceChange,
    SourceList,
    VoxelDeleted,
    VoxelOut,
    VoxelPage,
    WebhookDeliveries,
    accepted,
    artifact_name,
    dlq_group_out,
    dlq_item,
    ingest_status,
    select_fields,
    voxel_out,
)
from thunderline.api.service import ApiService
from thunderline.api.tokens import Scope, TokenRecord
from thunderline.api.upload import ClientDisconnected, receive_upload
from thunderline.dlq.record import Subject
from thunderline.dlq.triage import NotRetryableError, parse_duration
from thunderline.errors import ChecksumMismatch, OverloadError
from thunderline.events import CloudEvent
from thunderline.ids import AmbiguousIdError, IdReferenceError
from thunderline.outcomes import OutcomeRecord
from thunderline.summary import summarize_data, voxel_brief
from thunderline.voxel.errors import InvalidVoxelIdError, PayloadMissingError, VoxelNotFoundError
from thunderline.voxel.paging import BadCursorError, VoxelFilter
from thunderline.voxel.schema import Voxel
from thunderline.worker.settle import expected, final_outcomes

router = APIRouter(prefix="/v1")
health_router = APIRouter()

Reader = Annotated[TokenRecord, Depends(require(Scope.READ))]
Admin = Annotated[TokenRecord, Depends(require(Scope.ADMIN))]
Id = Annotated[str, Path(min_length=1, max_length=64)]
AUTH = (400, 401, 403)

FIELDS_HELP = (
    "Comma-separated top-level fields to return (e.g. `id,short_id,name`); "
    "unknown names are a 400 that lists the valid ones"
)


#: Payload types the console may show inline (everything else is an attachment).
INLINE_TYPES = {"image/png", "image/jpeg", "image/gif", "image/webp", "text/plain"}
UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {"file": {"type": "string", "format": "binary"}},
                }
            }
        },
    }
}


def service_of(request: Request) -> ApiService:
    """The :class:`ApiService` the application was created with (``app.state.service``)."""
    service: ApiService = request.app.state.service
    return service


# ---- ingest --------------------------------------------------------------------------------
@router.post(
    "/ingest",
    status_code=202,
    response_model=IngestAccepted,
    responses=responses(*AUTH, 408, 413, 415, 429, 503),
    openapi_extra=UPLOAD_BODY,
    summary="Upload one file (multipart field `file`) and start its ingest",
)
async def post_ingest(request: Request, _token: Reader) -> IngestAccepted | Response:
    """Send one file as the multipart field `file`; the answer comes before the pipeline runs.

    The upload is streamed to disk and hashed as it arrives, its bytes are stored once
    (content-addressed) and its ingest starts. Follow it at `status_url` (or on
    `GET /v1/events?correlation_id=...`). Refused with 413 as soon as the file passes
    `TL_MAX_ARTIFACT_BYTES`, 408 when the client stalls longer than `TL_API_READ_TIMEOUT_S`,
    415 for a body that is not `multipart/form-data`, 400 for a malformed one, and 429 with
    `Retry-After` while the ingest queue is full.
    """
    service = service_of(request)
    _refuse_when_full(service)
    settings = service.settings
    try:
        received = await receive_upload(
            request.receive,
            dict(request.headers),
            limit=settings.max_artifact_bytes,
            spool_dir=service.spool_dir,
            read_timeout_s=settings.api.read_timeout_s,
        )
    except ClientDisconnected:
        return Response(status_code=400)  # nobody is listening; nothing was kept
    try:
        event = await service.submit_upload(received)
    except OverloadError as exc:  # submit-and-read: RabbitMQ refused the publish
        raise _queue_full(exc) from exc
    return accepted(event)


def _queue_full(exc: OverloadError | None = None) -> ApiError:
    """The 429 for a full ingest queue (with the bus's own words when it refused a publish)."""
    detail = f" ({exc})" if exc is not None else ""
    return ApiError(
        429,
        "queue_full",
        f"the ingest queue is full; retry later{detail}",
        headers={"Retry-After": "1"},
    )


def _refuse_when_full(service: ApiService) -> None:
    """Raise the 429 before any work when the ingest queue has no room."""
    if service.queue_full():
        raise _queue_full()


@router.get(
    "/ingest/{correlation_id}",
    response_model=IngestStatus,
    responses=responses(*AUTH, 404),
    summary="Stages done, outcome, voxel ids or DLQ reasons of one ingest",
)
async def get_ingest(request: Request, correlation_id: Id, _token: Reader) -> IngestStatus:
    """Where an ingest is, by the `correlation_id` its upload (or replay) returned.

    `outcome` stays `pending` until every artifact of the ingest (archive members included)
    is stored or dead-lettered; `voxel_ids` lists the stored voxels and `dlq` the DLQ
    records, each with its stage and reason. An ingest from another process or from before
    a restart is read from the outcome store. 404 `ingest_not_found` for an unknown id.
    """
    service = service_of(request)
    if service.scale_out:  # the workers' outcomes; an upload with none yet is pending
        progress = await asyncio.to_thread(_progress_from_stores, service, correlation_id)
        progress = progress or service.tracker.get(correlation_id)
    else:
        progress = service.tracker.get(correlation_id)
        if progress is None:
            progress = await asyncio.to_thread(_progress_from_stores, service, correlation_id)
    if progress is None:
        raise ApiError(404, "ingest_not_found", f"no ingest with correlation id {correlation_id}")
    return ingest_status(progress)


def _progress_from_stores(service: ApiService, correlation_id: str) -> Any:
    """An ingest's progress from the outcome store.

    Used for ingests this process did not see, and every ingest in the submit-and-read
    mode: each artifact's final outcome (its voxel, else its newest open or dismissed DLQ
    record; :mod:`thunderline.worker.settle`), pending until each artifact of the correlation
    id (archive members included) has one.
    """
    from thunderline.api.live import STAGE_ORDER, IngestProgress

    records = service.outcomes.by_correlation(correlation_id)
    if not records:
        return None
    progress = IngestProgress(correlation_id)
    final = final_outcomes(records)
    progress.open = max(expected(records) - len(final), 0)
    known = service.tracker.get(correlation_id)
    if known is not None:
        progress.name, progress.submitted = known.name, known.submitted
    stages: set[str] = set()
    for record in sorted(final.values(), key=lambda r: r.id):
        if record.kind == "voxel" and record.voxel_id:
            progress.voxel_ids.append(record.voxel_id)
            try:
                voxel = service.require_voxels().get(record.voxel_id)
            except VoxelNotFoundError:
                continue
            progress.name = progress.name or artifact_name(voxel)
            traits = voxel.traits
            stages |= {"package"} | {
                stage
                for stage, key in (
                    ("classify", "classification"),
                    ("nlp", "nlp"),
                    ("infer", "inference"),
                )
                if traits.get(key) is not None
            }
            for failure in traits.get("failures") or []:  # stored without these stages
                if isinstance(failure, dict) and failure.get("dlq_id"):
                    progress.dlq.append(
                        {
                            "id": str(failure["dlq_id"]),
                            "stage": failure.get("stage"),
                            "reason": failure.get("reason"),
                            "message": failure.get("message"),
                            "voxel_id": record.voxel_id,
                        }
                    )
        elif record.kind == "dlq" and record.status in ("open", "dismissed"):
            progress.name = progress.name or Subject.of(record.event).artifact.get("name")
            error = record.event.data.get("error") or {}
            progress.dlq.append(
                {
                    "id": record.id,
                    "stage": record.stage,
                    "reason": record.reason,
                    "message": error.get("message") if isinstance(error, dict) else None,
                }
            )
    progress.stages_done = [s for s in STAGE_ORDER if s in stages]
    return progress


# ---- events (SSE) --------------------------------------------------------------------------
@router.get(
    "/events",
    responses={
        200: {
            "description": "Server-Sent Events: one CloudEvent (JSON) per `data:` line",
            "content": {"text/event-stream": {"schema": {"type": "string"}}},
        },
        **responses(*AUTH),
    },
    response_class=StreamingResponse,
    summary="Live CloudEvents (Server-Sent Events), optionally of one correlation id",
)
async def get_events(
    request: Request,
    _token: Reader,
    correlation_id: Annotated[str | None, Query(max_length=64)] = None,
    full: Annotated[
        bool,
        Query(description="Every sentence and entity (default: NLP summaries, top 3 labels)"),
    ] = False,
) -> StreamingResponse:
    """Stream the pipeline's CloudEvents as they happen (Server-Sent Events).

    Each event is an SSE message with `id` (the CloudEvent id), `event` (its type) and one
    `data:` line of JSON; with `correlation_id`, only that ingest's events. NLP results are
    summarised unless `full=true`. A keep-alive comment is sent every
    `TL_API_SSE_HEARTBEAT_S`. A client that reads too slowly loses events, never slows the
    pipeline: it is told with an `event: lagged` message whose data is `{"dropped": N}`.
    """
    service = service_of(request)
    heartbeat = service.settings.api.sse_heartbeat_s
    sub = service.hub.subscribe(correlation_id)

    async def stream() -> AsyncIterator[bytes]:
        try:
            yield b": connected\nretry: 2000\n\n"
            while True:
                try:
                    event = await asyncio.wait_for(sub.queue.get(), heartbeat)
                except TimeoutError:
                    yield b": keep-alive\n\n"
                    continue
                if event is None:
                    return
                if sub.lagged:
                    lagged = json.dumps({"dropped": sub.lagged})
                    sub.lagged = 0
                    yield f"event: lagged\ndata: {lagged}\n\n".encode()
                body = event.to_json() if full else _summarized(event)
                yield f"id: {event.id}\nevent: {event.type}\ndata: {body}\n\n".encode()
        finally:
            service.hub.unsubscribe(sub)

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


def _summarized(event: CloudEvent) -> str:
    """The event's wire JSON with its NLP result summarised (:mod:`thunderline.summary`)."""
    doc = event.to_dict()
    if isinstance(doc.get("data"), dict):
        doc["data"] = summarize_data(doc["data"])
    return names.dumps(doc, separators=(",", ":"))


# ---- voxels --------------------------------------------------------------------------------
@router.get(
    "/voxels",
    response_model=VoxelPage | SelectedPage,
    responses=responses(*AUTH),
    summary="Voxels, newest first, with filters and cursor pagination (summaries)",
)
async def list_voxels(
    request: Request,
    _token: Reader,
    label: Annotated[
        str | None, Query(max_length=128, description="Magika label (any case)")
    ] = None,
    group: Annotated[
        str | None, Query(max_length=128, description="Magika group (any case)")
    ] = None,
    since: Annotated[
        str | None,
        Query(
            max_length=64,
            description="Stored at or after (RFC 3339 with a zone)",
            json_schema_extra={"format": "date-time"},
        ),
    ] = None,
    until: Annotated[
        str | None,
        Query(
            max_length=64,
            description="Stored before (RFC 3339 with a zone)",
            json_schema_extra={"format": "date-time"},
        ),
    ] = None,
    q: Annotated[
        str | None, Query(max_length=200, description="Text in an NLP entity (case-insensitive)")
    ] = None,
    entity_type: Annotated[
        str | None,
        Query(max_length=64, description="Has an NLP entity of this type (PERSON, ORG, ...)"),
    ] = None,
    model_label: Annotated[
        str | None,
        Query(max_length=128, description="The inference model's top label (any case)"),
    ] = None,
    fields: Annotated[str | None, Query(max_length=400, description=FIELDS_HELP)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=400)] = None,
) -> VoxelPage | JSONResponse:
    """List stored voxels, newest first, as summaries; the filters combine (all must match).

    Pass `next_cursor` as `cursor` to get the next page (it is null on the last page; a
    malformed cursor is a 400 `bad_cursor`). With `fields`, each item holds
    only the named summary fields. The full voxel is on `GET /v1/voxels/{voxel_id}`.
    """
    service = service_of(request)
    chosen = _fields(fields, BRIEF_FIELDS)
    flt = VoxelFilter(
        label=label,
        group=group,
        since=rfc3339("since", since),
        until=rfc3339("until", until),
        q=q or None,
        entity_type=entity_type or None,
        model_label=model_label or None,
    )
    try:
        items, next_cursor = await asyncio.to_thread(
            service.require_voxels().page, flt, cursor, limit=limit
        )
    except BadCursorError as exc:
        raise ApiError(400, "bad_cursor", str(exc)) from exc
    briefs = [voxel_brief(v) for v in items]
    if chosen is None:
        return VoxelPage(items=briefs, next_cursor=next_cursor)
    docs = [select_fields(b.model_dump(mode="json"), chosen) for b in briefs]
    return JSONResponse({"items": docs, "next_cursor": next_cursor})


def _fields(value: str | None, allowed: tuple[str, ...]) -> list[str] | None:
    """The ``fields`` parameter as a list of known field names (None: every field)."""
    if value is None or not value.strip():
        return None
    chosen = [name.strip() for name in value.split(",") if name.strip()]
    unknown = [name for name in chosen if name not in allowed]
    if unknown:
        raise ApiError(
            400,
            "invalid_request",
            f"unknown field(s) {', '.join(unknown)[:200]}",
            details={"allowed": list(allowed)},
        )
    return list(dict.fromkeys(chosen))


def rfc3339(name: str, value: str | None) -> datetime | None:
    """An RFC 3339 time with a zone (``2026-11-27T12:00:00Z``), or a 400 naming the parameter."""
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError as exc:
        raise ApiError(
            400, "invalid_request", f"{name} is not an RFC 3339 time: {value[:64]!r}"
        ) from exc
    if parsed.tzinfo is None or "T" not in value.upper():
        raise ApiError(400, "invalid_request", f"{name} needs a date, a time and a zone (e.g. Z)")
    return parsed


async def _voxel(service: ApiService, voxel_id: str) -> Voxel:
    try:
        return await asyncio.to_thread(service.require_voxels().get, voxel_id)
    except InvalidVoxelIdError as exc:
        raise ApiError(400, "invalid_request", str(exc), details={"voxel_id": voxel_id}) from exc
    except VoxelNotFoundError as exc:
        raise ApiError(404, "voxel_not_found", str(exc), details={"voxel_id": voxel_id}) from exc
    except AmbiguousIdError as exc:
        raise ApiError(
            409, "ambiguous_id", str(exc), details={"candidates": exc.candidates}
        ) from exc


@router.get(
    "/voxels/{voxel_id}",
    response_model=VoxelOut | dict[str, Any],
    responses=responses(*AUTH, 404, 409, 502),
    summary="One voxel in full (short id, id or unique part), metadata checksum verified",
)
async def get_voxel(
    request: Request,
    voxel_id: Id,
    _token: Reader,
    fields: Annotated[str | None, Query(max_length=400, description=FIELDS_HELP)] = None,
) -> VoxelOut | JSONResponse:
    """One voxel with every trait: classification, NLP and inference results, lineage, ids.

    `voxel_id` may be the full id, the short id or a unique part of either end: 409
    `ambiguous_id` (with the candidates) when several voxels match, 404 `voxel_not_found`
    when none does. The voxel's metadata checksum is verified on read (502 when it does
    not match). With `fields`, only the named top-level fields are returned.
    """
    chosen = _fields(fields, DETAIL_FIELDS)
    out = voxel_out(await _voxel(service_of(request), voxel_id))
    if chosen is None:
        return out
    return JSONResponse(select_fields(out.model_dump(mode="json"), chosen))


@router.delete(
    "/voxels/{voxel_id}",
    response_model=VoxelDeleted,
    responses=responses(*AUTH, 404, 409),
    summary="Delete a voxel (admin): audited; its payload goes once nothing references it",
)
async def delete_voxel(
    request: Request,
    voxel_id: Id,
    token: Admin,
    with_descendants: Annotated[
        bool, Query(description="Delete the voxel's whole subtree (archive members) too")
    ] = False,
    reason: Annotated[
        str, Query(min_length=1, max_length=500, description="Why (kept in the audit record)")
    ] = "deleted through the API",
) -> VoxelDeleted:
    """Delete a voxel; needs an admin token. Returns one audit record per voxel deleted.

    The audit record keeps who (the token), when and why (`reason`). The payload bytes are
    removed only once no other voxel holds them (`payload_removed`). A voxel with
    descendants (the members of an archive) is refused with 409 `has_descendants` unless
    `with_descendants=true`, which deletes the whole subtree.
    """
    from thunderline.voxel.errors import HasDescendantsError

    store = service_of(request).require_voxels()
    try:
        records = await asyncio.to_thread(
            store.delete,
            [voxel_id],
            actor=f"token:{token.id}:{token.name}",
            reason=reason,
            with_descendants=with_descendants,
        )
    except InvalidVoxelIdError as exc:
        raise ApiError(400, "invalid_request", str(exc), details={"voxel_id": voxel_id}) from exc
    except VoxelNotFoundError as exc:
        raise ApiError(404, "voxel_not_found", str(exc), details={"voxel_id": voxel_id}) from exc
    except HasDescendantsError as exc:
        raise ApiError(409, "has_descendants", str(exc), details={"voxel_id": voxel_id}) from exc
    return VoxelDeleted(deleted=[DeletionOut(**r.to_json_dict()) for r in records])


def media_type_of(voxel: Voxel) -> str:
    """The payload's MIME type from the voxel's classification, else ``application/octet-stream``.

    A classification MIME type without a ``/`` or holding a newline is not used.
    """
    classification = voxel.traits.get("classification")
    mime = classification.get("mime") if isinstance(classification, dict) else None
    return (
        str(mime)
        if mime and "/" in str(mime) and "\n" not in str(mime)
        else "application/octet-stream"
    )


@router.get(
    "/voxels/{voxel_id}/payload",
    responses={
        200: {
            "description": "The payload bytes, checksum verified before the first byte is sent",
            "content": {
                kind: {"schema": {"type": "string", "format": "binary"}}
                for kind in ["application/octet-stream", *sorted(INLINE_TYPES)]
            },
        },
        **responses(*AUTH, 404, 409, 502),
    },
    response_class=StreamingResponse,
    summary="The voxel's payload, verified and streamed",
)
async def get_payload(
    request: Request,
    voxel_id: Id,
    _token: Reader,
    disposition: Annotated[Literal["attachment", "inline"], Query()] = "attachment",
) -> StreamingResponse:
    """Download the voxel's original bytes; its SHA-256 is checked before the first byte is sent.

    A payload that does not match its checksum is a 502 `checksum_mismatch` (nothing is
    sent); a payload missing from the object store is a 404 `payload_missing`. The response
    is an attachment named after the artifact; `disposition=inline` shows images and plain
    text in the browser (other types stay attachments). `ETag` is the payload's SHA-256.
    """
    service = service_of(request)
    voxel = await _voxel(service, voxel_id)
    spool = tempfile.SpooledTemporaryFile(max_size=1024 * 1024)  # noqa: SIM115
    try:
        size = await asyncio.to_thread(
            service.require_voxels().copy_payload,
            voxel,
            spool,  # type: ignore[arg-type]
        )
    except ChecksumMismatch as exc:
        spool.close()
        raise ApiError(502, "checksum_mismatch", str(exc)) from exc
    except (PayloadMissingError, KeyError) as exc:
        spool.close()
        raise ApiError(404, "payload_missing", str(exc)) from exc
    spool.seek(0)
    media_type = media_type_of(voxel)
    inline = disposition == "inline" and media_type in INLINE_TYPES

    async def chunks() -> AsyncIterator[bytes]:
        try:
            while chunk := await asyncio.to_thread(spool.read, 256 * 1024):
                yield chunk
        finally:
            spool.close()

    return StreamingResponse(
        chunks(),
        media_type=media_type if inline else "application/octet-stream",
        headers={
            "Content-Disposition": content_disposition(artifact_name(voxel), inline=inline),
            "Content-Length": str(size),
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "sandbox; default-src 'none'",
            "ETag": f'"{voxel.payload_sha256}"',
        },
    )


@router.get(
    "/voxels/{voxel_id}/text",
    responses={
        200: {
            "description": "The text extracted from the payload, verified before it is sent",
            "content": {"text/plain; charset=utf-8": {"schema": {"type": "string"}}},
        },
        **responses(*AUTH, 404, 502),
    },
    response_class=Response,
    summary="The text extracted from the voxel's payload (stored once beside it)",
)
async def get_text(request: Request, voxel_id: Id, _token: Reader) -> Response:
    """The text extracted from the voxel's payload, as UTF-8 plain text (checksum verified).

    404 `no_text` for a voxel without extracted text (an image, a binary), 404
    `text_missing` when the stored text is gone, 502 `checksum_mismatch` when it does not
    match its checksum.
    """
    service = service_of(request)
    voxel = await _voxel(service, voxel_id)
    try:
        found = await asyncio.to_thread(service.require_voxels().read_text, voxel)
    except ChecksumMismatch as exc:
        raise ApiError(502, "checksum_mismatch", str(exc)) from exc
    except (PayloadMissingError, KeyError) as exc:
        raise ApiError(404, "text_missing", str(exc)) from exc
    if found is None:
        raise ApiError(
            404,
            "no_text",
            f"voxel {voxel.id} has no extracted text",
            details={"voxel_id": voxel.id},
        )
    return Response(
        found.encode("utf-8", "surrogatepass"),
        media_type="text/plain; charset=utf-8",
        headers={
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "sandbox; default-src 'none'",
        },
    )


@router.get(
    "/voxels/{voxel_id}/lineage",
    response_model=LineageOut,
    responses=responses(*AUTH, 404, 409),
    summary="Lineage edges above (ancestors) or below (descendants) a voxel",
)
async def get_lineage(
    request: Request,
    voxel_id: Id,
    _token: Reader,
    direction: Annotated[Literal["ancestors", "descendants"], Query()] = "ancestors",
) -> LineageOut:
    """The voxel's lineage graph (nodes and edges) and its result versions.

    `ancestors` walks up to the archives the voxel came from, `descendants` down to the
    members extracted from it; each edge has its depth from the voxel. Each node carries its
    name and label (only its id when that voxel is gone). `results` lists the voxel's
    result versions: stage, version, producer, current, the event and reprocess run.
    """
    service = service_of(request)
    voxel = await _voxel(service, voxel_id)
    store = service.require_voxels()

    def walk() -> LineageOut:
        edges = (
            store.ancestors(voxel.id) if direction == "ancestors" else store.descendants(voxel.id)
        )
        ids = {voxel.id} | {e.child_id for e in edges} | {e.parent_id for e in edges}
        nodes = []
        for node_id in sorted(ids):
            try:
                node = voxel if node_id == voxel.id else store.get(node_id)
                nodes.append(LineageNode(id=node_id, name=artifact_name(node), label=node.label))
            except VoxelNotFoundError:
                nodes.append(LineageNode(id=node_id))
        versions = service.require_reprocessor().results.versions(voxel)
        return LineageOut(
            voxel_id=voxel.id,
            direction=direction,
            nodes=nodes,
            edges=[
                LineageEdge(child_id=e.child_id, parent_id=e.parent_id, depth=e.depth)
                for e in edges
            ],
            results=[
                {
                    "stage": v.stage,
                    "version": v.seq,
                    "producer": v.producer,
                    "current": v.current,
                    "event_id": v.event_id,
                    "run_id": v.run_id,
                }
                for stage_versions in versions.values()
                for v in stage_versions
            ],
        )

    return await asyncio.to_thread(walk)


@router.get(
    "/voxels/{voxel_id}/results",
    response_model=ResultVersionsOut,
    responses=responses(*AUTH, 404, 409),
    summary="Every result version of a voxel by stage, side by side: who made it, which is current",
)
async def get_results(request: Request, voxel_id: Id, _token: Reader) -> ResultVersionsOut:
    """Every result version of the voxel, grouped by stage (oldest first), and its tags.

    Each version tells who made it (`NAME@VERSION` of the model or extractor), when, and
    whether it is the stage's current one; a reprocess run adds a version and makes it
    current. `tags` are those webhook rules with a `tag:` action put on the voxel.
    """
    service = service_of(request)
    voxel = await _voxel(service, voxel_id)
    worker = service.require_reprocessor()

    def read() -> ResultVersionsOut:
        return ResultVersionsOut(
            voxel_id=voxel.id,
            stages={
                stage: [v.to_json_dict() for v in versions]
                for stage, versions in worker.results.versions(voxel).items()
            },
            tags=service.require_webhooks().tags(voxel.id),
        )

    return await asyncio.to_thread(read)


# ---- reprocess -----------------------------------------------------------------------------
def _run_out(info: Any) -> ReprocessRunOut:
    return ReprocessRunOut(**info.to_json_dict())


@router.post(
    "/reprocess",
    response_model=ReprocessRunOut,
    status_code=202,
    responses=responses(*AUTH, 400),
    summary="Run a stage again over the voxels a query matches (admin); each result is kept "
    "as a new version, the new one current",
)
async def post_reprocess(request: Request, body: ReprocessRequest, token: Admin) -> ReprocessRunOut:
    """Start a reprocess run; it works in the background and one run goes at a time.

    The run is planned over the voxels `query` matches (empty: every voxel) and returned at
    once; follow it on `GET /v1/reprocess/{run_id}`. `model` pins the ONNX model or spaCy
    pipeline (`NAME@VERSION`). A query that does not parse, or a bad stage or model pin, is
    a 400.
    """
    service = service_of(request)
    worker = service.require_reprocessor()
    with _reprocess_errors():
        run_id = await asyncio.to_thread(
            worker.start, body.stage, body.query, body.model, actor=f"token:{token.id}:{token.name}"
        )
    service.start_reprocess(run_id)
    return _run_out(await asyncio.to_thread(worker.info, run_id))


@router.post(
    "/reprocess/dry-run",
    response_model=ReprocessDryRun,
    responses=responses(*AUTH, 400),
    summary="Count what a reprocess run would take and who made the current results (admin)",
)
async def dry_run_reprocess(
    request: Request, body: ReprocessRequest, _token: Admin
) -> ReprocessDryRun:
    """What a reprocess run with this body would take, without starting one.

    Returns how many voxels match, how many already have a result of the stage, who
    produced those current results (count per `NAME@VERSION`) and how many of them are
    already from the pinned `model`. Bad queries, stages and model pins are a 400, as for
    `POST /v1/reprocess`.
    """
    worker = service_of(request).require_reprocessor()
    with _reprocess_errors():
        report = await asyncio.to_thread(worker.dry_run, body.stage, body.query, body.model)
    return ReprocessDryRun(**report.to_json_dict())


@contextlib.contextmanager
def _reprocess_errors() -> Iterator[None]:
    """A bad query, stage or model pin as 400."""
    from thunderline.errors import ConfigError
    from thunderline.search.query import QuerySyntaxError

    try:
        yield
    except QuerySyntaxError as exc:
        details = {**exc.details, "position": exc.position}  # a long query: length and limit
        raise ApiError(400, exc.reason, str(exc), details=details) from exc
    except ConfigError as exc:
        raise ApiError(400, "invalid_request", str(exc), details=exc.details) from exc


@router.get(
    "/reprocess",
    response_model=ReprocessRuns,
    responses=responses(*AUTH),
    summary="Reprocess runs, newest first, with their counts",
)
async def list_reprocess(request: Request, _token: Reader) -> ReprocessRuns:
    """Every reprocess run: stage, model, query, state and counts of its items by state."""
    worker = service_of(request).require_reprocessor()
    runs = await asyncio.to_thread(worker.runs.runs)
    return ReprocessRuns(items=[_run_out(r) for r in runs])


@router.get(
    "/reprocess/{run_id}",
    response_model=ReprocessRunOut,
    responses=responses(*AUTH, 404),
    summary="One reprocess run and how far it got",
)
async def get_reprocess(request: Request, run_id: Id, _token: Reader) -> ReprocessRunOut:
    """One reprocess run: its state, how many of its voxels are finished, counts by state.

    404 `not_found` for an unknown run id.
    """
    worker = service_of(request).require_reprocessor()
    info = await asyncio.to_thread(worker.runs.get, run_id)
    if info is None:
        raise ApiError(404, "not_found", f"no reprocess run {run_id}", details={"run_id": run_id})
    return _run_out(info)


@router.post(
    "/reprocess/{run_id}/resume",
    response_model=ReprocessRunOut,
    status_code=202,
    responses=responses(*AUTH, 404),
    summary="Continue a stopped reprocess run with what is left (admin)",
)
async def resume_reprocess(request: Request, run_id: Id, _token: Admin) -> ReprocessRunOut:
    """Resume a stopped reprocess run (after a restart, for instance) where it stopped.

    Voxels already done are not done again; a run that is running here already is left
    alone. Returns the run as it is now; 404 `not_found` for an unknown run id.
    """
    service = service_of(request)
    worker = service.require_reprocessor()
    info = await asyncio.to_thread(worker.runs.get, run_id)
    if info is None:
        raise ApiError(404, "not_found", f"no reprocess run {run_id}", details={"run_id": run_id})
    service.start_reprocess(run_id)
    return _run_out(info)


# ---- DLQ -----------------------------------------------------------------------------------
DlqStatusQuery = Annotated[
    Literal["open", "replayed", "resolved", "dismissed", "all"],
    Query(description="Records of this status (`all`: every status)"),
]
ForceQuery = Annotated[
    bool,
    Query(
        alias="all",
        description="Also permanent failures and unknown error types (default: retryable only)",
    ),
]
DismissReason = Annotated[
    str, Query(min_length=1, max_length=500, description="Why (kept with each record)")
]


def _id_error(exc: Exception, what: str) -> ApiError:
    if isinstance(exc, AmbiguousIdError):
        return ApiError(409, "ambiguous_id", str(exc), details={"candidates": exc.candidates})
    return ApiError(400, "invalid_request", str(exc), details={what: str(exc)})


async def _letter(service: ApiService, dlq_id: str) -> OutcomeRecord:
    try:
        letter = await asyncio.to_thread(service.require_dlq().get, dlq_id)
    except (AmbiguousIdError, IdReferenceError) as exc:
        raise _id_error(exc, "dlq_id") from exc
    if letter is None:
        raise ApiError(404, "dlq_not_found", f"no DLQ record {dlq_id}")
    return letter


async def _group_key(service: ApiService, group_id: str) -> str:
    try:
        key = await asyncio.to_thread(service.require_dlq().group_key, group_id)
    except (AmbiguousIdError, IdReferenceError) as exc:
        raise _id_error(exc, "group_id") from exc
    if key is None:
        raise ApiError(404, "dlq_group_not_found", f"no DLQ group {group_id}")
    return key


def _actor(token: TokenRecord) -> str:
    return f"token:{token.id}:{token.name}"


def _known_cursor(service: ApiService, cursor: str) -> bool:
    """A cursor is the full id of a DLQ record (``next_cursor``)."""
    if len(cursor) != 36:
        return False
    try:
        found = service.outcomes.dlq_get(cursor)
    except (AmbiguousIdError, IdReferenceError):
        return False
    return found is not None and found.id == cursor


@router.get(
    "/dlq",
    response_model=DlqPage,
    responses=responses(*AUTH, 404, 409),
    summary="Dead-letter records, oldest first (status open by default)",
)
async def list_dlq(
    request: Request,
    _token: Reader,
    status: DlqStatusQuery = "open",
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    cursor: Annotated[
        str | None, Query(max_length=64, description="`next_cursor` of the previous page")
    ] = None,
    group: Annotated[
        str | None, Query(max_length=64, description="Only this group (its `group_id`)")
    ] = None,
) -> DlqPage:
    """One page of dead-letter records with their error, traceback and replay state.

    Pass `next_cursor` as `cursor` for the next page (null: no more); a cursor this API did
    not return is a 400 `bad_cursor`. `group` takes a `group_id` from `GET /v1/dlq/groups`
    (404 `dlq_group_not_found` when there is no such group).
    """
    service = service_of(request)
    view = service.require_dlq()
    if cursor and not await asyncio.to_thread(_known_cursor, service, cursor):
        raise ApiError(
            400, "bad_cursor", "the cursor is not one this API returned (use `next_cursor`)"
        )
    key = await _group_key(service, group) if group else None
    entries, next_cursor = await asyncio.to_thread(
        view.page,
        None if status == "all" else status,
        limit=limit,
        cursor=cursor or None,
        group=key,
    )
    return DlqPage(items=[dlq_item(e) for e in entries], next_cursor=next_cursor)


@router.get(
    "/dlq/groups",
    response_model=DlqGroupPage,
    responses=responses(*AUTH),
    summary="Dead letters grouped by (stage, reason, artifact), most recent first",
)
async def list_dlq_groups(
    request: Request,
    _token: Reader,
    status: DlqStatusQuery = "open",
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> DlqGroupPage:
    """Repeated failures together: one item per stage, reason and artifact.

    Each group tells how many records it holds, when the first and latest were made,
    whether they are retryable or permanent, and holds its latest record in full. Page with
    `offset` and `limit`; `total` counts the groups of that status.
    """
    groups, total = await asyncio.to_thread(
        service_of(request).require_dlq().groups,
        None if status == "all" else status,
        limit=limit,
        offset=offset,
    )
    return DlqGroupPage(items=[dlq_group_out(g) for g in groups], total=total)


@router.post(
    "/dlq/purge",
    response_model=DlqPurged,
    responses=responses(*AUTH),
    summary="Delete closed DLQ records (replayed, resolved, dismissed) older than a duration "
    "(admin); open records are never deleted",
)
async def purge_dlq(
    request: Request,
    _token: Admin,
    older_than: Annotated[
        str, Query(min_length=2, max_length=32, description="Age: `90s`, `15m`, `12h`, `30d`")
    ],
    dry_run: Annotated[bool, Query(description="Count only; delete nothing")] = False,
) -> DlqPurged:
    """Delete old closed dead-letter records; needs an admin token.

    `older_than` counts from each record's creation (`90s`, `15m`, `12h`, `30d`; anything
    else is a 400). Returns how many records were deleted in all and per status; with
    `dry_run=true`, how many would be, and nothing is deleted.
    """
    try:
        seconds = parse_duration(older_than)
    except ValueError as exc:
        raise ApiError(400, "invalid_request", str(exc)) from exc
    found = await asyncio.to_thread(
        service_of(request).require_dlq().purge, seconds, dry_run=dry_run
    )
    return DlqPurged(dry_run=dry_run, deleted=sum(found.values()), by_status=found)


@router.post(
    "/dlq/groups/{group_id}/replay",
    response_model=DlqGroupReplay,
    responses=responses(*AUTH, 404, 409, 429),
    summary="Replay a group's open records: retryable ones unless `all=true` (admin)",
)
async def replay_dlq_group(
    request: Request, group_id: Id, _token: Admin, force: ForceQuery = False
) -> DlqGroupReplay:
    """Replay every open record of a group; needs an admin token.

    Each sent record's original event goes through the pipeline again and gets its
    `replay_event_id` and `status_url`. Permanent failures and unknown error types are
    skipped unless `all=true`, and records without an original event always are: `skipped`
    counts them per reason and `skipped_ids` names them. 429 with `Retry-After` while the
    ingest queue is full.
    """
    service = service_of(request)
    _refuse_when_full(service)
    key = await _group_key(service, group_id)
    try:
        sent, selection = await service.replay_group(key, force=force)
    except OverloadError as exc:
        raise _queue_full(exc) from exc
    return DlqGroupReplay(
        replayed=[_accepted_replay(letter.id, event) for letter, event in sent],
        skipped=selection.skipped_summary(),
        skipped_ids=[r.id for found in selection.skipped.values() for r in found],
    )


@router.post(
    "/dlq/groups/{group_id}/dismiss",
    response_model=DlqDismissed,
    responses=responses(*AUTH, 404, 409),
    summary="Dismiss a group's open records: closed without a replay, with who/when/why (admin)",
)
async def dismiss_dlq_group(
    request: Request, group_id: Id, token: Admin, reason: DismissReason
) -> DlqDismissed:
    """Close every open record of a group without a replay (a file known to be broken).

    Needs an admin token. The records become `dismissed`, keeping who (the token), when and
    `reason`; they leave the open list. Returns the ids dismissed now.
    """
    service = service_of(request)
    key = await _group_key(service, group_id)
    letters = service.require_dlq()

    def dismiss() -> list[str]:
        ids = [r.id for r in letters.of_group(key)]
        return letters.dismiss(ids, by=_actor(token), note=reason)

    return DlqDismissed(dismissed=await asyncio.to_thread(dismiss))


@router.get(
    "/dlq/{dlq_id}",
    response_model=DlqItem,
    responses=responses(*AUTH, 404, 409),
    summary="One dead-letter record (short id, id or unique part)",
)
async def get_dlq(request: Request, dlq_id: Id, _token: Reader) -> DlqItem:
    """One dead-letter record with its error, traceback, group and replay or dismissal state.

    404 `dlq_not_found` when no record matches, 409 `ambiguous_id` (with the candidates)
    when several do.
    """
    return dlq_item(await _letter(service_of(request), dlq_id))


@router.post(
    "/dlq/{dlq_id}/replay",
    status_code=202,
    response_model=ReplayAccepted,
    responses=responses(*AUTH, 404, 409, 429),
    summary="Send a dead letter's original event through the pipeline again (admin); a "
    "permanent failure only with `all=true`",
)
async def replay_dlq(
    request: Request, dlq_id: Id, _token: Admin, force: ForceQuery = False
) -> ReplayAccepted:
    """Replay one dead letter; needs an admin token. Follow the replay at `status_url`.

    A record that names a voxel (stored without the failed stage's result) completes that
    voxel rather than storing a second one. 409 `not_retryable` for a permanent failure
    without `all=true`, `not_replayable` for a record without an original event,
    `already_replayed` when it was replayed already; 429 with `Retry-After` while the ingest
    queue is full.
    """
    service = service_of(request)
    _refuse_when_full(service)
    letter = await _letter(service, dlq_id)
    try:
        event = await service.replay(letter.id, force=force)
    except OverloadError as exc:  # submit-and-read: the claim was undone
        raise _queue_full(exc) from exc
    except KeyError as exc:
        raise ApiError(404, "dlq_not_found", f"no DLQ record {dlq_id}") from exc
    except NotRetryableError as exc:
        raise ApiError(409, "not_retryable", str(exc), details=exc.details) from exc
    except ValueError as exc:
        raise ApiError(409, "not_replayable", str(exc)) from exc
    if event is None:
        raise ApiError(409, "already_replayed", f"DLQ record {dlq_id} was already replayed")
    return _accepted_replay(letter.id, event)


def _accepted_replay(dlq_id: str, event: CloudEvent) -> ReplayAccepted:
    return ReplayAccepted(
        dlq_id=dlq_id,
        replay_event_id=event.id,
        correlation_id=event.correlationid,
        status_url=f"/v1/ingest/{event.correlationid}",
    )


@router.post(
    "/dlq/{dlq_id}/dismiss",
    response_model=DlqDismissed,
    responses=responses(*AUTH, 404, 409),
    summary="Dismiss an open dead letter: closed without a replay, with who/when/why (admin)",
)
async def dismiss_dlq(
    request: Request, dlq_id: Id, token: Admin, reason: DismissReason
) -> DlqDismissed:
    """Close one open dead letter without a replay (a file known to be broken).

    Needs an admin token. The record becomes `dismissed`, keeping who (the token), when and
    `reason`. 409 `not_open` when the record is not open (replayed, resolved or dismissed
    already).
    """
    service = service_of(request)
    letter = await _letter(service, dlq_id)
    done = await asyncio.to_thread(
        service.require_dlq().dismiss, [letter.id], by=_actor(token), note=reason
    )
    if not done:
        raise ApiError(
            409, "not_open", f"DLQ record {letter.short_id} is {letter.status}: not dismissed"
        )
    return DlqDismissed(dismissed=done)


# ---- sources and webhooks ------------------------------------------------------------------
@router.get(
    "/sources",
    response_model=SourceList,
    responses=responses(*AUTH),
    summary="Source roots (folders, bucket prefixes) with their state and entry counts",
)
async def list_sources(request: Request, _token: Reader) -> SourceList:
    """Every source root that `thunderline sync` / `watch` keeps in step.

    Each root (a `file://` folder or an `s3://` prefix) with whether it is paused, its last
    pass, and its entries counted by state.
    """
    ledger = service_of(request).require_ledger()

    def read() -> list[dict[str, Any]]:
        return [
            {**root.to_json_dict(), "entries": ledger.counts(root.uri)} for root in ledger.roots()
        ]

    return SourceList(items=await asyncio.to_thread(read))


@router.post(
    "/sources",
    response_model=SourceList,
    responses=responses(*AUTH),
    summary="Add a source root, or pause / resume one (admin); a running watch follows it",
)
async def change_source(request: Request, body: SourceChange, _token: Admin) -> SourceList:
    """Add a source root if it is new, then pause or resume it; needs an admin token.

    A running `thunderline watch` picks the change up. A folder is taken as given (the
    server does not look at it from a request); an `s3://` prefix is stored in its
    canonical form. Returns that root with its entry counts.
    """
    from thunderline.sources.scan import parse_source

    # an s3 prefix in its canonical form (with its slash); a folder on the server as given
    # (never stat()ed from a request)
    uri = parse_source(body.uri).uri if body.uri.startswith("s3://") else body.uri
    ledger = service_of(request).require_ledger()

    def change() -> list[dict[str, Any]]:
        ledger.ensure_root(uri)
        ledger.set_paused(uri, body.paused)
        return [
            {**root.to_json_dict(), "entries": ledger.counts(root.uri)}
            for root in ledger.roots()
            if root.uri == uri
        ]

    return SourceList(items=await asyncio.to_thread(change))


@router.get(
    "/webhooks/deliveries",
    response_model=WebhookDeliveries,
    responses=responses(*AUTH),
    summary="The webhook delivery log (admin): deliveries, newest first, with every attempt",
)
async def webhook_deliveries(
    request: Request,
    _token: Admin,
    status: Annotated[Literal["pending", "delivered", "failed"] | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> WebhookDeliveries:
    """The webhook deliveries, newest first, each with every attempt made.

    Needs an admin token. `status` keeps only pending, delivered or failed deliveries; each
    attempt tells when it was made and how it went (HTTP status or error).
    """
    hooks = service_of(request).require_webhooks()
    items = await asyncio.to_thread(hooks.deliveries, status=status, limit=limit)
    return WebhookDeliveries(items=items)


# ---- models --------------------------------------------------------------------------------
@router.get(
    "/models",
    response_model=ModelList,
    responses=responses(*AUTH),
    summary="Registered models with checksum status and health",
)
async def list_models(request: Request, _token: Reader) -> ModelList:
    """The model registry's entries, each with its checksum status and its health here.

    `checksum` is `ok`, `mismatch`, `missing` or `untrusted` (the check is cached for 30 s);
    `health` is the inference supervisor's state, or `not loaded`.
    """
    return ModelList.model_validate(await asyncio.to_thread(service_of(request).models))


# ---- health --------------------------------------------------------------------------------
@health_router.get("/healthz", response_model=Health, summary="The process is up")
async def healthz() -> Health:
    """Liveness probe: always `{"status": "ok"}` while the process answers; no token needed."""
    return Health(status="ok")


@health_router.get(
    "/readyz",
    response_model=Readiness,
    responses={
        503: {"model": Readiness, "description": "Not ready (with a token: the failing checks)"},
        **responses(401),
    },
    summary="Ready or not; with a token also each check (models, breaker, database, ...)",
)
async def readyz(request: Request) -> JSONResponse:
    """Readiness probe: 200 when every check passes, else 503; anonymous callers learn only that.

    A caller with a token (header or console cookie) also gets each check with its detail:
    database, bucket and broker coordinates are not for anonymous eyes. A token that is
    presented must be valid (401).
    """
    service = service_of(request)
    token, _ = presented_token(request)
    if token is not None:
        authenticate(request, service.tokens, Scope.READ)
    readiness = await asyncio.to_thread(service.readiness)
    body = readiness.model_dump() if token is not None else {"ready": readiness.ready}
    return JSONResponse(body, status_code=200 if readiness.ready else 503)
