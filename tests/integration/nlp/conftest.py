"""Fixtures for the NLP integration tests: the fault-injecting worker command."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

FAULT_WORKER = Path(__file__).with_name("fault_worker.py")


@pytest.fixture
def fault_command() -> list[str]:
    """Start the real worker wrapped with deliberate faults (see fault_worker.py)."""
    return [sys.executable, str(FAULT_WORKER)]
