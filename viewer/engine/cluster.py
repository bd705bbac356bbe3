"""Batch export on a Ray cluster (`liif-viewer batch --cluster ADDRESS`), with no shared filesystem.

The driver (this process) does everything that touches files: it reads each photo's bytes, sends them
through Ray, and writes the output bytes it gets back, atomically, then logs the photo as a local batch
does (`viewer.engine.batch.run_batch`). On the cluster, one `PhotoWorker` actor per worker slot loads the
model once, from bytes the driver put in Ray's object store (so the workers need no downloaded weights),
and renders photo after photo with the same code as a local batch (`batch.render_photo`). A slot is a GPU
when the cluster has any (one GPU per actor), else a node (one actor using all of that node's CPUs, so
torch parallelises inside a photo). Photos are the tasks; each actor gets a new one when it finishes.

Ray is an optional dependency (`pip install 'liif-viewer[cluster]'`), imported only here and only when a
cluster is used.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

from viewer.engine.batch import BatchOptions, PendingPhoto, Rendered, describe_error, render_photo
from viewer.engine.cancel import CancelToken, check
from viewer.engine.imageio import atomic_output
from viewer.errors import ArgumentError, ViewerError

INSTALL_HINT = "pip install 'liif-viewer[cluster]'"
#: How long the driver waits for a TCP answer, then for Ray's handshake, then for the workers to start.
CONNECT_TIMEOUT_S = 10.0
INIT_TIMEOUT_S = 60.0
START_TIMEOUT_S = 300.0
#: How often the driver looks at its cancel token while photos are on the cluster.
_POLL_S = 0.2
#: How many times a photo is sent again after the worker holding it died (a lost node).
_RETRIES = 1


def require_ray() -> ModuleType:
    """The `ray` module, or a ViewerError that says how to install it."""
    try:
        import ray
    except ModuleNotFoundError:
        raise ViewerError(f"--cluster needs Ray, which is not installed here: {INSTALL_HINT}") from None
    return ray


def parse_address(address: str) -> tuple[str, int]:
    """(host, port) of `HOST:PORT` or `ray://HOST:PORT` (Ray Client); ArgumentError otherwise."""
    text = address.strip()
    rest = text[len("ray://") :] if text.startswith("ray://") else text
    host, sep, port = rest.rpartition(":")
    host = host.strip("[]")  # [IPv6]:port
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ArgumentError(
            f"invalid --cluster address '{address}': give HOST:PORT (the head's GCS port, 6379 by default) "
            "or ray://HOST:PORT (Ray Client, 10001 by default)"
        )
    return host, int(port)


def check_reachable(address: str, timeout_s: float = CONNECT_TIMEOUT_S) -> None:
    """Fail fast, with one line, when nothing answers at `address` (Ray itself would retry for minutes)."""
    host, port = parse_address(address)
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            pass
    except OSError as exc:
        reason = "timed out" if isinstance(exc, TimeoutError) else (exc.strerror or str(exc))
        raise ViewerError(
            f"cannot reach the Ray cluster at {address} ({reason}); start one with `ray start --head` "
            "and give its address"
        ) from None


def connect(
    address: str, timeout_s: float = CONNECT_TIMEOUT_S, init_timeout_s: float = INIT_TIMEOUT_S
) -> ModuleType:
    """Connect this process to the cluster at `address` as its driver; returns `ray`."""
    ray = require_ray()
    check_reachable(address, timeout_s)
    outcome: list[BaseException | None] = []

    def init() -> None:
        try:
            ray.init(address=address, logging_level=logging.ERROR, log_to_driver=False)
            outcome.append(None)
        except BaseException as exc:
            outcome.append(exc)

    # In a thread: something that accepts connections but is not a Ray head would keep ray.init waiting.
    thread = threading.Thread(target=init, name="liif-ray-connect", daemon=True)
    thread.start()
    thread.join(init_timeout_s)
    if not outcome:
        raise ViewerError(f"no Ray cluster answered at {address} within {init_timeout_s:g} s")
    err = outcome[0]
    if err is not None:
        text = " ".join(str(err).split())[:300] or type(err).__name__
        raise ViewerError(f"cannot connect to the Ray cluster at {address}: {text}")
    return ray


class PhotoWorker:
    """A Ray actor (one per worker slot): loads the model once, then renders photos sent as bytes.

    Runs on a cluster node, where no file of the driver is visible: the photo is written to a private
    temporary folder, exported there exactly as a local batch does, and the output's bytes go back.
    """

    def __init__(
        self,
        model_file: str,
        model_bytes: bytes,
        model_label: str,
        device: str,
        precision: str,
        budget_bytes: int | None,
    ) -> None:
        from viewer.engine.render import Engine
        from viewer.liif.checkpoint import load_model

        with tempfile.TemporaryDirectory(prefix="liif-worker-") as d:  # nothing is left on the node
            path = Path(d) / Path(model_file).name
            path.write_bytes(model_bytes)
            model = load_model(path, "cpu")
        self.engine = Engine(model, device, precision, model_name=model_label)
        self.budget_bytes = budget_bytes

    def describe(self) -> dict[str, Any]:
        """Where this worker runs and what it uses (for the driver's start-up line)."""
        import torch

        return {
            "host": socket.gethostname(),
            "device": str(self.engine.device),
            "precision": self.engine.precision,
            "threads": torch.get_num_threads(),
        }

    def render(
        self, name: str, shown: str, data: bytes, out_suffix: str, options: BatchOptions
    ) -> tuple[bytes | None, float, str | None]:
        """Export one photo (`data`, the file named `name`); returns (output bytes, seconds, None) or
        (None, seconds, the error's line naming the photo as `shown`)."""
        t0 = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="liif-worker-") as d:
            src = Path(d) / Path(name).name
            out = Path(d) / f"output{out_suffix}"
            try:
                src.write_bytes(data)
                render_photo(self.engine, src, out, options, budget_bytes=self.budget_bytes)
                return out.read_bytes(), time.perf_counter() - t0, None
            except Exception as exc:
                message = describe_error(exc, src).replace(str(src), shown)
                return None, time.perf_counter() - t0, message


class ClusterExecutor:
    """Renders a batch's photos on a Ray cluster; use as a context manager (`start` connects and starts
    the workers, leaving raises one-line ViewerErrors; `close` stops them and disconnects)."""

    def __init__(
        self,
        address: str,
        model: str,
        *,
        device: str = "auto",
        precision: str = "auto",
        budget_bytes: int | None = None,
        on_note: Callable[[str], None] | None = None,
    ) -> None:
        parse_address(address)  # a malformed address is a usage error before anything else
        self.address = address
        self.model = model
        self.device = device
        self.precision = precision
        self.budget_bytes = budget_bytes
        self.model_label = model
        self.workers: list[dict[str, Any]] = []
        self._on_note = on_note
        self._ray: ModuleType | None = None
        self._actors: list[Any] = []

    def __enter__(self) -> ClusterExecutor:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> None:
        """Connect, choose the model (`auto`: the official one when the cluster has GPUs, else the fast
        one), put its bytes in the object store, and start one worker per slot."""
        from viewer.engine.weights import AUTO_MODEL, auto_model, resolve_model_path

        ray = connect(self.address)
        self._ray = ray
        try:
            gpus = int(ray.cluster_resources().get("GPU", 0))
            name = self.model
            if name == AUTO_MODEL:
                name = auto_model("cuda" if gpus else "cpu")
            path = resolve_model_path(name)
            self.model_label = name if path.name != name else path.stem
            model_ref = ray.put(path.read_bytes())
            self._actors = self._start_actors(ray, gpus, path.name, model_ref)
            try:
                self.workers = ray.get([a.describe.remote() for a in self._actors], timeout=START_TIMEOUT_S)
            except ray.exceptions.GetTimeoutError:
                raise ViewerError(
                    f"the Ray workers did not start within {START_TIMEOUT_S:g} s; is liif-viewer installed "
                    f"on every node ({INSTALL_HINT})?"
                ) from None
            except ray.exceptions.RayError as exc:
                text = " ".join(str(exc).split())[-300:]
                raise ViewerError(f"the Ray workers could not start: {text}") from None
        except BaseException:
            self.close()
            raise

    def _start_actors(self, ray: ModuleType, gpus: int, model_file: str, model_ref: Any) -> list[Any]:
        worker = ray.remote(PhotoWorker)
        args = (model_file, model_ref, self.model_label, self.device, self.precision, self.budget_bytes)
        if gpus:
            return [worker.options(num_gpus=1, num_cpus=1).remote(*args) for _ in range(gpus)]
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        actors = []
        for node in ray.nodes():
            cpus = float(node.get("Resources", {}).get("CPU", 0))
            if node.get("Alive") and cpus >= 1:
                strategy = NodeAffinitySchedulingStrategy(node_id=node["NodeID"], soft=False)
                actors.append(worker.options(num_cpus=cpus, scheduling_strategy=strategy).remote(*args))
        if not actors:
            raise ViewerError(f"the Ray cluster at {self.address} has no node with a CPU or GPU to work on")
        return actors

    def close(self) -> None:
        """Stop the workers (a photo they were on is dropped: the driver writes nothing for it) and
        disconnect."""
        ray, self._ray = self._ray, None
        if ray is None:
            return
        for a in self._actors:
            with contextlib.suppress(Exception):
                ray.kill(a)
        self._actors = []
        ray.shutdown()

    def run(
        self,
        pending: Sequence[PendingPhoto],
        options: BatchOptions,
        cancel: CancelToken | None,
        progress: Callable[[int], None],
    ) -> Iterator[Rendered]:
        """Send each photo to the next idle worker; write each output as it comes back."""
        ray = self._ray
        if ray is None:
            raise ViewerError("the cluster executor is not started")
        queue: deque[PendingPhoto] = deque(pending)
        tries: dict[int, int] = {}
        idle = list(self._actors)
        inflight: dict[Any, tuple[Any, PendingPhoto]] = {}
        while queue or inflight:
            while idle and queue:
                p = queue.popleft()
                try:
                    data = p.job.source.read_bytes()
                except OSError as exc:
                    yield Rendered(p, 0.0, f"{p.job.source}: cannot read ({exc.strerror or exc})")
                    continue
                actor = idle.pop()
                ref = actor.render.remote(
                    p.job.source.name, str(p.job.source), data, p.job.output.suffix, options
                )
                inflight[ref] = (actor, p)
            if not inflight:
                continue
            ready, _ = ray.wait(list(inflight), num_returns=1, timeout=_POLL_S)
            check(cancel)
            for ref in ready:
                actor, p = inflight.pop(ref)
                try:
                    data_out, seconds, error = ray.get(ref)
                except ray.exceptions.RayActorError:
                    self._actors.remove(actor)
                    n = tries.get(id(p), 0)
                    if n < _RETRIES:
                        tries[id(p)] = n + 1
                        queue.appendleft(p)
                        if self._on_note is not None:
                            self._on_note(f"a Ray worker was lost; sending {p.job.source} to another one")
                    else:
                        yield Rendered(p, 0.0, f"{p.job.source}: the Ray worker rendering it was lost")
                    if not self._actors:
                        raise ViewerError(
                            f"every Ray worker was lost; {len(queue) + len(inflight)} photos were not done"
                        ) from None
                    continue
                except ray.exceptions.RayError as exc:
                    idle.append(actor)
                    text = " ".join(str(exc).split())[-300:]
                    yield Rendered(p, 0.0, f"{p.job.source}: {text}")
                    continue
                idle.append(actor)
                if error is not None or data_out is None:
                    yield Rendered(p, seconds, error or f"{p.job.source}: no output came back")
                    continue
                try:
                    p.job.output.parent.mkdir(parents=True, exist_ok=True)
                    with atomic_output(p.job.output) as fh:
                        fh.write(data_out)
                except (OSError, ViewerError) as exc:
                    yield Rendered(p, seconds, describe_error(exc, p.job.source))
                    continue
                yield Rendered(p, seconds)
