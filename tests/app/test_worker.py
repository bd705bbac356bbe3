"""The render worker without Qt: latest request wins, cancellation, adoption, fallbacks, error reports."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from functools import partial
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import pytest
from PIL import Image

from viewer.app import planning as pl
from viewer.app.messages import (
    EncodeDone,
    EngineConfig,
    EngineFailed,
    EngineLoaded,
    Notice,
    RequestDone,
    TileRequest,
    TileResult,
    WorkerError,
)
from viewer.app.planning import Viewport
from viewer.app.worker import BicubicWorker, RenderWorker, StoreOptions, to_bgra
from viewer.errors import WeightsMissingError

from .helpers import Gated, make_tiny_engine, textured

if TYPE_CHECKING:
    from viewer.engine.imageio import LoadedImage
    from viewer.engine.render import Engine

CONFIG = EngineConfig("tiny", "cpu", "fp32")


class Events:
    """Collects worker events (from any thread) and waits for one that matches."""

    def __init__(self) -> None:
        self.items: list[object] = []
        self._cond = threading.Condition()

    def emit(self, ev: object) -> None:
        with self._cond:
            self.items.append(ev)
            self._cond.notify_all()

    def wait(self, pred: Callable[[object], bool], timeout: float = 30.0) -> Any:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for ev in self.items:
                    if pred(ev):
                        return ev
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no matching event; got {[type(e).__name__ for e in self.items]}")
                self._cond.wait(left)

    def of(self, cls: type) -> list[Any]:
        with self._cond:
            return [e for e in self.items if isinstance(e, cls)]


@pytest.fixture
def events() -> Events:
    return Events()


@pytest.fixture
def image() -> SimpleNamespace:
    return SimpleNamespace(pixels=textured(64, 48))


def start_worker(
    events: Events,
    factory: Callable[[EngineConfig], Any],
    image: Any,
    content: int = 1,
    config: EngineConfig = CONFIG,
) -> RenderWorker:
    w = RenderWorker(events.emit, factory)
    w.start()
    w.configure(config, content)
    w.open_image(image, content)
    events.wait(lambda e: isinstance(e, EncodeDone) and e.content == content)
    return w


@pytest.fixture
def worker_factory(events: Events) -> Iterator[Callable[..., RenderWorker]]:
    made: list[RenderWorker] = []

    def make(
        factory: Callable[[EngineConfig], Any], image: Any, content: int = 1, config: EngineConfig = CONFIG
    ) -> RenderWorker:
        w = start_worker(events, factory, image, content, config)
        made.append(w)
        return w

    yield make
    for w in made:
        assert w.close(10)


def request(
    gen: int, zoom: float, content: int = 1, cells: list[tuple[int, int]] | None = None
) -> TileRequest:
    vp = pl.clamp_centre(Viewport(64, 48, 100, 80, 1.0, zoom, 32, 24))
    plan = pl.plan_tiles(vp, margin=0, tile=64)
    order = cells if cells is not None else list(plan.order)
    specs = tuple(pl.tile_spec(vp, tx, ty, tile=64) for tx, ty in order)
    return TileRequest(gen, content, "liif", specs, time.perf_counter())


def test_latest_request_wins_and_the_running_tile_is_cancelled(events: Events, worker_factory, image) -> None:
    gate = threading.Event()
    gated = Gated(make_tiny_engine(), gate)
    w = worker_factory(lambda c: gated, image)
    first, second = request(1, 2.0), request(2, 3.0)
    w.submit(first)
    assert gated.entered.wait(30)
    w.submit(second)
    assert gated.tokens[0].cancelled  # level 2: the tile in progress was told to stop
    gate.set()
    events.wait(lambda e: isinstance(e, RequestDone) and e.generation == 2)
    results = events.of(TileResult)
    assert results and all(r.generation == 2 for r in results)
    assert {r.key for r in results} == second.key_set


def test_a_tile_still_wanted_is_adopted_not_thrown_away(events: Events, worker_factory, image) -> None:
    gate = threading.Event()
    gated = Gated(make_tiny_engine(), gate)
    w = worker_factory(lambda c: gated, image)
    first = request(1, 4.0, cells=[(1, 1), (0, 0)])
    second = request(2, 4.0, cells=[(1, 1), (2, 2)])
    w.submit(first)
    assert gated.entered.wait(30)
    w.submit(second)
    gate.set()
    events.wait(lambda e: isinstance(e, RequestDone) and e.generation == 2)
    delivered = {(r.key.tx, r.key.ty): r.generation for r in events.of(TileResult)}
    assert delivered == {(1, 1): 2, (2, 2): 2}
    assert len(gated.tokens) == 2  # (1, 1) was rendered once, (0, 0) never


def test_tiles_equal_the_engine_render(events: Events, worker_factory, image) -> None:
    engine = make_tiny_engine()
    w = worker_factory(lambda c: engine, image)
    req = request(1, 2.5)
    w.submit(req)
    events.wait(lambda e: isinstance(e, RequestDone))
    from viewer.engine.render import SourceRect

    fm = engine.encode(image.pixels)
    for r in events.of(TileResult):
        spec = next(s for s in req.tiles if s.key == r.key)
        ref = engine.render(fm, SourceRect(*spec.rect), spec.out_w, spec.out_h, window=spec.window)
        np.testing.assert_array_equal(r.pixels, to_bgra(ref))


def test_missing_weights_is_reported_and_the_worker_lives_on(events: Events, image) -> None:
    def factory(config: EngineConfig) -> Any:
        if config.model == "absent":
            raise WeightsMissingError(
                "the model 'absent' is not downloaded yet; run: liif-viewer fetch-weights"
            )
        return make_tiny_engine()

    w = RenderWorker(events.emit, factory)
    w.start()
    try:
        w.configure(EngineConfig("absent"), 1)
        failed = events.wait(lambda e: isinstance(e, EngineFailed))
        assert failed.missing_weights and "fetch-weights" in failed.message
        w.configure(CONFIG, 2)
        w.open_image(image, 3)
        events.wait(lambda e: isinstance(e, EncodeDone) and e.content == 3)
    finally:
        assert w.close(10)


def test_an_unexpected_error_reaches_the_person(events: Events, worker_factory, image) -> None:
    class Broken:
        def __init__(self, engine: Any) -> None:
            self._engine = engine

        def __getattr__(self, name: str) -> Any:
            return getattr(self._engine, name)

        def render(self, *a: Any, **k: Any) -> np.ndarray:
            raise RuntimeError("kaboom")

    w = worker_factory(lambda c: Broken(make_tiny_engine()), image)
    w.submit(request(1, 2.0))
    err = events.wait(lambda e: isinstance(e, WorkerError))
    assert err.internal and "kaboom" in err.message
    assert w.alive
    assert len(events.of(WorkerError)) == 1  # one message, not one per tile


class FakeGpu:
    """An engine that claims to be on a GPU and always runs out of memory."""

    def __init__(self, engine: Any) -> None:
        import torch

        self._engine = engine
        self.device = torch.device("cuda")
        self.chunk = 4096
        self.encode_budget_bytes = 128 << 20

    def __getattr__(self, name: str) -> Any:
        return getattr(self._engine, name)

    def render(self, *a: Any, **k: Any) -> np.ndarray:
        import torch

        raise torch.OutOfMemoryError("CUDA out of memory (simulated)")


def test_out_of_gpu_memory_falls_back_to_the_cpu_and_says_so(events: Events, worker_factory, image) -> None:
    gpu = EngineConfig("tiny", "cuda", "auto")
    w = worker_factory(
        lambda c: FakeGpu(make_tiny_engine()) if c.device != "cpu" else make_tiny_engine(), image, config=gpu
    )
    w.submit(request(1, 2.0))
    events.wait(lambda e: isinstance(e, RequestDone))
    loaded = [e for e in events.of(EngineLoaded) if e.fallback]
    assert loaded and loaded[0].device_type == "cpu"
    notice = events.wait(lambda e: isinstance(e, Notice) and e.dialog)
    assert "CPU" in notice.message


def test_encode_out_of_memory_retries_smaller_then_cpu(events: Events, image) -> None:
    """A tile's encode that runs out of GPU memory is retried in smaller pieces, then on the CPU."""
    import torch

    budgets: list[int] = []

    class OomEncode(FakeGpu):
        def render(self, *a: Any, **k: Any) -> np.ndarray:
            budgets.append(self.encode_budget_bytes)
            raise torch.OutOfMemoryError("CUDA out of memory while encoding (simulated)")

    w = RenderWorker(
        events.emit,
        lambda c: cast("Engine", OomEncode(make_tiny_engine())) if c.device != "cpu" else make_tiny_engine(),
    )
    w.start()
    try:
        w.configure(EngineConfig("tiny", "cuda", "auto"), 1)
        w.open_image(image, 1)
        events.wait(lambda e: isinstance(e, EncodeDone))
        w.submit(request(1, 2.0))
        events.wait(lambda e: isinstance(e, RequestDone))
        msgs = [n.message for n in events.of(Notice)]
        assert any("smaller pieces" in m for m in msgs) and any("CPU" in m for m in msgs)
        assert budgets == sorted(budgets, reverse=True) and len(budgets) >= 2 and budgets[-1] < budgets[0]
        assert events.of(TileResult), "the view was refined on the CPU in the end"
    finally:
        assert w.close(10)


def test_a_new_photo_cancels_the_encode_in_progress(events: Events, image) -> None:
    """Encoding happens inside a tile's render: a new photo stops it between encode pieces, and the old
    photo's tile is never delivered."""
    started = threading.Event()

    class SlowEncode:
        def __init__(self, engine: Any) -> None:
            self._engine = engine

        def __getattr__(self, name: str) -> Any:
            return getattr(self._engine, name)

        def open_store(self, pixels: np.ndarray, **kw: Any) -> Any:
            store = self._engine.open_store(pixels, **kw)
            encode = store._encode
            if pixels.shape[0] == 48:

                def slow(y0: int, y1: int, x0: int, x1: int, cancel: Any) -> Any:
                    started.set()
                    deadline = time.monotonic() + 30
                    while not cancel.cancelled and time.monotonic() < deadline:
                        time.sleep(0.01)
                    cancel.raise_if_cancelled()
                    return encode(y0, y1, x0, x1, cancel)

                store._encode = slow
            return store

    w = RenderWorker(events.emit, lambda c: cast("Engine", SlowEncode(make_tiny_engine())))
    w.set_store_options(StoreOptions(disk_bytes=0))  # encode for real: no tile may come from the disk cache
    w.start()
    try:
        w.configure(CONFIG, 1)
        w.open_image(image, 2)
        events.wait(lambda e: isinstance(e, EncodeDone) and e.content == 2)
        w.submit(request(1, 2.0, content=2))
        assert started.wait(30)
        w.open_image(cast("LoadedImage", SimpleNamespace(pixels=textured(40, 30))), 3)
        events.wait(lambda e: isinstance(e, EncodeDone) and e.content == 3)
        w.submit(request(2, 2.0, content=3))
        events.wait(lambda e: isinstance(e, RequestDone) and e.generation == 2)
        assert {r.content for r in events.of(TileResult)} == {3}
    finally:
        assert w.close(10)


def test_bicubic_tiles_match_pillow(events: Events) -> None:
    rgb8 = textured(64, 48)
    w = BicubicWorker(events.emit)
    w.start()
    try:
        w.set_source(1, rgb8)
        req = TileRequest(1, 1, "bicubic", request(1, 3.0).tiles, time.perf_counter())
        w.submit(req)
        events.wait(lambda e: isinstance(e, RequestDone))
        padded = Image.fromarray(np.pad(rgb8, ((2, 2), (2, 2), (0, 0)), mode="edge"))
        for r in events.of(TileResult):
            spec = next(s for s in req.tiles if s.key == r.key)
            x, y, tw, th = spec.rect
            _, _, r1, c1 = spec.window
            box = (x + 2, y + 2, x + c1 * tw / spec.out_w + 2, y + r1 * th / spec.out_h + 2)
            ref = np.asarray(padded.resize((c1, r1), Image.Resampling.BICUBIC, box=box))
            np.testing.assert_array_equal(r.pixels[..., 2::-1], ref)
    finally:
        assert w.close(10)


def edge_request(gen: int, zoom: float = 2.5) -> tuple[TileRequest, Viewport]:
    """A request of the visible parts and rests of the tiles a small canvas cuts (64 px tiles)."""
    vp = pl.pan_by(pl.clamp_centre(Viewport(64, 48, 90, 70, 1.0, zoom, 32, 24)), 7, 5)
    specs = [
        spec
        for tx, ty in pl.visible_range(vp, 64).cells()
        if pl.on_canvas(vp, tx, ty, 64) != pl.tile_spec(vp, tx, ty, tile=64).window
        for spec in pl.edge_specs(vp, tx, ty, 64)
    ]
    assert specs
    return TileRequest(gen, 1, "liif", tuple(specs), time.perf_counter()), vp


def test_edge_parts_equal_the_whole_tiles_pixels(events: Events, worker_factory, image) -> None:
    engine = make_tiny_engine()
    w = worker_factory(lambda c: engine, image)
    req, _ = edge_request(1)
    w.submit(req)
    events.wait(lambda e: isinstance(e, TileResult) and e.spec == req.tiles[-1])
    from viewer.engine.render import SourceRect

    fm = engine.encode(image.pixels)
    results = events.of(TileResult)
    assert {r.spec for r in results} == set(req.tiles)
    for r in results:
        spec = r.spec
        rows, cols = spec.shape
        whole = to_bgra(
            engine.render(fm, SourceRect(*spec.rect), spec.out_w, spec.out_h, window=(0, 0, rows, cols))
        )
        r0, c0, r1, c1 = spec.window
        np.testing.assert_array_equal(r.pixels, whole[r0:r1, c0:c1])


def test_a_running_part_is_adopted_only_by_the_same_part(events: Events, worker_factory, image) -> None:
    gate = threading.Event()
    gated = Gated(make_tiny_engine(), gate)
    w = worker_factory(lambda c: gated, image)
    req, _ = edge_request(1)
    part, rest = req.tiles[0], req.tiles[1]
    assert (part.part, rest.key) == ("visible", part.key) and rest.window != part.window
    w.submit(TileRequest(1, 1, "liif", (part,), time.perf_counter()))
    assert gated.entered.wait(30)
    w.submit(TileRequest(2, 1, "liif", (part, rest), time.perf_counter()))
    w.submit(TileRequest(3, 1, "liif", (rest,), time.perf_counter()))
    assert gated.tokens[0].cancelled  # request 3 wants another window of that tile: stop this one
    gate.set()
    events.wait(lambda e: isinstance(e, TileResult) and e.spec == rest and e.generation == 3)
    assert len(gated.tokens) == 2  # the part, then the rest (request 2's copy of the part was not run)


class StoreSpy:
    """Delegates to a real engine and keeps every feature store it opens."""

    def __init__(self, engine: Any) -> None:
        self._engine = engine
        self.stores: list[Any] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._engine, name)

    def open_store(self, pixels: np.ndarray, **kw: Any) -> Any:
        store = self._engine.open_store(pixels, **kw)
        self.stores.append(store)
        return store


def test_reopening_a_photo_takes_its_tiles_from_the_disk_cache(events: Events, image, tmp_path) -> None:
    spy = StoreSpy(make_tiny_engine())
    w = RenderWorker(events.emit, lambda c: cast("Engine", spy))
    w.set_store_options(StoreOptions(disk_bytes=64 << 20, disk_dir=str(tmp_path / "cache")))
    w.start()
    try:
        w.configure(CONFIG, 1)
        w.open_image(image, 1)
        w.submit(request(1, 2.0))
        events.wait(lambda e: isinstance(e, RequestDone) and e.generation == 1)
        w.open_image(cast("LoadedImage", SimpleNamespace(pixels=image.pixels.copy())), 2)
        events.wait(lambda e: isinstance(e, EncodeDone) and e.content == 2)
        w.submit(request(2, 2.0, content=2))
        events.wait(lambda e: isinstance(e, RequestDone) and e.generation == 2)
    finally:
        assert w.close(10)
    first, second = spy.stores[-2], spy.stores[-1]
    assert first.encoded > 0 and first.from_disk == 0
    assert second.encoded == 0 and second.from_disk == first.encoded
    a = {r.key: r.pixels for r in events.of(TileResult) if r.generation == 1}
    b = {r.key: r.pixels for r in events.of(TileResult) if r.generation == 2}
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def is_done(e: object, generation: int) -> bool:
    return isinstance(e, RequestDone) and e.generation == generation


def test_an_unusable_disk_cache_is_said_once_and_the_view_still_refines(
    events: Events, image, tmp_path
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("a file where the cache folder would go")
    w = RenderWorker(events.emit, lambda c: make_tiny_engine())
    w.set_store_options(StoreOptions(disk_bytes=64 << 20, disk_dir=str(blocker / "cache")))
    w.start()
    try:
        w.configure(CONFIG, 1)
        for n in (1, 2):
            w.open_image(image, n)
            w.submit(request(n, 2.0, content=n))
            events.wait(partial(is_done, generation=n))
    finally:
        assert w.close(10)
    notices = [e.message for e in events.of(Notice) if "Feature cache" in e.message]
    assert len(notices) == 1 and "cache" in notices[0]
    assert {r.content for r in events.of(TileResult)} == {1, 2}


def test_what_an_export_leaves_out_reaches_the_person_as_a_notice(events: Events, tmp_path) -> None:
    from viewer.app.messages import ExportFinished, ExportJob
    from viewer.engine.export import plan_export
    from viewer.engine.imageio import load_image
    from viewer.engine.printsize import PixelSize

    exif = Image.Exif()
    exif.get_ifd(0x8769)[0x927C] = b"\x01" * 100_000  # a maker note larger than a JPEG segment holds
    Image.fromarray(textured(40, 30)).save(tmp_path / "src.png", exif=exif.tobytes())
    loaded = load_image(tmp_path / "src.png")
    w = RenderWorker(events.emit, lambda c: make_tiny_engine())
    w.set_store_options(StoreOptions(disk_bytes=0))
    w.start()
    try:
        w.configure(CONFIG, 1)
        w.open_image(loaded, 1)
        plan = plan_export(40, 30, None, PixelSize(80, 60))
        w.export(ExportJob(1, 1, plan, tmp_path / "out.jpg", 90))
        events.wait(lambda e: isinstance(e, ExportFinished))
    finally:
        assert w.close(10)
    notes = [e.message for e in events.of(Notice) if e.message.startswith("Export:")]
    assert len(notes) == 1 and "EXIF" in notes[0]
    assert (tmp_path / "out.jpg").is_file()


def test_a_view_is_encoded_in_two_passes_its_first_tile_and_the_rest(events: Events) -> None:
    """The first tile's latents, then every visible tile's in one pass, the projection's rim included: no
    edge tile is left to encode alone later, halo and all (that had cost a 400% view of a blurred 12 MP
    photo 25 more passes with liif-deblur-lm)."""
    engine = make_tiny_engine()
    passes: list[tuple[int, int, int, int]] = []
    encode = engine.encode_region

    def counted(pixels: np.ndarray, y0: int, y1: int, x0: int, x1: int, *args: Any) -> Any:
        passes.append((y0, y1, x0, x1))
        return encode(pixels, y0, y1, x0, x1, *args)

    engine.encode_region = counted
    photo = SimpleNamespace(pixels=textured(320, 240))
    w = start_worker(events, lambda c: engine, photo)
    try:
        vp = pl.clamp_centre(Viewport(320, 240, 256, 192, 1.0, 4.0, 170.0, 110.0))
        plan = pl.plan_tiles(vp, margin=0, tile=64)
        specs = tuple(pl.tile_spec(vp, tx, ty, tile=64) for tx, ty in plan.order)
        assert len(specs) > 4 and all(s.visible for s in specs)
        w.submit(TileRequest(1, 1, "liif", specs, time.perf_counter()))
        events.wait(lambda e: is_done(e, 1))
    finally:
        assert w.close(10)
    assert len(events.of(TileResult)) == len(specs)
    assert len(passes) == 2, passes


@pytest.mark.parametrize(("soft", "said"), [(True, True), (False, False)])
def test_a_soft_photo_gets_the_deblur_model_suggested_once(events: Events, soft: bool, said: bool) -> None:
    """With a model that does not deblur, a photo that reads soft gets one notice naming the installed deblur
    model for this device (on a CPU the latent-modulated one), once per opening (a change of model does not
    repeat it); a sharp photo gets none."""
    from test_photo_gate import _blurred, _texture

    from viewer.engine.weights import deblur_suggestion

    found = deblur_suggestion("cpu")
    assert found is not None and found.name == "liif-deblur-lm" and 0 < found.opens_at < 1
    pixels = (_blurred(_texture(96, 128)) if soft else _texture(96, 128)) * 255
    photo = SimpleNamespace(pixels=pixels.round().astype(np.uint8))
    w = start_worker(events, lambda c: make_tiny_engine(), photo)

    def hints() -> list[str]:
        return [n.message for n in events.of(Notice) if n.message.startswith("Soft photo")]

    try:
        w.submit(request(1, 2.0))
        events.wait(lambda e: is_done(e, 1))
        assert len(hints()) == (1 if said else 0), hints()
        if said:
            assert hints()[0].endswith(f"Model ▸ {found.label}")
        # Another model on the same photo: not said again. The photo opened again: said again.
        w.configure(CONFIG, 2)
        events.wait(lambda e: isinstance(e, EncodeDone) and e.content == 2)
        w.submit(request(2, 2.0, content=2))  # taken after the store's opening, hint and all
        events.wait(lambda e: is_done(e, 2))
        assert len(hints()) == (1 if said else 0), hints()
        reopened: Any = SimpleNamespace(pixels=photo.pixels)  # a new opening of the same photo
        w.open_image(reopened, 3)
        events.wait(lambda e: isinstance(e, EncodeDone) and e.content == 3)
    finally:
        assert w.close(10)
    assert len(hints()) == (2 if said else 0), hints()


def test_no_deblur_model_is_suggested_where_none_is_installed(tmp_path) -> None:
    from viewer.engine.weights import deblur_suggestion

    assert deblur_suggestion("cpu", [tmp_path]) is None
