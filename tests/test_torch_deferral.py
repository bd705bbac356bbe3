"""`viewer.startup.defer_unused_torch_modules`: what a render or export leaves out of `import torch`, that
the output does not change, and that torch still works whole the moment anything needs a deferred part."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from viewer import startup

REPO = Path(__file__).resolve().parents[1]
VERIFIED = (startup.installed_torch_version() or "").split("+")[0] == startup.VERIFIED_TORCH
needs_verified_torch = pytest.mark.skipif(
    not VERIFIED, reason=f"the deferred set is verified on torch {startup.VERIFIED_TORCH} only"
)


def _run(code: str, tmp_path: Path, **env: str) -> dict:
    """Run `code` in a fresh interpreter (torch not imported yet); its last stdout line is JSON."""
    base = {"LIIF_VIEWER_CACHE": str(tmp_path / "cache"), "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"}
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


PRELUDE = (
    "import json, sys\n"
    "from viewer.startup import defer_unused_torch_modules, deferred_modules\n"
    "installed = defer_unused_torch_modules()\n"
    "import torch\n"
    "after_import = deferred_modules()\n"
)


def test_the_version_is_read_without_importing_torch() -> None:
    import torch

    assert startup.installed_torch_version() == torch.__version__


@needs_verified_torch
def test_import_torch_leaves_the_unused_modules_unloaded(tmp_path: Path) -> None:
    got = _run(
        PRELUDE + "y = torch.nn.functional.conv2d(torch.ones(1, 1, 4, 4), torch.ones(1, 1, 3, 3))\n"
        "print(json.dumps({'installed': installed, 'deferred': after_import, 'sum': float(y.sum()),"
        " 'finders': len(sys.meta_path)}))\n",
        tmp_path,
    )
    assert got["installed"] is True
    # Every listed module is left unloaded but the one torch's own import needs (see the list's comment).
    assert set(got["deferred"]) == startup.DEFERRED_TORCH_MODULES - {"torch._subclasses"}
    assert got["sum"] == 36.0


def test_the_eager_switch_and_an_imported_torch_turn_it_off(tmp_path: Path) -> None:
    got = _run(
        PRELUDE + "print(json.dumps([installed, after_import]))\n", tmp_path, LIIF_VIEWER_EAGER_TORCH="1"
    )
    assert got == [False, []]
    assert "torch" in sys.modules and startup.defer_unused_torch_modules() is False


SCENARIOS = {
    # An optimiser step: its first use loads everything (it also imports torch._dynamo).
    "attribute": "p = torch.zeros(2, requires_grad=True); o = torch.optim.SGD([p], lr=0.5)\n"
    "p.sum().backward(); o.step(); result = p.tolist()\n",
    # A torch module imported late, before any deferred module's attribute: torch._dynamo, whose import
    # reaches torch._prims through torch.utils._content_store; torch imports torch._prims first (for the
    # deferred meta kernels), and the other way round the two import each other in a circle.
    "late import": "import torch._dynamo\n"
    "f = torch.compile(lambda x: x * 3, backend='eager'); result = f(torch.ones(2)).tolist()\n",
    # A late import of a module the catch-up itself loads (the meta kernels import torch._prims): the import
    # system must get the loaded module back, not run its body a second time.
    "late import, loaded by the catch-up": "import torch._prims\n"
    "result = [torch._prims.RETURN_TYPE.NEW.name, int(torch._prims.utils is torch._prims_common)]\n",
    # Four threads reaching a deferred module at once.
    "threads": "import threading\nout = []\n"
    "ts = [threading.Thread(target=lambda: out.append(float(torch.distributions.Normal(1.0, 2.0).mean)))"
    " for _ in range(4)]\n[t.start() for t in ts]; [t.join() for t in ts]; result = out\n",
    # torch.export, which needs the meta kernels the deferral left out.
    "export": "class M(torch.nn.Module):\n    def forward(self, x): return x + 1\n"
    "ep = torch.export.export(M(), (torch.ones(2),)); result = ep.module()(torch.ones(2)).tolist()\n",
}
EXPECTED = {
    "attribute": [-0.5, -0.5],
    "late import": [3.0, 3.0],
    "late import, loaded by the catch-up": ["NEW", 1],
    "threads": [1.0, 1.0, 1.0, 1.0],
    "export": [2.0, 2.0],
}


@needs_verified_torch
@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_the_first_need_loads_everything_and_torch_works_whole(tmp_path: Path, scenario: str) -> None:
    got = _run(
        PRELUDE + SCENARIOS[scenario] + "print(json.dumps({'before': len(after_import), 'result': result,"
        " 'after': deferred_modules(), 'finder': any('Deferring' in type(f).__name__ for f in sys.meta_path),"
        " 'meta': 'torch._meta_registrations' in sys.modules and hasattr(torch._meta_registrations,"
        " 'register_meta')}))\n",
        tmp_path,
    )
    assert got["before"] > 0  # there was something deferred to load
    assert got["result"] == EXPECTED[scenario]
    assert got["after"] == [] and got["finder"] is False and got["meta"] is True


RENDER = (
    "import atexit, json, sys, runpy\n"
    "from viewer.startup import deferred_modules\n"
    "atexit.register(lambda: print(json.dumps({'deferred': deferred_modules(),"
    " 'dynamo': 'torch._dynamo' in sys.modules})))\n"
    "sys.argv = ['liif-viewer', *ARGS]\n"
    "runpy.run_module('viewer.entry', run_name='__main__', alter_sys=True)\n"
)


@needs_verified_torch
@pytest.mark.parametrize("model", ["liif-lm", "liif-oldphoto"])
def test_a_render_keeps_the_deferral_and_writes_the_same_file(tmp_path: Path, model: str) -> None:
    src = tmp_path / "in.png"
    Image.fromarray(np.random.default_rng(1).integers(0, 255, (40, 36, 3), dtype=np.uint8)).save(src)
    outs = {}
    for mode, env in (("deferred", {}), ("eager", {"LIIF_VIEWER_EAGER_TORCH": "1"})):
        outs[mode] = tmp_path / f"{mode}.png"
        args = ["render", str(src), "-o", str(outs[mode]), "--scale", "3", "--model", model]
        got = _run(RENDER.replace("ARGS", repr(args)), tmp_path, **env)
        if mode == "deferred":  # it rendered without ever needing what was left out
            assert set(got["deferred"]) == startup.DEFERRED_TORCH_MODULES - {"torch._subclasses"}
        else:
            assert got["deferred"] == []
        assert got["dynamo"] is False
    assert outs["deferred"].read_bytes() == outs["eager"].read_bytes()


@needs_verified_torch
def test_a_deblur_render_loads_the_rest_and_writes_the_same_file(tmp_path: Path) -> None:
    """Building its network on the meta device (to count its parameters) touches `torch.nested`."""
    src = tmp_path / "in.png"
    Image.fromarray(np.random.default_rng(2).integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(src)
    files: list[Path] = []
    for env in ({}, {"LIIF_VIEWER_EAGER_TORCH": "1"}):
        files.append(tmp_path / f"out{len(files)}.png")
        args = ["render", str(src), "-o", str(files[-1]), "--scale", "2", "--model", "liif-deblur"]
        got = _run(RENDER.replace("ARGS", repr(args)), tmp_path, **env)
        assert got == {"deferred": [], "dynamo": False}
    assert files[0].read_bytes() == files[1].read_bytes()


WINDOW = """
import json, threading, time
from types import SimpleNamespace
import numpy as np
from viewer.startup import defer_unused_torch_modules, deferral_pending, deferred_modules
installed = defer_unused_torch_modules()
from viewer.app import planning as pl
from viewer.app.messages import EngineConfig, EngineLoaded, RequestDone, TileRequest
from viewer.app.worker import RenderWorker
seen = {}
done = threading.Event()
def emit(ev):
    if isinstance(ev, EngineLoaded):
        seen["at_load"] = len(deferred_modules())
    if isinstance(ev, RequestDone):
        seen["at_done"] = len(deferred_modules())
        done.set()
rng = np.random.default_rng(0)
w = RenderWorker(emit)
w.start()
w.configure(EngineConfig("liif-lm", "cpu", "auto"), 1)
w.open_image(SimpleNamespace(pixels=rng.integers(0, 256, (96, 128, 3), dtype=np.uint8)), 1)
vp = pl.clamp_centre(pl.Viewport(128, 96, 256, 192, 1.0, 2.0, 64.0, 48.0))
plan = pl.plan_tiles(vp, margin=0, tile=64)
w.submit(TileRequest(1, 1, "liif", tuple(pl.tile_spec(vp, x, y, tile=64) for x, y in plan.order), time.perf_counter()))
assert done.wait(120)
seen["pending_after_view"] = deferral_pending()
import torch
seen["optim"] = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1) is not None
seen["pending_after_use"] = deferral_pending()
seen["left_after_use"] = len(deferred_modules())
w.close(10)
print(json.dumps({"installed": installed, **seen}))
"""


@needs_verified_torch
def test_the_window_loads_its_model_and_refines_its_first_view_with_the_deferral_in_force(
    tmp_path: Path,
) -> None:
    """The window's render thread imports torch without the deferred submodules, loads the model and
    refines the first view without them; the first use of one afterwards loads them all."""
    got = _run(WINDOW, tmp_path)
    assert got["installed"] is True
    assert got["at_load"] > 0 and got["at_done"] > 0 and got["pending_after_view"] is True
    assert got["optim"] is True
    assert got["pending_after_use"] is False and got["left_after_use"] == 0
