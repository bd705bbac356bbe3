"""tests/_data.py: a test that needs the research data skips without it, and fails instead under CI."""

from __future__ import annotations

from pathlib import Path

import pytest
from _data import BENCHMARK_ENV, on_ci, require_benchmark, require_data

pytest_plugins = ["pytester"]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, False),
        ("", False),
        ("0", False),
        ("false", False),
        ("False", False),
        ("1", True),
        ("true", True),
    ],
)
def test_ci_is_on_for_any_value_but_empty_zero_or_false(
    monkeypatch: pytest.MonkeyPatch, value: str | None, expected: bool
) -> None:
    if value is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", value)
    assert on_ci() is expected


def test_missing_data_skips_with_one_reason_off_ci(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("CI", raising=False)
    missing = tmp_path / "nowhere"
    with pytest.raises(pytest.skip.Exception) as info:
        require_data(missing, "benchmark data", BENCHMARK_ENV, "the paper-figure tests")
    assert str(info.value) == (
        f"benchmark data not found at {missing}; set {BENCHMARK_ENV} to run the paper-figure tests"
    )


@pytest.mark.parametrize("value", ["1", "true"])
def test_missing_data_fails_under_ci(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, value: str) -> None:
    monkeypatch.setenv("CI", value)
    missing = tmp_path / "nowhere"
    with pytest.raises(pytest.fail.Exception, match="CI is set") as info:
        require_data(missing, "benchmark data", BENCHMARK_ENV, "the paper-figure tests")
    assert f"not found at {missing}; set {BENCHMARK_ENV}" in str(info.value)


@pytest.mark.parametrize("ci", ["", "1"])
def test_present_data_is_returned_on_and_off_ci(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, ci: str
) -> None:
    monkeypatch.setenv("CI", ci)
    assert require_data(tmp_path, "benchmark data", BENCHMARK_ENV, "the tests") == tmp_path


def test_the_benchmark_follows_its_variable(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.setenv(BENCHMARK_ENV, str(tmp_path))
    with pytest.raises(pytest.skip.Exception, match=f"not found at {tmp_path / 'Set5'}"):
        require_benchmark("Set5")
    (tmp_path / "Set5").mkdir()
    assert require_benchmark("Set5") == tmp_path


def test_a_data_test_is_reported_skipped_then_failed_under_ci(
    pytester: pytest.Pytester, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """End to end, as pytest reports it: `-rs` shows the reason; with CI set the run fails."""
    pytester.makepyfile(
        f"""
        import sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from _data import require_benchmark

        def test_needs_the_benchmark():
            require_benchmark("Set5")
        """
    )
    monkeypatch.setenv(BENCHMARK_ENV, str(tmp_path / "absent"))
    monkeypatch.delenv("CI", raising=False)
    result = pytester.runpytest_subprocess("-rs", "-p", "no:cacheprovider")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["SKIPPED*benchmark data not found at*absent*set LIIF_VIEWER_BENCHMARK*"])
    monkeypatch.setenv("CI", "1")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*benchmark data not found at*CI is set*"])
