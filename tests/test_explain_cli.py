"""`dlapps explain ...` end to end: a dlapps checkpoint, image files, the offline ImageNet model."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from dlapps.cli import app

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    """A run directory laid out as `dlapps adapt` writes it: config.json + <cell>/checkpoint.pt."""
    from dataclasses import asdict

    from dlapps.adapt.config import AdaptConfig
    from dlapps.engine.checkpoint import save_checkpoint
    from dlapps.models import build_digits_net

    run = tmp_path_factory.mktemp("adapt-run")
    config = AdaptConfig()
    (run / "config.json").write_text(json.dumps(asdict(config)))
    torch.manual_seed(0)
    net = build_digits_net(config.resolved_arch(), 3, config.resolved_image_size(), 10, [0.4, 0.5, 0.6],
                           domain_hidden=config.domain_hidden)
    state = {
        "module": {f"net.{k}": v for k, v in net.state_dict().items()},
        "optimizer": {},
        "epoch": 1,
        "step": 1,
        "rng": {},
        "history": [],
        "fingerprint": "test",
        "seconds": 0.0,
    }
    save_checkpoint(run / "dann-seed0", state)
    return run, net


@pytest.fixture(scope="module")
def image_files(tmp_path_factory):
    from PIL import Image

    folder = tmp_path_factory.mktemp("images")
    ramp = (np.arange(40 * 50, dtype=np.uint16).reshape(40, 50) * 30).astype(np.uint16)
    Image.fromarray(ramp).save(folder / "deep16.png")
    rgba = np.random.default_rng(0).integers(0, 255, (30, 30, 4), dtype=np.uint8)
    Image.fromarray(rgba, "RGBA").save(folder / "alpha.png")
    return folder


def invoke(*args: str):
    return CliRunner().invoke(app, ["explain", *args])


def test_checkpoint_model_loads_with_its_weights_and_classes(digits_run):
    from dlapps.explain.models import load_model

    run, net = digits_run
    model = load_model(str(run / "dann-seed0"))
    assert model.classes == [str(i) for i in range(10)] and model.input_size == 28
    x = torch.rand(2, 3, 28, 28)
    torch.testing.assert_close(model.net(x), net.eval()(x))
    assert load_model(str(run / "dann-seed0" / "checkpoint.pt")).name == model.name


def test_every_command_end_to_end_on_a_dlapps_checkpoint(digits_run, image_files, tmp_path):
    run, _ = digits_run
    model = str(run / "dann-seed0")
    images = [str(image_files / "deep16.png"), str(image_files / "alpha.png")]

    r = invoke(
        "saliency",
        *images,
        "--model",
        model,
        "--method",
        "vanilla,gradcam",
        "--rise-steps",
        "4",
        "--out",
        str(tmp_path / "s"),
    )
    assert r.exit_code == 0, r.output
    res = json.loads((tmp_path / "s" / "results.json").read_text())
    assert [i["image"] for i in res["images"]] == ["deep16.png", "alpha.png"]
    assert set(res["summary"]) == {"vanilla", "gradcam", "random", "random-smooth"}
    assert (
        0 <= res["images"][0]["gradcam_deletion_auc"] <= 1 and res["images"][0]["predicted"] in "0123456789"
    )
    assert (tmp_path / "s" / "figures" / "saliency.png").stat().st_size > 1000
    assert b"<img" in (tmp_path / "s" / "report.html").read_bytes()
    from dlapps.explain import report

    assert res["kind"] == "explain" and res["command"] == "saliency" and res["config"]["methods"] == [
        "vanilla", "gradcam"]
    fragment = report.section(tmp_path / "s", res)
    assert report.title(res).startswith("Saliency: ") and "<h3>" in fragment
    assert fragment.count("<img") == 3 and "<h1>" not in fragment and "<h2>" not in fragment
    page = (tmp_path / "s" / "report.html").read_bytes()
    assert report.render(tmp_path / "s").read_bytes() == page

    r = invoke(
        "fool",
        images[0],
        "--model",
        model,
        "--target",
        "3",
        "--method",
        "naive,fgsm,deepfool",
        "--max-iter",
        "5",
        "--epsilons",
        "1/255,8/255",
        "--l2-epsilons",
        "0.5,5",
        "--out",
        str(tmp_path / "f"),
    )
    assert r.exit_code == 0, r.output
    res = json.loads((tmp_path / "f" / "results.json").read_text())
    assert [row["method"] for row in res["images"]] == ["naive", "fgsm", "deepfool"]
    for row in res["images"]:
        assert {"success", "iterations", "l2", "linf", "seconds"} <= set(row) and row["target"] == "3"
        assert row["success"] or row["note"].startswith("failed within") or row["note"].startswith("already")
    assert set(res["success_curves"]) == {"naive", "fgsm", "deepfool"}
    assert (
        res["success_curves"]["fgsm"]["norm"] == "linf" and res["success_curves"]["deepfool"]["norm"] == "l2"
    )

    r = invoke("classvis", "--target", "3,seven", "--model", model, "--out", str(tmp_path / "c"))
    assert r.exit_code == 2 and "unknown class 'seven'" in r.output
    r = invoke(
        "classvis",
        "--target",
        "3",
        "--iters",
        "6",
        "--model",
        model,
        "--init",
        images[1],
        "-q",
        "--out",
        str(tmp_path / "c"),
    )
    assert r.exit_code == 0, r.output
    res = json.loads((tmp_path / "c" / "results.json").read_text())
    assert len(res["targets"][0]["probability_over_iterations"]) == 7 and res["init"] == images[1]

    r = invoke(
        "compare",
        "--target",
        "3",
        "--iters",
        "2,4",
        "--lr",
        "1,5",
        "--l2",
        "0",
        "--blur-every",
        "0,2",
        "--model",
        model,
        "-q",
        "--out",
        str(tmp_path / "w"),
    )
    assert r.exit_code == 0, r.output
    res = json.loads((tmp_path / "w" / "results.json").read_text())
    assert res["kind"] == "explain" and res["command"] == "compare"
    assert [(g["parameter"], g["value"]) for g in res["grid"]] == [
        ("iters", 2),
        ("iters", 4),
        ("lr", 1.0),
        ("lr", 5.0),
        ("l2", 0.0),
        ("blur_every", 0),
        ("blur_every", 2),
    ]

    r = invoke("activations", images[0], "--model", model, "--out", str(tmp_path / "a"))
    assert r.exit_code == 0, r.output
    res = json.loads((tmp_path / "a" / "results.json").read_text())
    assert res["images"][0]["channels"] == 16 and res["images"][0]["size"] == [24, 24]  # conv5x5 on 28x28


def test_saliency_completeness_and_faithfulness_metrics_on_a_checkpoint(digits_run, image_files, tmp_path):
    model = str(digits_run[0] / "dann-seed0")
    r = invoke("saliency", str(image_files / "alpha.png"), "--model", model,
               "--method", "vanilla,ig,gradcam+vargrad", "--baseline", "blurred", "--steps", "4", "--n", "2",
               "--sigma", "0.1", "--rise-steps", "4",
               "--faithfulness-runs", "10", "--sensitivity-samples", "1", "--out", str(tmp_path / "s"))
    assert r.exit_code == 0, r.output
    res = json.loads((tmp_path / "s" / "results.json").read_text())
    assert res["config"]["baseline"] == "blurred" and res["config"]["methods"][-1] == "gradcam+vargrad"
    ig, row = res["integrated_gradients"], res["images"][0]
    assert ig["baseline"] == "blurred" and ig["tolerance"] == 0.05
    assert row["ig_steps"] in (4, 12, 36, 108, 324, 972) and (row["ig_gap"] <= 0.05) == row["ig_converged"]
    assert ig["note"] in r.output and ig["note"].startswith("Integrated Gradients")
    for m in ("vanilla", "ig", "gradcam+vargrad", "random", "random-smooth"):
        s = res["summary"][m]
        assert -1 <= s["faithfulness_correlation"] <= 1 and s["max_sensitivity"] >= 0, m
    page = (tmp_path / "s" / "report.html").read_text()
    assert "completeness" in page and "max_sensitivity" in page


def test_sanity_checks_of_a_checkpoint_flag_the_edge_control(digits_run, image_files, tmp_path):
    model = str(digits_run[0] / "dann-seed0")
    r = invoke("sanity", str(image_files / "alpha.png"), "--model", model, "--checks", "model,data",
               "--method", "vanilla,gradcam,edge", "--epochs", "1", "--train-images", "64", "--out",
               str(tmp_path / "y"))
    assert r.exit_code == 0, r.output
    res = json.loads((tmp_path / "y" / "results.json").read_text())
    assert res["command"] == "sanity" and set(res["checks"]) == {"model", "data"}
    model_check = res["checks"]["model"]
    assert model_check["steps"] == ["trained", "+classifier.4", "+classifier.2", "+classifier.0",
                                    "+features.3", "+features.0"]
    assert "edge" in model_check["flagged"] and "edge" in res["checks"]["data"]["flagged"]
    assert model_check["summary"]["edge"]["spearman"] == 1.0
    assert "FLAGGED" in r.output and 0 <= res["checks"]["data"]["info"]["random_label_train_accuracy"] <= 1
    fragment = (tmp_path / "y" / "report.html").read_text()
    assert fragment.count("<img") == 4 and "flagged: " in fragment


def test_bad_input_is_one_line_naming_the_problem(digits_run, image_files, tmp_path):
    run, _ = digits_run
    model = str(run / "dann-seed0")
    r = invoke("saliency", str(tmp_path / "missing.png"), "--model", model, "--out", str(tmp_path / "o"))
    assert r.exit_code == 2 and "missing.png does not exist" in r.output
    r = invoke("saliency", "chelsae", "--model", model, "--out", str(tmp_path / "o"))
    assert r.exit_code == 2 and "'chelsea'" in r.output
    r = invoke("saliency", "chelsea", "--model", "squeezenet", "--out", str(tmp_path / "o"))
    assert r.exit_code == 2 and "squeezenet1_1" in r.output
    r = invoke("saliency", "chelsea", "--model", str(tmp_path), "--out", str(tmp_path / "o"))
    assert r.exit_code == 2 and "no dlapps checkpoint" in r.output
    r = invoke("fool", "chelsea", "--model", model, "--method", "naive", "--out", str(tmp_path / "o"))
    assert r.exit_code == 2 and "needs --target" in r.output
    r = invoke(
        "fool", "chelsea", "--model", model, "--method", "fgsm", "--eps", "two", "--out", str(tmp_path / "o")
    )
    assert r.exit_code == 2 and "'two'" in r.output
    r = invoke("saliency", "chelsea", "--model", model, "--baseline", "blak", "--out", str(tmp_path / "o"))
    assert r.exit_code == 2 and "unknown IG baseline 'blak'. Did you mean 'black'" in r.output
    r = invoke("saliency", "chelsea", "--model", model, "--steps", "0", "--out", str(tmp_path / "o"))
    assert r.exit_code == 2 and "--steps must be at least 1, got 0" in r.output
    r = invoke("sanity", "chelsea", "--checks", "modle", "--out", str(tmp_path / "o"))
    assert r.exit_code == 2 and "Did you mean 'model'" in r.output
    r = invoke("sanity", "chelsea", "--checks", "data", "--out", str(tmp_path / "o"))
    assert r.exit_code == 2 and "efficientnet_lite0 cannot be retrained" in r.output
    assert "--checks model" in r.output and r.output.strip().count("\n") == 0


def test_config_of_another_kind_or_command_is_refused_in_one_line(tmp_path):
    adapt = tmp_path / "adapt.json"
    adapt.write_text(json.dumps({"kind": "adapt", "epochs": 3}))
    r = invoke("saliency", "chelsea", "--config", str(adapt), "--out", str(tmp_path / "o"))
    assert r.exit_code == 2 and "kind 'adapt'" in r.output and r.output.strip().count("\n") == 0, r.output
    saliency = tmp_path / "saliency.json"
    saliency.write_text(json.dumps({"kind": "explain", "command": "saliency", "images": ["chelsea"]}))
    r = invoke("fool", "--config", str(saliency), "--out", str(tmp_path / "o"))
    assert r.exit_code == 2 and "`dlapps explain saliency`" in r.output, r.output
    assert r.output.strip().count("\n") == 0 and not (tmp_path / "o").exists()


def test_config_file_reruns_a_command_with_options_overriding_it(digits_run, tmp_path):
    model = str(digits_run[0] / "dann-seed0")
    args = ("classvis", "--target", "3", "--iters", "3", "--seeds", "0,1", "--model", model, "-q")
    r = invoke(*args, "--out", str(tmp_path / "a"))
    assert r.exit_code == 0, r.output
    first = json.loads((tmp_path / "a" / "results.json").read_text())
    assert [(t["target"], t["seed"]) for t in first["targets"]] == [("3", 0), ("3", 1)]
    saved = json.loads((tmp_path / "a" / "config.json").read_text())
    assert saved["kind"] == "explain" and saved["command"] == "classvis" and saved["seeds"] == [0, 1]
    r = invoke("classvis", "--config", str(tmp_path / "a" / "config.json"), "--seeds", "1", "-q",
               "--out", str(tmp_path / "b"))
    assert r.exit_code == 0, r.output
    again = json.loads((tmp_path / "b" / "results.json").read_text())
    assert again["config"]["seeds"] == [1] and again["config"]["iters"] == 3
    curve = "probability_over_iterations"
    assert again["targets"][0][curve] == first["targets"][1][curve]


def test_unknown_saliency_method_or_attack_says_did_you_mean(tmp_path):
    r = invoke("saliency", "chelsea", "--method", "vanila", "--out", str(tmp_path / "o"))
    assert r.exit_code == 2 and "Did you mean 'vanilla'" in r.output, r.output
    r = invoke("fool", "chelsea", "--method", "deepfol", "--out", str(tmp_path / "o"))
    assert r.exit_code == 2 and "Did you mean 'deepfool'" in r.output, r.output


def test_missing_torchvision_weights_name_the_file(file_server, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("DLAPPS_MIRROR", file_server.url)  # serves nothing: a 404, like a dead link
    r = invoke("saliency", "chelsea", "--model", "squeezenet1_1", "--out", str(tmp_path / "o"))
    assert r.exit_code == 2
    assert "squeezenet1_1-b8a52dc0.pth" in r.output and str(tmp_path / "torch") in r.output


def test_offline_imagenet_model_at_low_resolution(tmp_path):
    r = invoke(
        "fool",
        "coffee",
        "--target",
        "quail",
        "--method",
        "naive,pgd",
        "--image-size",
        "96",
        "--out",
        str(tmp_path / "f"),
    )
    assert r.exit_code == 0, r.output
    res = json.loads((tmp_path / "f" / "results.json").read_text())
    naive = res["images"][0]
    assert naive["original"] == "espresso" and naive["success"] and naive["prediction"] == "quail"
    assert (
        res["environment"]["weights"].startswith("efficientnet-lite0")
        and res["environment"]["image_size"] == 96
    )


@pytest.mark.slow
def test_default_command_runs_everything(tmp_path):
    from dlapps.explain.experiment import run_all

    res = run_all(
        out=tmp_path / "all",
        photos=["coffee"],
        image_size=48,
        classvis_targets=["goldfish"],
        classvis_iters=3,
        max_iter=5,
        sensitivity_samples=1,
        progress=False,
    )
    assert set(res["parts"]) == {"saliency", "fool", "classvis", "activations"}
    for part in res["parts"]:
        assert (tmp_path / "all" / part / "results.json").is_file()
        assert (tmp_path / "all" / part / "report.html").is_file()
    assert b'href="fool/report.html"' in (tmp_path / "all" / "report.html").read_bytes()
