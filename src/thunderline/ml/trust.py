"""Trust in a model folder: ``checksums.txt``, a ``model-signing`` signature, file permissions.

A model folder (``models/<name>/``: ``onnx/model.onnx``, ``keras/model.keras``,
``sample_io.json``, ``VAL_REPORT.json``, ``README.md`` ...) carries two trust files:

``checksums.txt``
    ``sha256sum`` format (``<hex>  <relative path>``), one line per file of the folder except
    itself and the signature. :func:`verify_checksums` refuses a folder without it, a listed
    file that is missing or differs, and a file that is not listed.
``model.sig``
    A `model-signing <https://pypi.org/project/model-signing/>`_ bundle (Sigstore bundle
    format, DSSE envelope) over every file of the folder, signed with an EC P-256 private key
    (:func:`sign_folder`) and verified offline against the trusted public key
    (:func:`verify_signature`). Any added, removed or changed file, another key, or a damaged
    bundle fails verification.

The verifying key is the trust root, so it never comes from the folder it protects: by default
it is the maintainers' public key shipped inside the package (:data:`SHIPPED_PUBLIC_KEY`);
``TL_MODEL_PUBLIC_KEY`` may name another one outside the model root.

:func:`permission_problems` names every path of the chain (the model root folder, the
registry, the key and its folder, every file of the model folder) that group or others may
write or that someone other than the service user or root owns: whoever can replace a link
of the chain could replace the model. The registry applies all three on every load
(``TL_MODEL_SIGNATURE_REQUIRED``); ``thunderline models verify`` applies them without
loading.
"""

from __future__ import annotations

import hashlib
import logging
import os
import stat
from collections.abc import Iterable
from pathlib import Path

from thunderline.errors import ChecksumMismatch
from thunderline.ml.errors import (
    ChecksumsMissingError,
    ModelPermissionError,
    ModelSignatureError,
)
from thunderline.obs import metrics

_log = logging.getLogger("thunderline.ml")
CHECKSUMS_FILE = "checksums.txt"
SIGNATURE_FILE = "model.sig"
PUBLIC_KEY_FILE = "signing_key.pub"
#: The maintainers' public key, shipped inside the package: the default trust root for model
#: signatures (``TL_MODEL_PUBLIC_KEY`` names another one, which must live outside the models).
SHIPPED_PUBLIC_KEY = Path(__file__).resolve().parent / "keys" / "model_signing_key.pub"
_TRUST_FILES = frozenset({CHECKSUMS_FILE, SIGNATURE_FILE})


def file_sha256(path: Path) -> str:
    """SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()


def model_folder_of(model_file: Path) -> Path:
    """The folder a model file belongs to: the parent of ``onnx/``, else the file's folder."""
    parent = model_file.parent
    return parent.parent if parent.name == "onnx" else parent


def folder_files(folder: Path) -> list[str]:
    """Every regular file under ``folder`` (relative POSIX paths, sorted), trust files excluded.

    Symbolic links are listed too (as links), so :func:`verify_checksums` can refuse them.
    """
    found: list[str] = []
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        for name in files + [d for d in dirs if (Path(root) / d).is_symlink()]:
            rel = (Path(root) / name).relative_to(folder).as_posix()
            if rel not in _TRUST_FILES and not name.startswith(".") and name != "__pycache__":
                found.append(rel)
        dirs[:] = [d for d in dirs if not d.startswith(".") and d != "__pycache__"]
    return sorted(found)


def checksums_text(folder: Path) -> str:
    """The ``checksums.txt`` content for ``folder`` as it is now."""
    lines = [f"{file_sha256(folder / rel)}  {rel}" for rel in folder_files(folder)]
    return "\n".join(lines) + "\n"


def write_checksums(folder: Path) -> Path:
    """Write ``folder/checksums.txt`` (every file but itself and the signature)."""
    path = folder / CHECKSUMS_FILE
    path.write_text(checksums_text(folder), encoding="utf-8")
    return path


def read_checksums(folder: Path) -> dict[str, str]:
    """``{relative path: sha256}`` from ``folder/checksums.txt``.

    Raises:
        ChecksumsMissingError: the file is absent, unreadable or malformed (names the file).
    """
    path = folder / CHECKSUMS_FILE
    try:
        text = path.read_text("utf-8")
    except FileNotFoundError:
        raise ChecksumsMissingError(
            f"model folder {folder} has no {CHECKSUMS_FILE}: it cannot be trusted "
            "(write it with `thunderline models sign DIR --key K`)",
            details={"folder": str(folder), "file": str(path)},
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ChecksumsMissingError(
            f"cannot read {path}: {exc}", details={"file": str(path)}
        ) from exc
    listed: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        digest, sep, rel = line.partition("  ")
        if not sep or len(digest) != 64 or not rel or rel.startswith(("/", "../")):
            raise ChecksumsMissingError(
                f"{path}:{number}: not a `<sha256>  <relative path>` line",
                details={"file": str(path), "line": number},
            )
        listed[rel.removeprefix("*")] = digest.lower()
    return listed


def verify_checksums(folder: Path) -> int:
    """Check every file of ``folder`` against ``checksums.txt``; the number of files checked.

    Raises:
        ChecksumsMissingError: no (valid) ``checksums.txt``.
        ChecksumMismatch: a listed file is missing, differs, is a symbolic link, or a file is
            not listed; the message names the file.
    """
    listed = read_checksums(folder)
    present = folder_files(folder)
    unlisted = sorted(set(present) - set(listed))
    if unlisted:
        raise ChecksumMismatch(
            f"{folder / unlisted[0]} is not listed in {folder / CHECKSUMS_FILE}",
            expected="(not listed)",
            actual=unlisted[0],
        )
    for rel, expected in listed.items():
        path = folder / rel
        if path.is_symlink() or not path.is_file():
            raise ChecksumMismatch(
                f"{path} (listed in {CHECKSUMS_FILE}) is missing or not a regular file",
                expected=expected,
                actual="missing",
            )
        actual = file_sha256(path)
        if actual != expected:
            metrics.MODEL_CHECKSUM_MISMATCH.inc()
            _log.warning(
                "[security] Model checksum mismatch: file=%s expected=%s, actual=%s",
                path,
                expected,
                actual,
            )
            raise ChecksumMismatch(
                f"{path} does not match {CHECKSUMS_FILE}", expected=expected, actual=actual
            )
    return len(listed)


def trusted_owners() -> frozenset[int]:
    """The owners a trusted path may have: the service user (this process) and root."""
    return frozenset({0, os.geteuid()})


def permission_problems(paths: Iterable[Path], shallow: Iterable[Path] = ()) -> list[str]:
    """Why the given paths cannot be trusted (one reason per untrusted path).

    A path is untrusted when writable by group or others, or owned by someone other than the
    service user or root. Folders in ``paths`` are checked with everything under
    them; ``shallow`` paths (the model root, the key's folder) only themselves.
    """
    problems: list[str] = []
    owners = trusted_owners()

    def check(path: Path) -> None:
        try:
            info = path.lstat()
        except OSError:
            return
        if stat.S_ISLNK(info.st_mode):
            return
        if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            problems.append(
                f"{path} is writable by group or others (mode {stat.filemode(info.st_mode)})"
            )
        if info.st_uid not in owners:
            problems.append(
                f"{path} is owned by uid {info.st_uid}, not the service user "
                f"(uid {os.geteuid()}) or root"
            )

    for top in shallow:
        check(top)
    for top in paths:
        check(top)
        if top.is_dir() and not top.is_symlink():
            for root, dirs, files in os.walk(top):
                for name in dirs + files:
                    check(Path(root) / name)
    return problems


def check_permissions(paths: Iterable[Path], shallow: Iterable[Path] = ()) -> None:
    """Raise :class:`ModelPermissionError` naming the first path that cannot be trusted."""
    problems = permission_problems(paths, shallow)
    if problems:
        raise ModelPermissionError(
            f"{problems[0]}: refused (chmod go-w, chown to the service user)",
            details={"problems": problems},
        )


def _hashing_config(folder: Path) -> object:
    from model_signing import hashing

    return hashing.Config().set_ignored_paths(paths=[folder / SIGNATURE_FILE])


def sign_folder(folder: Path, private_key: Path) -> Path:
    """Write ``checksums.txt`` and sign the folder with an EC P-256 PEM key; the signature path.

    Raises:
        ModelSignatureError: the key cannot be used (not an EC private key, unreadable).
    """
    from model_signing import signing

    folder = folder.resolve()
    write_checksums(folder)
    signature = folder / SIGNATURE_FILE
    try:
        config = signing.Config().use_elliptic_key_signer(private_key=private_key)
        config.set_hashing_config(_hashing_config(folder))  # type: ignore[arg-type]
        config.sign(folder, signature)
    except Exception as exc:  # model_signing raises ValueError/TypeError/OSError
        raise ModelSignatureError(
            f"cannot sign {folder} with {private_key}: {type(exc).__name__}: {exc}",
            details={"folder": str(folder), "key": str(private_key)},
        ) from exc
    return signature


def verify_signature(folder: Path, public_key: Path) -> None:
    """Verify ``folder/model.sig`` over every file of ``folder`` with ``public_key``.

    Raises:
        ModelSignatureError: no signature, no key, a damaged bundle, another key, or a file
            added, removed or changed since signing; the message names the folder and why.
    """
    from model_signing import verifying

    folder = folder.resolve()
    signature = folder / SIGNATURE_FILE
    if not signature.is_file():
        raise ModelSignatureError(
            f"model folder {folder} is not signed (no {SIGNATURE_FILE})",
            details={"folder": str(folder)},
        )
    if not public_key.is_file():
        raise ModelSignatureError(
            f"public key {public_key} for verifying {folder} does not exist",
            details={"folder": str(folder), "key": str(public_key)},
        )
    try:
        config = verifying.Config().use_elliptic_key_verifier(public_key=public_key)
        config.set_hashing_config(_hashing_config(folder))  # type: ignore[arg-type]
        config.verify(folder, signature)
    except Exception as exc:  # ValueError (mismatch, key), JSONDecodeError, DecodeError ...
        detail = str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
        raise ModelSignatureError(
            f"signature {signature} does not verify with {public_key}: {detail}",
            details={"folder": str(folder), "key": str(public_key)},
        ) from exc
