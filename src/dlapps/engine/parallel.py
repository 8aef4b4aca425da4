"""Run independent cells of a grid (seeds, variants, ablation points) in worker processes.

The models of the course are small: on a CPU one process with two threads keeps only ~1.5x the
speed of one thread (DCGAN step at batch 32: 155 ms with 2 threads vs 227 ms with 1, on the
2-core machine of docs/RESULTS.md), while two one-thread processes keep ~2x. So a grid runs one
cell per process, ``workers`` at a time, each with ``threads // workers`` threads.

Each job is a picklable top-level function and its arguments; results come back in job order, and
an exception in a cell is raised again in the caller, ``cell NAME:`` in front of its message.
Workers are started with ``spawn`` (a ``fork`` of a process whose OpenMP pool is already running can
hang). Cells should checkpoint on their own: a killed grid resumes cell by cell, whatever ran where.
This pool is the ``local`` launcher; :mod:`dlapps.engine.launchers` sends the same cells to Slurm
(submitit) or Ray instead.
"""

from __future__ import annotations

import json
import multiprocessing
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import closing
from functools import partial
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from dlapps.engine.launchers import Launcher, Local, Outcomes, get_launcher


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


def threads_per_worker(workers: int) -> int:
    """This process's torch threads shared out among ``workers`` processes (at least one each)."""
    return max(1, torch.get_num_threads() // workers)


def pool_outcomes(fn: Callable[..., Any], jobs: Sequence[tuple], workers: int) -> Outcomes:
    """The ``local`` launcher: ``(index, get)`` per job as it ends, from ``workers`` processes; with
    one worker ``get()`` runs the job here, in this process, with its threads unchanged. Closing
    the iterator early cancels the jobs not started; the running ones end first."""
    if workers == 1:
        yield from ((i, partial(fn, *job)) for i, job in enumerate(jobs))
        return
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker,
                             initargs=(threads_per_worker(workers),)) as pool:
        futures = {pool.submit(fn, *job): i for i, job in enumerate(jobs)}
        try:
            for future in as_completed(futures):
                yield futures[future], future.result
        finally:
            for future in futures:
                future.cancel()


def name_cell(error: Exception, name: str) -> None:
    """Put ``cell NAME:`` in front of ``error``'s one-line message (what the command line prints);
    an error built from several arguments (``OSError(errno, text)``) keeps its own."""
    if len(error.args) == 1 and isinstance(error.args[0], str):
        error.args = (f"cell {name}: {error.args[0]}",)


def run_parallel(
    fn: Callable[..., Any],
    jobs: Sequence[tuple],
    workers: int | None = None,
    desc: str = "cells",
    progress: bool = True,
    launcher: Launcher | str | None = None,
    names: Sequence[str] | None = None,
) -> list[Any]:
    """``[fn(*job) for job in jobs]`` through ``launcher`` (None: ``local``, ``workers`` processes at
    a time, ``None`` workers: one per core; see :mod:`dlapps.engine.launchers` for the others).

    The first cell to fail stops the grid: its error is raised here named by ``names[i]`` (default
    ``#i``), the cells not ended are cancelled, and the cells that ended keep what they wrote."""
    if not jobs:
        return []
    launcher = get_launcher(launcher)
    workers = resolve_workers(workers, len(jobs))
    results: list[Any] = [None] * len(jobs)
    bar = tqdm(total=len(jobs), disable=not progress or launcher.in_process(workers), leave=False,
               dynamic_ncols=True, desc=f"{desc} ({launcher.describe(workers)})")
    with bar, closing(launcher.outcomes(fn, jobs, workers)) as outcomes:
        for i, get in outcomes:
            try:
                results[i] = get()
            except Exception as error:
                name_cell(error, names[i] if names else f"#{i}")
                raise
            bar.update(1)
    return results


def run_cells(
    fn: Callable[..., dict],
    cells: Sequence[Any],
    final_file: Callable[[Any], Path | None],
    job: Callable[[Any, bool], tuple],
    workers: int | None = 1,
    progress: bool = True,
    launcher: Launcher | str | None = None,
) -> tuple[list[dict], int]:
    """Every cell's result, in the order of ``cells``, and the number of cells run at once.

    A cell whose ``final_file(cell)`` exists finished in an earlier (killed) run, under whichever
    launcher, and is read back (None: the cell has no such file yet, or keeps none); the others run
    ``fn(*job(cell, show_bar))`` through ``launcher`` (None: ``local`` with ``workers`` processes;
    ``show_bar``: the cell may draw its own progress bar, i.e. it runs alone in this process). Pass
    ``workers=1`` where local cells must run in turn (CUDA, DDP). A failing cell is named by its
    parts joined with ``-`` (``dann-0``)."""
    launcher = get_launcher(launcher)
    files = {c: final_file(c) for c in cells}
    done = {c: json.loads(f.read_text()) for c, f in files.items() if f is not None and f.is_file()}
    todo = [c for c in cells if c not in done]
    n = resolve_workers(workers, len(todo)) if isinstance(launcher, Local) else len(todo)
    jobs = [job(c, progress and launcher.in_process(n)) for c in todo]
    names = ["-".join(map(str, c)) if isinstance(c, tuple) else str(c) for c in todo]
    done.update(zip(todo, run_parallel(fn, jobs, n, "cells", progress, launcher, names), strict=True))
    return [done[c] for c in cells], n
