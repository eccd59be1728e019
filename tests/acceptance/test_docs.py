"""Executed docs: every shell and Python block of README.md and docs/*.md runs, so a doc that
drifts from the code fails the build (issue 24).

**Blocks.** A fence tagged ``sh``/``bash``/``shell``/``console`` is shell, ``python``/``py``
is Python; other tags (``text``, ``json``, ``yaml``, ``toml``) and untagged fences are output
or data and never run, but an untagged fence whose lines look like commands (``$ …``,
``thunderline …``, ``.venv/bin/…``) fails :func:`test_command_blocks_are_tagged`, so a command
block cannot escape the test by losing its tag.

**Directives.** An HTML comment on the line before a fence:

* ``<!-- doc-test: skip REASON -->`` -- the block is not run (a reason is required). Its
  ``thunderline`` command lines are still checked against the CLI: every sub-command and
  ``--option`` must exist (:func:`check_cli_line`).
* ``<!-- doc-test: services -->`` -- the block runs against the real services of the test
  session (RabbitMQ vhost, PostgreSQL schema, the bundled S3 server), whose URLs the block
  reads from the environment (``TL_DOC_BUS_URL``, ``TL_DOC_DATABASE_URL``); skipped with the
  reason when they are absent, a failure under ``TL_TEST_REQUIRE_SERVICES=1``.

**Running.** The shell blocks of one file run in order as one ``bash -euo pipefail`` script
(variables carry over from block to block, as for a reader typing them into one terminal);
in a ``$``-prompt block only the ``$`` lines (and their ``\\`` continuations) run, the rest is
the output shown. The working directory is a fresh folder holding copies of ``examples`` and
``models``, ``deploy`` (a link) and ``.venv`` (a link to the running interpreter's
environment); ``TL_HOME`` is a folder of its own, ``thunderline`` is on
``PATH``, ``PYTHONPATH`` is this checkout's ``src``. Each Python block runs in its own
interpreter there (top-level ``await`` allowed). The test prints how many blocks ran and
which were skipped and why.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import typer

from thunderline.cli import app

REPO = Path(__file__).resolve().parents[2]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
SHELL = {"sh", "bash", "shell", "console"}
PYTHON = {"python", "py"}
DIRECTIVE = re.compile(r"^<!--\s*doc-test:\s*(skip|services)\b\s*(.*?)\s*-->$")
COMMAND_LIKE = re.compile(r"^\s*(\$ |thunderline |\.venv/bin/|curl |make )")
FILE_TIMEOUT_S = 900


@dataclass
class Block:
    path: Path
    line: int  # 1-based line of the opening fence
    lang: str
    text: str
    directive: str | None = None  # skip / services
    reason: str = ""

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(REPO)}:{self.line}"

    def commands(self) -> str:
        """The shell to run: the ``$`` lines (and continuations) of a prompt block, or all."""
        lines = self.text.splitlines()
        if not any(line.startswith("$ ") for line in lines):
            return self.text
        out: list[str] = []
        continuing = False
        for line in lines:
            if line.startswith("$ "):
                out.append(line[2:])
                continuing = line.rstrip().endswith("\\")
            elif continuing:
                out.append(line)
                continuing = line.rstrip().endswith("\\")
        return "\n".join(out) + "\n"


def blocks(path: Path) -> list[Block]:
    """Every fenced block of a Markdown file, with its directive."""
    found: list[Block] = []
    lines = path.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        match = re.match(r"^```\s*([A-Za-z0-9_+-]*)\s*$", lines[i])
        if not match:
            i += 1
            continue
        start, lang = i, match.group(1).lower()
        j = i + 1
        while j < len(lines) and not lines[j].startswith("```"):
            j += 1
        block = Block(path, start + 1, lang, "\n".join(lines[start + 1 : j]) + "\n")
        k = start - 1
        while k >= 0 and not lines[k].strip():
            k -= 1
        directive = DIRECTIVE.match(lines[k].strip()) if k >= 0 else None
        if directive:
            block.directive, block.reason = directive.group(1), directive.group(2)
        found.append(block)
        i = j + 1
    return found


# ---- the CLI check of every thunderline command line ---------------------------------------
ROOT_COMMAND = typer.main.get_command(app)


def _invocations(script: str) -> Iterator[list[str]]:
    """The argument lists of every ``thunderline`` call in a shell script (best effort)."""
    joined = re.sub(r"\\\n", " ", script)
    for raw in joined.splitlines():
        line = raw.split(" #", 1)[0] if not raw.lstrip().startswith("#") else ""
        for part in re.split(r"\|\||&&|[|;&]|\$\(|`", line):
            try:
                words = shlex.split(part, comments=True)
            except ValueError:
                continue
            while words and re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", words[0]):
                words = words[1:]  # VAR=value prefixes
            if words and words[0] in {"exec", "timeout", "nohup", "env"}:
                words = [
                    w
                    for w in words[1:]
                    if not re.fullmatch(r"[0-9.]+[smh]?|\$\w+|[A-Za-z_]\w*=.*", w)
                ]
            cut = next((i for i, w in enumerate(words) if re.match(r"^\d*[<>]", w)), None)
            words = words[:cut]  # redirections are the shell's, not the command's
            if words and Path(words[0]).name == "thunderline":
                yield words[1:]


def check_cli_line(args: list[str]) -> str | None:
    """None when the sub-commands and ``--options`` of ``thunderline ARGS`` exist, else why."""
    command: Any = ROOT_COMMAND
    rest = list(args)
    while hasattr(command, "list_commands") and rest and not rest[0].startswith("-"):
        sub = command.get_command(None, rest[0])
        if sub is None:
            return f"no command {rest[0]!r} under {command.name!r}"
        command, rest = sub, rest[1:]
    known = {opt for p in command.params for opt in (*p.opts, *p.secondary_opts)} | {"--help"}
    for word in rest:
        if word == "--":
            break
        if word.startswith("--"):
            name = word.split("=", 1)[0]
            if name not in known:
                return f"{command.name}: no option {name} (has {sorted(known)})"
    return None


# ---- the environment a reader has -----------------------------------------------------------
@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("docs-work")
    shutil.copytree(REPO / "examples", work / "examples")  # a linked folder is not walked
    (work / "deploy").symlink_to(REPO / "deploy")
    shutil.copytree(REPO / "models", work / "models", copy_function=shutil.copyfile)
    for path in [work / "models", *(work / "models").rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    (work / ".venv").symlink_to(Path(sys.prefix))
    return work


def reader_env(work: Path, home: Path) -> dict[str, str]:
    venv_bin = str(Path(sys.executable).parent)
    keep = {k: v for k, v in os.environ.items() if k in {"LANG", "LC_ALL", "TMPDIR", "USER"}}
    return {
        **keep,
        "PATH": f"{venv_bin}:/usr/local/bin:/usr/bin:/bin",
        "HOME": str(home.parent / "user-home"),
        "PYTHONPATH": str(REPO / "src"),
        "TL_HOME": str(home),
        "TL_SPACY_WORKERS": "1",
        "COLUMNS": "160",
        "NO_COLOR": "1",
    }


def run_shell(script: str, work: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run ``script`` in its own process group; whatever it left running is stopped after."""
    proc = subprocess.Popen(
        ["bash", "-c", script],
        cwd=work,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=FILE_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        err += f"\n(timed out after {FILE_TIMEOUT_S} s)"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)  # background servers a failed block left
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def run_python(block: Block, work: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    harness = (
        "import ast, asyncio, inspect, sys\n"
        "source = sys.stdin.read()\n"
        "code = compile(source, sys.argv[1], 'exec', flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)\n"
        "result = eval(code, {'__name__': '__main__'})\n"
        "if inspect.iscoroutine(result):\n"
        "    asyncio.run(result)\n"
    )
    return subprocess.run(
        [sys.executable, "-c", harness, block.where],
        input=block.text,
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=FILE_TIMEOUT_S,
    )


def free_port_base(count: int = 11) -> int:
    """The first of ``count`` consecutive loopback ports that are free now."""
    import random
    import socket

    for _ in range(200):
        base = random.randrange(20000, 60000 - count)
        taken = False
        for port in range(base, base + count):
            with socket.socket() as probe:
                try:
                    probe.bind(("127.0.0.1", port))
                except OSError:
                    taken = True
                    break
        if not taken:
            return base
    raise RuntimeError("no free port range")


def services_env(request: pytest.FixtureRequest) -> dict[str, str]:
    """URLs of the session's real services for ``services`` blocks (skips when absent), and
    free ports for the servers a block starts itself (``PORT_BASE``)."""
    bus = request.getfixturevalue("rabbitmq_url")
    database = request.getfixturevalue("pg_schema_url")
    return {
        "TL_DOC_BUS_URL": bus,
        "TL_DOC_DATABASE_URL": database,
        "PORT_BASE": str(free_port_base()),
    }


# a file runs under its own FILE_TIMEOUT_S; pytest-timeout's default (300 s) must not cut it first
@pytest.mark.timeout(FILE_TIMEOUT_S + 60)
@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(REPO)))
def test_doc_blocks_run(doc: Path, workdir: Path, request: pytest.FixtureRequest) -> None:
    found = [b for b in blocks(doc) if b.lang in SHELL | PYTHON]
    problems = [
        f"{b.where}: `{' '.join(args)}`: {why}"
        for b in found
        if b.lang in SHELL
        for args in _invocations(b.commands())
        if (why := check_cli_line(args)) is not None
    ]
    assert problems == [], "doc commands the CLI does not have:\n" + "\n".join(problems)
    skipped = [b for b in found if b.directive == "skip"]
    assert all(b.reason for b in skipped), [b.where for b in skipped if not b.reason]
    runnable = [b for b in found if b.directive != "skip"]
    extra: dict[str, str] = {}
    if any(b.directive == "services" for b in runnable):
        extra = services_env(request)
    home = workdir / "homes" / doc.stem
    home.mkdir(parents=True, exist_ok=True)
    (home.parent / "user-home").mkdir(exist_ok=True)
    env = {**reader_env(workdir, home), "TL_API_PORT": str(free_port_base(1)), **extra}

    script = ["set -euo pipefail"]
    for block in (b for b in runnable if b.lang in SHELL):
        script.append(f"echo '@@doc-block {block.where}' >&2")
        script.append(block.commands())
    ran = len(script) > 1
    if ran:
        result = run_shell("\n".join(script), workdir, env)
        if result.returncode != 0:
            markers = re.findall(r"@@doc-block (\S+)", result.stderr)
            pytest.fail(
                f"shell block {markers[-1] if markers else '?'} failed "
                f"(exit {result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
            )
    for block in (b for b in runnable if b.lang in PYTHON):
        result = run_python(block, workdir, env)
        assert result.returncode == 0, (
            f"python block {block.where} failed:\n{result.stderr[-3000:]}"
        )
    print(
        f"{doc.relative_to(REPO)}: ran {len(runnable)} block(s), skipped {len(skipped)}: "
        + "; ".join(f"{b.where} ({b.reason})" for b in skipped)
    )


def test_command_blocks_are_tagged() -> None:
    """An untagged fence that holds commands would silently never run: it must be tagged."""
    untagged = [
        b.where
        for doc in DOCS
        for b in blocks(doc)
        if b.lang == "" and any(COMMAND_LIKE.match(line) for line in b.text.splitlines())
    ]
    assert untagged == [], "tag these blocks (sh / console / text):\n" + "\n".join(untagged)


def test_the_cli_check_catches_drift() -> None:
    assert check_cli_line(["voxels", "list", "--json", "--label", "pdf"]) is None
    assert check_cli_line(["models", "add", "x.keras", "--name", "n"]) is None
    assert "no command" in str(check_cli_line(["voxels", "lst"]))
    assert "no option --lable" in str(check_cli_line(["voxels", "list", "--lable", "pdf"]))
    script = "TL_HOME=/tmp/x thunderline ingest examples/ --json 2> e | head\nthunderline nope\n"
    assert [args[0] for args in _invocations(script)] == ["ingest", "nope"]
