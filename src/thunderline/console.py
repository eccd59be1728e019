"""CLI support shared by every command group: consoles and settings loading."""

from __future__ import annotations

import sys

import typer
from rich.console import Console

from thunderline.config import Settings, load_settings
from thunderline.errors import ThunderlineError
from thunderline.obs.logs import configure_logging

#: Width used when stdout is not a terminal (rich would otherwise assume 80 columns).
PIPE_WIDTH = 140


def stdout_console() -> Console:
    """A console on stdout: the terminal's width, or :data:`PIPE_WIDTH` when redirected."""
    return Console(width=None if sys.stdout.isatty() else PIPE_WIDTH)


def cli_settings() -> Settings:
    """Settings for a CLI command, with logging configured; a bad setting exits with code 2."""
    try:
        settings = load_settings()
    except ThunderlineError as exc:
        Console(stderr=True).print(f"[red]configuration error:[/] {exc}")
        raise typer.Exit(2) from exc
    configure_logging(settings.log_level, settings.log_format)
    return settings
