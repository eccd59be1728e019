"""Live proof: a real Prometheus scrapes our /metrics during a real run with ~10% bad inputs,
evaluates (a short-window copy of) our alert rules and sends to a real Alertmanager, whose Slack
and PagerDuty receivers point at an HTTP listener of this test.

Asserts that every dashboard panel's query returns data from Prometheus' HTTP API, that the
DLQ alert reaches the Slack listener with its labels (and not PagerDuty), and that a warning is
inhibited while a critical alert fires for the same stage. Both servers bind loopback on free
ports, keep their data in the test's temp dir and are stopped at the end."""

from __future__ import annotations

import asyncio
import json
import math
import re
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.integration.obs._pipeline import DEPLOY, build_inputs, find_tool, run_settings

from thunderline.config import Settings
from thunderline.obs import metrics, start_metrics_server
from thunderline.runtime import Runtime

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def get_json(url: str, timeout: float = 10) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.loads(response.read())


def wait_ready(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"{proc.args[0]} exited: {log.read_text(errors='replace')[-2000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError):
            pass
        time.sleep(0.2)
    pytest.fail(f"{url} not ready: {log.read_text(errors='replace')[-2000:]}")


@dataclass
class Listener:
    """The test's webhook endpoint: every POST body, by path."""

    server: ThreadingHTTPServer
    received: list[tuple[str, Any]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}"

    def bodies(self, path: str) -> list[Any]:
        return [body for p, body in list(self.received) if p == path]


@pytest.fixture
def listener() -> Iterator[Listener]:
    received: list[tuple[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            received.append((self.path, json.loads(raw or b"null")))
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(b'{"ok": true}')

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Listener(server, received)
    finally:
        server.shutdown()
        server.server_close()


def short_rules(text: str) -> str:
    """The committed rules with test-sized windows (the committed file keeps 5 m / 1 h)."""
    text = text.replace("[1h] offset 10m", "[1m] offset 30s")
    text = text.replace("offset 5m", "offset 10s")
    text = re.sub(r"\[5m\]", "[15s]", text)
    return re.sub(r"for: \d+m", "for: 2s", text)


def am_test_config(listener: Listener, folder: Path) -> dict[str, Any]:
    """The committed Alertmanager config with the receivers pointed at the listener."""
    config: dict[str, Any] = yaml.safe_load(
        (DEPLOY / "alertmanager" / "alertmanager.yml").read_text(encoding="utf-8")
    )
    config["route"].update(group_wait="1s", group_interval="1s", repeat_interval="1h")
    (folder / "slack_webhook_url").write_text(f"{listener.url}/slack\n", encoding="utf-8")
    (folder / "pagerduty_routing_key").write_text("test-routing-key\n", encoding="utf-8")
    for receiver in config["receivers"]:
        for slack in receiver.get("slack_configs", []):
            slack["api_url_file"] = str(folder / "slack_webhook_url")
        for pager in receiver.get("pagerduty_configs", []):
            pager["routing_key_file"] = str(folder / "pagerduty_routing_key")
            pager["url"] = f"{listener.url}/pagerduty"
    return config


@dataclass
class Servers:
    prometheus: str
    alertmanager: str


@pytest.fixture
def servers(tmp_path: Path, listener: Listener) -> Iterator[tuple[Servers, int]]:
    prometheus_bin = find_tool("prometheus")
    alertmanager_bin = find_tool("prometheus-alertmanager")
    promtool = find_tool("promtool")
    metrics = start_metrics_server(0)
    work = tmp_path / "servers"
    work.mkdir()
    am_port, prom_port = free_port(), free_port()

    rules = work / "rules.yml"
    rules.write_text(
        short_rules((DEPLOY / "prometheus" / "alerts.yml").read_text(encoding="utf-8")),
        encoding="utf-8",
    )
    check = subprocess.run([promtool, "check", "rules", str(rules)], capture_output=True)
    assert check.returncode == 0, check.stdout + check.stderr
    (work / "prometheus.yml").write_text(
        yaml.safe_dump(
            {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "rule_files": [str(rules)],
                "alerting": {
                    "alertmanagers": [{"static_configs": [{"targets": [f"127.0.0.1:{am_port}"]}]}]
                },
                "scrape_configs": [
                    {
                        "job_name": "thunderline",
                        "static_configs": [{"targets": [f"127.0.0.1:{metrics.port}"]}],
                    }
                ],
            }
        ),
        encoding="utf-8",
    )
    (work / "alertmanager.yml").write_text(
        yaml.safe_dump(am_test_config(listener, work)), encoding="utf-8"
    )
    am_log, prom_log = work / "alertmanager.log", work / "prometheus.log"
    procs: list[subprocess.Popen[bytes]] = []
    try:
        with am_log.open("wb") as out:
            procs.append(
                subprocess.Popen(
                    [
                        alertmanager_bin,
                        f"--config.file={work / 'alertmanager.yml'}",
                        f"--storage.path={work / 'am-data'}",
                        f"--web.listen-address=127.0.0.1:{am_port}",
                        "--cluster.listen-address=",
                    ],
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
            )
        with prom_log.open("wb") as out:
            procs.append(
                subprocess.Popen(
                    [
                        prometheus_bin,
                        f"--config.file={work / 'prometheus.yml'}",
                        f"--storage.tsdb.path={work / 'prom-data'}",
                        f"--web.listen-address=127.0.0.1:{prom_port}",
                        "--web.console.templates=/dev/null",
                        "--web.console.libraries=/dev/null",
                    ],
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
            )
        am_url, prom_url = f"http://127.0.0.1:{am_port}", f"http://127.0.0.1:{prom_port}"
        wait_ready(f"{am_url}/-/ready", procs[0], am_log)
        wait_ready(f"{prom_url}/-/ready", procs[1], prom_log)
        yield Servers(prom_url, am_url), metrics.port
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        metrics.close()


def panel_queries() -> list[tuple[str, str, str]]:
    out = []
    for name in ("ml_pipeline_dashboard.json", "magika_dashboard.json"):
        board = json.loads((DEPLOY / "grafana" / name).read_text(encoding="utf-8"))
        for panel in board["panels"]:
            for target in panel.get("targets", []):
                out.append((name, panel["title"], target["expr"]))
    return out


def query_range(prom: str, expr: str, start: float, end: float) -> list[dict[str, Any]]:
    params = urllib.parse.urlencode({"query": expr, "start": start, "end": end, "step": "1"})
    answer = get_json(f"{prom}/api/v1/query_range?{params}")
    assert answer["status"] == "success", answer
    result: list[dict[str, Any]] = answer["data"]["result"]
    return result


def finite(result: list[dict[str, Any]]) -> bool:
    return any(math.isfinite(float(value)) for series in result for _, value in series["values"])


def wait_for(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = predicate()
        if found:
            return found
        time.sleep(0.5)
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")


def dlq_alert_diagnosis(
    urls: Servers, listener: Listener, work: Path, start: float, end: float
) -> str:
    """What Prometheus, Alertmanager and the listener saw of the DLQ alert over the run."""
    rules = yaml.safe_load((work / "rules.yml").read_text(encoding="utf-8"))
    [expr] = [
        rule["expr"]
        for group in rules["groups"]
        for rule in group["rules"]
        if rule.get("alert") == "ThunderlineDLQRateHigh"
    ]
    lines = [f"alert expression: {' '.join(expr.split())}"]
    for query in (
        expr,
        'ALERTS{alertname="ThunderlineDLQRateHigh"}',
        "thunderline_dlq_total",
        "sum(thunderline_ingest_completed_total)",
        "up",
        "scrape_duration_seconds",
    ):
        try:
            series = query_range(urls.prometheus, query, start, end)
        except Exception as exc:  # a diagnosis must not hide the failure
            lines.append(f"{query}: query failed: {exc}")
            continue
        for one in series:
            points = " ".join(f"{t - start:.0f}s={v}" for t, v in one["values"])
            lines.append(f"{query} {one['metric']}: {points}")
    try:
        lines.append(f"alertmanager alerts: {get_json(f'{urls.alertmanager}/api/v2/alerts')}")
    except Exception as exc:
        lines.append(f"alertmanager alerts: query failed: {exc}")
    lines.append(f"slack bodies: {listener.bodies('/slack')}")
    for log in ("prometheus.log", "alertmanager.log"):
        text = (work / log).read_text(encoding="utf-8", errors="replace")
        lines.append(f"--- {log} (last 3000 characters)\n{text[-3000:]}")
    return "\n".join(lines)


def test_live_prometheus_and_alertmanager(
    servers: tuple[Servers, int],
    listener: Listener,
    peer_data: Path,
    tmp_path: Path,
    make_settings: Callable[..., Settings],
) -> None:
    urls, metrics_port = servers
    # This process's registry still holds what earlier tests' brokers and models reported
    # (queues with messages and no consumer, unhealthy models). Those fire the critical
    # ThunderlineStageUnserved for `classify`, which by design inhibits the classify DLQ
    # warning this test waits for; the run reports its own values from here on.
    for stale in (
        metrics.BUS_QUEUE_MESSAGES,
        metrics.BUS_QUEUE_CONSUMERS,
        metrics.ONNX_MODEL_HEALTHY,
    ):
        stale.clear()
    settings = run_settings(make_settings)
    inputs = build_inputs(peer_data, tmp_path / "in", copies=3, bad_every=9)
    bad_share = len(inputs.bad) / (len(inputs.good) + len(inputs.bad))
    assert 0.08 <= bad_share <= 0.12  # ~10% of the inputs really fail

    # Prometheus is scraping us
    wait_for(
        lambda: any(
            t["health"] == "up" and t["scrapeUrl"].endswith(f":{metrics_port}/metrics")
            for t in get_json(f"{urls.prometheus}/api/v1/targets")["data"]["activeTargets"]
        ),
        30,
        "the first scrape",
    )

    async def run() -> None:
        waves = 6
        good, bad = inputs.good, inputs.bad
        async with Runtime(settings) as runtime:
            for wave in range(waves):
                batch = good[wave::waves] + bad[wave::waves]
                await runtime.submit_files(batch)
                await runtime.wait_idle(120)
                await asyncio.sleep(1.5)

    start = time.time()
    asyncio.run(run())
    time.sleep(3)  # a few scrapes after the last artifact
    end = time.time()

    # every dashboard panel's query returns data (finite values) over the run
    empty = [
        f"{board} / {title}: {expr}"
        for board, title, expr in panel_queries()
        if not finite(
            query_range(
                urls.prometheus,
                expr.replace("$__rate_interval", "10s")
                .replace("$job", "thunderline")  # the dashboards' variables, as Grafana
                .replace("$instance", ".*"),  # fills them ("All" is .*)
                start - 5,
                end,
            )
        )
    ]
    assert empty == [], "panels without data:\n" + "\n".join(empty)

    # the DLQ alert reaches Slack (warning), with its labels, and not PagerDuty
    def dlq_on_slack() -> list[dict[str, Any]]:
        return [
            a
            for body in listener.bodies("/slack")
            for a in body.get("attachments", [])
            if "ThunderlineDLQRateHigh" in a.get("title", "")
        ]

    try:
        [first, *_] = wait_for(dlq_on_slack, 90, "the DLQ alert on the Slack listener")
    except pytest.fail.Exception as missing:  # say why, so a rare miss can be root-caused
        why = dlq_alert_diagnosis(urls, listener, tmp_path / "servers", start - 5, time.time())
        raise AssertionError(f"{missing}\n{why}") from None
    fields = {f["title"]: f["value"] for f in first["fields"]}
    assert fields == {
        "alertname": "ThunderlineDLQRateHigh",
        "severity": "warning",
        "stage": "classify",
    }
    assert first["title"] == "[FIRING] ThunderlineDLQRateHigh (classify)"
    assert "Stage classify dead-letters" in first["text"]
    assert not [
        b for b in listener.bodies("/pagerduty") if "ThunderlineDLQRateHigh" in json.dumps(b)
    ]

    # inhibition and the critical route, through the live Alertmanager's API
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    alerts = [
        {"labels": {"alertname": name, "severity": severity, "stage": "live-test"}, "startsAt": now}
        for name, severity in (("LiveCritical", "critical"), ("LiveWarning", "warning"))
    ]
    request = urllib.request.Request(
        f"{urls.alertmanager}/api/v2/alerts",
        data=json.dumps(alerts).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200

    def states() -> dict[str, dict[str, Any]] | None:
        query = urllib.parse.urlencode({"filter": 'stage="live-test"'})
        found = {
            a["labels"]["alertname"]: a["status"]
            for a in get_json(f"{urls.alertmanager}/api/v2/alerts?{query}")
        }
        return found if found.get("LiveWarning", {}).get("inhibitedBy") else None

    status = wait_for(states, 30, "the warning to be inhibited")
    assert status["LiveWarning"]["state"] == "suppressed"
    assert status["LiveCritical"]["state"] == "active"
    pages = wait_for(
        lambda: [b for b in listener.bodies("/pagerduty") if "LiveCritical" in json.dumps(b)],
        30,
        "the critical alert on the PagerDuty listener",
    )
    assert pages[0]["routing_key"] == "test-routing-key"
    assert not [b for b in listener.bodies("/slack") if "LiveWarning" in json.dumps(b)]
