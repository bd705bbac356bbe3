"""`liif-viewer bench --decoders` runs end to end and reports every figure as a ratio against its reference
measured in the same run. Tiny models and a small view stand in for the official one, so it takes seconds;
the figures the README quotes come from the real command."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from viewer.engine import bench_decoders
from viewer.liif.checkpoint import save_safetensors
from viewer.liif.cost import decoder_cost
from viewer.liif.liif import make_liif


def _save(tmp_path: Path, name: str, **kw: object) -> str:
    path = tmp_path / f"{name}.safetensors"
    save_safetensors(make_liif(n_resblocks=1, n_feats=6, seed=3, **kw), path)  # type: ignore[arg-type]
    return str(path)


def test_the_decoder_bench_measures_each_model_against_the_reference(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ref = _save(tmp_path, "ref", hidden=(64, 64))
    lm = _save(tmp_path, "lm", hidden=(8, 8), hyper_hidden=16)
    monkeypatch.setattr(bench_decoders, "REFERENCE", (ref, "fp32"))
    monkeypatch.setattr(bench_decoders, "VIEW", (96, 64))
    monkeypatch.setattr(bench_decoders, "CLI_EDGE", 24)
    monkeypatch.setattr(bench_decoders, "CLI_SCALE", 2)
    out = tmp_path / "bench.json"
    assert bench_decoders.main(["--model", lm, "--rounds", "1", "--cli", "--json", str(out)]) == 0

    data = json.loads(out.read_text())
    decode, cli = data["decode"], data["cli"]
    assert decode[0]["model"] == "ref"
    assert {(row["model"], row["asked"]) for row in decode} >= {
        ("ref", "fp32"),
        ("lm", "fp32"),
        ("lm", "auto"),
    }
    assert all(row["seconds"] > 0 and len(row["all_seconds"]) == 1 for row in decode)
    # The reference is counted as its paper runs it, the others as this program runs them at x4.
    assert (
        decode[0]["macs_x4"]
        == decoder_cost(make_liif(n_resblocks=1, n_feats=6, hidden=(64, 64)).spec).paper_per_pixel
    )
    lm_cost = decoder_cost(make_liif(n_resblocks=1, n_feats=6, hidden=(8, 8), hyper_hidden=16).spec)
    assert all(row["macs_x4"] == lm_cost.per_pixel_at(4) for row in decode if row["model"] == "lm")
    assert [row["name"] for row in cli] == ["ref", "lm"]
    assert all(row["wall_median_s"] > 0 and row["cpu_median_s"] > 0 for row in cli)

    # The floor, timed in the same rotation: each model's render of the same photo at a small scale.
    floors = data["floors"]
    assert [row["name"] for row in floors] == [f"lm at --scale {bench_decoders.FLOOR_SCALE}"]
    assert all(len(row["walls_s"]) == 1 and row["wall_median_s"] > 0 for row in floors)

    table = bench_decoders.report(decode, cli, floors)
    lines = table.splitlines()
    ratio = decode[0]["seconds"] / decode[1]["seconds"]
    assert f"{ratio:.1f}x" in lines[3]
    sooner = cli[0]["wall_median_s"] / cli[1]["wall_median_s"]
    at = next(i for i, line in enumerate(lines) if line.startswith("lm ") and "sooner" in line)
    assert f"{sooner:.1f}x sooner" in lines[at]
    assert "24 px -> 48 px" in table
    budget = cli[0]["wall_median_s"] / bench_decoders.GOAL_SOONER
    assert f"takes at most {budget:.2f} s" in table
    assert lines[-1].startswith("lm at --scale")
    assert lines[-1].endswith(f"leaves {budget - floors[0]['wall_median_s']:.2f} s")
