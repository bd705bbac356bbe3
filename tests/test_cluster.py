"""`liif-viewer batch --cluster`: a real Ray head on 127.0.0.1 (`ray start --head`, never a mock) gives the
same outputs as the local batch, within 1/255; bad photos fail alone there too; an unreachable address is
one line. The head is small (2 CPUs, a 200 MB object store) and is stopped by its own process id."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from viewer import cli
from viewer.engine.batch import LOG_NAME

ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'liif-viewer[cluster]')")

SIZE = ["--print", "4x6in", "--dpi", "20"]
START_TIMEOUT_S = 90.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture(scope="module")
def ray_head() -> Iterator[str]:
    """A local Ray head on 127.0.0.1 with its own ports and temporary folder; yields its address."""
    exe = Path(sys.executable).parent / "ray"
    ray_cli = str(exe) if exe.exists() else shutil.which("ray")
    if ray_cli is None:
        pytest.skip("the ray command is not installed")
    temp = tempfile.mkdtemp(prefix="liif-ray-", dir="/tmp")  # short: Ray's socket paths have a length limit
    port = free_port()
    worker_ports = free_port()
    cmd = [
        ray_cli, "start", "--head", "--block", "--disable-usage-stats",
        "--node-ip-address=127.0.0.1", f"--port={port}", f"--temp-dir={temp}",
        "--num-cpus=2", "--num-gpus=0", "--object-store-memory=200000000",
        "--include-dashboard=false", f"--dashboard-port={free_port()}",
        f"--node-manager-port={free_port()}", f"--object-manager-port={free_port()}",
        f"--metrics-export-port={free_port()}",
        f"--dashboard-agent-listen-port={free_port()}", f"--dashboard-agent-grpc-port={free_port()}",
        f"--runtime-env-agent-port={free_port()}",
        f"--min-worker-port={worker_ports}", f"--max-worker-port={worker_ports + 20}",
    ]  # fmt: skip
    log = open(Path(temp) / "head.log", "wb")  # noqa: SIM115 - closed after the head stops
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while b"Ray runtime started" not in (Path(temp) / "head.log").read_bytes() or not _listening(port):
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the Ray head did not start: {(Path(temp) / 'head.log').read_text()[-2000:]}")
            time.sleep(0.5)
        yield f"127.0.0.1:{port}"
    finally:
        if ray.is_initialized():
            ray.shutdown()
        proc.terminate()  # `ray start --block` stops the processes it started when it is told to end
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        log.close()
        shutil.rmtree(temp, ignore_errors=True)


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LIIF_VIEWER_DATA", str(tmp_path / "userdata"))


def photo(path: Path, w: int, h: int, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    base = np.stack([x * 255 // w, y * 255 // h, (x + y) * 127 // (w + h)], axis=2)
    noisy = np.clip(base + rng.integers(-30, 31, (h, w, 3)), 0, 255).astype(np.uint8)
    Image.fromarray(noisy).save(path)


def run(capsys: pytest.CaptureFixture[str], *argv: str | Path) -> tuple[int, str, str]:
    rc = cli.main([str(a) for a in argv])
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_cluster_gives_the_local_outputs(
    ray_head: str, tmp_path: Path, model_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "src"
    photo(src / "a.jpg", 40, 28, 1)
    photo(src / "b.png", 24, 36, 2)
    photo(src / "box" / "c.tif", 32, 32, 3)
    (src / "box" / "cut.jpg").write_bytes((src / "a.jpg").read_bytes()[:300])
    local, remote = tmp_path / "local", tmp_path / "remote"
    rc, _, err = run(capsys, "batch", src, "-o", local, "-r", *SIZE, "--model", model_file)
    assert rc == 1, err
    t0 = time.monotonic()
    rc, stdout, err = run(
        capsys, "batch", src, "-o", remote, "-r", *SIZE, "--model", model_file, "--cluster", ray_head
    )
    assert rc == 1, err
    assert time.monotonic() - t0 < 120
    assert "3 written, 0 skipped (already done), 1 failed" in stdout
    failed = [line for line in err.splitlines() if line.startswith("liif-viewer: failed:")]
    assert len(failed) == 1 and "cut.jpg" in failed[0] and "truncated" in failed[0], err
    assert "/tmp/liif-worker" not in err  # the message names the photo, not the worker's copy
    names = {"a.jpg", "b.png", "box/c.tif"}
    for folder in (local, remote):
        assert {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()} == names | {
            LOG_NAME
        }
    for rel in names:
        with Image.open(local / rel) as a, Image.open(remote / rel) as b:
            assert a.size == b.size and a.info.get("dpi") == b.info.get("dpi")
            diff = np.abs(np.asarray(a, np.int16) - np.asarray(b, np.int16))
        assert diff.max() <= 1, (rel, int(diff.max()))
    records = [json.loads(line) for line in (remote / LOG_NAME).read_text().splitlines()]
    assert sorted(r["status"] for r in records) == ["failed", "ok", "ok", "ok"]
    # A rerun on the cluster skips what is done and rewrites nothing.
    before = {p: p.stat().st_mtime_ns for p in remote.rglob("*") if p.name != LOG_NAME}
    rc, stdout, err = run(
        capsys, "batch", src, "-o", remote, "-r", *SIZE, "--model", model_file, "--cluster", ray_head
    )
    assert rc == 1 and "0 written, 3 skipped" in stdout, err
    assert {p: p.stat().st_mtime_ns for p in remote.rglob("*") if p.name != LOG_NAME} == before


def test_unreachable_cluster_is_one_line(
    tmp_path: Path, model_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    photo(tmp_path / "src" / "a.png", 20, 20, 1)
    out = tmp_path / "out"
    t0 = time.monotonic()
    address = f"127.0.0.1:{free_port()}"  # nothing listens there
    rc, _, err = run(
        capsys, "batch", tmp_path / "src", "-o", out, *SIZE, "--model", model_file, "--cluster", address
    )
    assert rc == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("liif-viewer: error: cannot reach the Ray cluster at "), (
        err
    )
    assert address in lines[0] and "ray start --head" in lines[0]
    assert time.monotonic() - t0 < 15
    assert not out.exists()


def test_cluster_print_options_give_the_local_pixels(
    ray_head: str, tmp_path: Path, model_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--sharpen and --border travel with the batch's options to the workers: the local pixels."""
    photo(tmp_path / "src" / "a.png", 120, 80, 4)  # x2.5 to a 1.5x1 in page at 200 DPI
    options = ["--print", "1x1.5in", "--dpi", "200", "--sharpen", "matte:standard", "--border", "5mm"]
    outputs = {}
    for where, extra in (("local", []), ("remote", ["--cluster", ray_head])):
        out = tmp_path / where
        rc, _, err = run(
            capsys, "batch", tmp_path / "src", "-o", out, *options, "--model", model_file, *extra
        )
        assert rc == 0, err
        with Image.open(out / "a.png") as im:
            outputs[where] = np.asarray(im.convert("RGB"), np.int16)
        records = [json.loads(line) for line in (out / LOG_NAME).read_text().splitlines()]
        assert "sharpen matte:standard; border 5mm" in records[0]["settings"]
    local, remote = outputs["local"], outputs["remote"]
    assert local.shape == remote.shape == (200, 300, 3)
    assert np.abs(local - remote).max() <= 1
    border = 39  # 5 mm at 200 DPI
    assert (remote[:border] == 255).all() and (remote[:, -border:] == 255).all()
    assert (remote[border:-border, border:-border] != 255).any()
