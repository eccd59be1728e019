"""Webhooks: terminal events matched by a trigger, POSTed as CloudEvents, signed, retried.

* **Triggers** -- ``ingested`` (a voxel was stored), ``failed`` (a DLQ record), ``label:<name>``
  (a voxel of that Magika label). They are matched against the **outcomes table**, where the
  collector records every terminal event of every way in (CLI, API, sync/watch, workers), so
  the dispatcher needs no hook in the pipeline and survives restarts: each endpoint keeps a
  cursor (the last outcome it considered) and a delivery row is written per (endpoint, event)
  under a unique key, before any attempt (at-least-once; a receiver deduplicates by the
  CloudEvent ``id``, which is the terminal event's own id).
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

import base64
import hashlib
import hmac
import json
import logging
import secrets
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, and_, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from thunderline.config import Settings, WebhookSettings
from thunderline.errors import BackendError, ConfigError
from thunderline.obs import metrics
from thunderline.voxel.db import Tables
from thunderline.voxel.tables import (
    outcomes,
    webhook_attempts,
    webhook_deliveries,
    webhook_endpoints,
)

_log = logging.getLogger("thunderline.webhooks")
CONTENT_TYPE = "application/cloudevents+json; charset=utf-8"
PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"


def backoff(attempt: int, first_s: float, max_s: float) -> float:
    """Delay before retry ``attempt`` (1-based): ``first_s * 2**(attempt-1)``, capped, less
    up to 20 % (:attr:`~thunderline.config.WebhookSettings.retry_policy`'s jitter)."""
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
    id: str
    url: str
    secret: str
    triggers: list[str]
    active: bool
    created_unix: float

    def to_json_dict(self, *, show_secret: bool = False) -> dict[str, Any]:
        out = dict(self.__dict__)
        if not show_secret:
            out["secret"] = "***"
        return out


def _check_triggers(triggers: Sequence[str]) -> list[str]:
    out = []
    for trigger in triggers:
        if trigger in ("ingested", "failed") or (trigger.startswith("label:") and len(trigger) > 6):
            out.append(trigger)
        else:
            raise ConfigError(f"unknown webhook trigger {trigger!r}: ingested, failed, label:NAME")
    if not out:
        raise ConfigError("a webhook needs at least one trigger")
    return out


def matches(triggers: Sequence[str], kind: str, label: str | None) -> bool:
    """Whether a terminal record (``voxel`` or ``dlq``, with its label) fires these triggers."""
    for trigger in triggers:
        if trigger == "ingested" and kind == "voxel":
            return True
        if trigger == "failed" and kind == "dlq":
            return True
        if trigger.startswith("label:") and kind == "voxel" and label == trigger[6:]:
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

    # ---- endpoints --------------------------------------------------------------------------
    def add(self, url: str, triggers: Sequence[str], secret: str | None = None) -> Endpoint:
        """A new endpoint; events from now on are considered (not the history)."""
        if not url.startswith(("http://", "https://")):
            raise ConfigError(f"webhook URL must be http(s)://: {url!r}")
        endpoint = Endpoint(
            id=str(uuid.uuid4()),
            url=url,
            secret=secret or secrets.token_urlsafe(32),
            triggers=_check_triggers(triggers),
            active=True,
            created_unix=time.time(),
        )
        row = {**endpoint.__dict__, "triggers": json.dumps(endpoint.triggers)}
        row.update(cursor_unix=endpoint.created_unix, cursor_id="")
        self._run("add", lambda conn: conn.execute(insert(webhook_endpoints).values(**row)))
        return endpoint

    def endpoints(self, *, active_only: bool = False) -> list[Endpoint]:
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
                )
                for r in conn.execute(stmt).mappings()
            ]

        result: list[Endpoint] = self._run("read", run)
        return result

    def set_active(self, endpoint_id: str, active: bool) -> bool:
        def run(conn: Any) -> bool:
            stmt = (
                update(webhook_endpoints)
                .where(webhook_endpoints.c.id == endpoint_id)
                .values(active=active)
            )
            return bool(conn.execute(stmt).rowcount)

        result: bool = self._run("update", run)
        return result

    # ---- enqueue: outcomes -> deliveries ---------------------------------------------------
    def enqueue(self, *, batch: int = 500) -> int:
        """Write a pending delivery for each new terminal record an active endpoint's triggers
        match; advance each endpoint's cursor in the same transaction. Returns how many."""
        added = 0
        for endpoint in self.endpoints(active_only=True):
            added += self._enqueue_one(endpoint, batch)
        return added

    def _enqueue_one(self, endpoint: Endpoint, batch: int) -> int:
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
            now = time.time()
            todo = []
            for row in rows:
                doc = json.loads(row.event)
                voxel = (doc.get("data") or {}).get("voxel") or {}
                label = voxel.get("label") if isinstance(voxel, dict) else None
                if matches(endpoint.triggers, row.kind, label):
                    todo.append(
                        {
                            "id": str(uuid.uuid4()),
                            "endpoint_id": endpoint.id,
                            "event_id": row.id,
                            "event_type": row.event_type,
                            "body": row.event,
                            "status": PENDING,
                            "attempts": 0,
                            "next_attempt_unix": now,
                            "created_unix": now,
                            "delivered_unix": None,
                        }
                    )
            known = set(
                conn.scalars(
                    select(webhook_deliveries.c.event_id).where(
                        and_(
                            webhook_deliveries.c.endpoint_id == endpoint.id,
                            webhook_deliveries.c.event_id.in_([t["event_id"] for t in todo]),
                        )
                    )
                )
            )
            fresh = [t for t in todo if t["event_id"] not in known]
            if fresh:
                conn.execute(insert(webhook_deliveries), fresh)
            last = rows[-1]
            conn.execute(
                update(webhook_endpoints)
                .where(webhook_endpoints.c.id == endpoint.id)
                .values(cursor_unix=last.created_unix, cursor_id=last.id)
            )
            return len(fresh)

        try:
            result: int = self._run("enqueue", run)
        except BackendError as exc:
            if isinstance(exc.__cause__, IntegrityError):  # a concurrent dispatcher won
                return 0
            raise
        return result

    # ---- deliver ----------------------------------------------------------------------------
    def due(self, *, limit: int = 100) -> list[dict[str, Any]]:
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
