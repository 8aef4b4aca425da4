"""Where the cells of a grid run: this machine's processes, a Slurm cluster, or a Ray cluster.

A grid of C independent cells of t seconds each on P slots takes about ⌈C / P⌉ · t; a launcher
only changes P. Every launcher runs ``fn(*job)`` for every job and hands the results back in job
order; each cell writes its own checkpoints and final file, so a grid killed anywhere resumes cell
by cell on the rerun, whichever launcher ran the cells before.

``local`` (the default)
    The process pool of :mod:`dlapps.engine.parallel`: ``--workers`` processes of this machine.
``slurm``
    One Slurm job per cell, submitted as one job array through `submitit
    <https://github.com/facebookincubator/submitit>`_ (``pip install submitit``); the jobs' logs and
    pickles go to ``<run directory>/.submitit``. On a machine without Slurm (no ``srun``) submitit
    runs the jobs as local processes instead (``cluster="local"``, which the tests use). From a
    login node whose file system the compute nodes share, e.g.::

        dlapps adapt compare --launcher slurm --launcher-option partition=cpu \\
            --launcher-option time=120 --launcher-option cpus=4 --launcher-option mem_gb=8 \\
            --launcher-option account=myproject --out runs/compare
        dlapps semi --launcher slurm --launcher-option partition=gpu --launcher-option gpus=1 \\
            --out runs/semi

    (``time`` in minutes; a key the launcher does not declare, such as ``account``, goes to sbatch
    as it is.)

    The command waits for the jobs (run it under ``tmux`` or ``nohup``); Ctrl-C cancels them, a
    killed command leaves them running (``scancel --name dlapps``), and running it again submits
    only the cells without a final file. The device is chosen on the submitting machine, so a cell
    trains on its node's GPU only where that machine resolves ``--device`` to CUDA too.
``ray``
    One Ray task per cell with ``cpus`` CPUs and ``gpus`` GPUs (``--launcher-option cpus=2``) on a
    running Ray cluster (``pip install ray``; ``ray start --head`` on one node, ``ray start
    --address HEAD:6379`` on the others, then ``--launcher-option address=HEAD:6379``), or on a
    Ray head started for this run on this machine (``address=local``, the default); ``auto``
    joins the cluster ``ray start`` left on this machine. A Ray session already open in this
    process is used as it is.

These spread the *cells* of a grid. A single run larger than one machine is DDP under torchrun
(:mod:`dlapps.engine.distributed`), started on each of the two nodes with the same command::

    torchrun --nnodes=2 --nproc_per_node=4 --rdzv_backend=c10d --rdzv_endpoint=NODE0:29500 \\
        --rdzv_id=dlapps-run -m dlapps adapt --device cuda --out /shared/runs/big

(under Slurm: ``srun --nodes=2 --ntasks-per-node=1 torchrun ...`` with ``NODE0`` the first host of
``scontrol show hostnames $SLURM_JOB_NODELIST``); rank 0 writes the run directory.
"""

from __future__ import annotations

import importlib
import json
import socket
import time
import traceback
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, fields, replace
from functools import partial
from pathlib import Path
from types import ModuleType
from typing import Any, ClassVar

import torch

from dlapps.errors import ConfigError, UnknownNameError

Outcomes = Iterator[tuple[int, Callable[[], Any]]]


def require(package: str, launcher: str) -> ModuleType:
    """The module ``package``, which ``--launcher launcher`` needs (imported only when asked for)."""
    try:
        return importlib.import_module(package)
    except ModuleNotFoundError:
        raise ConfigError(f"--launcher {launcher} needs {package}, which is not installed: "
                          f"pip install {package}") from None


class RemoteTraceback(Exception):
    """The traceback of a cell's error where it was raised, shown as the cause of that error here."""


def call(fn: Callable[..., Any], job: tuple, threads: int) -> tuple[bool, Any]:
    """``fn(*job)`` in a cell's own process: ``(True, result)``, or ``(False, (error, traceback))``
    so that the error comes back with its own class and message, not as the engine's summary."""
    torch.set_num_threads(threads)
    try:
        return True, fn(*job)
    except Exception as error:
        return False, (error, traceback.format_exc())


def unwrap(get: Callable[[], tuple[bool, Any]]) -> Any:
    """The result of :func:`call` fetched by ``get()``, or its error raised again here."""
    ok, value = get()
    if ok:
        return value
    error, trace = value
    raise error from RemoteTraceback(trace)


class Launcher(ABC):
    """Runs the jobs of a grid somewhere; see the module's docstring for each kind."""

    name: ClassVar[str]
    package: ClassVar[str | None] = None

    def within(self, run_dir: Path) -> Launcher:
        """This launcher for the run in ``run_dir`` (a launcher's own files go there)."""
        return self

    def in_process(self, workers: int) -> bool:
        """True when the jobs run one after another in this process (a cell may draw its own bar)."""
        return False

    @abstractmethod
    def describe(self, workers: int) -> str:
        """Where the cells run, for the progress bar."""

    @abstractmethod
    def outcomes(self, fn: Callable[..., Any], jobs: Sequence[tuple], workers: int) -> Outcomes:
        """Start ``fn(*job)`` for every job; yield ``(index, get)`` as each job ends, ``get()``
        returning its result or raising its error. Closing the iterator early cancels the jobs
        that have not ended."""


@dataclass(frozen=True)
class Local(Launcher):
    """``workers`` processes of this machine (:func:`dlapps.engine.parallel.pool_outcomes`)."""

    name: ClassVar[str] = "local"

    def in_process(self, workers: int) -> bool:
        return workers == 1

    def describe(self, workers: int) -> str:
        from dlapps.engine.parallel import threads_per_worker

        threads = threads_per_worker(workers)
        return f"{workers} processes x {threads} thread{'s' * (threads > 1)}"

    def outcomes(self, fn: Callable[..., Any], jobs: Sequence[tuple], workers: int) -> Outcomes:
        from dlapps.engine.parallel import pool_outcomes

        return pool_outcomes(fn, jobs, workers)


@dataclass(frozen=True)
class Slurm(Launcher):
    """One Slurm job per cell through submitit: ``time`` minutes, ``cpus`` CPUs (the cell's torch
    threads), ``gpus`` GPUs and ``mem_gb`` GB each on ``partition``; ``extra`` holds further sbatch
    settings (``{"account": "proj", "qos": "high"}``). ``cluster``: None picks Slurm where ``srun``
    exists and this machine's processes elsewhere; ``"local"`` asks for the latter. ``folder`` keeps
    the jobs' pickles and logs (default ``<run dir>/.submitit`` through :meth:`within`, else
    ``./.submitit``); ``poll``: seconds between looks at the jobs."""

    name: ClassVar[str] = "slurm"
    package: ClassVar[str | None] = "submitit"
    folder: Path | None = None
    partition: str | None = None
    time: int = 240
    cpus: int = 1
    gpus: int = 0
    mem_gb: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    cluster: str | None = None
    poll: float = 1.0

    def __post_init__(self) -> None:
        if self.time < 1 or self.cpus < 1 or self.gpus < 0 or (self.mem_gb is not None and self.mem_gb <= 0):
            raise ConfigError(f"slurm needs time >= 1 minute, cpus >= 1, gpus >= 0 and mem_gb > 0, got "
                              f"time={self.time}, cpus={self.cpus}, gpus={self.gpus}, mem_gb={self.mem_gb}")
        if self.cluster not in (None, "slurm", "local"):
            raise UnknownNameError("submitit cluster", str(self.cluster), ("slurm", "local"))

    def within(self, run_dir: Path) -> Launcher:
        return self if self.folder else replace(self, folder=Path(run_dir) / ".submitit")

    def describe(self, workers: int) -> str:
        cluster = self.cluster or require("submitit", self.name).AutoExecutor.which()
        return f"submitit {cluster} jobs, {self.cpus} CPUs + {self.gpus} GPUs each"

    def outcomes(self, fn: Callable[..., Any], jobs: Sequence[tuple], workers: int) -> Outcomes:
        submitit = require("submitit", self.name)
        executor = submitit.AutoExecutor(folder=self.folder or ".submitit", cluster=self.cluster)
        executor.update_parameters(name="dlapps", timeout_min=self.time, cpus_per_task=self.cpus,
                                   gpus_per_node=self.gpus, mem_gb=self.mem_gb,
                                   slurm_partition=self.partition,
                                   slurm_additional_parameters=dict(self.extra) or None)
        with executor.batch():  # one job array
            submitted = [executor.submit(call, fn, job, self.cpus) for job in jobs]
        pending = dict(enumerate(submitted))
        try:
            while pending:
                ended = [i for i, job in pending.items() if job.done()]
                for i in ended:
                    yield i, partial(unwrap, pending.pop(i).result)
                if not ended:
                    time.sleep(self.poll)
        finally:
            for job in pending.values():
                job.cancel(check=False)


@dataclass(frozen=True)
class Ray(Launcher):
    """One Ray task per cell with ``cpus`` CPUs (the cell's torch threads) and ``gpus`` GPUs, on the
    cluster at ``address`` (``HOST:PORT`` or ``ray://HOST:PORT``), ``"auto"`` (the one ``ray start``
    left on this machine) or ``"local"`` (a head started on this machine for this run)."""

    name: ClassVar[str] = "ray"
    package: ClassVar[str | None] = "ray"
    address: str = "local"
    cpus: float = 1
    gpus: float = 0
    timeout: float = 10.0

    def __post_init__(self) -> None:
        if self.cpus <= 0 or self.gpus < 0:
            raise ConfigError(f"ray needs cpus > 0 and gpus >= 0 per cell, got cpus={self.cpus}, "
                              f"gpus={self.gpus}")

    def describe(self, workers: int) -> str:
        return f"ray tasks, {self.cpus:g} CPUs + {self.gpus:g} GPUs each"

    def connect(self) -> bool:
        """Join (or start) the cluster; True when this call opened the session, False when one was open.

        An address that does not take a TCP connection within ``timeout`` seconds is a ConfigError."""
        ray = require("ray", self.name)
        if self.address not in ("local", "auto"):
            host, _, port = self.address.removeprefix("ray://").rpartition(":")
            if not (host and port.isdigit()):
                raise ConfigError("a Ray address is HOST:PORT, ray://HOST:PORT, local or auto, "
                                  f"got {self.address!r}")
            try:
                socket.create_connection((host, int(port)), timeout=self.timeout).close()
            except OSError as error:
                raise ConfigError(f"no Ray cluster answers at {self.address} ({error}); start one with "
                                  "`ray start --head` or use --launcher-option address=local") from None
        if ray.is_initialized():
            return False
        try:
            ray.init(address=self.address, include_dashboard=False if self.address == "local" else None)
        except ConnectionError as error:
            raise ConfigError(f"no Ray cluster answers at {self.address} ({error})") from None
        return True

    def outcomes(self, fn: Callable[..., Any], jobs: Sequence[tuple], workers: int) -> Outcomes:
        ray = require("ray", self.name)
        opened = self.connect()
        task = ray.remote(num_cpus=self.cpus, num_gpus=self.gpus)(call)
        refs = [task.remote(fn, job, max(1, int(self.cpus))) for job in jobs]
        index = {ref: i for i, ref in enumerate(refs)}
        pending = refs
        try:
            while pending:
                ready, pending = ray.wait(pending, num_returns=1)
                yield index[ready[0]], partial(unwrap, partial(ray.get, ready[0]))
        finally:
            for ref in pending:
                ray.cancel(ref, force=True)
            if opened:
                ray.shutdown()


LAUNCHERS: dict[str, type[Launcher]] = {"local": Local, "slurm": Slurm, "ray": Ray}


def get_launcher(launcher: Launcher | str | None = None, **options: Any) -> Launcher:
    """A launcher by name (None: ``local``) with its options; options that are None were not given.

    An option of another launcher (``partition`` for ``ray``) and a launcher whose package is not
    installed are ConfigErrors, caught before a grid starts."""
    if isinstance(launcher, Launcher):
        return launcher
    name = launcher or "local"
    if name not in LAUNCHERS:
        raise UnknownNameError("launcher", name, LAUNCHERS)
    kind = LAUNCHERS[name]
    given = {k: v for k, v in options.items() if v is not None}
    for key in given:
        if key not in {f.name for f in fields(kind)}:
            owners = [n for n, k in LAUNCHERS.items() if key in {f.name for f in fields(k)}]
            where = f"an option of --launcher {' and '.join(owners)}" if owners else "no launcher's option"
            raise ConfigError(f"{key!r} is {where}, not of --launcher {name}")
    if kind.package:
        require(kind.package, name)
    return kind(**given)


def parse_launcher(name: str | None, items: list[str] | None) -> Launcher:
    """The :class:`Launcher` of ``--launcher`` and its
    ``--launcher-option KEY=VALUE`` items; a Slurm key the launcher does not declare is passed to
    sbatch as it is (``account=myproject``)."""
    options: dict = {}
    for item in items or []:
        key, eq, text = item.partition("=")
        if not (eq and key):
            raise ConfigError(f"--launcher-option takes KEY=VALUE (e.g. partition=gpu), got {item!r}")
        try:
            options[key] = json.loads(text)
        except json.JSONDecodeError:
            options[key] = text
    if name == "slurm" and "slurm" in LAUNCHERS:
        declared = {f.name for f in fields(LAUNCHERS["slurm"])} - {"extra"}
        extra = {k: options.pop(k) for k in list(options) if k not in declared}
        if extra:
            options["extra"] = extra
    return get_launcher(name, **options)
