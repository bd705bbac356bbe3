"""The research data some tests need (../shared/data, outside the repository): skip without it, fail on CI.

A clone without `../shared` still passes the README's test command: a test that needs the data skips with
one reason saying where it looked and which variable points elsewhere. Under CI (`CI` set to anything but
empty, "0" or "false") the data is required, so a missing folder fails the run instead of hiding the checks.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from viewer.engine.evaluate import default_benchmark_root

BENCHMARK_ENV = "LIIF_VIEWER_BENCHMARK"


def on_ci() -> bool:
    """Whether the `CI` environment variable asks for every check to run."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false")


def require_data(path: Path, what: str, env_var: str, purpose: str) -> Path:
    """`path` if it is a folder; else skip the test (fail it under CI) with one reason naming `env_var`."""
    if path.is_dir():
        return path
    reason = f"{what} not found at {path}; set {env_var} to run {purpose}"
    if on_ci():
        pytest.fail(f"{reason} (CI is set, so the data is required)", pytrace=False)
    pytest.skip(reason)


def require_benchmark(set_name: str = "Set5") -> Path:
    """The benchmark root (`LIIF_VIEWER_BENCHMARK` or ../shared/data/benchmark) holding `set_name`."""
    root = default_benchmark_root()
    require_data(root / set_name, "benchmark data", BENCHMARK_ENV, "the paper-figure and benchmark tests")
    return root
