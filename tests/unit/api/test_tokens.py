"""Token hashing, parsing of TL_API_TOKENS, and the constant-time comparison."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from typing import Any

import pytest

from thunderline.api import tokens as tokens_module
from thunderline.api.tokens import Scope, TokenStore, hash_token, parse_settings_tokens
from thunderline.config import Settings
from thunderline.errors import ConfigError


def test_hash_is_sha256_hex() -> None:
    assert hash_token("abc") == hashlib.sha256(b"abc").hexdigest()


def test_settings_tokens_parse_scopes() -> None:
    a, b = hash_token("a"), hash_token("b")
    records = parse_settings_tokens(f"{a}:admin, {b}")
    assert [(r.sha256, r.scope) for r in records] == [(a, Scope.ADMIN), (b, Scope.READ)]


@pytest.mark.parametrize("raw", ["plain-token", "abc:admin", f"{'0' * 64}:root"])
def test_settings_tokens_refuse_non_hashes_and_unknown_scopes(raw: str) -> None:
    with pytest.raises(ConfigError):
        parse_settings_tokens(raw)


def test_create_authenticate_revoke(make_settings: Callable[..., Settings]) -> None:
    store = TokenStore(make_settings())
    token, record = store.create(Scope.READ, "ci")
    assert store.authenticate(token) == record
    assert store.authenticate(token + "x") is None
    assert store.revoke(record.id)
    assert store.authenticate(token) is None


def test_settings_hash_authenticates(make_settings: Callable[..., Settings]) -> None:
    store = TokenStore(make_settings(api_tokens=f"{hash_token('s3cret')}:admin"))
    record = store.authenticate("s3cret")
    assert record is not None and record.scope is Scope.ADMIN and record.origin == "settings"


def test_initial_admin_only_when_nothing_is_configured(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings()
    store = TokenStore(settings)
    token = store.ensure_initial_admin()
    assert token is not None and store.authenticate(token).scope is Scope.ADMIN  # type: ignore[union-attr]
    assert store.ensure_initial_admin() is None
    assert token not in store.path.read_text()
    configured = TokenStore(make_settings(api_tokens=hash_token("x"), home=settings.home / "other"))
    assert configured.ensure_initial_admin() is None


def test_every_known_hash_is_compared_with_compare_digest(
    make_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Timing safety: hmac.compare_digest on each record, no early exit on a match."""
    store = TokenStore(make_settings())
    first, _ = store.create(Scope.READ)
    for _ in range(3):
        store.create(Scope.READ)
    calls: list[tuple[Any, Any]] = []
    real = hmac.compare_digest

    def spy(a: Any, b: Any) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(tokens_module.hmac, "compare_digest", spy)
    assert store.authenticate(first) is not None
    assert len(calls) == 4
    calls.clear()
    assert store.authenticate("wrong") is None
    assert len(calls) == 4
