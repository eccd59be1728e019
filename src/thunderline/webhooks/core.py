"""Webhooks: terminal events matched by a trigger, POSTed as CloudEvents, signed, retried.

* **Rules** -- each endpoint is a rule: **triggers** -> an **action**. Triggers: ``ingested``
  (a voxel was stored), ``failed`` (a DLQ record), ``reprocessed`` (``thunderline reprocess``
  added a result version), ``label:<name>`` (a voxel of that Magika label), ``entity:<text>``
  (a voxel, or a new NLP result version, naming that entity; case-insensitive) and
  ``query:<search query>`` (a voxel the search query language matches,
  :mod:`thunderline.search.query`). Actions: ``webhook`` (POST the event to the endpoint's URL)
  or ``tag:<name>`` (put the tag on the voxel: ``voxel_tags``, no request). Terminal records
  are matched against the **outcomes table**, where the collector records every terminal event
  of every way in (CLI, API, sync/watch, workers), and result versions against
  ``voxel_results``, so the dispatcher needs no hook in the pipeline and survives restarts:
  each endpoint keeps a cursor over each (the last row it considered) and a delivery row is
  written per (endpoint, event) under a unique key, before any attempt (at-least-once; a
  receiver deduplicates by the CloudEvent ``id``, which is the terminal event's own id, or the
  id of the event a result version was made for).
* **Where it runs** -- :meth:`Webhooks.dispatch` runs inside ``thunderline serve`` and
  ``thunderline watch`` (every ``TL_WEBHOOK_POLL_INTERVAL_S``), and ``thunderline webhooks run``
  runs it alone; several dispatchers may share a database.
* **CloudEvents HTTP binding, structured mode** -- the body is the event as JSON,
  ``Content-Type: application/cloudevents+json; charset=utf-8``.
* **Signature** -- headers ``webhook-id`` (the event id), ``webhook-timestamp`` (Unix seconds)
  and ``webhook-signature: v1,<base64 HMAC-SHA256(secret, "<id>.<timestamp>.<body>")>``: the
  Standard Webhooks scheme. A receiver recomputes it and refuses an old timestamp (replay).
* **Retries** -- a failed attempt (no connection, timeout, non-2xx) is retried after
  :func:`backoff` (exponential, jittered, capped) until ``TL_WEBHOOK_MAX_ATTEMPTS``; then the
  delivery is ``failed``. Every attempt is a row of ``webhook_attempts`` (the delivery log).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import logging
import secrets
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from sqlalchemy import Engine, and_, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from thunderline.config import Settings, WebhookSettings
from thunderline.errors import BackendError, ConfigError
from thunderline.obs import metrics
from thunderline.voxel.db import Tables, insert_ignore
from thunderline.voxel.tables import (
    outcomes,
    voxel_results,
    voxel_tags,
    webhook_attempts,
    webhook_deliveries,
    webhook_endpoints,
)

_log = logging.getLogger("thunderline.webhooks")
CONTENT_TYPE = "application/cloudevents+json; charset=utf-8"
PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"


def reprocessed_event(row: Any, result: dict[str, Any]) -> str:
    """The CloudEvent (structured JSON) of a result version a reprocess run added."""
    from datetime import UTC, datetime

    doc = {
        "specversion": "1.0",
        "id": row["event_id"],
        "source": "urn:thunderline:reprocess",
        "type": REPROCESSED_TYPE,
        "time": datetime.fromtimestamp(float(row["created_unix"]), UTC).isoformat(),
        "datacontenttype": "application/json",
        "data": {
            "voxel_id": row["voxel_id"],
            "stage": row["stage"],
            "version": int(row["seq"]),
            "producer": row["producer"],
            "run_id": row["run_id"],
            "result": result,
        },
    }
    return json.dumps(doc, sort_keys=True)


def backoff(attempt: int, first_s: float, max_s: float) -> float:
    """Delay before retry ``attempt`` (1-based): ``first_s * 2**(attempt-1)``, capped, jittered.

    Up to 20 % is taken off (:attr:`~thunderline.config.WebhookSettings.retry_policy`'s
    jitter).
    """
    return WebhookSettings(backoff_s=first_s, backoff_max_s=max_s).retry_policy.delay(attempt)


def sign(secret: str, event_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` header value for this body (Standard Webhooks ``v1``)."""
    message = f"{event_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret.encode(), message, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def verify_signature(
    secret: str, headers: dict[str, str], body: bytes, *, tolerance_s: float = 300.0
) -> bool:
    """What a receiver does: recompute the signature, refuse a timestamp out of tolerance."""
    try:
        timestamp = int(headers["webhook-timestamp"])
        expected = sign(secret, headers["webhook-id"], timestamp, body)
    except (KeyError, ValueError):
        return False
    if abs(time.time() - timestamp) > tolerance_s:
        return False
    given = headers.get("webhook-signature", "").split()
    return any(hmac.compare_digest(expected, g) for g in given)


@dataclass(frozen=True)
class Endpoint:
    """A rule as stored: its triggers and its action (``webhook`` or ``tag:NAME``).

    Attributes:
        id: The rule's id.
        url: Where a ``webhook`` action POSTs (unused by a tag action).
        secret: The signing secret of the ``webhook-signature`` header.
        triggers: What fires the rule (``ingested``, ``failed``, ``label:...``, ...).
        active: False when the rule is switched off (nothing new is matched).
        created_unix: When the rule was added (Unix seconds).
        action: ``webhook`` or ``tag:NAME``.
    """

    id: str
    url: str
    secret: str
    triggers: list[str]
    active: bool
    created_unix: float
    action: str = "webhook"

    def to_json_dict(self, *, show_secret: bool = False) -> dict[str, Any]:
        """The rule's fields as a JSON-ready dict; the secret is ``***`` unless ``show_secret``."""
        out = dict(self.__dict__)
        if not show_secret:
            out["secret"] = "***"
        return out


#: The CloudEvent type of a result version added by ``thunderline reprocess``.
REPROCESSED_TYPE = "system.voxel.reprocessed"
TRIGGER_HELP = "ingested, failed, reprocessed, label:NAME, entity:TEXT or query:QUERY"


def _check_triggers(triggers: Sequence[str]) -> list[str]:
    out = []
    for trigger in triggers:
        kind, colon, value = trigger.partition(":")
        if trigger in ("ingested", "failed", "reprocessed"):
            out.append(trigger)
        elif colon and kind in ("label", "entity") and value.strip():
            out.append(f"{kind}:{value.strip()}")
        elif colon and kind == "query" and value.strip():
            from thunderline.search.query import parse

            parse(value)  # QuerySyntaxError (with its position) now, not at dispatch
            out.append(f"query:{value.strip()}")
        else:
            raise ConfigError(f"unknown webhook trigger {trigger!r}: {TRIGGER_HELP}")
    if not out:
        raise ConfigError("a webhook needs at least one trigger")
    return out


def _check_action(action: str) -> str:
    if action == "webhook":
        return action
    kind, colon, tag = action.partition(":")
    if kind == "tag" and colon and tag.strip() and len(tag.strip()) <= 128:
        return f"tag:{tag.strip()}"
    raise ConfigError(f"unknown rule action {action!r}: webhook or tag:NAME (up to 128 chars)")


@dataclass(frozen=True)
class Subject:
    """What a trigger is matched against: one terminal record or one new result version."""

    kind: str  # voxel | dlq | reprocessed
    voxel_id: str | None = None
    label: str | None = None
    entities: frozenset[str] = frozenset()


def entity_texts(nlp: Any) -> frozenset[str]:
    """The entity texts of an NLP result, case-folded (for ``entity:`` triggers)."""
    if not isinstance(nlp, dict):
        return frozenset()
    return frozenset(
        str(e.get("text", "")).casefold()
        for e in nlp.get("entities") or []
        if isinstance(e, dict) and e.get("text")
    )


def matches(
    triggers: Sequence[str],
    kind: str,
    label: str | None,
    *,
    entities: frozenset[str] = frozenset(),
    in_query: Callable[[str], bool] | None = None,
) -> bool:
    """Whether a subject fires these triggers.

    The subject is a ``voxel``, ``dlq`` or ``reprocessed`` record, with its label, entity
    texts and whether a query matches it.
    """
    for trigger in triggers:
        if trigger == "ingested" and kind == "voxel":
            return True
        if trigger == "failed" and kind == "dlq":
            return True
        if trigger == "reprocessed" and kind == "reprocessed":
            return True
        if trigger.startswith("label:") and kind == "voxel" and label == trigger[6:]:
            return True
        if trigger.startswith("entity:") and trigger[7:].casefold() in entities:
            return True
        if (
            trigger.startswith("query:")
            and kind == "voxel"
            and in_query is not None
            and in_query(trigger[6:])
        ):
            return True
    return False


class Webhooks(Tables):
    """Endpoints, deliveries and the delivery log in the voxel database; the dispatcher."""

    what = "webhook"

    def __init__(self, settings: Settings, *, engine: Engine | None = None) -> None:
        super().__init__(settings, engine=engine)
        self.settings = settings

    def __enter__(self) -> Webhooks:
        return self

    # ---- endpoints (rules) ------------------------------------------------------------------
    def add(
        self,
        url: str,
        triggers: Sequence[str],
        secret: str | None = None,
        *,
        action: str = "webhook",
    ) -> Endpoint:
        """Add a new rule; events from now on are considered (not the history).

        ``action`` is ``webhook`` (POST to ``url``, signed with ``secret``) or ``tag:NAME``
        (``url`` unused).

        Raises:
            ConfigError: a bad URL, trigger or action.
            QuerySyntaxError: a ``query:`` trigger that does not parse.
        """
        action = _check_action(action)
        if action == "webhook" and not url.startswith(("http://", "https://")):
            raise ConfigError(f"webhook URL must be http(s)://: {url!r}")
        endpoint = Endpoint(
            id=str(uuid.uuid4()),
            url=url if action == "webhook" else "",
            secret=secret or secrets.token_urlsafe(32),
            triggers=_check_triggers(triggers),
            active=True,
            created_unix=time.time(),
            action=action,
        )
        row = {**endpoint.__dict__, "triggers": json.dumps(endpoint.triggers)}
        row.update(
            cursor_unix=endpoint.created_unix,
            cursor_id="",
            results_cursor_unix=endpoint.created_unix,
            results_cursor_id="",
        )
        self._run("add", lambda conn: conn.execute(insert(webhook_endpoints).values(**row)))
        return endpoint

    def endpoints(self, *, active_only: bool = False) -> list[Endpoint]:
        """Every rule, oldest first (``active_only``: the ones not paused)."""
        stmt = select(webhook_endpoints).order_by(webhook_endpoints.c.created_unix)
        if active_only:
            stmt = stmt.where(webhook_endpoints.c.active.is_(True))

        def run(conn: Any) -> list[Endpoint]:
            return [
                Endpoint(
                    id=r["id"],
                    url=r["url"],
                    secret=r["secret"],
                    triggers=json.loads(r["triggers"]),
                    active=bool(r["active"]),
                    created_unix=float(r["created_unix"]),
                    action=r["action"],
                )
                for r in conn.execute(stmt).mappings()
            ]

        result: list[Endpoint] = self._run("read", run)
        return result

    def set_active(self, endpoint_id: str, active: bool) -> bool:
        """Pause or resume a rule; False when it is unknown."""

        def run(conn: Any) -> bool:
            stmt = (
                update(webhook_endpoints)
                .where(webhook_endpoints.c.id == endpoint_id)
                .values(active=active)
            )
            return bool(conn.execute(stmt).rowcount)

        result: bool = self._run("update", run)
        return result

    def tags(self, voxel_id: str) -> list[str]:
        """The tags rules put on a voxel."""
        stmt = (
            select(voxel_tags.c.tag)
            .where(voxel_tags.c.voxel_id == voxel_id)
            .order_by(voxel_tags.c.tag)
        )
        found: list[str] = self._run("read", lambda conn: list(conn.scalars(stmt)))
        return found

    # ---- enqueue: outcomes and result versions -> deliveries / tags ---------------------------
    def enqueue(self, *, batch: int = 500) -> int:
        """Act on each new terminal record and result version an active rule's triggers match.

        The action is a pending delivery, or a tag; the rule's cursors advance in the same
        transaction. Returns how many deliveries and tags were added.
        """
        added = 0
        for endpoint in self.endpoints(active_only=True):
            added += self._guarded(partial(self._enqueue_outcomes, endpoint, batch))
            if "reprocessed" in endpoint.triggers or any(
                t.startswith("entity:") for t in endpoint.triggers
            ):
                added += self._guarded(partial(self._enqueue_results, endpoint, batch))
        return added

    def _guarded(self, fn: Callable[[], int]) -> int:
        try:
            return fn()
        except BackendError as exc:
            if isinstance(exc.__cause__, IntegrityError):  # a concurrent dispatcher won
                return 0
            raise

    def _query_matcher(self, voxel_ids: set[str]) -> Callable[[str], set[str]]:
        """``query -> the ids among voxel_ids it matches`` (one search per query per round)."""
        from thunderline.search.engine import Searcher

        cache: dict[str, set[str]] = {}

        def matching(query: str) -> set[str]:
            if query not in cache:
                found: set[str] = set()
                for page in Searcher(self.engine).iter_matches(query):
                    found.update(v for v in page if v in voxel_ids)
                cache[query] = found
            return cache[query]

        return matching

    def _enqueue_outcomes(self, endpoint: Endpoint, batch: int) -> int:
        def run(conn: Any) -> int:
            cur = conn.execute(
                select(webhook_endpoints.c.cursor_unix, webhook_endpoints.c.cursor_id).where(
                    webhook_endpoints.c.id == endpoint.id
                )
            ).one()
            c = outcomes.c
            rows = conn.execute(
                select(c.id, c.kind, c.event, c.event_type, c.created_unix)
                .where(
                    or_(
                        c.created_unix > cur.cursor_unix,
                        and_(c.created_unix == cur.cursor_unix, c.id > cur.cursor_id),
                    )
                )
                .order_by(c.created_unix, c.id)
                .limit(batch)
            ).all()
            if not rows:
                return 0
            subjects = []
            for row in rows:
                data = json.loads(row.event).get("data") or {}
                found = data.get("voxel")
                voxel: dict[str, Any] = found if isinstance(found, dict) else {}
                subjects.append(
                    Subject(
                        kind=row.kind,
                        voxel_id=voxel.get("id"),
                        label=voxel.get("label"),
                        entities=entity_texts(data.get("nlp"))
                        if row.kind == "voxel"
                        else frozenset(),
                    )
                )
            ids = {s.voxel_id for s in subjects if s.voxel_id}
            queries = (
                self._query_matcher(ids)
                if any(t.startswith("query:") for t in endpoint.triggers)
                else None
            )
            chosen = []
            for row, subject in zip(rows, subjects, strict=True):
                in_query = (
                    (lambda q, v=subject.voxel_id: v in queries(q)) if queries is not None else None
                )
                if matches(
                    endpoint.triggers,
                    subject.kind,
                    subject.label,
                    entities=subject.entities,
                    in_query=in_query,
                ):
                    chosen.append((row.id, row.event_type, row.event, subject.voxel_id))
            added = self._act(conn, endpoint, chosen)
            last = rows[-1]
            conn.execute(
                update(webhook_endpoints)
                .where(webhook_endpoints.c.id == endpoint.id)
                .values(cursor_unix=last.created_unix, cursor_id=last.id)
            )
            return added

        result: int = self._run("enqueue", run)
        return result

    def _enqueue_results(self, endpoint: Endpoint, batch: int) -> int:
        def run(conn: Any) -> int:
            cur = conn.execute(
                select(
                    webhook_endpoints.c.results_cursor_unix, webhook_endpoints.c.results_cursor_id
                ).where(webhook_endpoints.c.id == endpoint.id)
            ).one()
            r = voxel_results.c
            rows = (
                conn.execute(
                    select(voxel_results)
                    .where(
                        and_(
                            r.run_id.is_not(None),
                            or_(
                                r.created_unix > cur.results_cursor_unix,
                                and_(
                                    r.created_unix == cur.results_cursor_unix,
                                    r.id > cur.results_cursor_id,
                                ),
                            ),
                        )
                    )
                    .order_by(r.created_unix, r.id)
                    .limit(batch)
                )
                .mappings()
                .all()
            )
            if not rows:
                return 0
            chosen = []
            for row in rows:
                result = json.loads(row["result"])
                entities = entity_texts(result) if row["stage"] == "nlp" else frozenset()
                if matches(endpoint.triggers, "reprocessed", None, entities=entities):
                    body = reprocessed_event(row, result)
                    chosen.append((row["event_id"], REPROCESSED_TYPE, body, row["voxel_id"]))
            added = self._act(conn, endpoint, chosen)
            last = rows[-1]
            conn.execute(
                update(webhook_endpoints)
                .where(webhook_endpoints.c.id == endpoint.id)
                .values(results_cursor_unix=last["created_unix"], results_cursor_id=last["id"])
            )
            return added

        result: int = self._run("enqueue", run)
        return result

    def _act(
        self, conn: Any, endpoint: Endpoint, chosen: list[tuple[str, str, str, str | None]]
    ) -> int:
        """Apply the rule's action to each ``(event id, type, body, voxel id)``.

        The action is a pending delivery (once per event id) or a tag on the voxel (once per
        tag).
        """
        if not chosen:
            return 0
        now = time.time()
        if endpoint.action.startswith("tag:"):
            tag = endpoint.action[4:]
            rows = [
                {"voxel_id": v, "tag": tag, "rule_id": endpoint.id, "created_unix": now}
                for v in dict.fromkeys(v for *_, v in chosen if v)
            ]
            if not rows:
                return 0
            result = conn.execute(insert_ignore(self.engine, voxel_tags), rows)
            return max(int(result.rowcount or 0), 0)
        known = set(
            conn.scalars(
                select(webhook_deliveries.c.event_id).where(
                    and_(
                        webhook_deliveries.c.endpoint_id == endpoint.id,
                        webhook_deliveries.c.event_id.in_([c[0] for c in chosen]),
                    )
                )
            )
        )
        fresh = [
            {
                "id": str(uuid.uuid4()),
                "endpoint_id": endpoint.id,
                "event_id": event_id,
                "event_type": event_type,
                "body": body,
                "status": PENDING,
                "attempts": 0,
                "next_attempt_unix": now,
                "created_unix": now,
                "delivered_unix": None,
            }
            for event_id, event_type, body, _voxel in dict(
                (c[0], c) for c in chosen if c[0] not in known
            ).values()
        ]
        if fresh:
            conn.execute(insert(webhook_deliveries), fresh)
        return len(fresh)

    # ---- deliver ----------------------------------------------------------------------------
    def due(self, *, limit: int = 100) -> list[dict[str, Any]]:
        """Pending deliveries whose next attempt is due, the most overdue first (at most ``limit``).

        Each is the delivery row with its endpoint's ``url`` and ``secret``.
        """
        d = webhook_deliveries.c
        stmt = (
            select(webhook_deliveries, webhook_endpoints.c.url, webhook_endpoints.c.secret)
            .join(webhook_endpoints, webhook_endpoints.c.id == d.endpoint_id)
            .where(and_(d.status == PENDING, d.next_attempt_unix <= time.time()))
            .order_by(d.next_attempt_unix, d.created_unix)
            .limit(limit)
        )

        def run(conn: Any) -> list[dict[str, Any]]:
            return [dict(r) for r in conn.execute(stmt).mappings()]

        result: list[dict[str, Any]] = self._run("read", run)
        return result

    def attempt(self, delivery: dict[str, Any]) -> bool:
        """POST one delivery once; log the attempt; schedule a retry or settle it."""
        body = delivery["body"].encode("utf-8")
        timestamp = int(time.time())
        request = urllib.request.Request(
            delivery["url"],
            data=body,
            method="POST",
            headers={
                "Content-Type": CONTENT_TYPE,
                "webhook-id": delivery["event_id"],
                "webhook-timestamp": str(timestamp),
                "webhook-signature": sign(
                    delivery["secret"], delivery["event_id"], timestamp, body
                ),
                "User-Agent": "thunderline-webhooks",
            },
        )
        started = time.perf_counter()
        status: int | None = None
        error: str | None = None
        try:
            with urllib.request.urlopen(request, timeout=self.settings.webhook.timeout_s) as resp:
                status = int(resp.status)
        except urllib.error.HTTPError as exc:
            status, error = int(exc.code), f"HTTP {exc.code}"
        except (urllib.error.URLError, OSError, TimeoutError) as exc:
            error = f"{type(exc).__name__}: {getattr(exc, 'reason', exc)}"
        duration_ms = (time.perf_counter() - started) * 1000
        ok = status is not None and 200 <= status < 300
        attempts = int(delivery["attempts"]) + 1
        now = time.time()
        if ok:
            values: dict[str, Any] = {"status": DELIVERED, "delivered_unix": now}
        elif not (policy := self.settings.webhook.retry_policy).allows(attempts):
            values = {"status": FAILED}
        else:
            values = {"next_attempt_unix": now + policy.delay(attempts)}
        outcome = "delivered" if ok else ("failed" if values.get("status") == FAILED else "retry")
        metrics.WEBHOOK_ATTEMPTS.labels(outcome).inc()

        def run(conn: Any) -> None:
            conn.execute(
                insert(webhook_attempts).values(
                    id=str(uuid.uuid4()),
                    delivery_id=delivery["id"],
                    attempt=attempts,
                    at_unix=now,
                    status_code=status,
                    error=error,
                    duration_ms=duration_ms,
                )
            )
            conn.execute(
                update(webhook_deliveries)
                .where(webhook_deliveries.c.id == delivery["id"])
                .values(attempts=attempts, **values)
            )

        self._run("log", run)
        if not ok:
            _log.warning(
                "webhook %s attempt %d for %s: %s",
                delivery["url"],
                attempts,
                delivery["event_id"],
                error or status,
            )
        return ok

    def run_once(self) -> tuple[int, int]:
        """Enqueue what is new and attempt what is due; (enqueued, attempted)."""
        enqueued = self.enqueue()
        due = self.due()
        for delivery in due:
            self.attempt(delivery)
        return enqueued, len(due)

    async def dispatch(self, stop: asyncio.Event, *, interval_s: float | None = None) -> None:
        """Run :meth:`run_once` in a worker thread every ``interval_s`` until ``stop`` is set.

        ``interval_s`` defaults to ``TL_WEBHOOK_POLL_INTERVAL_S``; ``serve`` and ``watch`` run
        this beside their work. A round that fails (the database away) is logged and tried
        again next time.
        """
        interval = self.settings.webhook.poll_interval_s if interval_s is None else interval_s
        while not stop.is_set():
            try:
                await asyncio.to_thread(self.run_once)
            except BackendError as exc:
                _log.warning("webhook dispatch round failed (retried): %s", exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval)

    # ---- the delivery log -------------------------------------------------------------------
    def deliveries(
        self, *, endpoint_id: str | None = None, status: str | None = None, limit: int = 100
    ) -> list[dict[str, Any]]:
        """Deliveries (newest first) with their attempts."""
        d = webhook_deliveries.c
        stmt = (
            select(
                d.id,
                d.endpoint_id,
                d.event_id,
                d.event_type,
                d.status,
                d.attempts,
                d.next_attempt_unix,
                d.created_unix,
                d.delivered_unix,
            )
            .order_by(d.created_unix.desc(), d.id)
            .limit(limit)
        )
        if endpoint_id is not None:
            stmt = stmt.where(d.endpoint_id == endpoint_id)
        if status is not None:
            stmt = stmt.where(d.status == status)

        def run(conn: Any) -> list[dict[str, Any]]:
            items = [dict(r) for r in conn.execute(stmt).mappings()]
            if not items:
                return items
            a = webhook_attempts.c
            tried: dict[str, list[dict[str, Any]]] = {}
            for row in conn.execute(
                select(a.delivery_id, a.attempt, a.at_unix, a.status_code, a.error, a.duration_ms)
                .where(a.delivery_id.in_([i["id"] for i in items]))
                .order_by(a.delivery_id, a.attempt)
            ).mappings():
                tried.setdefault(row["delivery_id"], []).append(
                    {
                        k: row[k]
                        for k in ("attempt", "at_unix", "status_code", "error", "duration_ms")
                    }
                )
            for item in items:
                item["attempt_log"] = tried.get(item["id"], [])
            return items

        result: list[dict[str, Any]] = self._run("read", run)
        return result
