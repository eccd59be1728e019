"""`thunderline serve` and `thunderline tokens`: never open by default, tokens shown once."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
from typer.testing import CliRunner

from thunderline.cli import app

THUNDERLINE = Path(sys.executable).with_name("thunderline")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_first_start_prints_an_admin_token_once_and_stores_its_hash(tmp_path: Path) -> None:
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("TL_")},
        "TL_HOME": str(tmp_path / "home"),
        "TL_ENABLE_ML_PIPELINE": "false",
        "TL_API_PORT": str(port),
    }
    proc = subprocess.Popen(
        [str(THUNDERLINE), "serve"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert proc.stdout is not None
        lines = []
        token = None
        deadline = time.monotonic() + 60
        while token is None and time.monotonic() < deadline:
            line = proc.stdout.readline()
            lines.append(line)
            if line.strip().startswith("tl_"):
                token = line.strip()
        assert token, "".join(lines)
        url = f"http://127.0.0.1:{port}"
        while True:
            try:
                if httpx.get(f"{url}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        assert httpx.get(f"{url}/v1/voxels").status_code == 401  # never open
        ok = httpx.get(f"{url}/v1/voxels", headers={"Authorization": f"Bearer {token}"})
        assert ok.status_code == 200
        stored = (tmp_path / "home" / "api" / "tokens.json").read_text()
        assert token not in stored and '"admin"' in stored
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        if proc.stdout is not None:
            proc.stdout.close()
    # uvicorn shuts down gracefully, then re-raises the signal it caught
    assert proc.returncode in (0, -signal.SIGTERM)
    again = CliRunner().invoke(app, ["tokens", "list"], env={"TL_HOME": str(tmp_path / "home")})
    assert "initial admin" in again.output and token not in again.output


def test_tokens_create_list_revoke(tmp_path: Path) -> None:
    env = {"TL_HOME": str(tmp_path / "home")}
    runner = CliRunner()
    created = runner.invoke(
        app, ["tokens", "create", "--scope", "read", "--name", "dashboard"], env=env
    )
    assert created.exit_code == 0, created.output
    token = created.stdout.strip().splitlines()[-1]
    assert token.startswith("tl_")
    listed = runner.invoke(app, ["tokens", "list"], env=env)
    assert "dashboard" in listed.output and "read" in listed.output and token not in listed.output
    token_id = next(
        line.split("│")[1].strip() for line in listed.output.splitlines() if "dashboard" in line
    )
    assert runner.invoke(app, ["tokens", "revoke", token_id], env=env).exit_code == 0
    assert runner.invoke(app, ["tokens", "revoke", token_id], env=env).exit_code == 1
    assert "dashboard" not in runner.invoke(app, ["tokens", "list"], env=env).output


def test_a_taken_port_fails_before_any_token_is_made(tmp_path: Path) -> None:
    home = tmp_path / "home"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {"TL_HOME": str(home), "TL_ENABLE_ML_PIPELINE": "false", "COLUMNS": "300"}
        result = CliRunner().invoke(app, ["serve", "--port", str(port)], env=env)
    assert result.exit_code == 2, result.output
    assert f"cannot listen on 127.0.0.1:{port}" in result.output
    assert "tl_" not in result.output  # no token was shown ...
    assert not (home / "api" / "tokens.json").exists()  # ... nor stored: the next start shows one
