"""Helpers shared by the GUI tests: the tiny engine and synthetic photos."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

TINY: dict[str, Any] = {"n_resblocks": 1, "n_feats": 8, "hidden": (16,), "seed": 0}


def make_tiny_engine(device: str = "cpu") -> Any:
    """A deterministic tiny LIIF engine (fp32, CPU)."""
    import torch

    from viewer.engine.render import Engine
    from viewer.liif.liif import make_liif

    return Engine(make_liif(**TINY), torch.device(device), "fp32", model_name="tiny")


def textured(w: int, h: int, seed: int = 1) -> np.ndarray:
    """A photo-like uint8 RGB test image: smooth gradients plus fine texture."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    base = np.stack([x / w, y / h, 0.5 + 0.5 * np.sin(x / 5.0) * np.cos(y / 7.0)], axis=2)
    noise = rng.random((h, w, 3), dtype=np.float32) * 0.35
    return np.clip((base * 0.65 + noise) * 255, 0, 255).astype(np.uint8)


class Gated:
    """Delegates to a real engine; `render` computes, then blocks on `gate` (the test holds the worker)."""

    def __init__(self, engine: Any, gate: threading.Event) -> None:
        self._engine = engine
        self.gate = gate
        self.entered = threading.Event()
        self.tokens: list[Any] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._engine, name)

    def render(self, *args: Any, **kwargs: Any) -> np.ndarray:
        self.tokens.append(kwargs.get("cancel"))
        out = self._engine.render(*args, **{**kwargs, "cancel": None})
        self.entered.set()
        assert self.gate.wait(30)
        return out
