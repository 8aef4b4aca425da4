"""Choosing the device and mixed precision; describing the machine a result was measured on."""

from __future__ import annotations

import contextlib
import functools
import platform
from pathlib import Path

import torch

from dlapps.errors import ConfigError, UnknownNameError

DEVICES = ("auto", "cpu", "cuda")


def resolve_device(name: str | None = "auto", local_rank: int = 0) -> torch.device:
    """``auto`` (or None) picks CUDA when present; ``cuda`` without a GPU is an error, not a
    silent CPU run."""
    name = name or "auto"
    if name not in DEVICES and not name.startswith("cuda:"):
        raise UnknownNameError("device", name, DEVICES)
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError("--device cuda was asked for, but torch sees no CUDA GPU")
        return torch.device(name if ":" in name else f"cuda:{local_rank}")
    return torch.device("cpu")


@functools.cache
def cpu_has_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AVX512-BF16 or AMX): only there does CPU autocast
    pay (elsewhere bf16 is emulated and slower than float32)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return " avx512_bf16" in flags or " amx_bf16" in flags


def autocast(device: torch.device, enabled: bool, cpu: bool = False):
    """bf16 autocast on CUDA when ``enabled`` (no loss scaling needed); on a CPU only with ``cpu``
    too and where the CPU has native bf16 (:func:`cpu_has_bf16`); otherwise a no-op."""
    if enabled and device.type == "cuda":
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.autocast("cuda", dtype=dtype)
    if enabled and cpu and device.type == "cpu" and cpu_has_bf16():
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def cpu_name() -> str:
    """The CPU's model name (from /proc/cpuinfo on Linux), else platform's best guess."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def environment() -> dict:
    """Software and hardware next to every result: versions, CPU, threads, GPU."""
    return {"python": platform.python_version(), "torch": torch.__version__,
            "machine": platform.machine(), "processor": platform.processor() or platform.machine(),
            "cpu": cpu_name(), "threads": torch.get_num_threads(),
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}
