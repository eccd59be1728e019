"""docs/OBSERVABILITY.md names every metric, label, dashboard panel, alert and receiver."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from prometheus_client import Counter, Gauge, Histogram

from thunderline.obs import metrics

REPO = Path(__file__).resolve().parents[3]
DOC = (REPO / "docs" / "OBSERVABILITY.md").read_text(encoding="utf-8")


def test_every_metric_and_label_is_documented() -> None:
    for name in dir(metrics):
        metric = getattr(metrics, name)
        if not isinstance(metric, Counter | Gauge | Histogram):
            continue
        full = metric._name + ("_total" if isinstance(metric, Counter) else "")
        assert f"`{full}`" in DOC, full
        assert f"`{name}`" in DOC, name
        for label in metric._labelnames:
            assert f"`{label}`" in DOC, label


def test_every_panel_alert_and_receiver_is_documented() -> None:
    for board in (REPO / "deploy" / "grafana").glob("*.json"):
        for panel in json.loads(board.read_text(encoding="utf-8"))["panels"]:
            title = panel["title"].replace(" (1h)", "").replace(" (24h)", "").replace(" (7d)", "")
            assert title in DOC, title
    rules = yaml.safe_load((REPO / "deploy/prometheus/alerts.yml").read_text(encoding="utf-8"))
    for group in rules["groups"]:
        for rule in group["rules"]:
            assert f"`{rule.get('alert') or rule.get('record')}`" in DOC
    routing = yaml.safe_load(
        (REPO / "deploy/alertmanager/alertmanager.yml").read_text(encoding="utf-8")
    )
    for receiver in routing["receivers"]:
        assert f"`{receiver['name']}`" in DOC
