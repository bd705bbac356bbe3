"""The lazy feature store: any set of tiles equals the whole-photo encode; budget, disk cache, faults."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from viewer.engine.diskcache import TileDiskCache
from viewer.engine.features import FeatureStore, default_memory_budget
from viewer.engine.render import Engine, SourceRect
from viewer.liif.liif import LIIF, make_liif
from viewer.liif.models import CleanedEncoder


def whole_encode(model: LIIF, img: np.ndarray) -> torch.Tensor:
    with torch.no_grad():
        return model.encode((torch.from_numpy(img).permute(2, 0, 1)[None] - 0.5) / 0.5)[0]


def cleaned_model() -> LIIF:
    model = make_liif(n_resblocks=2, n_feats=8, hidden=(16,), seed=1)
    enc = CleanedEncoder(model.encoder, 8, 3)
    model.encoder = enc
    with torch.no_grad():
        torch.manual_seed(0)
        enc.cleanup.tail.weight.normal_(0, 0.2)
    return model


MODELS = {
    "edsr-baseline": lambda: make_liif(n_resblocks=3, n_feats=8, hidden=(16,), seed=1),
    "rdn": lambda: make_liif("rdn", n_resblocks=2, n_feats=8, hidden=(16,), seed=2),
    "cleaned": cleaned_model,
}


@pytest.fixture
def img8() -> np.ndarray:
    return np.random.default_rng(4).integers(0, 256, (150, 170, 3), dtype=np.uint8)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_any_set_of_tiles_equals_the_whole_encode(name: str, img8: np.ndarray) -> None:
    model = MODELS[name]()
    engine = Engine(model, "cpu", "fp32", encode_budget_bytes=90_000)
    whole = whole_encode(model, img8.astype(np.float32) / 255)
    store = engine.open_store(img8, tile=24)
    assert store.dtype == torch.float32
    # Tiles in a scattered order and pieces of every size, crossing tile borders and the photo's edges.
    for box in [(100, 150, 0, 30), (0, 7, 160, 170), (30, 90, 40, 130)]:
        store.prefetch(box)
    got = store.crop(0, 150, 0, 170)
    assert torch.allclose(got, whole, atol=1e-5, rtol=1e-5)
    assert torch.allclose(store.crop(23, 49, 47, 73), whole[:, 23:49, 47:73], atol=1e-5, rtol=1e-5)


def test_the_halo_matters() -> None:
    """With too small a halo the tiles differ from the whole encode: the equality test is not vacuous."""
    model = MODELS["edsr-baseline"]()
    img = np.random.default_rng(4).random((80, 90, 3), dtype=np.float32)
    engine = Engine(model, "cpu", "fp32")
    store = engine.open_store(img, tile=16)
    store.prefetch((20, 40, 20, 40))
    model.encoder.receptive_radius = 2  # type: ignore[assignment]
    broken = engine.open_store(img, tile=16)
    whole = whole_encode(model, img)
    assert torch.allclose(store.crop(20, 40, 20, 40), whole[:, 20:40, 20:40], atol=1e-5)
    assert not torch.allclose(broken.crop(20, 40, 20, 40), whole[:, 20:40, 20:40], atol=1e-5)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_a_render_through_the_store_equals_the_dense_render(name: str, img8: np.ndarray) -> None:
    engine = Engine(MODELS[name](), "cpu", "fp32")
    dense = engine.encode(img8)
    store = engine.open_store(img8, tile=32)
    rect = SourceRect(37.25, 41.5, 33.0, 25.75)
    want = engine.render(dense, rect, 97, 71)
    got = engine.render(store, rect, 97, 71)
    np.testing.assert_allclose(got, want, atol=1e-5)
    # Only the tiles around the region were encoded: a region render never encodes the whole photo.
    assert 0 < store.encoded < store.rows * store.cols


def test_half_precision_tiles_are_close_and_take_half_the_memory(img8: np.ndarray) -> None:
    model = MODELS["edsr-baseline"]()
    exact = Engine(model, "cpu", "fp32")
    half = Engine(model, "cpu", "auto")
    assert half.feature_dtype == torch.float16
    # The storage alone (the same fp32 encoder): `auto` may also run the encoder in bf16 on this CPU.
    a, b = exact.open_store(img8), exact.open_store(img8, dtype=half.feature_dtype)
    fa, fb = a.crop(0, 150, 0, 170), b.crop(0, 150, 0, 170)
    assert b.memory_bytes * 2 == a.memory_bytes
    assert not torch.equal(fa, fb)
    assert torch.allclose(fa, fb, atol=2e-3 * float(fa.abs().max()) + 1e-3)


def test_the_memory_budget_evicts_least_recently_used_tiles(img8: np.ndarray) -> None:
    engine = Engine(MODELS["edsr-baseline"](), "cpu", "fp32")
    tile_bytes = 8 * 16 * 16 * 4
    store = engine.open_store(img8, tile=16, budget_bytes=6 * tile_bytes)
    whole = engine.encode(img8).feat
    first = store.crop(0, 16, 0, 16)
    store.crop(40, 100, 40, 100)  # 16 tiles: more than the budget holds
    assert store.memory_bytes <= 6 * tile_bytes and store.evicted > 0
    assert not store.has(0, 0), "the oldest tile goes first"
    again = store.crop(0, 16, 0, 16)  # re-encoded, the same values
    assert torch.allclose(again, first, atol=1e-6)
    assert torch.allclose(store.crop(0, 150, 0, 170), whole, atol=1e-5)


def test_default_budget_follows_the_machine() -> None:
    assert default_memory_budget(24 << 30) == 1 << 30
    assert default_memory_budget(1 << 30) == 256 << 20
    assert default_memory_budget(1 << 40) == 4 << 30


def test_prefetch_stops_between_passes_when_cancelled(img8: np.ndarray) -> None:
    from viewer.engine.cancel import CancelToken
    from viewer.errors import Cancelled

    engine = Engine(MODELS["edsr-baseline"](), "cpu", "fp32", encode_budget_bytes=90_000)
    store = engine.open_store(img8, tile=16)
    token = CancelToken()
    seen: list[int] = []

    def progress(done: int, total: int) -> None:
        seen.append(done)
        token.cancel()

    with pytest.raises(Cancelled):
        store.prefetch((0, 150, 0, 170), token, progress)
    assert seen == [1] and 0 < store.encoded < store.rows * store.cols


# -- the disk cache --------------------------------------------------------------------------------
def test_a_reopened_photo_comes_from_the_disk_cache(tmp_path: Path, img8: np.ndarray) -> None:
    engine = Engine(MODELS["edsr-baseline"](), "cpu", "auto")
    disk = TileDiskCache(tmp_path)
    first = engine.open_store(img8, disk=disk, tile=32)
    a = first.crop(10, 90, 20, 120)
    assert first.encoded > 0 and disk.writes == first.encoded
    again = engine.open_store(img8, disk=TileDiskCache(tmp_path), tile=32)
    b = again.crop(10, 90, 20, 120)
    assert again.encoded == 0 and again.from_disk == first.encoded
    assert torch.equal(a, b)


def test_another_photo_or_model_does_not_use_the_entries(tmp_path: Path, img8: np.ndarray) -> None:
    engine = Engine(MODELS["edsr-baseline"](), "cpu", "auto")
    engine.open_store(img8, disk=TileDiskCache(tmp_path), tile=32).crop(0, 64, 0, 64)
    other_photo = img8.copy()
    other_photo[0, 0, 0] ^= 1
    s = engine.open_store(other_photo, disk=TileDiskCache(tmp_path), tile=32)
    s.crop(0, 64, 0, 64)
    assert s.from_disk == 0 and s.encoded == 4
    other_model = Engine(MODELS["rdn"](), "cpu", "auto")
    s = other_model.open_store(img8, disk=TileDiskCache(tmp_path), tile=32)
    s.crop(0, 64, 0, 64)
    assert s.from_disk == 0 and s.encoded == 4


def test_corrupted_and_foreign_entries_are_recomputed(tmp_path: Path, img8: np.ndarray) -> None:
    engine = Engine(MODELS["edsr-baseline"](), "cpu", "auto")
    first = engine.open_store(img8, disk=TileDiskCache(tmp_path), tile=32)
    want = first.crop(0, 64, 0, 64)
    files = sorted(tmp_path.glob("*.tile"))
    assert len(files) == 4
    data = bytearray(files[0].read_bytes())
    data[-3] ^= 0xFF  # a flipped payload byte
    files[0].write_bytes(bytes(data))
    files[1].write_bytes(files[1].read_bytes()[:-100])  # truncated
    files[2].write_bytes(files[3].read_bytes())  # another tile's entry under this name
    disk = TileDiskCache(tmp_path)
    again = engine.open_store(img8, disk=disk, tile=32)
    got = again.crop(0, 64, 0, 64)
    assert disk.rejected == 3 and again.from_disk == 1 and again.encoded == 3
    assert torch.equal(got, want)
    assert len(list(tmp_path.glob("*.tile"))) == 4, "the bad entries were replaced by good ones"


def test_an_unwritable_cache_is_switched_off_with_one_message(tmp_path: Path, img8: np.ndarray) -> None:
    if os.geteuid() == 0:
        blocker = tmp_path / "file"
        blocker.write_text("not a folder")
        root = blocker / "cache"  # cannot be created, even as root
    else:
        root = tmp_path / "ro"
        root.mkdir()
        root.chmod(0o500)
    messages: list[str] = []
    disk = TileDiskCache(root, on_problem=messages.append)
    engine = Engine(MODELS["edsr-baseline"](), "cpu", "auto")
    store = engine.open_store(img8, disk=disk, tile=32)
    store.crop(0, 150, 0, 170)
    assert len(messages) == 1 and "cache" in messages[0]
    assert not disk.enabled and store.encoded == store.rows * store.cols


def test_a_write_failure_switches_the_cache_off_once(tmp_path: Path, img8: np.ndarray) -> None:
    messages: list[str] = []
    disk = TileDiskCache(tmp_path / "c", on_problem=messages.append)
    engine = Engine(MODELS["edsr-baseline"](), "cpu", "auto")
    store = engine.open_store(img8, disk=disk, tile=32)
    (tmp_path / "c").rmdir()
    (tmp_path / "c").write_text("the folder is gone")  # every write now fails
    store.crop(0, 150, 0, 170)
    assert len(messages) == 1 and "cannot be written" in messages[0] and not disk.enabled
    assert not list(tmp_path.glob("**/*.part"))


def test_the_cache_folder_stays_under_its_cap(tmp_path: Path, img8: np.ndarray) -> None:
    engine = Engine(MODELS["edsr-baseline"](), "cpu", "auto")
    entry = 8 * 32 * 32 * 2
    disk = TileDiskCache(tmp_path, cap_bytes=int(5.5 * entry) + 5 * 400)
    store = engine.open_store(img8, disk=disk, tile=32)
    store.crop(0, 150, 0, 170)  # 30 tiles
    total = sum(p.stat().st_size for p in tmp_path.glob("*.tile"))
    assert total <= disk.cap_bytes and 0 < len(list(tmp_path.glob("*.tile"))) < 30
    assert disk.size_bytes == total


def test_store_shape_errors_are_clear() -> None:
    engine = Engine(MODELS["edsr-baseline"](), "cpu", "fp32")
    from viewer.errors import ArgumentError

    with pytest.raises(ArgumentError, match="expected an"):
        engine.open_store(np.zeros((4, 4), np.uint8))
    with pytest.raises(ValueError, match="too small"):
        FeatureStore(lambda *a: torch.zeros(1), 4, 4, 1, torch.device("cpu"), tile=2)


def test_a_bf16_engine_encodes_under_autocast_close_to_fp32_and_keys_its_tiles_apart() -> None:
    model = make_liif(n_resblocks=3, n_feats=16, hidden=(16,), seed=4)
    img = np.random.default_rng(4).random((40, 48, 3), dtype=np.float32)
    exact = Engine(model, "cpu", "fp32")
    fast = Engine(model, "cpu", "bf16")
    assert exact.encode_dtype is None and fast.encode_dtype == torch.bfloat16
    a = exact.encode_region(img, 0, 40, 0, 48)
    b = fast.encode_region(img, 0, 40, 0, 48)
    assert a.dtype == b.dtype == torch.float32
    err = float((a - b).abs().max()) / float(a.abs().max())
    assert 0 < err < 0.05  # bf16 really ran (not bit-equal), and stayed close
    assert torch.allclose(a, whole_encode(model, img), atol=1e-5)
    assert exact.model_key != fast.model_key  # a disk-cached fp32 tile is never served to bf16, or back


def test_forget_drops_tiles_and_projections_so_the_next_query_encodes_again(img8: np.ndarray) -> None:
    engine = Engine(MODELS["edsr-baseline"](), "cpu", "fp32")
    store = engine.open_store(img8, tile=16)
    rect = SourceRect(10.0, 12.0, 30.0, 20.0)
    first = engine.render(store, rect, 60, 40)
    encoded = store.encoded
    assert encoded > 0 and len(store) > 0
    store.forget()
    assert len(store) == 0 and store.memory_bytes == 0 and not store._caches
    again = engine.render(store, rect, 60, 40)
    assert store.encoded == 2 * encoded
    assert np.array_equal(first, again)


def test_a_closed_photo_is_freed_at_once_not_by_the_cyclic_collector(img8: np.ndarray) -> None:
    """Dropping the last reference to an encoded photo frees it (tiles, projections) right away: its
    projection caches hold it weakly, so no cycle waits for Python's collector (which kept a viewer's
    closed 100 MP photo in memory)."""
    import gc
    import weakref

    engine = Engine(MODELS["edsr-baseline"](), "cpu", "fp32")
    was = gc.isenabled()
    gc.disable()
    try:
        store = engine.open_store(img8)
        dense = engine.encode(img8.astype(np.float32) / 255)
        for fm in (store, dense):
            engine.render(fm, SourceRect(10, 10, 40, 30), 80, 60)  # tiles encoded, projections cached
            assert fm._caches
        refs = [weakref.ref(one) for one in (store, dense)]
        cache = store.projection(engine.decoder)
        del store, dense, fm
        assert all(r() is None for r in refs)
        with pytest.raises(ReferenceError):
            assert cache.source is None  # raises first
    finally:
        if was:
            gc.enable()
