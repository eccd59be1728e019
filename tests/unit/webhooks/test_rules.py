"""Rule triggers and actions: what each trigger fires on, what is refused when a rule is added."""

from __future__ import annotations

import pytest

from thunderline.errors import ConfigError
from thunderline.search.query import QuerySyntaxError
from thunderline.webhooks.core import _check_action, _check_triggers, entity_texts, matches


def test_each_trigger_fires_on_its_own_subject() -> None:
    ents = entity_texts({"entities": [{"text": "Ada Lovelace", "label": "PERSON"}, {"x": 1}]})
    assert ents == frozenset({"ada lovelace"})
    assert matches(["ingested"], "voxel", None)
    assert not matches(["ingested"], "dlq", None)
    assert matches(["failed"], "dlq", None)
    assert matches(["reprocessed"], "reprocessed", None)
    assert not matches(["reprocessed"], "voxel", "pdf")
    assert matches(["label:pdf"], "voxel", "pdf") and not matches(["label:pdf"], "voxel", "txt")
    assert matches(["entity:ADA LOVELACE"], "voxel", None, entities=ents)
    assert matches(["entity:ada lovelace"], "reprocessed", None, entities=ents)
    assert not matches(["entity:Grace Hopper"], "voxel", None, entities=ents)
    hit, miss = (lambda q: q == "label:pdf"), (lambda q: False)
    assert matches(["query:label:pdf"], "voxel", None, in_query=hit)
    assert not matches(["query:label:pdf"], "voxel", None, in_query=miss)
    assert not matches(["query:label:pdf"], "dlq", None, in_query=hit)


def test_triggers_and_actions_are_checked_when_a_rule_is_added() -> None:
    assert _check_triggers(["entity: Ada ", "query:label:pdf invoice"]) == [
        "entity:Ada",
        "query:label:pdf invoice",
    ]
    with pytest.raises(QuerySyntaxError):
        _check_triggers(['query:name:"unclosed'])
    for bad in (["entity:"], ["label"], ["sometimes"], []):
        with pytest.raises(ConfigError):
            _check_triggers(bad)
    assert _check_action("tag: invoices ") == "tag:invoices"
    assert _check_action("webhook") == "webhook"
    for bad_action in ("tag:", "mail:x", "tag:" + "x" * 200):
        with pytest.raises(ConfigError):
            _check_action(bad_action)
