"""The settings file: ``TL_CONFIG`` or ``./thunderline.toml``, read strictly.

:func:`read_config_file` returns the file's settings as a dict (field name -> value) or raises a
:class:`~thunderline.errors.ConfigError` naming the file (and the line where there is one):

- ``TL_CONFIG`` set but the file missing, not a regular file, or unreadable;
- bytes that are not UTF-8 (a binary file) or not TOML (``file:LINE: ...``);
- a key that names no setting (with the closest known name).

The implicit default ``./thunderline.toml`` may be absent; when present it is held to the same
rules, so a junk file in the working folder is one clear error, never a traceback.
"""

from __future__ import annotations

import difflib
import os
import re
import stat
import tomllib
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

from thunderline.errors import ConfigError

DEFAULT_CONFIG_FILE = "thunderline.toml"
CONFIG_VARIABLE = "TL_CONFIG"
MAX_CONFIG_BYTES = 1024 * 1024


def config_file_path(environ: Mapping[str, str] | None = None) -> tuple[Path, bool]:
    """The settings file to read and whether it was named explicitly (``TL_CONFIG``)."""
    env = os.environ if environ is None else environ
    named = env.get(CONFIG_VARIABLE)
    if named:
        return Path(named), True
    return Path(DEFAULT_CONFIG_FILE), False


def _line_of(text: str, key: str) -> int | None:
    pattern = re.compile(rf"^\s*(?:\[\s*)?[\"']?{re.escape(key)}[\"']?\s*(?:=|\]|\.)", re.MULTILINE)
    found = pattern.search(text)
    return text.count("\n", 0, found.start()) + 1 if found else None


def _where(path: Path, explicit: bool) -> str:
    return f"{CONFIG_VARIABLE}={path}" if explicit else f"settings file {path}"


def read_config_file(
    path: Path, *, explicit: bool, known: Collection[str]
) -> dict[str, Any] | None:
    """The settings in ``path`` (None: the implicit default file is absent).

    Raises:
        ConfigError: the file is missing (explicit only), not a file, unreadable, binary, not
            valid TOML, or has a key outside ``known``; the message names the file and line.
    """
    where = _where(path, explicit)
    try:
        # O_NONBLOCK: a FIFO named here must not hang the command; it is refused below
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        if not explicit:
            return None
        raise ConfigError(f"{where}: no such file") from None
    except OSError as exc:
        raise ConfigError(f"{where}: cannot be read ({exc.strerror or exc})") from None
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise ConfigError(f"{where}: is a directory, not a TOML file")
        if not stat.S_ISREG(info.st_mode):
            raise ConfigError(f"{where}: not a regular file")
        if info.st_size > MAX_CONFIG_BYTES:
            raise ConfigError(f"{where}: {info.st_size} bytes; a settings file is at most 1 MiB")
        data = os.read(fd, MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"{where}: cannot be read ({exc.strerror or exc})") from None
    finally:
        os.close(fd)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ConfigError(
            f"{path}:{line}: not a TOML file (byte {exc.start} is not UTF-8 text)"
        ) from None
    try:
        values = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        found = re.search(r"line (\d+)", str(exc))
        line = int(found.group(1)) if found else max(len(text.splitlines()), 1)  # at the end
        raise ConfigError(f"{path}:{line}: not valid TOML ({exc})") from None
    unknown = sorted(set(values) - set(known))
    if unknown:
        key = unknown[0]
        line_no = _line_of(text, key)
        at = f"{path}:{line_no}" if line_no else str(path)
        close = difflib.get_close_matches(key, list(known), n=1, cutoff=0.6)
        hint = f" (did you mean {close[0]}?)" if close else ""
        more = f" (and {len(unknown) - 1} more: {', '.join(unknown[1:])})" if unknown[1:] else ""
        raise ConfigError(f"{at}: unknown setting {key!r}{hint}{more}")
    return values
