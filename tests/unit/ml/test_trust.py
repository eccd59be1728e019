"""Model-folder trust: checksums.txt, model-signing signatures, permissions, and the registry gate."""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

import pytest
from tests.unit.ml._helpers import (
    MODELS,
    MODELS_KEY,
    REAL_MODELS,
    copy_models,
    drop_cli_log_handlers,
    sha,
    sign_with_throwaway_key,
    tamper,
    throwaway_key,
    tiny_model,
    write_registry,
)
from typer.testing import CliRunner

from thunderline.errors import ChecksumMismatch
from thunderline.ml import (
    ChecksumsMissingError,
    ModelPermissionError,
    ModelRegistry,
    ModelSignatureError,
    ModelState,
    ModelSupervisor,
)
from thunderline.ml.cli import models_app
from thunderline.ml.trust import (
    CHECKSUMS_FILE,
    SIGNATURE_FILE,
    sign_folder,
    verify_checksums,
    verify_signature,
    write_checksums,
)
from thunderline.obs import metrics

FOLDER = "image_classifier_fixed"
MODEL_FILE = Path(FOLDER) / "onnx" / f"{FOLDER}.onnx"


def _security_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "thunderline.ml" and "[security]" in r.getMessage()
    ]


def test_signed_copy_loads_and_verifies(model_copy: Path) -> None:
    registry = ModelRegistry(model_copy, public_key=MODELS_KEY)
    assert [r.status for r in registry.verify()] == ["ok", "ok", "ok"]
    assert verify_checksums(model_copy / FOLDER) == 1
    verify_signature(model_copy / FOLDER, MODELS_KEY)
    registry.get_model(FOLDER).close()


def test_checksums_name_the_file_that_differs_or_is_unlisted(tmp_path: Path) -> None:
    folder = tmp_path / "m"
    (folder / "onnx").mkdir(parents=True)
    (folder / "onnx" / "model.onnx").write_bytes(b"weights")
    (folder / "README.md").write_text("hello")
    text = write_checksums(folder).read_text()
    assert f"{sha(b'weights')}  onnx/model.onnx" in text and "README.md" in text
    assert verify_checksums(folder) == 2
    (folder / "README.md").write_text("changed")
    with pytest.raises(ChecksumMismatch, match=r"README\.md does not match"):
        verify_checksums(folder)
    write_checksums(folder)
    (folder / "extra.bin").write_bytes(b"x")
    with pytest.raises(ChecksumMismatch, match=r"extra\.bin is not listed"):
        verify_checksums(folder)
    (folder / CHECKSUMS_FILE).unlink()
    with pytest.raises(ChecksumsMissingError, match=rf"{folder} has no checksums\.txt"):
        verify_checksums(folder)


def test_signature_refuses_tampering_another_key_and_a_damaged_bundle(tmp_path: Path) -> None:
    folder = tmp_path / "m"
    (folder / "onnx").mkdir(parents=True)
    (folder / "onnx" / "model.onnx").write_bytes(b"weights")
    private, public = throwaway_key(tmp_path / "keys")
    with pytest.raises(ModelSignatureError, match="is not signed"):
        verify_signature(folder, public)
    sign_folder(folder, private)
    verify_signature(folder, public)
    _, other = throwaway_key(tmp_path / "other")
    with pytest.raises(ModelSignatureError, match="does not verify"):
        verify_signature(folder, other)
    (folder / "onnx" / "model.onnx").write_bytes(b"weightz")
    with pytest.raises(ModelSignatureError, match=r"Hash mismatch for 'onnx/model\.onnx'"):
        verify_signature(folder, public)
    sign_folder(folder, private)
    bundle = json.loads((folder / SIGNATURE_FILE).read_text())
    sig = bundle["dsseEnvelope"]["signatures"][0]["sig"]
    bundle["dsseEnvelope"]["signatures"][0]["sig"] = ("A" if sig[0] != "A" else "B") + sig[1:]
    (folder / SIGNATURE_FILE).write_text(json.dumps(bundle))
    with pytest.raises(ModelSignatureError, match=rf"{SIGNATURE_FILE} does not verify"):
        verify_signature(folder, public)


def test_an_ed25519_key_cannot_sign(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    key = tmp_path / "ed.pem"
    key.write_bytes(
        ed25519.Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "a").write_text("a")
    with pytest.raises(ModelSignatureError, match="cannot sign"):
        sign_folder(tmp_path / "m", key)


def test_tampered_signature_refuses_the_model_and_the_stage_is_unhealthy(
    model_copy: Path, caplog: pytest.LogCaptureFixture
) -> None:
    bundle_path = model_copy / FOLDER / SIGNATURE_FILE
    bundle = json.loads(bundle_path.read_text())
    sig = bundle["dsseEnvelope"]["signatures"][0]["sig"]
    bundle["dsseEnvelope"]["signatures"][0]["sig"] = ("A" if sig[0] != "A" else "B") + sig[1:]
    bundle_path.write_text(json.dumps(bundle))
    registry = ModelRegistry(model_copy, public_key=MODELS_KEY)
    with (
        caplog.at_level(logging.WARNING, logger="thunderline.ml"),
        pytest.raises(ModelSignatureError, match=str(bundle_path)) as info,
    ):
        registry.get_model(FOLDER)
    assert info.value.reason == "model_signature"
    assert any("refused" in line and str(bundle_path) in line for line in _security_lines(caplog))
    supervisor = ModelSupervisor(registry, adaptive=False, health_interval_s=3600)
    try:
        [health] = supervisor.start(preload=[FOLDER])
        assert health.state is ModelState.UNHEALTHY and "model_signature" in str(health.last_error)
    finally:
        supervisor.close()
    status = {r.name: r for r in registry.verify()}[FOLDER]
    assert status.status == "untrusted" and "does not verify" in status.detail


def test_unsigned_folder_is_refused_unless_allowed_or_not_required(
    model_copy: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (model_copy / FOLDER / SIGNATURE_FILE).unlink()
    with pytest.raises(ModelSignatureError, match="is not signed"):
        ModelRegistry(model_copy, public_key=MODELS_KEY).get_model(FOLDER)
    ModelRegistry(model_copy, public_key=MODELS_KEY, signature_required=False).get_model(
        FOLDER
    ).close()
    before = metrics.sample("thunderline_ml_untrusted_model_loaded_total")
    with caplog.at_level(logging.WARNING, logger="thunderline.ml"):
        ModelRegistry(model_copy, public_key=MODELS_KEY, allow_untrusted=True).get_model(
            FOLDER
        ).close()
    assert metrics.sample("thunderline_ml_untrusted_model_loaded_total") == before + 1
    assert any("loading untrusted model" in line for line in _security_lines(caplog))


def test_folder_without_checksums_is_refused_naming_it(model_copy: Path) -> None:
    (model_copy / FOLDER / CHECKSUMS_FILE).unlink()
    with pytest.raises(ChecksumsMissingError, match=rf"{model_copy / FOLDER} has no checksums"):
        ModelRegistry(model_copy, public_key=MODELS_KEY).get_model(FOLDER)
    status = {r.name: r for r in ModelRegistry(model_copy, public_key=MODELS_KEY).verify()}[FOLDER]
    assert status.status == "untrusted" and "no checksums.txt" in status.detail


def test_a_changed_file_beside_the_model_is_a_checksum_mismatch(model_copy: Path) -> None:
    (model_copy / FOLDER / "README.md").write_text("not signed")
    with pytest.raises(ChecksumMismatch, match=r"README\.md is not listed"):
        ModelRegistry(model_copy, public_key=MODELS_KEY).get_model(FOLDER)
    assert {r.name: r.status for r in ModelRegistry(model_copy, public_key=MODELS_KEY).verify()}[
        FOLDER
    ] == "mismatch"


@pytest.mark.parametrize("target", [FOLDER, str(MODEL_FILE), "registry.toml", "."])
def test_group_or_other_writable_paths_are_refused(model_copy: Path, target: str) -> None:
    path = (model_copy / target).resolve()
    path.chmod(path.stat().st_mode | 0o020)
    with pytest.raises(ModelPermissionError, match=rf"{path} is writable by group or others"):
        ModelRegistry(model_copy, public_key=MODELS_KEY).get_model(FOLDER)
    ModelRegistry(model_copy, public_key=MODELS_KEY, allow_untrusted=True).get_model(FOLDER).close()


def test_sign_command_makes_a_folder_loadable(model_copy: Path, tmp_path: Path) -> None:
    folder = model_copy / FOLDER
    tamper(folder / "onnx" / f"{FOLDER}.onnx")
    (folder / CHECKSUMS_FILE).unlink()
    (folder / SIGNATURE_FILE).unlink()
    private, public = throwaway_key(tmp_path / "keys")
    result = CliRunner().invoke(models_app, ["sign", str(folder), "--key", str(private)])
    assert result.exit_code == 0, result.output
    assert (folder / SIGNATURE_FILE).is_file() and (folder / CHECKSUMS_FILE).is_file()
    drop_cli_log_handlers()  # the CLI's log handler is bound to CliRunner's closed stream
    registry = ModelRegistry(model_copy, public_key=public)
    # the signature is good, but the registry's own SHA-256 still catches the changed weights
    with pytest.raises(ChecksumMismatch):
        registry.get_model(FOLDER)
    bad = CliRunner().invoke(
        models_app, ["sign", str(tmp_path / "nope"), "--key", str(private)], env={"COLUMNS": "300"}
    )
    assert bad.exit_code == 2 and "not a folder" in bad.output


def test_verify_command_applies_external_data_confinement(tmp_path: Path) -> None:
    folder = tmp_path / "models"
    folder.mkdir()
    (tmp_path / "secret.bin").write_bytes(b"\0" * 48)
    data = tiny_model(external="../secret.bin").SerializeToString()
    (folder / "ext.onnx").write_bytes(data)
    write_registry(folder, [{"name": "ext", "path": "ext.onnx", "sha256": sha(data)}])
    sign_with_throwaway_key(folder)
    result = CliRunner().invoke(
        models_app,
        ["verify"],
        env={
            "TL_ONNX_MODEL_DIR": str(folder),
            "TL_MODEL_PUBLIC_KEY": str(MODELS_KEY),
            "COLUMNS": "250",
        },
    )
    assert result.exit_code == 1, result.output
    assert "untrusted" in result.output and "outside" in result.output
    assert "ok" not in result.output.split("ext", 1)[1].split()[0]


def test_models_copied_from_the_session_fixture_are_private(tmp_path: Path) -> None:
    copy = copy_models(tmp_path / "m", MODELS)
    assert not [p for p in copy.rglob("*") if p.stat().st_mode & 0o022]


def _verify_cli(model_dir: Path, key: Path | None = None) -> tuple[int, str]:
    env = {"TL_ONNX_MODEL_DIR": str(model_dir), "COLUMNS": "400"}
    if key is not None:
        env["TL_MODEL_PUBLIC_KEY"] = str(key)
    result = CliRunner().invoke(models_app, ["verify"], env=env)
    drop_cli_log_handlers()
    return result.exit_code, result.output


def test_a_swapped_key_a_resigned_tampered_model_and_an_edited_registry_fail_verify(
    tmp_path: Path,
) -> None:
    """The attack of issue 22: whoever can write the model folder replaces the key in it,
    tampers with a model, re-signs it and edits the registry. The trust root (the key shipped
    with the package) is out of their reach, so verify fails."""
    models = copy_models(tmp_path / "models", REAL_MODELS)
    assert _verify_cli(models)[0] == 0  # the committed models verify with the shipped key
    private, public = throwaway_key(tmp_path / "attacker")
    shutil.copyfile(public, models / "signing_key.pub")
    onnx_file = models / "image_classifier" / "onnx" / "model.onnx"
    tamper(onnx_file)
    sign_folder(models / "image_classifier", private)
    registry = models / "registry.toml"
    entry = ModelRegistry(models).entry("image_classifier")
    registry.write_text(
        registry.read_text().replace(str(entry.sha256), sha(onnx_file.read_bytes()))
    )
    code, output = _verify_cli(models)
    assert code == 1, output
    result = {r.name: r for r in ModelRegistry(models).verify()}["image_classifier"]
    assert result.status == "untrusted" and "does not verify" in result.detail, result
    # pointing TL_MODEL_PUBLIC_KEY at the swapped key inside the models is refused too
    assert _verify_cli(models, models / "signing_key.pub")[0] == 1
    inside = ModelRegistry(models, public_key=models / "signing_key.pub").verify()
    assert all("inside the model folder" in r.detail for r in inside), inside
    with pytest.raises(ModelSignatureError):
        ModelRegistry(models).get_model("image_classifier")


@pytest.mark.parametrize("target", [".", "registry.toml", FOLDER])
def test_a_writable_or_foreign_owned_link_of_the_chain_fails_verify(
    model_copy: Path, target: str
) -> None:
    assert _verify_cli(model_copy, MODELS_KEY)[0] == 0
    path = (model_copy / target).resolve()
    path.chmod(path.stat().st_mode | 0o002)
    assert _verify_cli(model_copy, MODELS_KEY)[0] == 1
    details = [r.detail for r in ModelRegistry(model_copy, public_key=MODELS_KEY).verify()]
    assert any(f"{path} is writable by group or others" in d for d in details), details
    path.chmod(path.stat().st_mode & ~0o022)
    if os.geteuid() != 0:
        pytest.skip("giving a file to another user needs root")
    os.chown(path, 4242, -1)  # another user's file in the chain
    assert _verify_cli(model_copy, MODELS_KEY)[0] == 1
    details = [r.detail for r in ModelRegistry(model_copy, public_key=MODELS_KEY).verify()]
    assert any(f"{path} is owned by uid 4242" in d for d in details), details


@pytest.mark.parametrize("target", ["key", "key folder"])
def test_a_writable_trusted_key_or_key_folder_is_refused(
    model_copy: Path, tmp_path: Path, target: str
) -> None:
    keys = tmp_path / "trusted-keys"
    keys.mkdir(mode=0o755)
    key = keys / "models.pub"
    shutil.copyfile(MODELS_KEY, key)
    key.chmod(0o644)
    ModelRegistry(model_copy, public_key=key).get_model(FOLDER).close()
    path = key if target == "key" else keys
    path.chmod(path.stat().st_mode | 0o020)
    with pytest.raises(ModelPermissionError, match=rf"{path} is writable by group or others"):
        ModelRegistry(model_copy, public_key=key).get_model(FOLDER)
