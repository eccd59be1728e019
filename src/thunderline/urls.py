"""Backend URLs in settings: the schemes each one supports, and masking credentials for display.

:func:`check_url_scheme` is called by the settings validators (``TL_BUS_URL``,
``TL_DATABASE_URL``, ``TL_OBJECT_STORE_URL``), so an unsupported scheme is a configuration
error naming the variable at start-up (exit 2), not a failure later in a backend factory.

:func:`mask_secrets` hides what a printed URL or message must not show: the password of the
user-info (``scheme://user:PASSWORD@host``, split at the **last** ``@`` before the host, so an
unencoded ``@`` in the password does not leak its tail) and the value of every credential-like
query parameter (``password``, ``sslpassword``, ``token``, ``api_key``, ``secret`` ...: any
parameter whose name contains one of :data:`SECRET_WORDS`).
"""

from __future__ import annotations

import re

MASK = "***"

#: Schemes each backend URL setting accepts (SQLAlchemy dialects may name a driver: ``+psycopg``).
SUPPORTED_SCHEMES: dict[str, tuple[str, ...]] = {
    "bus_url": ("memory", "amqp", "amqps"),
    "database_url": ("sqlite", "postgresql"),
    "object_store_url": ("file", "s3"),
}
_EXAMPLES: dict[str, str] = {
    "bus_url": "memory:// or amqp://user@host:5672/vhost",
    "database_url": "sqlite:///path or postgresql+psycopg://user@host/db",
    "object_store_url": "file:///path or s3://bucket[/prefix]",
}

#: A query parameter whose name contains one of these words carries a credential.
SECRET_WORDS = (
    "password",
    "passwd",
    "pwd",
    "secret",
    "token",
    "key",
    "credential",
    "auth",
    "sig",
    "session",
)

_SCHEME = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://")
# scheme://userinfo@host: the user-info runs to the LAST '@' before the next '/', '?', '#' or
# whitespace, so 'u:p@ss@host' masks 'p@ss' whole.
_USERINFO = re.compile(
    r"(?P<head>\b[a-z][a-z0-9+.-]*://)(?P<userinfo>[^/?#\s]*)@(?P<host>[^@/?#\s]*)", re.I
)
_QUERY_PARAM = re.compile(r"(?P<head>[?&;](?P<name>[A-Za-z0-9_.\-]+)=)(?P<value>[^&;#\s]*)")


def _is_secret_name(name: str) -> bool:
    lowered = name.lower()
    return any(word in lowered for word in SECRET_WORDS)


def _mask_userinfo(match: re.Match[str]) -> str:
    userinfo = match.group("userinfo")
    user, sep, _password = userinfo.partition(":")
    shown = f"{user}:{MASK}" if sep else user
    return f"{match.group('head')}{shown}@{match.group('host')}"


def mask_secrets(text: str) -> str:
    """``text`` with URL passwords and credential-like query values replaced by ``***``.

    For anything printed: settings, logs, doctor, error messages.
    """
    text = _USERINFO.sub(_mask_userinfo, text)
    return _QUERY_PARAM.sub(
        lambda m: m.group("head") + MASK if _is_secret_name(m.group("name")) else m.group(0),
        text,
    )


def check_url_scheme(field: str, value: str | None) -> str | None:
    """``value`` if its scheme is one ``field`` supports (None passes: the default is used).

    Raises:
        ValueError: no ``scheme://`` or an unsupported one; the message names what is supported
            (pydantic turns it into ``TL_FIELD: ...``).
    """
    if value is None or value == "":
        return None
    supported = SUPPORTED_SCHEMES[field]
    found = _SCHEME.match(value)
    scheme = found.group("scheme").lower() if found else ""
    base = scheme.split("+", 1)[0]
    if base not in supported:
        what = f"scheme {scheme!r}" if scheme else "no scheme://"
        raise ValueError(
            f"{mask_secrets(value)!r} has {what}: supported are "
            f"{', '.join(s + '://' for s in supported)} (e.g. {_EXAMPLES[field]})"
        )
    return value
