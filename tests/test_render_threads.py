"""A CPU render decodes its rows in parts, one thread each (`viewer.engine.render._render_parts`): the same
pixels as one thread, progress in order, cancellation that stops every part, and no thread counts changed
for anyone else."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import numpy as np
import pytest
import torch

import viewer.engine.render as render_module
from viewer.engine.cancel import Cancelled, CancelToken
from viewer.engine.render import Engine, SourceRect
from viewer.liif.liif import make_liif

pytestmark = pytest.mark.skipif(
    render_module._per_thread_setter() is None, reason="no per-thread OpenMP setter in this torch build"
)


@pytest.fixture(autouse=True)
def two_threads() -> Iterator[None]:
    """Two intra-op threads, so the render is cut in two parts on any machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


def _engines() -> dict[str, Engine]:
    return {
        "liif-lm bf16": Engine.from_name("liif-lm", precision="bf16"),
        "liif-lm fp32": Engine.from_name("liif-lm", precision="fp32"),
        "paper's MLP": Engine(make_liif(n_resblocks=2, n_feats=8, hidden=(16, 16), seed=3), "cpu", "fp32"),
    }


@pytest.mark.parametrize("name", ["liif-lm bf16", "liif-lm fp32", "paper's MLP"])
def test_parts_give_the_pixels_of_one_thread(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    engine = _engines()[name]
    engine.chunk = 4096  # 16 bands of 8 rows at 512 px wide: two parts of 8
    photo = np.random.default_rng(5).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    fm = engine.encode(photo)
    assert len(render_module._row_parts(128, 8, render_module._decode_threads(engine.device))) == 2
    parts = engine.render(fm, SourceRect(0, 0, 64, 48), 512, 128)
    monkeypatch.setattr(render_module, "_decode_threads", lambda device: 1)
    whole = engine.render(fm, SourceRect(0, 0, 64, 48), 512, 128)
    np.testing.assert_array_equal(parts, whole)


def test_rows_are_cut_in_whole_bands() -> None:
    assert render_module._row_parts(100, 8, 2) == [(0, 48), (48, 100)]
    assert render_module._row_parts(5, 8, 2) == [(0, 5)]  # one band: one part
    assert render_module._row_parts(16, 8, 4) == [(0, 8), (8, 16)]
    assert render_module._row_parts(100, 8, 1) == [(0, 100)]


def _small_engine() -> tuple[Engine, render_module.Latents]:
    engine = Engine(make_liif(n_resblocks=2, n_feats=8, hidden=(16,), seed=4), "cpu", "fp32", chunk=1024)
    photo = np.random.default_rng(6).integers(0, 256, (40, 40, 3), dtype=np.uint8)
    return engine, engine.encode(photo)


def test_progress_comes_in_order_from_the_calling_thread_and_ends_whole() -> None:
    engine, fm = _small_engine()
    seen: list[tuple[int, int, str]] = []
    engine.render(
        fm,
        SourceRect(0, 0, 40, 40),
        256,
        256,
        progress=lambda done, total: seen.append((done, total, threading.current_thread().name)),
    )
    total = seen[-1][1]
    assert total == 64 and seen[-1][0] == total  # 256 rows in bands of 4
    assert [d for d, _, _ in seen] == sorted(d for d, _, _ in seen)
    assert {name for _, _, name in seen} == {threading.current_thread().name}


def test_cancel_stops_every_part_and_leaves_thread_counts_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    engine, fm = _small_engine()
    token = CancelToken()
    real = render_module.GridQuery.__call__
    bands: list[str] = []
    lock = threading.Lock()

    def counted(self: render_module.GridQuery, rows: torch.Tensor) -> torch.Tensor:
        # Cancelled at the third band whichever thread decodes it: cancelling from the progress callback
        # (the calling thread's bands only) raced a helper thread that could decode every band first.
        with lock:
            bands.append(threading.current_thread().name)
            if len(bands) == 3:
                token.cancel()
        return real(self, rows)

    monkeypatch.setattr(render_module.GridQuery, "__call__", counted)
    with pytest.raises(Cancelled):
        engine.render(fm, SourceRect(0, 0, 40, 40), 256, 256, cancel=token)
    assert len(bands) <= 4  # stopped early: each of the two threads finishes at most the band it is in
    monkeypatch.setattr(render_module.GridQuery, "__call__", real)
    assert torch.get_num_threads() == 2  # the calling thread's own count is back
    counts: list[int] = []
    later = threading.Thread(target=lambda: counts.append(torch.get_num_threads()))
    later.start()
    later.join()
    assert counts == [2]  # a thread started afterwards takes the usual count
    # and the decode threads are free again: a render after the cancelled one completes
    assert engine.render(fm, SourceRect(0, 0, 40, 40), 64, 64).shape == (64, 64, 3)


def test_a_failing_part_raises_in_the_caller(monkeypatch: pytest.MonkeyPatch) -> None:
    engine, fm = _small_engine()
    real = render_module.GridQuery.__call__
    calls: list[str] = []

    def failing(self: render_module.GridQuery, rows: torch.Tensor) -> torch.Tensor:
        calls.append(threading.current_thread().name)
        if threading.current_thread().name.startswith("decode"):
            raise RuntimeError("a decode thread failed")
        return real(self, rows)

    monkeypatch.setattr(render_module.GridQuery, "__call__", failing)
    with pytest.raises(RuntimeError, match="decode thread failed"):
        engine.render(fm, SourceRect(0, 0, 40, 40), 256, 256)
    assert any(name.startswith("decode") for name in calls)


def test_a_block_two_threads_need_is_projected_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """The threads of one render share a projection block: the second waits for the first's."""
    import time

    from viewer.liif.query import Decoder

    engine, fm = _small_engine()
    cache = fm.projection(engine.decoder)
    real = Decoder.project
    calls: list[int] = []

    def slow(self: Decoder, *args: object) -> torch.Tensor:
        calls.append(1)
        time.sleep(0.2)
        return real(self, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(Decoder, "project", slow)
    got: list[torch.Tensor] = []
    threads = [threading.Thread(target=lambda: got.append(cache._block(0, 0))) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1 and len(got) == 2 and got[0] is got[1]
    cache._block(0, 0)
    assert len(calls) == 1  # cached now
