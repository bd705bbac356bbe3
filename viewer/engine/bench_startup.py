"""`liif-viewer bench --startup`: whole-process time of a small CLI render, against `import torch`.

Each measurement is a fresh process, so it counts everything a person waits for: the interpreter, the
huge-page restart (`viewer.hugepages`), the imports, loading the weights, building the engine, the work,
writing the file. The variants run round after round, in an order that rotates each round (a machine that
slows down during the run weighs on all alike), after one untimed warm-up run of each (so the files are in
the page cache):
- `import torch`: a bare interpreter importing torch, the floor no render can go below;
- the render of a 128 px photo (the bundled sample, resized) to 512 px, as `liif-viewer render` runs it;
- an 8 px -> 32 px render: nearly no work, so beyond `import torch` it is the start-up alone;
- each of the two with glibc's huge-page malloc forced (the tunable set, as the restart sets it; a job this
  small does not restart, see `viewer.hugepages.small_job`);
- with `--against DIR`, each of the two from the checkout in DIR (e.g. `git worktree add /tmp/before
  HEAD`), to compare two versions of the code in one run.
Every render gets an empty feature disk cache of its own, as the first render of a photo does, and no
process inherits the huge-page tunable of this one's own restart. It prints
medians of wall and CPU time (CPU time is steadier where other work shares the cores) and ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: Edge of the small render's source photo and of the start-up-only one, in pixels.
SMALL_PX = 128
TINY_PX = 8
SCALE = 4


@dataclass
class Variant:
    """One command to time: argv, extra environment, the output file it must write (if any)."""

    name: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    output: Path | None = None
    key: str = ""
    """Short name the report computes its ratios with: torch, small, small-hp, tiny, tiny-hp, and
    small-against, tiny-against for `--against`."""
    walls: list[float] = field(default_factory=list)
    cpus: list[float] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "name": self.name,
            "wall_median_s": statistics.median(self.walls),
            "wall_min_s": min(self.walls),
            "cpu_median_s": statistics.median(self.cpus),
            "walls_s": self.walls,
            "cpus_s": self.cpus,
        }


def make_photo(path: Path, edge: int) -> Path:
    """The bundled sample resized to `edge` pixels square (PNG), or a gradient where the sample is missing."""
    import numpy as np
    from PIL import Image

    from viewer import paths

    sample = paths.sample_photo()
    if sample.is_file():
        with Image.open(sample) as src:
            img = src.convert("RGB").resize((edge, edge), Image.Resampling.LANCZOS)
    else:
        ramp = np.linspace(0, 255, edge, dtype=np.uint8)
        img = Image.fromarray(np.stack(np.broadcast_arrays(ramp[:, None], ramp[None, :], 128), axis=-1))
    img.save(path)
    return path


def pick_model(wanted: str | None) -> str:
    """`wanted`, else the commands' default model where it is installed, else the shipped fast model."""
    from viewer.engine.weights import DEFAULT_MODEL, FAST_MODEL, list_models

    if wanted:
        return wanted
    installed = {m.name for m in list_models() if m.available}
    return DEFAULT_MODEL if DEFAULT_MODEL in installed else FAST_MODEL


def child_environment(environ: dict[str, str]) -> dict[str, str]:
    """`environ` without the huge-page tunable this command's own restart added to GLIBC_TUNABLES, so each
    render starts as a person's command does (restarting itself) and the others as plain processes."""
    from viewer.hugepages import TUNABLE

    env = dict(environ)
    kept = [t for t in env.pop("GLIBC_TUNABLES", "").split(":") if t and t.split("=")[0] != TUNABLE]
    if kept:
        env["GLIBC_TUNABLES"] = ":".join(kept)
    return env


def run_once(v: Variant, cwd: Path, cache: Path) -> tuple[float, float]:
    """Run `v` in a fresh process; returns (wall seconds, CPU seconds of the process). Raises on failure."""
    env = child_environment(dict(os.environ))
    env.update(v.env)
    env["LIIF_VIEWER_CACHE"] = str(cache)
    if v.output is not None:
        v.output.unlink(missing_ok=True)
    with tempfile.TemporaryFile() as log:
        t0 = time.perf_counter()
        proc = subprocess.Popen(v.argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        proc.returncode = code = os.waitstatus_to_exitcode(status)
        if code != 0 or (v.output is not None and not v.output.is_file()):
            log.seek(0)
            text = log.read().decode(errors="replace")
            raise RuntimeError(f"{v.name} failed (exit {code}):\n{text}")
    return wall, usage.ru_utime + usage.ru_stime


def variants(tmp: Path, model: str, against: Path | None) -> list[Variant]:
    """The commands compared (see the module docstring)."""
    from viewer.hugepages import TUNABLE

    py = sys.executable
    found = [Variant("import torch", [py, "-c", "import torch"], key="torch")]
    extra: dict[str, dict[str, str]] = {"-hp": {"GLIBC_TUNABLES": f"{TUNABLE}=1"}}
    if against is not None:
        here = os.environ.get("PYTHONPATH", "")
        extra["-against"] = {"PYTHONPATH": os.pathsep.join(filter(None, [str(against), here]))}
    for size, edge in (("small", SMALL_PX), ("tiny", TINY_PX)):
        src = make_photo(tmp / f"{size}.png", edge)
        name = f"render {edge}->{edge * SCALE} px" + (" (start-up)" if size == "tiny" else "")
        label = {"": name, "-hp": f"{name}, huge pages forced", "-against": f"{name}, code in {against}"}
        for suffix, env in [("", {}), *extra.items()]:
            out = tmp / f"out{len(found)}.png"
            argv = [py, "-m", "viewer.entry", "render", str(src), "-o", str(out), "--scale", str(SCALE)]
            found.append(Variant(label[suffix], [*argv, "--model", model], dict(env), out, key=size + suffix))
    return found


def measure(vs: list[Variant], rounds: int, tmp: Path, *, log: bool = True) -> None:
    """Warm up once, then run every variant `rounds` times in a rotating order, filling walls and cpus."""
    cwd = tmp / "cwd"  # not the checkout: `python -m viewer.entry` must find the package it is meant to
    cwd.mkdir(exist_ok=True)
    n = 0

    def one(v: Variant) -> tuple[float, float]:
        nonlocal n
        n += 1
        return run_once(v, cwd, tmp / f"cache{n}")

    for v in vs:
        one(v)
    for r in range(rounds):
        order = vs[r % len(vs) :] + vs[: r % len(vs)]
        for v in order:
            wall, cpu = one(v)
            v.walls.append(wall)
            v.cpus.append(cpu)
        if log:
            line = "; ".join(f"{v.name}: {v.walls[-1]:.2f} s" for v in vs)
            print(f"round {r + 1}/{rounds}: {line}", flush=True)


def machine() -> dict[str, Any]:
    """What the figures were measured on (they are only comparable on the same machine)."""
    model = ""
    flags: list[str] = []
    try:
        for line in Path("/proc/cpuinfo").read_text(errors="ignore").splitlines():
            if line.startswith("model name") and not model:
                model = line.split(":", 1)[1].strip()
            if line.startswith("flags"):
                flags = sorted({"avx512_bf16", "amx_bf16", "amx_tile"} & set(line.split(":", 1)[1].split()))
                break
    except OSError:
        pass
    from viewer.hugepages import thp_mode

    return {
        "cpu": model or platform.processor() or platform.machine(),
        "cpu_flags": flags,
        "cores": os.cpu_count(),
        "libc": " ".join(platform.libc_ver()),
        "thp": thp_mode() or "?",
        "python": platform.python_version(),
    }


def _load() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "?"


def report(vs: list[Variant]) -> dict[str, Any]:
    """Medians, each variant's ratio to `import torch`, and the ratios between variants, all from one run."""
    rows = [v.summary() for v in vs]
    by = {row["key"]: row for row in rows}
    base = by["torch"]["wall_median_s"]
    for row in rows:
        row["ratio_to_import_torch"] = row["wall_median_s"] / base
        row["over_import_torch_s"] = row["wall_median_s"] - base

    def ratio(a: str, b: str, what: str = "wall_median_s") -> float | None:
        return by[a][what] / by[b][what] if a in by and b in by else None

    out: dict[str, Any] = {"variants": rows}
    for size in ("small", "tiny"):
        out[f"{size}_huge_pages_over_chosen"] = ratio(f"{size}-hp", size)
        out[f"{size}_this_over_against"] = ratio(size, f"{size}-against")
        out[f"{size}_this_over_against_cpu"] = ratio(size, f"{size}-against", "cpu_median_s")
    out["startup_s"] = by["tiny"]["over_import_torch_s"] if "tiny" in by else None
    out["startup_against_s"] = by["tiny-against"]["over_import_torch_s"] if "tiny-against" in by else None
    return {k: v for k, v in out.items() if v is not None}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="liif-viewer bench --startup", description=__doc__.splitlines()[0])
    p.add_argument("--startup", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--rounds", type=int, default=5, help="timed runs of each variant (default 5)")
    p.add_argument(
        "--model",
        default=None,
        help="registry name or weights file (default: edsr-baseline-liif where installed, else liif-lm)",
    )
    p.add_argument(
        "--against", type=Path, default=None, metavar="DIR", help="also time the render with the code in DIR"
    )
    p.add_argument(
        "--threads",
        type=int,
        default=0,
        help="OMP_NUM_THREADS for every process (default: torch's own); 1 makes the figures steadier on a "
        "shared machine, where each multi-threaded kernel waits for a descheduled thread",
    )
    p.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = p.parse_args(argv)
    if args.rounds < 1:
        p.error("--rounds must be at least 1")
    against = args.against.expanduser().resolve() if args.against is not None else None
    if against is not None and not (against / "viewer" / "__init__.py").is_file():
        p.error(f"--against {args.against}: no viewer package there")
    model = pick_model(args.model)
    info = machine()
    load_before = _load()
    with tempfile.TemporaryDirectory(prefix="liif-bench-startup-") as name:
        tmp = Path(name)
        vs = variants(tmp, model, against)
        if args.threads > 0:
            for v in vs:
                v.env["OMP_NUM_THREADS"] = str(args.threads)
        measure(vs, args.rounds, tmp, log=not args.json)
    result = report(vs)
    result.update(
        machine=info,
        model=model,
        rounds=args.rounds,
        threads=args.threads or None,
        load_before=load_before,
        load_after=_load(),
    )
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(
        f"\n{info['cpu']} ({', '.join(info['cpu_flags']) or 'no bf16/AMX flags'}), {info['cores']} cores, "
        f"{info['libc']}, THP {info['thp']}; model {model}; threads {args.threads or 'default'}; load average {load_before} -> {result['load_after']}"
    )
    print(f"medians of {args.rounds} fresh processes each:")
    width = max(len(v.name) for v in vs)
    for row in result["variants"]:
        print(
            f"  {row['name']:<{width}}  {row['wall_median_s']:6.2f} s wall (min {row['wall_min_s']:.2f}), "
            f"{row['cpu_median_s']:6.2f} s CPU, {row['ratio_to_import_torch']:5.2f}x import torch"
        )
    line = f"start-up beyond import torch (the {TINY_PX} px render): {result['startup_s']:.2f} s"
    if "startup_against_s" in result:
        line += f" (code in {against}: {result['startup_against_s']:.2f} s)"
    print(line)
    for size, edge in (("small", SMALL_PX), ("tiny", TINY_PX)):
        parts = [f"huge pages forced / as the command chose {result[f'{size}_huge_pages_over_chosen']:.3f}"]
        if f"{size}_this_over_against" in result:
            parts.append(
                f"this code / the code in {against} {result[f'{size}_this_over_against']:.3f} "
                f"(CPU time {result[f'{size}_this_over_against_cpu']:.3f})"
            )
        print(f"the {edge} px render: " + "; ".join(parts))
    return 0
