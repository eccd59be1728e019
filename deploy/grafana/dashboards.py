"""Writes the Grafana dashboards of this folder (stdlib only): ``python deploy/grafana/dashboards.py``.

The JSON files are the artifact (import them in Grafana 10+: Dashboards > New > Import); this
script is their single source, so panels share one layout, one datasource variable and the
``job`` / ``instance`` variables: every query is scoped with ``{job=~"$job",
instance=~"$instance"}`` (:func:`scoped`), so one Grafana serves several deployments and one
worker or server can be looked at alone ("All" is ``.*``).
``tests/unit/obs/test_dashboards.py`` checks that the committed JSON equals this script's output
and that it follows the Grafana 10 dashboard schema; the live test queries every panel's
expression against a real Prometheus after a real run. Why not grafana-foundation-sdk: it would
add a dependency (epoch-pinned) for what is ~200 lines of plain data here, and the checks that
matter (schema, every query returns data) are ours either way.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SCHEMA_VERSION = 39  # Grafana 10.4; Grafana 10.0+ imports it (older dashboards are migrated up)
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
RATE = "$__rate_interval"
SCOPE = 'job=~"$job", instance=~"$instance"'
_METRIC = re.compile(r"\b((?:thunderline|process)_[a-z0-9_]+)(\{[^}]*\})?(?!\s*\()")


def scoped(expr: str) -> str:
    """``expr`` with every metric selector limited to the dashboard's job and instance."""

    def add(match: re.Match[str]) -> str:
        name, labels = match.group(1), match.group(2)
        inner = labels[1:-1].strip() if labels else ""
        return f"{name}{{{SCOPE}{', ' + inner if inner else ''}}}"

    return _METRIC.sub(add, expr)


def query_variable(name: str, label: str, query: str) -> dict[str, Any]:
    """A multi-value Prometheus label variable with "All" = ``.*``."""
    return {
        "name": name,
        "label": label,
        "type": "query",
        "datasource": DATASOURCE,
        "query": query,
        "definition": query,
        "current": {},
        "hide": 0,
        "includeAll": True,
        "allValue": ".*",
        "multi": True,
        "options": [],
        "refresh": 2,
        "regex": "",
        "skipUrlSync": False,
        "sort": 1,
    }


def hq(q: float, metric: str, by: str = "le") -> str:
    """histogram_quantile of a histogram's buckets over the rate interval."""
    return f"histogram_quantile({q}, sum by ({by}) (rate({metric}_bucket[{RATE}])))"


class Board:
    """Lays panels out left to right, 24 columns wide, rows stacked downwards."""

    def __init__(
        self, uid: str, title: str, description: str, tags: list[str], *, anchor: str
    ) -> None:
        """``anchor``: a metric every scraped process of this board exports (the variables'
        ``label_values`` source)."""
        self.uid, self.title, self.description, self.tags = uid, title, description, tags
        self.anchor = anchor
        self.panels: list[dict[str, Any]] = []
        self._x = 0
        self._y = 0
        self._row_h = 0

    def _next_id(self) -> int:
        return len(self.panels) + 1

    def row(self, title: str) -> None:
        if self._x:
            self._y += self._row_h
        self.panels.append(
            {
                "id": self._next_id(),
                "type": "row",
                "title": title,
                "collapsed": False,
                "gridPos": {"h": 1, "w": 24, "x": 0, "y": self._y},
                "panels": [],
            }
        )
        self._x, self._y, self._row_h = 0, self._y + 1, 0

    def panel(
        self,
        title: str,
        targets: list[tuple[str, str]],
        *,
        kind: str = "timeseries",
        unit: str = "short",
        width: int = 12,
        height: int = 8,
        description: str = "",
        thresholds: list[tuple[float | None, str]] | None = None,
        mappings: list[dict[str, Any]] | None = None,
    ) -> None:
        if self._x + width > 24:
            self._x, self._y = 0, self._y + self._row_h
            self._row_h = 0
        steps = [
            {"color": color, "value": value}
            for value, color in (thresholds or [(None, "green"), (80, "red")])
        ]
        panel: dict[str, Any] = {
            "id": self._next_id(),
            "type": kind,
            "title": title,
            "description": description,
            "datasource": DATASOURCE,
            "gridPos": {"h": height, "w": width, "x": self._x, "y": self._y},
            "targets": [
                {
                    "refId": chr(ord("A") + i),
                    "datasource": DATASOURCE,
                    "expr": scoped(expr),
                    "legendFormat": legend,
                    "range": kind not in {"stat", "gauge"},
                    "instant": kind in {"stat", "gauge"},
                    **({"format": "heatmap"} if kind == "heatmap" else {}),
                }
                for i, (expr, legend) in enumerate(targets)
            ],
            "fieldConfig": {
                "defaults": {
                    "unit": unit,
                    "thresholds": {"mode": "absolute", "steps": steps},
                    "mappings": mappings or [],
                },
                "overrides": [],
            },
            "options": _options(kind),
        }
        self.panels.append(panel)
        self._x += width
        self._row_h = max(self._row_h, height)

    def to_json(self) -> dict[str, Any]:
        return {
            "uid": self.uid,
            "title": self.title,
            "description": self.description,
            "tags": self.tags,
            "editable": True,
            "graphTooltip": 1,
            "schemaVersion": SCHEMA_VERSION,
            "version": 1,
            "time": {"from": "now-6h", "to": "now"},
            "timepicker": {},
            "timezone": "browser",
            "refresh": "30s",
            "fiscalYearStartMonth": 0,
            "liveNow": False,
            "weekStart": "",
            "links": [],
            "annotations": {
                "list": [
                    {
                        "builtIn": 1,
                        "datasource": {"type": "grafana", "uid": "-- Grafana --"},
                        "enable": True,
                        "hide": True,
                        "iconColor": "rgba(0, 211, 255, 1)",
                        "name": "Annotations & Alerts",
                        "type": "dashboard",
                    }
                ]
            },
            "templating": {
                "list": [
                    {
                        "name": "datasource",
                        "label": "Data source",
                        "type": "datasource",
                        "query": "prometheus",
                        "current": {},
                        "hide": 0,
                        "includeAll": False,
                        "multi": False,
                        "options": [],
                        "refresh": 1,
                        "regex": "",
                        "skipUrlSync": False,
                    },
                    query_variable("job", "Job", f"label_values({self.anchor}, job)"),
                    query_variable(
                        "instance",
                        "Instance",
                        f'label_values({self.anchor}{{job=~"$job"}}, instance)',
                    ),
                ]
            },
            "panels": self.panels,
        }


def _options(kind: str) -> dict[str, Any]:
    if kind == "timeseries":
        return {
            "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
            "tooltip": {"mode": "multi", "sort": "desc"},
        }
    if kind == "stat":
        return {
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "colorMode": "value",
            "graphMode": "none",
            "justifyMode": "auto",
            "orientation": "auto",
            "textMode": "auto",
        }
    if kind == "heatmap":
        return {
            "calculate": False,
            "yAxis": {"unit": "s"},
            "cellGap": 1,
            "color": {"mode": "scheme", "scheme": "Oranges", "steps": 64},
        }
    return {}


BREAKER_MAPPINGS = [
    {
        "type": "value",
        "options": {
            "0": {"text": "closed", "color": "green", "index": 0},
            "1": {"text": "half-open", "color": "orange", "index": 1},
            "2": {"text": "open", "color": "red", "index": 2},
        },
    }
]


def ml_pipeline() -> Board:
    b = Board(
        "thunderline-ml-pipeline",
        "Thunderline / ML pipeline",
        "Ingest success, latency of every step, voxel throughput, DLQ, NLP and back-pressure.",
        ["thunderline", "ml"],
        anchor="thunderline_events_published_total",
    )
    magika = "thunderline_magika_classify_duration_seconds"
    onnx = "thunderline_onnx_infer_duration_seconds"
    spacy = "thunderline_spacy_process_duration_seconds"
    voxel = "thunderline_voxel_build_duration_seconds"
    done = "thunderline_ingest_completed_total"

    b.row("Ingest")
    b.panel(
        "Ingest success rate by file type",
        [
            (
                f'sum by (group) (rate({done}{{outcome="ok"}}[{RATE}]))'
                f" / sum by (group) (rate({done}[{RATE}]))",
                "{{group}}",
            )
        ],
        unit="percentunit",
        description="Share of the artifacts of each Magika group that ended as a voxel (not in the DLQ).",
    )
    b.panel(
        "Artifacts finished by outcome",
        [(f"sum by (outcome) (rate({done}[{RATE}]))", "{{outcome}}")],
        unit="reqps",
    )
    b.panel(
        "Events published by type",
        [(f"sum by (type) (rate(thunderline_events_published_total[{RATE}]))", "{{type}}")],
        unit="reqps",
        width=24,
    )

    b.row("Latency")
    b.panel(
        "Classifier latency p50 / p95 / p99",
        [(hq(q, magika), f"p{round(q * 100)}") for q in (0.5, 0.95, 0.99)],
        unit="s",
        description="Magika, per file (batch time / batch size).",
    )
    b.panel(
        "ONNX latency by model (p50 / p99)",
        [
            (hq(0.5, onnx, "le, model"), "{{model}} p50"),
            (hq(0.99, onnx, "le, model"), "{{model}} p99"),
        ],
        unit="s",
        description="ONNX Runtime run time per call. Alert budget: p99 0.1 s.",
        thresholds=[(None, "green"), (0.1, "red")],
    )
    b.panel(
        "Stage batch duration p95 by stage",
        [(hq(0.95, "thunderline_stage_batch_duration_seconds", "le, stage"), "{{stage}}")],
        unit="s",
        width=24,
    )

    b.row("Voxels")
    for window in ("1h", "24h", "7d"):
        b.panel(
            f"Voxels built ({window})",
            [(f"sum(increase({voxel}_count[{window}]))", "voxels")],
            kind="stat",
            unit="short",
            width=4,
            height=6,
            thresholds=[(None, "blue")],
        )
    b.panel(
        "Voxel throughput",
        [(f"sum(rate({voxel}_count[{RATE}]))", "voxels/s")],
        unit="ops",
        width=12,
        height=6,
    )
    b.panel(
        "Voxel build latency p50 / p99",
        [(hq(q, voxel), f"p{round(q * 100)}") for q in (0.5, 0.99)],
        unit="s",
        width=24,
        height=6,
    )

    b.row("DLQ")
    b.panel(
        "DLQ rate by failure type",
        [
            (
                f"sum by (stage, reason) (rate(thunderline_dlq_total[{RATE}]))",
                "{{stage}} / {{reason}}",
            )
        ],
        unit="reqps",
    )
    b.panel(
        "DLQ share of finished artifacts",
        [
            (
                f"sum(rate(thunderline_dlq_total[{RATE}])) / sum(rate({done}[{RATE}]))",
                "dlq share",
            )
        ],
        unit="percentunit",
        description="The alert ThunderlineDLQRateHigh fires above 2% for 5 minutes.",
        thresholds=[(None, "green"), (0.02, "red")],
    )
    b.panel(
        "Stage errors by reason (including retried attempts)",
        [
            (
                f"sum by (stage, reason) (rate(thunderline_stage_errors_total[{RATE}]))",
                "{{stage}} / {{reason}}",
            )
        ],
        unit="reqps",
        width=24,
    )

    b.row("NLP")
    b.panel(
        "spaCy latency p50 / p95 / p99",
        [(hq(q, spacy), f"p{round(q * 100)}") for q in (0.5, 0.95, 0.99)],
        unit="s",
        description="Per document, as seen by the pool.",
    )
    b.panel(
        "spaCy worker restarts by cause",
        [
            (
                f"sum by (cause) (increase(thunderline_spacy_worker_restarts_total[{RATE}]))",
                "{{cause}}",
            )
        ],
        unit="short",
    )
    b.panel(
        "spaCy workers alive",
        [("sum(thunderline_spacy_workers_alive)", "workers")],
        kind="stat",
        width=6,
        height=6,
        thresholds=[(None, "red"), (1, "green")],
    )
    b.panel(
        "Circuit breaker",
        [("max(thunderline_spacy_circuit_state)", "state")],
        kind="stat",
        width=6,
        height=6,
        mappings=BREAKER_MAPPINGS,
        thresholds=[(None, "green"), (1, "orange"), (2, "red")],
    )
    b.panel(
        "Model health",
        [("min by (model) (thunderline_onnx_model_healthy)", "{{model}}")],
        kind="stat",
        width=12,
        height=6,
        mappings=[
            {
                "type": "value",
                "options": {
                    "0": {"text": "unhealthy", "color": "red", "index": 0},
                    "1": {"text": "healthy", "color": "green", "index": 1},
                },
            }
        ],
        thresholds=[(None, "red"), (1, "green")],
    )

    b.row("Queues and back-pressure")
    b.panel(
        "Queue depth by topic",
        [("sum by (topic) (thunderline_bus_queue_depth)", "{{topic}}")],
        unit="short",
    )
    b.panel(
        "In flight by stage",
        [("sum by (stage) (thunderline_stage_in_flight)", "{{stage}}")],
        unit="short",
    )
    b.panel(
        "Messages finished by stage and outcome",
        [
            (
                f"sum by (stage, outcome) (rate(thunderline_stage_messages_total[{RATE}]))",
                "{{stage}} {{outcome}}",
            )
        ],
        unit="reqps",
    )
    b.panel(
        "Retries by stage",
        [(f"sum by (stage) (rate(thunderline_stage_retries_total[{RATE}]))", "{{stage}}")],
        unit="reqps",
    )
    return b


def magika() -> Board:
    b = Board(
        "thunderline-magika",
        "Thunderline / Magika",
        "File classification: throughput by group, per-file latency against its baseline, errors.",
        ["thunderline", "magika"],
        anchor="thunderline_magika_classified_total",
    )
    m = "thunderline_magika_classify_duration_seconds"
    b.row("Classification")
    b.panel(
        "Files classified by group",
        [(f"sum by (group) (rate(thunderline_magika_classified_total[{RATE}]))", "{{group}}")],
        unit="reqps",
    )
    b.panel(
        "Classify errors by reason",
        [
            (
                f"sum by (reason) (rate(thunderline_magika_classify_errors_total[{RATE}]))",
                "{{reason}}",
            )
        ],
        unit="reqps",
    )
    b.row("Latency")
    b.panel(
        "Per-file latency p50 / p95 / p99",
        [(hq(q, m), f"p{round(q * 100)}") for q in (0.5, 0.95, 0.99)],
        unit="s",
    )
    b.panel(
        "p99 against twice its 1 h mean",
        [
            ("thunderline:magika_classify_p99:5m", "p99 (5 m)"),
            ("2 * avg_over_time(thunderline:magika_classify_p99:5m[1h])", "2x 1 h mean"),
        ],
        unit="s",
        description="Recording rule from deploy/prometheus/alerts.yml; the warning alert "
        "compares p99 with twice its mean over the hour that ended 10 minutes earlier.",
    )
    b.panel(
        "Latency distribution",
        [(f"sum by (le) (increase({m}_bucket[{RATE}]))", "{{le}}")],
        kind="heatmap",
        unit="s",
    )
    b.panel(
        "Classify batch duration p95",
        [
            (
                hq(0.95, "thunderline_stage_batch_duration_seconds", "le").replace(
                    "_bucket[", '_bucket{stage="classify"}['
                ),
                "batch p95",
            )
        ],
        unit="s",
    )
    return b


def service() -> Board:
    b = Board(
        "thunderline-service",
        "Thunderline / Service",
        "thunderline serve: HTTP requests by route and status, latency, open dead letters, "
        "and the serving process (CPU, memory, file descriptors).",
        ["thunderline", "http"],
        anchor="thunderline_http_requests_total",
    )
    http = "thunderline_http_requests_total"
    duration = "thunderline_http_request_duration_seconds"
    not_sse = 'route!="/v1/events"'  # the live stream lasts as long as the client stays
    b.row("HTTP")
    b.panel(
        "Requests by route",
        [(f"sum by (route) (rate({http}[{RATE}]))", "{{route}}")],
        unit="reqps",
    )
    b.panel(
        "Requests by status",
        [(f"sum by (status) (rate({http}[{RATE}]))", "{{status}}")],
        unit="reqps",
    )
    b.panel(
        "Latency p50 / p95 / p99 (all routes but the event stream)",
        [
            (
                f"histogram_quantile({q}, sum by (le) (rate({duration}_bucket{{{not_sse}}}[{RATE}])))",
                f"p{round(q * 100)}",
            )
            for q in (0.5, 0.95, 0.99)
        ],
        unit="s",
    )
    b.panel(
        "Latency p95 by route",
        [
            (
                f"histogram_quantile(0.95, sum by (le, route) "
                f"(rate({duration}_bucket{{{not_sse}}}[{RATE}])))",
                "{{route}}",
            )
        ],
        unit="s",
    )
    b.panel(
        "5xx answers per second",
        [
            (
                f'sum(rate({http}{{status=~"5.."}}[{RATE}])) or vector(0)',
                "5xx",
            ),
        ],
        unit="short",
        description="5xx answers per second (0 when there were none).",
        thresholds=[(None, "green"), (0.01, "red")],
    )
    b.panel(
        "Requests in progress",
        [("sum by (method) (thunderline_http_requests_in_progress)", "{{method}}")],
        unit="short",
    )
    b.row("Dead letters and process")
    b.panel(
        "Open DLQ records",
        [("max(thunderline_dlq_open)", "open")],
        kind="stat",
        width=6,
        height=6,
        thresholds=[(None, "green"), (1, "orange")],
    )
    b.panel(
        "Resident memory",
        [("sum by (instance) (process_resident_memory_bytes)", "{{instance}}")],
        unit="short",
        width=6,
        height=6,
    )
    b.panel(
        "CPU (cores)",
        [(f"sum by (instance) (rate(process_cpu_seconds_total[{RATE}]))", "{{instance}}")],
        unit="short",
        width=6,
        height=6,
    )
    b.panel(
        "Open file descriptors",
        [("sum by (instance) (process_open_fds)", "{{instance}}")],
        unit="short",
        width=6,
        height=6,
    )
    return b


BOARDS = {
    "ml_pipeline_dashboard.json": ml_pipeline,
    "magika_dashboard.json": magika,
    "service_dashboard.json": service,
}


def render(name: str) -> str:
    return json.dumps(BOARDS[name]().to_json(), indent=2, ensure_ascii=False) + "\n"


def main() -> int:
    for name in BOARDS:
        (HERE / name).write_text(render(name), encoding="utf-8")
        print(f"wrote {HERE / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
