"""Grids through every launcher: the same results, reruns that skip finished cells, named errors."""

from __future__ import annotations

import json
import socket
import sys
import time
from pathlib import Path

import cloudpickle
import pytest
import torch

from dlapps.engine.launchers import Local, Ray, Slurm, get_launcher, require
from dlapps.engine.parallel import run_cells, run_parallel
from dlapps.errors import ConfigError, UnknownNameError

# submitit's and Ray's processes cannot import this test module: send its functions by value
cloudpickle.register_pickle_by_value(sys.modules[__name__])
CELLS = [("a", seed) for seed in range(4)]


def cell(out: str, seed: int, fail_after: tuple[int, ...] | None = None) -> dict:
    """A grid cell: a seeded torch number, its final file, and one file per call (to count calls).
    With ``fail_after`` it waits for those cells' final files, then raises."""
    folder = Path(out) / f"a-{seed}"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"call-{time.time_ns()}").touch()
    if fail_after is not None:
        others = [Path(out) / f"a-{s}" / "final.json" for s in fail_after]
        for _ in range(200):
            if all(f.is_file() for f in others):
                break
            time.sleep(0.1)
        raise ConfigError(f"seed {seed} refuses to train")
    torch.manual_seed(seed)
    x = torch.randn(64, 64, dtype=torch.float64)
    result = {"seed": seed, "value": float((x * x).sum()), "threads": torch.get_num_threads()}
    (folder / "final.json").write_text(json.dumps(result))
    return result


def run(out: Path, launcher, cells=CELLS, fail: int | None = None, workers: int = 2) -> list[dict]:
    others = tuple(s for _, s in cells if s != fail)
    results, _ = run_cells(cell, cells, lambda c: out / f"a-{c[1]}" / "final.json",
                           lambda c, bar: (str(out), c[1], others if c[1] == fail else None),
                           workers, progress=False, launcher=get_launcher(launcher).within(out))
    return results


def calls(out: Path) -> list[int]:
    return [len(list((out / f"a-{s}").glob("call-*"))) for _, s in CELLS]


@pytest.fixture(scope="module")
def ray_session():
    """One local Ray head for the whole file (it takes seconds to start); launchers join it."""
    ray = pytest.importorskip("ray")
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # Ray's own copy of cloudpickle
    assert Ray(address="local").connect()  # this call opened the session
    yield
    ray.shutdown()


LAUNCHERS = {"local": Local(), "submitit": Slurm(cluster="local", poll=0.2), "ray": Ray()}


def test_a_grid_gives_the_same_results_through_every_launcher(tmp_path, ray_session):
    here = [cell(str(tmp_path / "here"), s) for _, s in CELLS]  # the reference: in this process
    for name, launcher in LAUNCHERS.items():
        got = run(tmp_path / name, launcher)
        assert [r["value"] for r in got] == [r["value"] for r in here], name
        assert calls(tmp_path / name) == [1, 1, 1, 1]
    # the seeded numbers differ per seed; a cell's torch threads are its CPUs (one here)
    assert len({r["value"] for r in here}) == 4 and {r["threads"] for r in got} == {1}
    assert (tmp_path / "submitit" / ".submitit").is_dir()  # within(run_dir): the jobs' files there


def test_a_rerun_skips_the_cells_any_launcher_finished(tmp_path, ray_session):
    out = tmp_path / "grid"
    first = run(out, Ray(), cells=CELLS[:2])  # a grid stopped halfway
    assert calls(out)[:2] == [1, 1] and not (out / "a-2").exists()
    second = run(out, "local", workers=1)  # continued by another launcher: only the missing cells run
    assert calls(out) == [1, 1, 1, 1] and second[:2] == first
    assert run(out, LAUNCHERS["submitit"]) == second and calls(out) == [1, 1, 1, 1]  # nothing left


@pytest.mark.parametrize("name", ["submitit", "ray"])
def test_a_failing_cell_is_named_and_the_finished_cells_are_kept(tmp_path, name, ray_session):
    out = tmp_path / name
    with pytest.raises(ConfigError, match=r"^cell a-3: seed 3 refuses to train$") as caught:
        run(out, LAUNCHERS[name], fail=3)
    # the error keeps its class; the traceback where the cell raised it is its cause
    assert "line" in str(caught.value.__cause__) and "refuses to train" in str(caught.value.__cause__)
    assert [(out / f"a-{s}" / "final.json").is_file() for s in range(4)] == [True, True, True, False]
    run(out, "local", workers=1)
    assert calls(out) == [1, 1, 1, 2]  # the rerun trains only the failed cell


def test_errors_in_local_cells_are_named_too(tmp_path):
    """The process pool and a single worker (cells run here) name the failing cell the same way."""
    for workers in (2, 1):
        with pytest.raises(ConfigError, match=r"^cell a-1: seed 1 refuses to train$"):
            run(tmp_path / str(workers), "local", cells=CELLS[:2], fail=1, workers=workers)


def test_cells_without_a_name_are_named_by_their_place():
    with pytest.raises(ValueError, match=r"^cell #1: factorial\(\) not defined for negative values$"):
        run_parallel(__import__("math").factorial, [(3,), (-1,)], workers=1, progress=False)
    assert run_parallel(abs, [], launcher="ray") == []  # no cells, no cluster started


def test_bad_launcher_choices_are_one_line_errors():
    with pytest.raises(UnknownNameError, match="unknown launcher 'slurn'. Did you mean 'slurm'"):
        get_launcher("slurn")
    with pytest.raises(ConfigError, match="'partition' is an option of --launcher slurm, not of"):
        get_launcher("ray", partition="gpu")
    with pytest.raises(ConfigError, match="'cpus' is an option of --launcher slurm and ray, not of --"):
        get_launcher("local", cpus=4)
    with pytest.raises(ConfigError, match="cpus >= 1"):
        get_launcher("slurm", cpus=0)
    assert get_launcher("slurm", partition="gpu", time=None) == Slurm(partition="gpu")  # None: not given
    assert get_launcher(None) == Local() and get_launcher(Ray(cpus=2)) == Ray(cpus=2)
    # what a missing package says (here a module that is really missing; submitit and ray are installed)
    with pytest.raises(ConfigError, match="^--launcher slurm needs no_such_pkg_xyz, which is not installed: "
                                          "pip install no_such_pkg_xyz$"):
        require("no_such_pkg_xyz", "slurm")


def test_a_ray_address_that_does_not_answer_is_a_config_error():
    pytest.importorskip("ray")
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    started = time.perf_counter()
    with pytest.raises(ConfigError, match=f"^no Ray cluster answers at 127.0.0.1:{port} "):
        run_parallel(abs, [(-1,)], launcher=Ray(address=f"127.0.0.1:{port}"), progress=False)
    assert time.perf_counter() - started < 20
    with pytest.raises(ConfigError, match="HOST:PORT"):
        Ray(address="nowhere").connect()


def test_an_adapt_grid_through_submitit_gives_the_one_machine_table(tmp_path):
    """4 real cells (2 methods × 2 seeds of `dlapps adapt`) as Slurm jobs on submitit's local
    executor: the same per-cell numbers as the process pool on this machine."""
    from dlapps.adapt.config import preset
    from dlapps.adapt.experiment import run_adapt

    cfg = preset("fast", methods=["source", "dann"], seeds=[0, 1], epochs=1, train_limit=120, tsne=False,
                 a_distance=False, selection=False)
    tables = []
    for name, launcher in (("local", None), ("slurm", Slurm(cluster="local"))):
        results = run_adapt(cfg, out=tmp_path / name, progress=False, report=False, workers=2,
                            launcher=launcher)
        tables.append([(r["method"], r["seed"], r["source_acc"], r["target_acc"]) for r in results["runs"]])
    assert tables[0] == tables[1] and len(tables[0]) == 4
    assert (tmp_path / "slurm" / ".submitit").is_dir()
