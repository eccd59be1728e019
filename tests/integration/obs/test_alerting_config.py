"""Alert rules and routing, checked by the real tools: `promtool check/test rules` on
deploy/prometheus, `amtool check-config` and `amtool config routes test` on deploy/alertmanager."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from tests.integration.obs._pipeline import DEPLOY, find_tool

RULES = DEPLOY / "prometheus" / "alerts.yml"
RULE_TESTS = DEPLOY / "prometheus" / "alerts.test.yml"
AM_CONFIG = DEPLOY / "alertmanager" / "alertmanager.yml"
RECEIVER_FOR = {"warning": "slack-warnings", "critical": "pagerduty-critical"}


def _run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=60)


def alerts() -> list[dict[str, object]]:
    groups = yaml.safe_load(RULES.read_text(encoding="utf-8"))["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def test_rules_are_valid() -> None:
    result = _run(find_tool("promtool"), "check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr


def test_rule_unit_tests_pass() -> None:
    result = _run(find_tool("promtool"), "test", "rules", str(RULE_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_alert_has_a_firing_and_a_resolving_test() -> None:
    tests = yaml.safe_load(RULE_TESTS.read_text(encoding="utf-8"))["tests"]
    for rule in alerts():
        checks = [
            check
            for test in tests
            for check in test.get("alert_rule_test", [])
            if check["alertname"] == rule["alert"]
        ]
        fires = [c for c in checks if c.get("exp_alerts")]
        quiet_after = [
            c
            for c in checks
            if not c.get("exp_alerts") and any(_minutes(c) > _minutes(f) for f in fires)
        ]
        assert fires, f"{rule['alert']}: no test shows it firing"
        assert quiet_after, f"{rule['alert']}: no test shows it resolving after the fault"


def _minutes(check: dict[str, object]) -> int:
    match = re.fullmatch(r"(\d+)m", str(check["eval_time"]))
    assert match, check["eval_time"]
    return int(match.group(1))


def test_a_wrong_expectation_fails(tmp_path: Path) -> None:
    """The unit tests can fail: flip one expectation and promtool exits 1."""
    shutil.copy(RULES, tmp_path / "alerts.yml")
    broken = RULE_TESTS.read_text(encoding="utf-8").replace(
        "dead-letters 5% of", "dead-letters 6% of"
    )
    (tmp_path / "alerts.test.yml").write_text(broken, encoding="utf-8")
    result = _run(find_tool("promtool"), "test", "rules", str(tmp_path / "alerts.test.yml"))
    assert result.returncode == 1
    assert "FAILED" in result.stdout + result.stderr


def test_every_alert_carries_severity_and_stage() -> None:
    for rule in alerts():
        labels = rule.get("labels", {})
        assert isinstance(labels, dict)
        assert labels.get("severity") in RECEIVER_FOR, rule["alert"]
        # stage comes from the rule's labels or from the expression's `by (stage)`
        assert "stage" in labels or "by (stage)" in str(rule["expr"]), rule["alert"]
        annotations = rule.get("annotations", {})
        assert isinstance(annotations, dict)
        assert annotations.get("summary") and annotations.get("description"), rule["alert"]


def test_alertmanager_config_is_valid() -> None:
    result = _run(find_tool("amtool"), "check-config", str(AM_CONFIG))
    assert result.returncode == 0, result.stdout + result.stderr


def _route(*labels: str, expect: str) -> subprocess.CompletedProcess[str]:
    return _run(
        find_tool("amtool"),
        "config",
        "routes",
        "test",
        f"--config.file={AM_CONFIG}",
        f"--verify.receivers={expect}",
        *labels,
    )


@pytest.mark.parametrize("rule", alerts(), ids=lambda r: str(r["alert"]))
def test_each_alert_routes_to_its_receiver(rule: dict[str, object]) -> None:
    labels = rule["labels"]
    assert isinstance(labels, dict)
    expect = RECEIVER_FOR[labels["severity"]]
    stage = labels.get("stage", "package")
    result = _route(
        f"alertname={rule['alert']}",
        f"severity={labels['severity']}",
        f"stage={stage}",
        expect=expect,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == expect


def test_routing_defaults_and_mismatches() -> None:
    # no severity: still reaches a human (Slack)
    assert _route("alertname=Other", expect="slack-warnings").returncode == 0
    # a wrong expectation exits 1 (the route tests can fail)
    wrong = _route("alertname=X", "severity=critical", "stage=nlp", expect="slack-warnings")
    assert wrong.returncode == 1


def test_alertmanager_config_holds_no_secret() -> None:
    config = yaml.safe_load(AM_CONFIG.read_text(encoding="utf-8"))
    assert config["route"]["group_by"] == ["alertname", "stage"]
    [inhibit] = config["inhibit_rules"]
    assert inhibit["source_matchers"] == ['severity="critical"']
    assert inhibit["target_matchers"] == ['severity="warning"']
    assert inhibit["equal"] == ["stage"]
    for receiver in config["receivers"]:
        for kind, entries in receiver.items():
            if kind == "name":
                continue
            for entry in entries:
                secret_keys = {"api_url", "routing_key", "service_key"} & set(entry)
                assert not secret_keys, f"{receiver['name']}: use *_file, not {secret_keys}"
                assert any(key.endswith("_file") for key in entry), receiver["name"]
    text = AM_CONFIG.read_text(encoding="utf-8")
    assert "hooks.slack.com" not in text
    assert not re.search(r"[0-9a-f]{32}", text)
