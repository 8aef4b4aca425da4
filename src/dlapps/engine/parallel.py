"""Run independent cells of a grid (seeds, variants, ablation points) in worker processes.

The models of the course are small: on a CPU one process with two threads keeps only ~1.5x the
speed of one thread (DCGAN step at batch 32: 155 ms with 2 threads vs 227 ms with 1, on the
2-core machine of docs/RESULTS.md), while two one-thread processes keep ~2x. So a grid runs one
cell per process, ``workers`` at a time, each with ``threads // workers`` threads.

Each job is a picklable top-level function and its arguments; results come back in job order, and
an exception in a worker is raised again in the caller. Workers are started with ``spawn`` (a
``fork`` of a process whose OpenMP pool is already running can hang). Cells should checkpoint on
their own: a killed grid resumes cell by cell, whatever ran where.
"""

from __future__ import annotations

import json
import multiprocessing
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm


def available_cores() -> int:
    """CPU cores this process may use (the affinity mask, not the host's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def resolve_workers(workers: int | None, n_jobs: int) -> int:
    """``None`` -> one worker per core, at most one per job; never more workers than jobs."""
    wanted = available_cores() if workers is None else workers
    return max(1, min(wanted, n_jobs))


def _die_with_parent() -> None:
    """On Linux, ask the kernel to SIGKILL this worker when its parent dies: a grid whose main
    process is killed must not leave cells training (and checkpointing) on their own, racing
    the run that resumes them."""
    import ctypes
    import signal
    import sys

    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG = 1
    except OSError:  # another C library: workers then outlive a killed parent, as before
        return
    if os.getppid() == 1:  # the parent died before the request: go now
        os._exit(1)


def _init_worker(threads: int) -> None:
    _die_with_parent()
    torch.set_num_threads(threads)


def run_parallel(
    fn: Callable[..., Any],
    jobs: Sequence[tuple],
    workers: int | None = None,
    desc: str = "cells",
    progress: bool = True,
) -> list[Any]:
    """``[fn(*job) for job in jobs]``, ``workers`` processes at a time (``None``: one per core).

    With one worker everything runs here, in this process, with its threads unchanged.
    """
    workers = resolve_workers(workers, len(jobs))
    if workers == 1:
        return [fn(*job) for job in jobs]
    threads = max(1, torch.get_num_threads() // workers)
    context = multiprocessing.get_context("spawn")
    results: list[Any] = [None] * len(jobs)
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker,
                             initargs=(threads,)) as pool:
        futures = {pool.submit(fn, *job): i for i, job in enumerate(jobs)}
        bar = tqdm(total=len(jobs), disable=not progress, leave=False, dynamic_ncols=True,
                   desc=f"{desc} ({workers} processes x {threads} thread{'s' * (threads > 1)})")
        try:
            for future in as_completed(futures):
                results[futures[future]] = future.result()
                bar.update(1)
        except BaseException:
            for future in futures:
                future.cancel()
            raise
        finally:
            bar.close()
    return results


def run_cells(
    fn: Callable[..., dict],
    cells: Sequence[Any],
    final_file: Callable[[Any], Path],
    job: Callable[[Any, bool], tuple],
    workers: int | None = 1,
    progress: bool = True,
) -> tuple[list[dict], int]:
    """Every cell's result, in the order of ``cells``, and the number of workers used.

    A cell whose ``final_file(cell)`` exists finished in an earlier (killed) run and is read back;
    the others run ``fn(*job(cell, show_bar))``, ``workers`` processes at a time (``show_bar``:
    the cell may draw its own progress bar, i.e. it runs alone). Pass ``workers=1`` where cells
    must run in turn (CUDA, DDP)."""
    done = {c: json.loads(final_file(c).read_text()) for c in cells if final_file(c).is_file()}
    todo = [c for c in cells if c not in done]
    n = resolve_workers(workers, len(todo))
    jobs = [job(c, progress and n == 1) for c in todo]
    done.update(zip(todo, run_parallel(fn, jobs, n, "cells", progress), strict=True))
    return [done[c] for c in cells], n
