"""The command line end to end: a real run, its run directory and report, resume after a kill,
and one-line errors with exit status 2 for bad input."""

import json

import pytest
from typer.testing import CliRunner

from dlapps.cli import app

runner = CliRunner()
FAST = ["--quiet", "--no-tsne", "--no-a-distance"]


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_default_run_writes_everything(finished_run):
    out, output = finished_run
    results = json.loads((out / "results.json").read_text())
    assert [r["method"] for r in results["runs"]] == ["source", "dann", "target"]
    for r in results["runs"]:
        assert {"source_acc", "target_acc", "domain_acc", "a_distance", "seconds"} <= set(r)
        assert 0 <= r["target_acc"] <= 1 and r["seconds"] > 0
    dann = next(r for r in results["runs"] if r["method"] == "dann")
    assert dann["domain_acc"] is not None and 0 <= dann["a_distance"] <= 2
    assert results["summary"]["paper"]["dann"]["icml2015"] == 0.8149
    for cell in ("source-seed0", "dann-seed0", "target-seed0"):
        assert (out / cell / "checkpoint.pt").is_file() and (out / cell / "final.json").is_file()
        assert list((out / cell).glob("events.out.tfevents.*"))
        assert (out / cell / "metrics.jsonl").stat().st_size > 0
    assert (out / "dann-seed0" / "tsne.pt").is_file()
    assert (out / "figures" / "tsne.png").is_file() and (out / "figures" / "training.png").is_file()
    html = (out / "report.html").read_text()
    assert 'id="results"' in html and "data:image/png;base64," in html and "<script" not in html
    # the printed table is made from results.json
    for r in results["runs"]:
        assert f"{r['target_acc']:.3f}" in output
    assert "gap closed by dann" in output and "paper: 57.9%" in output


def test_tensorboard_events_hold_the_curves(finished_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out, _ = finished_run
    acc = EventAccumulator(str(out / "dann-seed0"))
    acc.Reload()
    tags = acc.Tags()["scalars"]
    assert {"step/loss", "step/lambda", "step/lr", "epoch/target_acc", "epoch/domain_acc"} <= set(tags)
    assert [e.step for e in acc.Scalars("epoch/target_acc")] == [125, 250]  # 4,000 / 32 per epoch


def test_config_json_round_trip_and_existing_out_refused(finished_run):
    out, _ = finished_run
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["source"] == "mnist5k" and cfg["methods"] == ["source", "dann", "target"]
    # the fast preset's development-pair choice (issue 16), stated under the table
    assert cfg["lambda_max"] == 0.3 and cfg["domain_hidden"] == [500, 500]
    assert "λ_max 0.3, domain classifier 500-500 (chosen on development pairs" in finished_run[1]
    again = invoke("adapt", "--epochs", 1, "--out", out, *FAST)
    assert again.exit_code == 2 and "--resume" in again.output


def test_domain_hidden_auto_is_the_architectures_own(tmp_path):
    """``--domain-hidden auto`` gives the papers' domain classifier back (None reaches the network,
    which builds its architecture's 100 units), and the line under the table says so."""
    import torch

    small = tmp_path / "small.json"  # a config file: the one way to a train limit from the CLI
    small.write_text(json.dumps({"methods": ["dann"], "epochs": 1, "train_limit": 64}))
    result = invoke("adapt", "--config", small, "--domain-hidden", "auto", "--out", tmp_path / "r", *FAST)
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "r" / "config.json").read_text())["domain_hidden"] is None
    module = torch.load(tmp_path / "r" / "dann-seed0" / "checkpoint.pt", weights_only=False)["module"]
    assert module["net.discriminator.0.weight"].shape[0] == 100  # the mnist net's own, not 500
    assert "domain classifier the architecture’s own" in result.output


def test_report_command_compares_runs(finished_run, tmp_path):
    out, _ = finished_run
    result = invoke("report", out, out, "--out", tmp_path / "index.html")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "index.html").read_text().count('id="results"') == 2


@pytest.mark.parametrize("args, message", [
    (["--methods", "source,danm"], "unknown method 'danm'"),
    (["--source", "mnist6k"], "unknown domain 'mnist6k'"),
    (["--epochs", "0"], "--epochs must be at least 1"),
    (["--lr", "-0.1"], "--lr must be a positive number"),
    (["--batch-size", "5000"], "larger than the source training set"),
    (["--seeds", "a,b"], "--seeds takes integers"),
    (["--preset", "quick"], "unknown preset 'quick'"),
    (["--device", "tpu"], "unknown device 'tpu'"),
    (["--option", "self-train.emma=0"], "unknown setting emma for method 'self-train'"),
    (["--option", "selftrain"], "--option takes METHOD.SETTING=VALUE"),
    (["--option", "dann+self-train.ema=0"], "go under 'dann' and 'self-train'"),
    (["--methods", "vada", "--option", "vada.radius=-1"], "vada's radius must be a positive number, got -1"),
    (["--methods", "dirt-t", "--option", "dirt-t.beta=0"], "dirt-t's beta must be a positive number, got 0"),
    (["--methods", "dann+self-train", "--option", "self-train.view=rand"],
     "self-train's view must be one of shift, strong, got 'rand'"),
    (["--warmup-acc", "1.5"], "--warmup-acc must be in [0, 1), got 1.5"),
    (["--input-norm", "batch"], "unknown input normalisation 'batch'"),
    (["--domain-hidden", "500,x"], "--domain-hidden takes layer widths like 500,500 or auto, got '500,x'"),
    (["--domain-hidden", "500,0"], "--domain-hidden takes the domain classifier's hidden widths as positive"),
])
def test_bad_input_is_one_clear_line(args, message, tmp_path):
    extra = [] if "--methods" in args else ["--methods", "source"]
    result = invoke("adapt", *args, *extra, "--out", tmp_path / "r", *FAST)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output


def test_a_diverging_method_is_reported_and_the_others_finish(tmp_path):
    """DANN with λ_max 10⁶ from the first step turns NaN within a few steps: the run still ends
    (exit 0) with source-only's numbers, DANN's cell says '— (1 of 1 diverged)' with a ⚠ line,
    its final.json names the step, and a rerun keeps the record instead of training again."""
    args = ("adapt", "--methods", "source,dann", "--lambda-max", "1e6", "--warmup-acc", "0",
            "--epochs", "1", "--batch-size", "128", "--reverse-every", "0", "--out", tmp_path / "r", *FAST)
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    final = json.loads((tmp_path / "r" / "dann-seed0" / "final.json").read_text())
    assert final["target_acc"] is None and "non-finite loss at step" in final["diverged"]
    assert "— (1 of 1 diverged)" in result.output and "⚠ dann: diverged (seed 0 of 1)" in result.output
    source = json.loads((tmp_path / "r" / "source-seed0" / "final.json").read_text())
    assert "diverged" not in source and source["target_acc"] > 0.3
    again = invoke("adapt", "--resume", tmp_path / "r", "--quiet")
    assert again.exit_code == 0 and "— (1 of 1 diverged)" in again.output


def test_mismatched_class_sets(tmp_path):
    import numpy as np
    from PIL import Image

    for split in ("train", "test"):
        for c in ("cat", "dog"):
            folder = tmp_path / "pets" / split / c
            folder.mkdir(parents=True)
            for i in range(4):
                Image.fromarray(np.full((10, 10, 3), 40 * i, np.uint8)).save(folder / f"{i}.png")
    result = invoke("adapt", "--source", "mnist5k", "--target", f"imagefolder:{tmp_path / 'pets'}",
                    "--out", tmp_path / "r", *FAST)
    assert result.exit_code == 2 and "different classes" in result.output
    assert not (tmp_path / "r").exists()  # nothing written before the data checked out


def test_resume_needs_a_run_dir(tmp_path):
    result = invoke("adapt", "--resume", tmp_path, *FAST)
    assert result.exit_code == 2 and "config.json" in result.output


def test_corrupt_checkpoint_on_resume_is_refused(finished_run, tmp_path):
    import shutil

    out, _ = finished_run
    run = tmp_path / "copy"
    shutil.copytree(out, run)
    (run / "dann-seed0" / "final.json").unlink()
    (run / "dann-seed0" / "checkpoint.pt").write_bytes(b"PK\x03\x04 not a checkpoint")
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    result = invoke("adapt", "--resume", run, *FAST)
    assert result.exit_code == 2 and "refusing to load checkpoint" in result.output
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before


def test_data_commands(tmp_path):
    listing = invoke("data", "list")
    assert listing.exit_code == 0 and "mnistm5k" in listing.output and "syndigits" in listing.output
    shown = invoke("data", "show", "mnistm5k", "--out", tmp_path / "m.png")
    assert shown.exit_code == 0 and (tmp_path / "m.png").stat().st_size > 10_000
    assert invoke("data", "show", "nope").exit_code == 2


@pytest.mark.slow
def test_run_killed_three_times_ends_with_the_same_results(tmp_path):
    """SIGKILL a real `dlapps adapt` process three times at random steps (each after one more
    epoch checkpoint), resume each time, and compare results.json with an uninterrupted run's."""
    from killing import comparable, dlapps, kill_and_resume

    args = ["adapt", "--methods", "dann", "--epochs", "4", "--batch-size", "64", "--workers", "1", *FAST]
    dlapps(*args, "--out", tmp_path / "full")
    killed = tmp_path / "killed"
    resumed = kill_and_resume([*args, "--out", killed], ["adapt", "--resume", killed, *FAST], killed,
                              first_checkpoint="dann-seed0/checkpoint.pt", max_delay=1.5)
    assert resumed.pop("_kills") >= 2
    full = json.loads((tmp_path / "full" / "results.json").read_text())
    assert comparable(resumed) == comparable(full)
    assert resumed["runs"][0]["steps"] == 4 * (4000 // 64)


def test_method_options_are_typed_and_checked():
    from dlapps.adapt.config import AdaptConfig
    from dlapps.cli_support import parse_method_options

    given = parse_method_options(["self-train.ema=0", "self-train.shift=3", "dan.estimator=linear",
                                  'dan.layers=["logits"]'])
    assert given == {"self-train": {"ema": 0, "shift": 3},
                     "dan": {"estimator": "linear", "layers": ["logits"]}}
    assert parse_method_options(None) is None and parse_method_options([]) is None
    AdaptConfig(method_options=given).validate()


@pytest.mark.slow
def test_worker_processes_die_with_a_killed_parent(tmp_path):
    """A grid killed while its cells train in worker processes leaves nothing training behind:
    no checkpoint is written after the kill (the workers would otherwise race the resumed run)."""
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "dlapps", "adapt", "--methods", "source,dann",
                             "--epochs", "30", "--batch-size", "64", "--workers", "2", "--out", str(out),
                             *FAST], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 180
    while not list(out.glob("*/checkpoint.pt")) and time.time() < deadline:
        time.sleep(0.1)
    assert list(out.glob("*/checkpoint.pt")), "no cell checkpointed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = time.time_ns()
    time.sleep(12)  # several epochs of a one-thread cell
    written = [p.stat().st_mtime_ns for p in out.glob("*/checkpoint.pt")]
    assert max(written) < killed_at + 500_000_000, "a worker kept training after its parent died"


def test_config_of_another_kind_is_one_line(tmp_path):
    other = tmp_path / "config.json"
    other.write_text(json.dumps({"kind": "generate", "data": "mnist5k", "epochs": 1}))
    for command in (["adapt"], ["adapt", "compare"]):
        result = invoke(*command, "--config", other, "--out", tmp_path / "run")
        assert result.exit_code == 2 and "Traceback" not in result.output
        assert "kind 'generate', not 'adapt'" in result.output, result.output
    assert not (tmp_path / "run").exists()
    misspelt = tmp_path / "misspelt.json"
    misspelt.write_text(json.dumps({"kind": "adapt", "learning_rate": 0.1}))
    result = invoke("adapt", "--config", misspelt, "--out", tmp_path / "run")
    assert result.exit_code == 2 and "learning_rate" in result.output
