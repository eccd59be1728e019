"""The Grafana dashboards: committed JSON equals its generator's output, and follows the
Grafana 10 dashboard schema (the fields Grafana's importer requires, a Prometheus datasource
variable used by every panel, a valid grid). The live test runs every query."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

GRAFANA = Path(__file__).resolve().parents[3] / "deploy" / "grafana"
FILES = ("ml_pipeline_dashboard.json", "magika_dashboard.json", "service_dashboard.json")
PANEL_TYPES = {"row", "timeseries", "stat", "gauge", "heatmap", "table", "bargauge"}
UNITS = {"short", "s", "percentunit", "reqps", "ops"}


def generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("tl_dashboards", GRAFANA / "dashboards.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((GRAFANA / name).read_text(encoding="utf-8"))
    return data


@pytest.mark.parametrize("name", FILES)
def test_committed_json_is_the_generator_output(name: str) -> None:
    assert (GRAFANA / name).read_text(encoding="utf-8") == generator().render(name), (
        "run: python deploy/grafana/dashboards.py"
    )


@pytest.mark.parametrize("name", FILES)
def test_dashboard_schema(name: str) -> None:
    board = load(name)
    for key, kind in {
        "uid": str,
        "title": str,
        "schemaVersion": int,
        "version": int,
        "panels": list,
        "templating": dict,
        "time": dict,
        "annotations": dict,
        "editable": bool,
        "tags": list,
    }.items():
        assert isinstance(board.get(key), kind), key
    assert re.fullmatch(r"[A-Za-z0-9_-]{1,40}", board["uid"])
    assert 36 <= board["schemaVersion"] <= 39  # Grafana 10.0 .. 10.4
    assert "id" not in board  # an importable dashboard carries no database id
    [variable] = [v for v in board["templating"]["list"] if v["name"] == "datasource"]
    assert variable["type"] == "datasource" and variable["query"] == "prometheus"

    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))
    cells: set[tuple[int, int]] = set()
    for panel in board["panels"]:
        assert panel["type"] in PANEL_TYPES, panel["type"]
        assert panel["title"]
        grid = panel["gridPos"]
        assert set(grid) == {"h", "w", "x", "y"}
        assert grid["w"] >= 1 and grid["h"] >= 1 and grid["x"] + grid["w"] <= 24
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in cells, f"{panel['title']} overlaps another panel"
                cells.add((x, y))
        if panel["type"] == "row":
            assert panel["panels"] == [] and grid["w"] == 24 and grid["h"] == 1
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert panel["fieldConfig"]["defaults"]["unit"] in UNITS
        assert panel["targets"], panel["title"]
        refs = [t["refId"] for t in panel["targets"]]
        assert len(refs) == len(set(refs))
        for target in panel["targets"]:
            assert target["datasource"] == panel["datasource"]
            assert target["expr"].count("(") == target["expr"].count(")")
            assert "thunderline" in target["expr"] or "process_" in target["expr"]


def test_pipeline_dashboard_has_the_roadmap_views() -> None:
    board = load("ml_pipeline_dashboard.json")
    titles = {p["title"] for p in board["panels"]}
    rows = {p["title"] for p in board["panels"] if p["type"] == "row"}
    assert {
        "Ingest success rate by file type",
        "Classifier latency p50 / p95 / p99",
        "ONNX latency by model (p50 / p99)",
        "Voxels built (1h)",
        "Voxels built (24h)",
        "Voxels built (7d)",
        "DLQ rate by failure type",
    } <= titles
    assert {"NLP", "Queues and back-pressure"} <= rows
    exprs = " ".join(t["expr"] for p in board["panels"] for t in p.get("targets", []))
    for quantile in ("0.5", "0.95", "0.99"):
        assert f"histogram_quantile({quantile}, sum by (le) (rate(thunderline_magika" in exprs
    assert "by (le, model)" in exprs


@pytest.mark.parametrize("name", FILES)
def test_every_query_is_scoped_to_the_job_and_instance_variables(name: str) -> None:
    board = load(name)
    variables = {v["name"]: v for v in board["templating"]["list"]}
    for key in ("job", "instance"):
        variable = variables[key]
        assert variable["type"] == "query" and variable["includeAll"] and variable["multi"]
        assert variable["allValue"] == ".*" and variable["query"].startswith("label_values(")
    assert '{job=~"$job"}' in variables["instance"]["query"]
    selector = re.compile(r"\b((?:thunderline|process)_[a-z0-9_]+)(\{[^}]*\})?(?!\s*\()")
    for panel in board["panels"]:
        for target in panel.get("targets", []):
            for match in selector.finditer(target["expr"]):
                labels = match.group(2) or ""
                assert 'job=~"$job"' in labels and 'instance=~"$instance"' in labels, (
                    panel["title"],
                    target["expr"],
                )


def test_scoped_keeps_existing_matchers_and_leaves_functions_alone() -> None:
    scoped = generator().scoped
    assert scoped('rate(thunderline_x_total{stage="a"}[5m])') == (
        'rate(thunderline_x_total{job=~"$job", instance=~"$instance", stage="a"}[5m])'
    )
    assert scoped("max(thunderline:rule:5m)") == "max(thunderline:rule:5m)"
    assert scoped("sum(process_open_fds)") == (
        'sum(process_open_fds{job=~"$job", instance=~"$instance"})'
    )
