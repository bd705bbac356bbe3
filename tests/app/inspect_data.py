"""Plain-value inspection data for the GUI tests (importable without torch, also from a subprocess)."""

from __future__ import annotations

from viewer.app.bench_overlays import sample_probe as plain_probe

__all__ = ["plain_probe"]
