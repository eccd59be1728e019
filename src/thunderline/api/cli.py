"""``thunderline serve`` (API + console) and ``thunderline tokens create|list|revoke``."""

from __future__ import annotations

import socket
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from thunderline.api.tokens import Scope, TokenStore
from thunderline.console import cli_settings, stdout_console
from thunderline.errors import ThunderlineError

serve_app = typer.Typer(
    help="Run the HTTP API and the web console (the pipeline runs in-process on memory://; "
    "on amqp:// the server submits and reads, `thunderline worker` runs the stages).",
    invoke_without_command=True,
)
tokens_app = typer.Typer(
    help="Manage API tokens (only their SHA-256 is stored).", no_args_is_help=True
)
err_console = Console(stderr=True)


@serve_app.callback()
def serve(
    host: Annotated[str | None, typer.Option(help="Bind address (default TL_API_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default TL_API_PORT).")] = None,
) -> None:
    """Serve ``/v1`` (OpenAPI at /openapi.json), /healthz, /readyz, /metrics and the console."""
    import uvicorn

    from thunderline.api.app import create_app
    from thunderline.api.protocol import uvicorn_config

    settings = cli_settings()
    bind_host = host or settings.api_host
    bind_port = settings.api_port if port is None else port
    # bind first: a taken port must fail before a token is created (and shown, then lost)
    try:
        sock = listen(bind_host, bind_port)
    except OSError as exc:
        err_console.print(
            f"[red]serve failed:[/] cannot listen on {bind_host}:{bind_port}: "
            f"{exc.strerror or exc} (TL_API_HOST / TL_API_PORT, or --host / --port)",
            soft_wrap=True,
        )
        raise typer.Exit(2) from exc
    try:
        store = TokenStore(settings)
        app = create_app(settings)
        token = store.ensure_initial_admin()
    except ThunderlineError as exc:
        sock.close()
        err_console.print(f"[red]serve failed:[/] {exc}")
        raise typer.Exit(2) from exc
    url = f"http://{bind_host}:{sock.getsockname()[1]}"
    if token is not None:
        # printed once, like Jupyter: only the hash is stored
        print(
            "No API token was configured, so an admin token was created (only its SHA-256 "
            f"is stored in {store.path}):\n\n    {token}\n\n"
            f"Console: {url}/login#token={token}\n"
            "Keep it; it is not shown again (`thunderline tokens create` makes more).",
            flush=True,
        )
    else:
        print(f"Console: {url}/  (sign in with an API token)", flush=True)
    try:
        uvicorn.Server(uvicorn_config(app, settings)).run(sockets=[sock])
    finally:
        sock.close()


def listen(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host:port`` (IPv4 or IPv6, as ``host`` resolves).

    Raises:
        OSError: the address cannot be resolved or bound (taken, not ours, no permission).
    """
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


@tokens_app.command("create")
def tokens_create(
    scope: Annotated[
        Scope, typer.Option(help="read or admin (admin may replay the DLQ).")
    ] = Scope.READ,
    name: Annotated[str, typer.Option(help="A note saying who or what uses it.")] = "",
) -> None:
    """Make a token and print it once (only its hash is kept)."""
    settings = cli_settings()
    token, record = TokenStore(settings).create(scope, name)
    err_console.print(f"token {record.id} ({record.scope}) created; it is shown once:")
    print(token)


@tokens_app.command("list")
def tokens_list() -> None:
    """Known tokens: id, name, scope, created, hash prefix (never the token)."""
    settings = cli_settings()
    try:
        records = TokenStore(settings).records()
    except ThunderlineError as exc:
        err_console.print(f"[red]{exc}[/]")
        raise typer.Exit(2) from exc
    table = Table(title=f"API tokens ({len(records)})")
    for column in ("id", "name", "scope", "created", "sha256", "from"):
        table.add_column(column)
    for r in records:
        table.add_row(r.id, r.name, str(r.scope), r.created, r.sha256[:12] + "…", r.origin)
    stdout_console().print(table)


@tokens_app.command("revoke")
def tokens_revoke(
    token_id: Annotated[str, typer.Argument(help="The id shown by `tokens list`.")],
) -> None:
    """Remove a token from the token file (tokens from TL_API_TOKENS are removed there)."""
    settings = cli_settings()
    if not TokenStore(settings).revoke(token_id):
        err_console.print(f"[red]no token {token_id} in the token file[/]")
        raise typer.Exit(1)
    err_console.print(f"token {token_id} revoked")
