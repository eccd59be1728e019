"""S3 object store (``s3://bucket[/prefix]``): content-addressed keys ``<prefix>sha256/...``.

boto3 with path-style addressing (SeaweedFS, MinIO and AWS all accept it), the endpoint from
``settings.s3.endpoint_url``. Credentials come from boto3's own chain (``AWS_ACCESS_KEY_ID`` ...)
unless given. Every read is verified: ``get_bytes`` re-hashes the body, ``copy_verified``
spools and hashes before writing a byte to its destination. Backend failures become
:class:`~thunderline.errors.BackendError` (retryable); a missing object is :class:`~thunderline.errors.PayloadNotFound`.
"""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path
from typing import Any

import boto3
import boto3.session
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    ReadTimeoutError,
)

from thunderline.errors import BackendError, ConfigError, PayloadNotFound
from thunderline.objects.base import (
    Sink,
    StoredObject,
    copy_hashing,
    hash_stream,
    note_corrupt_object,
    put_own_file,
    remove_stale_temps,
    spool_verified,
    verify,
)

#: Prefix of the local spool files of uploads (abandoned ones are removed at start-up).
SPOOL_PREFIX = "tl-s3-"

_MISSING = {"404", "NoSuchKey", "NotFound", "NoSuchBucket"}


def parse_s3_url(url: str) -> tuple[str, str]:
    """``s3://bucket/some/prefix`` -> (``bucket``, ``some/prefix/``)."""
    if not url.startswith("s3://"):
        raise ConfigError(f"not an s3:// URL: {url!r}")
    bucket, _, prefix = url.removeprefix("s3://").partition("/")
    if not bucket:
        raise ConfigError(f"s3 URL has no bucket: {url!r}")
    prefix = prefix.strip("/")
    return bucket, f"{prefix}/" if prefix else ""


class S3ObjectStore:
    """Content-addressed payloads in an S3 bucket (created when missing)."""

    def __init__(
        self,
        url: str,
        *,
        endpoint_url: str | None = None,
        region: str = "us-east-1",
        access_key: str | None = None,
        secret_key: str | None = None,
        create_bucket: bool = True,
        connect_timeout_s: float = 5.0,
        read_timeout_s: float = 5.0,
        max_attempts: int = 2,
        tmp_max_age_s: float = 3600.0,
    ) -> None:
        self.url = url
        self.root: Path | None = None  # no local folder: callers spool to the system temp dir
        self.endpoint_url = endpoint_url
        self.bucket, self.prefix = parse_s3_url(url)
        self.removed_temps = remove_stale_temps(
            Path(tempfile.gettempdir()), SPOOL_PREFIX, tmp_max_age_s
        )
        session = boto3.session.Session(
            aws_access_key_id=access_key, aws_secret_access_key=secret_key, region_name=region
        )
        if session.get_credentials() is None:  # say so, instead of an unsigned request failing
            raise ConfigError(
                "S3 credentials are missing: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
                f"(or a profile) for {endpoint_url or 'the default AWS endpoint'}"
            )
        self.client: Any = session.client(
            "s3",
            endpoint_url=endpoint_url,
            config=Config(
                s3={"addressing_style": "path"},
                retries={"total_max_attempts": max_attempts, "mode": "standard"},
                connect_timeout=connect_timeout_s,
                read_timeout=read_timeout_s,
            ),
        )
        if create_bucket:
            self._ensure_bucket()

    # ---- helpers ----------------------------------------------------------------------------
    def _key(self, sha256: str) -> str:
        return f"{self.prefix}sha256/{sha256[:2]}/{sha256[2:4]}/{sha256}"

    def _ensure_bucket(self) -> None:
        try:
            self.client.head_bucket(Bucket=self.bucket)
            return
        except ClientError as exc:
            if _code(exc) not in _MISSING:
                raise BackendError(f"s3 bucket {self.bucket}: {exc}") from exc
        except BotoCoreError as exc:
            raise self._backend_error(exc) from exc
        try:
            self.client.create_bucket(Bucket=self.bucket)
        except ClientError as exc:
            if _code(exc) not in {"BucketAlreadyOwnedByYou", "BucketAlreadyExists"}:
                raise BackendError(f"cannot create s3 bucket {self.bucket}: {exc}") from exc
        except BotoCoreError as exc:
            raise self._backend_error(exc) from exc

    def _backend_error(self, exc: BotoCoreError) -> Exception:
        """Say what went wrong: no credentials, a timeout, or an unreachable endpoint."""
        where = self.endpoint_url or "the default AWS endpoint"
        if isinstance(exc, NoCredentialsError):
            return ConfigError(
                "S3 credentials are missing: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
                f"(or a profile) for {where}"
            )
        if isinstance(exc, ConnectTimeoutError | ReadTimeoutError):
            return BackendError(
                f"s3 endpoint {where} did not answer in time (TL_S3_CONNECT_TIMEOUT_S / "
                f"TL_S3_READ_TIMEOUT_S): {exc}"
            )
        if isinstance(exc, EndpointConnectionError):
            return BackendError(f"s3 endpoint {where} unreachable: {exc}")
        return BackendError(f"s3 endpoint {where} failed: {exc}")

    # ---- ObjectStore protocol ---------------------------------------------------------------
    def _existing_ok(self, sha256: str) -> bool:
        """Whether the object is stored and hashes to its name (a corrupt one is replaced)."""
        if not self.exists(sha256):
            return False
        body = self._get(sha256)
        try:
            actual, _ = hash_stream(body)
        except BotoCoreError as exc:
            raise BackendError(f"s3 read of sha256:{sha256} failed: {exc}") from exc
        finally:
            body.close()
        if actual == sha256:
            return True
        note_corrupt_object(f"s3://{self.bucket}/{self._key(sha256)}", sha256, actual)
        return False

    def put_fd(self, fd: int, *, max_bytes: int | None = None) -> StoredObject:
        """Spool the descriptor's bytes once while hashing, then upload the spool."""
        tmp_fd, tmp_name = tempfile.mkstemp(prefix=SPOOL_PREFIX)
        tmp = Path(tmp_name)
        try:
            sha, size = copy_hashing(fd, tmp_fd, max_bytes=max_bytes)
            if not self._existing_ok(sha):
                try:
                    self.client.upload_file(str(tmp), self.bucket, self._key(sha))
                except (ClientError, BotoCoreError) as exc:
                    raise BackendError(f"s3 upload of sha256:{sha} failed: {exc}") from exc
        finally:
            tmp.unlink(missing_ok=True)
        return StoredObject(sha, size)

    def put_file(self, path: Path) -> StoredObject:
        """Store a file this process wrote (streamed through one descriptor)."""
        return put_own_file(self, path)

    def put_bytes(self, data: bytes) -> StoredObject:
        """Upload bytes under their SHA-256 unless an intact copy is there already."""
        sha = hashlib.sha256(data).hexdigest()
        if not self._existing_ok(sha):
            try:
                self.client.put_object(Bucket=self.bucket, Key=self._key(sha), Body=data)
            except (ClientError, BotoCoreError) as exc:
                raise BackendError(f"s3 put of sha256:{sha} failed: {exc}") from exc
        return StoredObject(sha, len(data))

    def _get(self, sha256: str) -> Any:
        try:
            return self.client.get_object(Bucket=self.bucket, Key=self._key(sha256))["Body"]
        except ClientError as exc:
            if _code(exc) in _MISSING:
                raise PayloadNotFound(f"no object sha256:{sha256}") from exc
            raise BackendError(f"s3 get of sha256:{sha256} failed: {exc}") from exc
        except BotoCoreError as exc:
            raise BackendError(f"s3 get of sha256:{sha256} failed: {exc}") from exc

    def get_bytes(self, sha256: str) -> bytes:
        """Download and verify the payload. Raises PayloadNotFound, ChecksumMismatch or BackendError."""
        body = self._get(sha256)
        try:
            data: bytes = body.read()
        except BotoCoreError as exc:
            raise BackendError(f"s3 read of sha256:{sha256} failed: {exc}") from exc
        finally:
            body.close()
        return verify(data, sha256, what=f"s3://{self.bucket}/{self._key(sha256)}")

    def copy_verified(self, sha256: str, dest: Sink) -> int:
        """Stream the object to ``dest`` after verifying all of it (bounded memory)."""
        body = self._get(sha256)
        try:
            return spool_verified(
                body, sha256, dest, what=f"s3://{self.bucket}/{self._key(sha256)}"
            )
        except BotoCoreError as exc:
            raise BackendError(f"s3 read of sha256:{sha256} failed: {exc}") from exc
        finally:
            body.close()

    def exists(self, sha256: str) -> bool:
        """True when the bucket holds the object (a HEAD request)."""
        try:
            self.client.head_object(Bucket=self.bucket, Key=self._key(sha256))
        except ClientError as exc:
            if _code(exc) in _MISSING:
                return False
            raise BackendError(f"s3 head of sha256:{sha256} failed: {exc}") from exc
        except BotoCoreError as exc:
            raise BackendError(f"s3 head of sha256:{sha256} failed: {exc}") from exc
        return True

    def local_path(self, sha256: str) -> Path | None:
        """Always ``None``: S3 objects have no local path (callers spool a verified copy)."""
        return None

    def delete(self, sha256: str) -> None:
        """Remove an object (tests and maintenance; content-addressed data is never rewritten)."""
        try:
            self.client.delete_object(Bucket=self.bucket, Key=self._key(sha256))
        except (ClientError, BotoCoreError) as exc:
            raise BackendError(f"s3 delete of sha256:{sha256} failed: {exc}") from exc


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))
