"""API bearer tokens: only SHA-256 hashes are kept, presented tokens compared in constant time.

Two sources are read: ``TL_API_TOKENS`` (comma-separated ``<sha256-hex>[:read|:admin]``) and the
token file ``$TL_HOME/api/tokens.json`` written by ``thunderline tokens create`` and by the first
start of ``thunderline serve`` (mode 0600, hashes only: a token is shown once, when made).

A presented token is hashed and compared with :func:`hmac.compare_digest` against **every** known
hash (no early exit), so the time taken does not tell how close a guess was.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import threading
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from thunderline.config import Settings
from thunderline.errors import ConfigError

TOKEN_PREFIX = "tl_"
_HEX = frozenset("0123456789abcdef")


class Scope(StrEnum):
    """What a token may do: ``read`` everything, or also ``admin`` (replay)."""

    READ = "read"
    ADMIN = "admin"

    def allows(self, needed: Scope) -> bool:
        """True when this scope covers ``needed`` (admin covers read)."""
        return self is Scope.ADMIN or needed is Scope.READ


def hash_token(token: str) -> str:
    """The SHA-256 hex digest a token is stored as."""
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).hexdigest()


def new_token() -> str:
    """A new random token (256 bits)."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


@dataclass(frozen=True)
class TokenRecord:
    """One known token: its id, a name, its scope, its hash, where it comes from."""

    id: str
    name: str
    scope: Scope
    sha256: str
    created: str
    origin: str = "file"  # "file" or "settings"

    def public(self) -> dict[str, Any]:
        """The record as shown to people: scope and a shortened hash, never the token."""
        out = asdict(self)
        out["scope"] = str(self.scope)
        out["sha256"] = self.sha256[:12] + "…"
        return out


def parse_settings_tokens(raw: str) -> list[TokenRecord]:
    """``TL_API_TOKENS`` entries; a malformed entry is a :class:`ConfigError`."""
    records = []
    for n, entry in enumerate(part.strip() for part in raw.split(",")):
        if not entry:
            continue
        digest, _, scope_s = entry.partition(":")
        digest = digest.lower()
        if len(digest) != 64 or not set(digest) <= _HEX:
            raise ConfigError(
                f"TL_API_TOKENS entry {n + 1} is not a SHA-256 hex digest "
                "(store hashes, never tokens: `printf %s TOKEN | sha256sum`)"
            )
        try:
            scope = Scope(scope_s or "read")
        except ValueError as exc:
            raise ConfigError(
                f"TL_API_TOKENS entry {n + 1}: scope {scope_s!r} is not read or admin"
            ) from exc
        records.append(
            TokenRecord(f"env-{n + 1}", f"TL_API_TOKENS[{n + 1}]", scope, digest, "", "settings")
        )
    return records


class TokenStore:
    """The token file under ``$TL_HOME/api`` plus the hashes from the settings."""

    def __init__(self, settings: Settings) -> None:
        self.path = Path(settings.home) / "api" / "tokens.json"
        self.from_settings = parse_settings_tokens(settings.api.tokens)
        self._lock = threading.Lock()
        self._cache: tuple[float, list[TokenRecord]] | None = None

    # ---- the file -----------------------------------------------------------------------
    def _read_file(self) -> list[TokenRecord]:
        try:
            mtime = self.path.stat().st_mtime_ns
        except FileNotFoundError:
            return []
        if self._cache is not None and self._cache[0] == mtime:
            return self._cache[1]
        try:
            raw = json.loads(self.path.read_text(encoding="utf-8"))
            records = [
                TokenRecord(
                    id=str(r["id"]),
                    name=str(r.get("name", "")),
                    scope=Scope(r["scope"]),
                    sha256=str(r["sha256"]),
                    created=str(r.get("created", "")),
                )
                for r in raw.get("tokens", [])
            ]
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ConfigError(f"token file {self.path} is unreadable: {exc}") from exc
        self._cache = (mtime, records)
        return records

    def _write_file(self, records: list[TokenRecord]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        doc = {
            "tokens": [
                {k: v for k, v in asdict(r).items() if k != "origin"} | {"scope": str(r.scope)}
                for r in records
            ]
        }
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(doc, handle, indent=2)
        os.replace(tmp, self.path)
        self._cache = None

    # ---- management ---------------------------------------------------------------------
    def records(self) -> list[TokenRecord]:
        """Every token record: those from the settings, then those in the token file."""
        return [*self.from_settings, *self._read_file()]

    def create(self, scope: Scope, name: str = "") -> tuple[str, TokenRecord]:
        """Make a token; returns it (shown once, never stored) and its record."""
        token = new_token()
        record = TokenRecord(
            id=secrets.token_hex(4),
            name=name,
            scope=scope,
            sha256=hash_token(token),
            created=datetime.now(UTC).isoformat(timespec="seconds"),
        )
        with self._lock:
            self._write_file([*self._read_file(), record])
        return token, record

    def revoke(self, token_id: str) -> bool:
        """Remove a token from the token file; False when no such token exists."""
        with self._lock:
            records = self._read_file()
            kept = [r for r in records if r.id != token_id]
            if len(kept) == len(records):
                return False
            self._write_file(kept)
            return True

    def ensure_initial_admin(self) -> str | None:
        """With no token configured anywhere, make an admin token and return it (else None)."""
        if self.records():
            return None
        token, _ = self.create(Scope.ADMIN, name="initial admin (thunderline serve)")
        return token

    # ---- checking -----------------------------------------------------------------------
    def authenticate(self, token: str) -> TokenRecord | None:
        """The record whose hash matches ``token`` (constant-time per comparison, all compared)."""
        presented = hash_token(token)
        found: TokenRecord | None = None
        for record in self.records():
            if hmac.compare_digest(presented, record.sha256):
                found = record
        return found
