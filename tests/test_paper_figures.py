"""The official checkpoint reproduces the paper's Set5 figures through our code (and bf16 stays close).

Needs the official weights, fetched as the README's setup does (`liif-viewer fetch-weights`), and the
benchmark images in ../shared/data/benchmark (or `LIIF_VIEWER_BENCHMARK`): without them the tests skip, and
under CI they fail (see tests/_data.py).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from viewer.engine.evaluate import evaluate
from viewer.engine.render import Engine
from viewer.liif.liif import LIIF

PAPER = {2: 37.99, 3: 34.40, 4: 32.24}

pytestmark = [pytest.mark.weights, pytest.mark.slow]


@pytest.fixture(scope="module")
def official_model(benchmark_root: Path) -> LIIF:
    """The official checkpoint, loaded once; asked for only when the benchmark data is there."""
    from viewer.engine.weights import DEFAULT_MODEL, resolve_model_path
    from viewer.liif.checkpoint import load_model

    return load_model(resolve_model_path(DEFAULT_MODEL))


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_set5_matches_paper(benchmark_root: Path, official_model: LIIF, scale: int) -> None:
    exact = Engine(official_model, "cpu", "fp32")
    psnr = evaluate(exact, "Set5", scale, root=benchmark_root)
    assert abs(psnr - PAPER[scale]) <= 0.02, f"x{scale}: {psnr:.4f} dB, paper {PAPER[scale]}"
    reduced = Engine(official_model, "cpu", "bf16")
    loss = psnr - evaluate(reduced, "Set5", scale, root=benchmark_root)
    assert loss <= 0.02, f"bf16 loses {loss:.4f} dB at x{scale}"
