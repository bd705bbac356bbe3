"""Start-up of a CLI render: what it imports, and `bench --startup`'s arithmetic and runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from viewer.engine import bench_startup as B

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("model", ["liif-lm", "liif-deblur"])
def test_a_cli_render_imports_no_qt_and_no_torch_compiler(tmp_path: Path, model: str) -> None:
    """The render path must stay free of the GUI toolkit and of torch's compiler stack (seconds to import;
    liif-deblur's parameter count on the meta device once imported torch._dynamo, 1.2 s)."""
    src = tmp_path / "in.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (12, 10, 3), dtype=np.uint8)).save(src)
    code = (
        "import json, sys\n"
        "from viewer.cli import main\n"
        f"rc = main(['render', {str(src)!r}, '-o', {str(tmp_path / 'out.png')!r}, '--scale', '2', "
        f"'--model', {model!r}])\n"
        "heavy = ('PySide6', 'shiboken6', 'viewer.app', 'torch._dynamo', 'torch._inductor', 'matplotlib')\n"
        "import gc\n"
        "print(json.dumps({'rc': rc, 'torch': 'torch' in sys.modules, 'gc': gc.isenabled(),\n"
        "    'frozen': gc.get_freeze_count(),\n"
        "    'heavy': sorted(m for m in sys.modules if m.split('.')[0] in heavy or m.startswith(heavy))}))\n"
    )
    env = {"LIIF_VIEWER_CACHE": str(tmp_path / "cache"), "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["rc"] == 0 and got["torch"]  # it did render, with the model
    assert got["heavy"] == []
    # torch was imported with the collector paused, and its objects frozen; the collector runs again.
    assert got["gc"] is True and got["frozen"] > 100_000
    assert (tmp_path / "out.png").is_file()


def test_the_bench_reports_medians_and_ratios_to_import_torch() -> None:
    def v(key: str, walls: list[float], cpu: float) -> B.Variant:
        return B.Variant(key, [], key=key, walls=walls, cpus=[cpu] * len(walls))

    vs = [
        v("torch", [1.0, 3.0, 1.2], 1.0),
        v("small", [2.4, 2.5, 9.0], 2.0),
        v("small-hp", [2.0, 2.0, 2.0], 2.0),
        v("tiny", [1.5, 1.5, 1.5], 1.0),
        v("tiny-hp", [1.5, 1.6, 1.4], 1.0),
        v("small-against", [5.0, 5.0, 5.0], 4.0),
    ]
    got = B.report(vs)
    rows = {r["key"]: r for r in got["variants"]}
    assert rows["small"]["wall_median_s"] == 2.5
    assert rows["small"]["ratio_to_import_torch"] == pytest.approx(2.5 / 1.2)
    assert got["startup_s"] == pytest.approx(0.3)
    assert got["small_huge_pages_over_chosen"] == pytest.approx(2.0 / 2.5)
    assert got["tiny_huge_pages_over_chosen"] == pytest.approx(1.0)
    assert got["small_this_over_against"] == pytest.approx(0.5)
    assert got["small_this_over_against_cpu"] == pytest.approx(0.5)
    assert "tiny_this_over_against" not in got and "startup_against_s" not in got


def test_the_bench_compares_both_renders_with_huge_pages_forced_and_against(tmp_path: Path) -> None:
    vs = B.variants(tmp_path, "liif-lm", tmp_path / "before")
    assert [x.key for x in vs] == [
        "torch",
        "small",
        "small-hp",
        "small-against",
        "tiny",
        "tiny-hp",
        "tiny-against",
    ]
    for x in vs[1:]:
        assert x.argv[1:4] == ["-m", "viewer.entry", "render"] and x.output is not None
    assert vs[2].env == {"GLIBC_TUNABLES": "glibc.malloc.hugetlb=1"}
    assert vs[3].env["PYTHONPATH"].split(os.pathsep)[0] == str(tmp_path / "before")
    with Image.open(vs[1].argv[4]) as small, Image.open(vs[4].argv[4]) as tiny:
        assert small.size == (B.SMALL_PX, B.SMALL_PX) and tiny.size == (B.TINY_PX, B.TINY_PX)


def test_the_bench_runs_each_variant_in_a_fresh_process(tmp_path: Path) -> None:
    out = tmp_path / "o.txt"
    code = f"import os; open({str(out)!r}, 'w').write(os.environ['LIIF_VIEWER_CACHE'])"
    v = B.Variant("write", [sys.executable, "-c", code], output=out)
    wall, cpu = B.run_once(v, tmp_path, tmp_path / "c1")
    assert wall > 0 and cpu >= 0 and out.read_text() == str(tmp_path / "c1")
    with pytest.raises(RuntimeError, match="exit 3"):
        B.run_once(B.Variant("fail", [sys.executable, "-c", "raise SystemExit(3)"]), tmp_path, tmp_path)


def test_imports_without_gc_pauses_the_collector_and_freezes_what_was_made() -> None:
    import gc

    from viewer.startup import imports_without_gc

    assert gc.isenabled()
    before = gc.get_freeze_count()
    try:
        with imports_without_gc():
            assert not gc.isenabled()
            made: list[list[int]] = [[] for _ in range(1000)]
        assert gc.isenabled() and gc.get_freeze_count() >= before + len(made)
        gc.disable()
        with pytest.raises(ValueError), imports_without_gc():
            raise ValueError("an import failed")
        assert not gc.isenabled()  # left as it was found
    finally:
        gc.enable()
        gc.unfreeze()


def test_no_child_inherits_the_benchs_own_huge_page_tunable() -> None:
    env = {"GLIBC_TUNABLES": "glibc.malloc.arena_max=2:glibc.malloc.hugetlb=1", "X": "1"}
    assert B.child_environment(env) == {"GLIBC_TUNABLES": "glibc.malloc.arena_max=2", "X": "1"}
    assert B.child_environment({"GLIBC_TUNABLES": "glibc.malloc.hugetlb=1"}) == {}
    assert B.child_environment({"Y": "2"}) == {"Y": "2"}
