"""CLI support shared by every command group: consoles and settings loading."""

from __future__ import annotations

import logging
import sys

import typer
from rich.console import Console
from rich.markup import escape

from thunderline import names
from thunderline.config import (
    Settings,
    check_home,
    load_settings,
    mask_secrets,
    unknown_variables,
)
from thunderline.errors import ThunderlineError
from thunderline.obs.logs import LIBRARY_LOGGERS, configure_logging

#: Width used when stdout is not a terminal (rich would otherwise assume 80 columns).
PIPE_WIDTH = 140


def stdout_console() -> Console:
    """A console on stdout: the terminal's width, or :data:`PIPE_WIDTH` when redirected."""
    return Console(width=None if sys.stdout.isatty() else PIPE_WIDTH)


def cli_settings() -> Settings:
    """Settings for a CLI command, with logging configured.

    A bad setting (or an unusable ``TL_HOME``) exits with code 2, naming the setting.
    """
    err = Console(stderr=True)
    try:
        settings = load_settings(warn_unknown=False)
        check_home(settings)
    except ThunderlineError as exc:
        err.print(f"[red]configuration error:[/] {escape(str(exc))}", soft_wrap=True)
        raise typer.Exit(2) from exc
    for name, close in unknown_variables():
        hint = f" (did you mean {close}?)" if close else ""
        err.print(f"[yellow]warning:[/] unknown setting {name} is ignored{hint}", soft_wrap=True)
    configure_logging(settings.log.level, settings.log.format)
    for handler in [
        h for n in ("thunderline", *LIBRARY_LOGGERS) for h in logging.getLogger(n).handlers
    ]:
        if not any(isinstance(f, MaskingFilter) for f in handler.filters):
            handler.addFilter(MaskingFilter())
    return settings


class MaskingFilter(logging.Filter):
    """Masks secrets (URL passwords, secret query values) in every log line a CLI prints.

    It also makes control characters in the message visible, so a file name cannot drive the
    terminal.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        """Mask secrets and shorten paths in the record's message before it is printed."""
        message = record.getMessage()
        cleaned = names.shown(mask_secrets(message)).replace("\\\\", "\\")
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True
