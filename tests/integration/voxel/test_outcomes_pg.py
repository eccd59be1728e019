"""The outcome store on a real PostgreSQL (own schema per test)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from tests.unit.test_outcomes import check_once_per_artifact, check_outcome_store

from thunderline.config import Settings
from thunderline.outcomes import OutcomeStore

pytestmark = pytest.mark.services


def test_outcome_store_on_postgresql(
    make_settings: Callable[..., Settings], pg_schema_url: str
) -> None:
    with OutcomeStore(make_settings(database_url=pg_schema_url)) as store:
        check_outcome_store(store)


def test_one_row_per_artifact_and_kind_on_postgresql(
    make_settings: Callable[..., Settings], pg_schema_url: str
) -> None:
    with OutcomeStore(make_settings(database_url=pg_schema_url)) as store:
        check_once_per_artifact(store)
