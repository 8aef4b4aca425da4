"""The transfer study and the distillation grid through a launcher: submitit's local executor (Slurm
jobs run as processes of this machine) gives the one-machine table, a rerun trains only the cells
without a final file whichever launcher ran the others, and a bad ``--launcher`` is one line."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dlapps.cli import app
from dlapps.engine.launchers import Slurm
from killing import comparable

pytestmark = pytest.mark.usefixtures("one_torch_thread")
SUBMITIT = Slurm(cluster="local", poll=0.2)


@pytest.fixture(scope="module")
def digits():
    from dlapps.data import load_domain

    return load_domain("mnist5k")


def stamps(out: Path, pattern: str) -> dict[str, int]:
    return {str(p.relative_to(out)): p.stat().st_mtime_ns for p in sorted(out.glob(pattern))}


def test_a_transfer_grid_through_submitit_gives_the_local_table_and_a_rerun_skips_finished_cells(
        digits, tmp_path):
    """2 cells (svm, probe) on one tap as submitit jobs give the table of this machine's process pool;
    then one cell.json removed, as if its job had been killed, and the grid run again in this
    process: only that cell trains."""
    pytest.importorskip("submitit")
    from dlapps.transfer.config import TransferConfig
    from dlapps.transfer.experiment import run_transfer

    cfg = TransferConfig(data="mnist5k", classifiers=["svm", "probe"], seeds=[0], per_class=5,
                         test_per_class=5, image_size=32, Cs=[0.1, 10.0], folds=2)

    def table(res: dict) -> dict:
        return {name: [(r["seed"], r["test_acc"]) for r in c["per_seed"]]
                for name, c in res["classifiers"].items()}

    local = run_transfer(cfg, tmp_path / "local", progress=False, data=digits, workers=2)  # the process pool
    out = tmp_path / "slurm"
    slurm = run_transfer(cfg, out, progress=False, data=digits, launcher=SUBMITIT)
    assert table(slurm) == table(local) and list(table(local)) == ["svm", "probe"]
    assert comparable(slurm["classifiers"]) == comparable(local["classifiers"])  # C, per-epoch losses
    assert slurm["confusion"] == local["confusion"] and slurm["c_sweep"] == local["c_sweep"]
    assert (out / ".submitit").is_dir() and len(stamps(out, "*/cell.json")) == 2

    before = stamps(out, "*/cell.json")
    (out / "probe-seed0" / "cell.json").unlink()
    again = run_transfer(cfg, out, progress=False, data=digits, launcher="local")
    after = stamps(out, "*/cell.json")
    assert [k for k in before if after[k] != before[k]] == ["probe-seed0/cell.json"]
    assert comparable(again["classifiers"]) == comparable(slurm["classifiers"])


def test_a_compare_grid_through_submitit_gives_the_local_table(digits, tmp_path):
    """The backbone x tap grid (2 taps, one seed: 2 SVM cells) as submitit jobs; a rerun reads every
    cell back and submits nothing."""
    pytest.importorskip("submitit")
    from dlapps.transfer.config import CompareConfig
    from dlapps.transfer.experiment import run_compare

    cfg = CompareConfig(layers=["pool", "stage6"], seeds=[0], per_class=5, test_per_class=5,
                        image_size=32, Cs=[0.1, 10.0], folds=2)
    local = run_compare(cfg, tmp_path / "local", progress=False, data=digits)
    out = tmp_path / "slurm"
    slurm = run_compare(cfg, out, progress=False, data=digits, launcher=SUBMITIT)
    assert [(c["layer"], [r["test_acc"] for r in c["runs"]]) for c in slurm["cells"]] == \
        [(c["layer"], [r["test_acc"] for r in c["runs"]]) for c in local["cells"]]
    assert comparable(slurm["cells"]) == comparable(local["cells"]) and len(slurm["cells"]) == 2
    before, jobs = stamps(out, "*/cell.json"), stamps(out, ".submitit/*")
    assert len(before) == 2 and jobs
    again = run_compare(cfg, out, progress=False, data=digits, launcher=SUBMITIT)
    assert stamps(out, "*/cell.json") == before and stamps(out, ".submitit/*") == jobs  # no job submitted
    assert comparable(again["cells"]) == comparable(slurm["cells"])


def test_a_distill_grid_through_submitit_gives_the_local_table_and_skips_finished_cells(tmp_path):
    """The teacher, then the response student as submitit jobs, in a run directory where the student
    from scratch was already finished by the local launcher (copied from the local run): that cell
    is read back, not trained, and the table is the local run's."""
    pytest.importorskip("submitit")
    from dlapps.distill.config import DistillConfig
    from dlapps.distill.experiment import run_distill

    cfg = DistillConfig(limit=128, teacher="cnn-small", student="mlp-tiny", kinds=["response"],
                        teacher_epochs=1, epochs=2, batch_size=32, seeds=[0])

    def table(res: dict) -> dict:
        return {"rows": comparable(res["rows"]), "per_seed": comparable(res["per_seed"]),
                "curves": res["curves"]}

    local = run_distill(cfg, tmp_path / "local", progress=False, workers=1)
    out = tmp_path / "slurm"
    shutil.copytree(tmp_path / "local" / "scratch-seed0", out / "scratch-seed0")
    before = stamps(out, "*/*")
    slurm = run_distill(cfg, out, progress=False, launcher=SUBMITIT)
    assert table(slurm) == table(local)
    assert list(slurm["rows"]) == ["teacher", "scratch", "response"]
    assert stamps(out, "scratch-seed0/*") == before  # read back, not trained again
    assert len(list((out / ".submitit").glob("*_submitted.pkl"))) == 2  # the teacher's job, the response's


@pytest.mark.parametrize("command", [["transfer"], ["transfer", "compare"], ["distill"]])
def test_a_bad_launcher_is_one_line_before_anything_runs(command, tmp_path):
    runner = CliRunner()
    for args, message in ((["--launcher", "slurn"], "unknown launcher 'slurn'. Did you mean 'slurm'"),
                          (["--launcher", "local", "--launcher-option", "cpus=4"],
                           "'cpus' is an option of --launcher slurm and ray, not of --launcher local"),
                          (["--launcher-option", "partition"], "--launcher-option takes KEY=VALUE")):
        r = runner.invoke(app, [*command, *args, "--out", str(tmp_path / "run")])
        lines = r.output.strip().splitlines()
        assert r.exit_code == 2 and len(lines) == 1 and lines[0].startswith("error:"), r.output
        assert message in lines[0] and "Traceback" not in r.output
    assert not (tmp_path / "run").exists()
