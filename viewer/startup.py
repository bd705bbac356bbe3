"""Start-up helpers for the command line (no torch here: they run before it is imported)."""

from __future__ import annotations

import contextlib
import gc
import importlib.abc
import importlib.machinery
import importlib.util
import os
import re
import sys
import threading
import types
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any


@contextlib.contextmanager
def imports_without_gc() -> Iterator[None]:
    """Pause Python's cyclic garbage collector for a burst of imports, then freeze what they made.

    Importing torch creates several hundred thousand objects that live as long as the process; the collector
    scans them again and again while they are made (0.12 s of torch's 1.1 s import on the 2-core development
    machine), and every later full collection scans them once more. With the collector paused and the
    imported objects moved to the permanent generation (`gc.freeze`), an 8 px CLI render spent 7 to 13 ms
    in collections instead of 160 to 210 ms, and took 1.12 to 1.17 s instead of 1.28 to 1.30 s. Garbage
    made inside the block is never collected.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
        gc.freeze()


#: Environment variable that turns `defer_unused_torch_modules` off (any non-empty value), to compare or to
#: rule it out when something goes wrong.
EAGER_ENV = "LIIF_VIEWER_EAGER_TORCH"

#: The torch release whose import the list below was worked out and tested on (`packaging/bootstrap.sh`
#: installs it). Which submodules can wait depends on the order torch imports them in, so with any other
#: release torch is imported as usual.
VERIFIED_TORCH = "2.13.0"

#: Submodules `import torch` loads that a render or export never uses: tracing and export, meta kernels
#: for compilers, quantization, optimisers, data loaders, distributions, sparse, nested and masked
#: tensors, the profiler, the testing helpers. Together 0.3 s of the 0.9 s import on the 2-core
#: development machine. The set was found by trial, one module at a time, and only works as a whole: left
#: out, `torch._subclasses` (which is loaded anyway, later) makes `torch._logging` circular.
DEFERRED_TORCH_MODULES = frozenset(
    {
        "torch._meta_registrations",
        "torch.export",
        "torch.nested",
        "torch.utils.data",
        "torch.distributions",
        "torch.ao",
        "torch.testing",
        "torch.sparse",
        "torch.optim",
        "torch._functorch",
        "torch.profiler",
        "torch.masked",
        "torch._subclasses",
        "torch.compiler",
        "torch.quantization",
    }
)

#: Modules torch may import after its own import that need none of the deferred ones: importing them does
#: not end the deferral. `torch.utils._device` is what `with torch.device("meta")` imports (building a
#: network without weights, to count its parameters).
LATE_IMPORTS_KEPT = frozenset({"torch.utils._device"})

_load_lock = threading.RLock()


class DeferredModule(types.ModuleType):
    """A module whose body has not run yet; the first attribute its namespace lacks ends the deferral.

    The import system has already set the module's name, file, spec and package path, so code that only
    looks at those (`inspect`, a submodule import) does not load it, and a module imported only for the
    side effects of its body (torch's meta kernels) stays unloaded, which is the point.
    """

    def __getattr__(self, attr: str) -> Any:
        if attr == "__path__":  # a plain module has none; asking must not load it
            raise AttributeError(attr)
        with _load_lock:
            if self.__dict__.get("_deferred_loading"):
                raise AttributeError(f"partially initialized module {self.__name__!r} has no {attr!r}")
            if isinstance(self, DeferredModule):
                finder = self.__dict__["_deferred_finder"]
                if finder.catching_up or not _torch_imported():
                    _load(self)  # needed by torch's own import, or by a body loading now: load it alone
                else:
                    finder.catch_up()
        return getattr(self, attr)


def _load(module: types.ModuleType) -> None:
    """Run a deferred module's body (holding `_load_lock`) and make it a plain module."""
    state = module.__dict__
    loader = state.pop("_deferred_loader")
    del state["_deferred_finder"]
    state["_deferred_loading"] = True
    try:
        loader.exec_module(module)
    finally:
        del state["_deferred_loading"]
        module.__loader__ = loader
        if module.__spec__ is not None:
            module.__spec__.loader = loader
        module.__class__ = types.ModuleType


class _DeferringLoader(importlib.abc.Loader):
    """Creates the module as the real loader would, but leaves its body for later."""

    def __init__(self, real: importlib.abc.Loader, finder: _DeferringFinder) -> None:
        self.real = real
        self.finder = finder

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType | None:
        return None  # the default module object, filled in by the import system

    def exec_module(self, module: types.ModuleType) -> None:
        module.__dict__["_deferred_loader"] = self.real
        module.__dict__["_deferred_finder"] = self.finder
        module.__class__ = DeferredModule
        self.finder.deferred.append(module.__name__)


class _ExistingModuleLoader(importlib.abc.Loader):
    """Hands the import system a module that a catch-up loaded while its own import was being looked up.

    The import system takes the spec of a module that appears during the lookup and loads it again, so the
    module carries this loader's spec until then, and gets its own spec back instead of a second run."""

    def __init__(self, module: types.ModuleType, spec: importlib.machinery.ModuleSpec) -> None:
        self.module = module
        self.spec = spec

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType | None:
        return self.module

    def exec_module(self, module: types.ModuleType) -> None:
        module.__spec__ = self.spec


class _DeferringFinder(importlib.abc.MetaPathFinder):
    """While torch is being imported, leaves the modules in `names` unloaded. Afterwards, the first use of
    one of them, or the first import of any other torch module (but `LATE_IMPORTS_KEPT`), loads all of them
    in the order torch imported them and removes this finder: from then on torch is as if imported whole,
    so that nothing depends on the order torch's modules were loaded in (loaded out of order, some of them
    import each other in a circle)."""

    def __init__(self, names: frozenset[str]) -> None:
        self.names = names
        self.deferred: list[str] = []
        self.catching_up = False

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: types.ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if self.catching_up or not (fullname == "torch" or fullname.startswith("torch.")):
            return None
        if not _torch_imported():
            return self._deferred_spec(fullname, path, target) if fullname in self.names else None
        if fullname in LATE_IMPORTS_KEPT:
            return None
        self.catch_up()
        module = sys.modules.get(fullname)
        own = getattr(module, "__spec__", None)
        if module is None or own is None:
            return None
        spec = importlib.machinery.ModuleSpec(fullname, _ExistingModuleLoader(module, own))
        spec.submodule_search_locations = own.submodule_search_locations
        module.__spec__ = spec
        return spec

    def _deferred_spec(
        self, fullname: str, path: Sequence[str] | None, target: types.ModuleType | None
    ) -> importlib.machinery.ModuleSpec | None:
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                    spec.loader = _DeferringLoader(spec.loader, self)
                return spec
        return None

    def catch_up(self) -> None:
        """Load every module still deferred, in torch's order, and end the deferral."""
        with _load_lock:
            if self.catching_up:
                return
            self.catching_up = True
            try:
                for name in self.deferred:
                    module = sys.modules.get(name)
                    if isinstance(module, DeferredModule):
                        _load(module)
            finally:
                with contextlib.suppress(ValueError):
                    sys.meta_path.remove(self)


def _torch_imported() -> bool:
    """Whether `import torch` has finished (the import system marks a module's spec while its body runs)."""
    torch = sys.modules.get("torch")
    return torch is not None and not getattr(getattr(torch, "__spec__", None), "_initializing", False)


def installed_torch_version() -> str | None:
    """torch's version as installed, read from its `version.py` without importing it (importlib.metadata
    takes 50 ms), or None where it cannot be read."""
    spec = importlib.util.find_spec("torch")
    if spec is None or not spec.submodule_search_locations:
        return None
    try:
        text = (Path(next(iter(spec.submodule_search_locations))) / "version.py").read_text()
    except OSError:
        return None
    found = re.search(r"""^__version__\s*(?::\s*str\s*)?=\s*['"]([^'"]+)['"]""", text, re.M)
    return found.group(1) if found else None


def defer_unused_torch_modules() -> bool:
    """Make `import torch` leave the submodules in `DEFERRED_TORCH_MODULES` for their first use.

    For the one-shot commands whose whole wait a person sees (`render`, `export`), and the window: on the
    2-core development machine an 8 px render (start-up alone) took 0.79 instead of 1.12 s (`liif-viewer
    bench --startup --against`), `liif-lm`'s x8 render of a 320 px photo 3.83 instead of 4.27 s
    (`docs/analysis/cli_ab.py`), medians, and the window was ready to refine 0.64 to 0.91 s after opening
    instead of 1.06 to 1.34 s (`bench --gui`, six pairs against `LIIF_VIEWER_EAGER_TORCH=1`). Only before
    torch is imported, only with the release the set was verified on, and not when
    `LIIF_VIEWER_EAGER_TORCH` is set. Returns whether it was installed.
    """
    if os.environ.get(EAGER_ENV) or "torch" in sys.modules:
        return False
    if deferral_pending():
        return True
    version = installed_torch_version()
    if version is None or version.split("+")[0] != VERIFIED_TORCH:
        return False
    sys.meta_path.insert(0, _DeferringFinder(DEFERRED_TORCH_MODULES))
    return True


def deferral_pending() -> bool:
    """Whether `defer_unused_torch_modules` is in force: installed, and nothing has ended it yet."""
    return any(isinstance(f, _DeferringFinder) for f in sys.meta_path)


def deferred_modules() -> list[str]:
    """Names of the modules imported so far whose bodies have not run yet."""
    return sorted(n for n, m in list(sys.modules.items()) if isinstance(m, DeferredModule))
