"""``thunderline stages``: the wiring table as the settings make it, and the CPU budget.

The table shows which stages are on and their options.
"""

from __future__ import annotations

import typer
from rich.table import Table

from thunderline.console import cli_settings, stdout_console
from thunderline.runtime import WIRING, cpu_budget, enabled_stage_names

stages_app = typer.Typer(help="The pipeline's stages and CPU budget.", no_args_is_help=True)


@stages_app.command("show")
def stages_show() -> None:
    """Every stage: on or off (and why), batch size, batch timeout, concurrency, timeout."""
    settings = cli_settings()
    enabled = enabled_stage_names(settings)
    table = Table(title="Stages (route order)")
    for column in ("stage", "on", "when", "batch", "batch wait", "concurrency", "timeout"):
        table.add_column(column)
    for spec in WIRING:
        opts = spec.options(settings)
        table.add_row(
            spec.name,
            "yes" if spec.name in enabled else "no",
            spec.when,
            str(opts.batch_size),
            f"{opts.batch_timeout_s * 1000:.0f} ms",
            str(opts.concurrency),
            f"{opts.timeout_s:.0f} s",
        )
    console = stdout_console()
    console.print(table)
    budget = Table(title="CPU budget", show_header=False)
    budget.add_column("what")
    budget.add_column("value", justify="right")
    for what, value in cpu_budget(settings).rows():
        budget.add_row(what, value)
    console.print(budget)
