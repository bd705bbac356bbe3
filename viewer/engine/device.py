"""Choosing the compute device and the numeric precision; nothing here hard-codes CUDA."""

from __future__ import annotations

import functools
import platform
from pathlib import Path

import torch

from viewer.errors import DeviceError

PRECISIONS = ("auto", "fp32", "bf16", "fp16")


def available_devices() -> list[str]:
    """Device names usable on this machine, best first."""
    out = []
    if torch.cuda.is_available():
        out += [f"cuda:{i}" if i else "cuda" for i in range(torch.cuda.device_count())]
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        out.append("mps")
    out.append("cpu")
    return out


def resolve_device(name: str = "auto") -> torch.device:
    """Turn 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps' into a torch.device that is present, else DeviceError."""
    key = (name or "auto").strip().lower()
    if key == "auto":
        return torch.device(available_devices()[0])
    try:
        dev = torch.device(key)
    except (RuntimeError, ValueError):
        raise DeviceError(f"unknown device '{name}'; use auto, cpu, cuda, cuda:N or mps") from None
    if dev.type == "cpu":
        return dev
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError(f"device '{name}' is not available: no CUDA GPU was found (use --device cpu)")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise DeviceError(
                f"device '{name}' is not available: there are {torch.cuda.device_count()} CUDA GPUs"
            )
        return dev
    if dev.type == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise DeviceError(
                f"device '{name}' is not available: Apple MPS is not present (use --device cpu)"
            )
        return dev
    raise DeviceError(f"unsupported device '{name}'; use auto, cpu, cuda, cuda:N or mps")


@functools.cache
def cpu_has_fast_bf16() -> bool:
    """True when the CPU has native bf16 matrix instructions (AVX512-BF16 or AMX), where bf16 pays off."""
    if platform.system() == "Darwin" and platform.machine() == "arm64":
        return False
    try:
        text = Path("/proc/cpuinfo").read_text(errors="ignore")
    except OSError:
        return False
    flags: set[str] = set()
    for line in text.splitlines():
        if line.startswith("flags"):
            flags = set(line.split(":", 1)[1].split())
            break
    return bool({"avx512_bf16", "amx_bf16"} & flags)


def resolve_precision(precision: str, device: torch.device) -> torch.dtype:
    """The decoder's compute dtype. 'auto' picks the fastest path measured to lose <= 0.02 dB PSNR."""
    key = (precision or "auto").lower()
    if key not in PRECISIONS:
        raise DeviceError(f"unknown precision '{precision}'; use {', '.join(PRECISIONS)}")
    if key == "fp32":
        return torch.float32
    if key == "bf16":
        return torch.bfloat16
    if key == "fp16":
        if device.type == "cpu":
            raise DeviceError(
                "fp16 is not supported on the CPU (it is emulated and very slow); use bf16 or fp32"
            )
        return torch.float16
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "mps":
        return torch.float16
    return torch.bfloat16 if cpu_has_fast_bf16() else torch.float32


def dtype_name(dtype: torch.dtype) -> str:
    return {torch.float32: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[dtype]
