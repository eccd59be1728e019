"""Rich consoles for the CLI: tables keep a readable width when stdout is a pipe or a file."""

from __future__ import annotations

import sys

from rich.console import Console

#: Width used when stdout is not a terminal (rich would otherwise assume 80 columns).
PIPE_WIDTH = 140


def stdout_console() -> Console:
    """A console on stdout: the terminal's width, or :data:`PIPE_WIDTH` when redirected."""
    return Console(width=None if sys.stdout.isatty() else PIPE_WIDTH)
