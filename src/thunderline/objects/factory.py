"""Pick the object store from settings: ``file://`` (default) or ``s3://bucket[/prefix]``."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlparse

from thunderline.config import Settings
from thunderline.errors import ConfigError
from thunderline.objects.base import ObjectStore
from thunderline.objects.local import LocalObjectStore


def open_object_store(settings: Settings) -> ObjectStore:
    """The payload store ``settings.resolved_object_store_url`` names.

    ``file:///path`` gives a :class:`LocalObjectStore`; ``s3://bucket`` an
    :class:`~thunderline.objects.s3.S3ObjectStore` on ``settings.s3.endpoint_url`` (path-style
    addressing; the bucket is created when missing). Anything else is a ConfigError.
    """
    url = settings.resolved_object_store_url
    if url.startswith("file://"):
        return LocalObjectStore(
            Path(unquote(urlparse(url).path)), tmp_max_age_s=settings.object_tmp_max_age_s
        )
    if url.startswith("s3://"):
        from thunderline.objects.s3 import S3ObjectStore

        return S3ObjectStore(
            url,
            endpoint_url=settings.s3.endpoint_url,
            connect_timeout_s=settings.s3.connect_timeout_s,
            read_timeout_s=settings.s3.read_timeout_s,
            max_attempts=settings.s3.max_attempts,
            tmp_max_age_s=settings.object_tmp_max_age_s,
        )
    raise ConfigError(f"unsupported object store URL {url!r}: use file:///path or s3://bucket")
