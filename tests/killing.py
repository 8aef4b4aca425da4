"""Kill a real ``dlapps`` process with SIGKILL at random moments, resume it, and compare its
results.json with an uninterrupted run's (every area that trains has such a test).

Timing fields (seconds, images/s, dates, the environment, paths) differ between any two runs and
are left out of the comparison; every other number must be equal.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

VOLATILE = ("seconds", "second", "time", "created", "per_s", "wall", "environment", "run_dir",
            "rendered", "path", "dir", "throughput", "speed", "img_s", "images_s")


def comparable(value, key: str = ""):
    """``value`` without its timing and location fields, recursively."""
    if isinstance(value, dict):
        return {k: comparable(v, k) for k, v in value.items()
                if not any(tag in k.lower() for tag in VOLATILE)}
    if isinstance(value, list):
        return [comparable(v, key) for v in value]
    return value


def dlapps(*args, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "2"}
    return subprocess.run([sys.executable, "-m", "dlapps", *map(str, args)], env=env, check=check,
                          capture_output=True, text=True, timeout=timeout)


def _newest(out: Path, pattern: str) -> float:
    return max((p.stat().st_mtime_ns for p in Path(out).glob(pattern)), default=0)


def kill_and_resume(start: list, resume: list, out: Path, *, kills: int = 3, seed: int = 0,
                    first_checkpoint: str = "**/checkpoint.pt", max_delay: float = 2.0,
                    timeout: float = 300) -> dict:
    """Start ``dlapps *start``; ``kills`` times: wait until the process has written a new
    checkpoint (``first_checkpoint`` glob under ``out``; so every attempt trains at least one more
    epoch than the last), wait a random extra 0–``max_delay`` s (so the kill lands at a random
    step of a later epoch), SIGKILL; each restart runs ``dlapps *resume``. Then let it finish and
    return its results.json, with ``_kills``: how many kills landed before the run had ended."""
    rng = random.Random(seed)
    env = {**os.environ, "OMP_NUM_THREADS": "2"}
    args, landed = start, 0
    for _ in range(kills):
        stamp = _newest(out, first_checkpoint)
        proc = subprocess.Popen([sys.executable, "-m", "dlapps", *map(str, args)], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        deadline = time.time() + timeout
        while _newest(out, first_checkpoint) <= stamp and proc.poll() is None and time.time() < deadline:
            time.sleep(0.05)
        time.sleep(rng.uniform(0, max_delay))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            landed += 1
        proc.wait()
        if proc.returncode not in (0, -signal.SIGKILL):
            raise AssertionError(f"dlapps {' '.join(map(str, args))} failed: {proc.stderr.read()}")
        args = resume
    dlapps(*resume)
    results = json.loads((Path(out) / "results.json").read_text())
    results["_kills"] = landed
    return results


def killed_and_whole(args: list, root: Path, *, max_delay: float = 1.0) -> tuple[dict, dict]:
    """``dlapps *args --out root/whole`` uninterrupted, and ``--out root/killed`` SIGKILLed and
    rerun (the same command resumes it); both results.json, after checking a kill landed."""
    dlapps(*args, "--out", Path(root) / "whole")
    out = Path(root) / "killed"
    killed = kill_and_resume([*args, "--out", out], [*args, "--out", out], out, max_delay=max_delay)
    assert killed.pop("_kills") >= 1
    return killed, json.loads((Path(root) / "whole" / "results.json").read_text())
