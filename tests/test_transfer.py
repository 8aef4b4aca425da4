"""Transfer learning: feature cache, classifiers, CV hygiene, bad inputs, resuming a killed run and
the CLI end to end."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from dlapps.cli import app
from dlapps.data.features import cached_features
from dlapps.errors import CheckpointError, ConfigError, DataError, UnknownNameError
from dlapps.models import pretrained as P
from dlapps.transfer import classifiers as C
from dlapps.transfer.config import CompareConfig, TransferConfig
from dlapps.transfer.experiment import run_compare, run_transfer, splits, stratified_subset
from killing import comparable, killed_and_whole

SIZE = 48  # EfficientNet-Lite0 input in these tests (fast; digits are 28x28 anyway)


@pytest.fixture(scope="module")
def lite0() -> P.Backbone:
    return P.load_backbone("efficientnet_lite0").at_size(SIZE)


@pytest.fixture(scope="module")
def digits():
    from dlapps.data import load_domain

    return load_domain("mnist5k")


def _blobs(n: int, seed: int, role: str, flip: bool = False) -> C.Split:
    """Two Gaussian classes in 5-d (labels flipped on request)."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 2
    x = torch.randn(n, 5, generator=g) + 1.5 * y[:, None].float()
    return C.Split(x, 1 - y if flip else y, role)


# --- cross-validation never sees the test split -------------------------------------------------


def test_choose_C_refuses_test_rows():
    with pytest.raises(ConfigError, match="training split only"):
        C.choose_C(_blobs(40, 0, "test"))


def test_svm_choice_of_C_is_independent_of_the_test_split():
    train = _blobs(60, 0, "train")
    a = C.svm_classifier(train, _blobs(50, 1, "test"), seed=0)
    b = C.svm_classifier(train, _blobs(50, 2, "test", flip=True), seed=0)
    assert a["C"] == b["C"] and a["cv_curve"] == b["cv_curve"]
    acc_a = float((a["pred"] == _blobs(50, 1, "test").y).float().mean())
    acc_b = float((b["pred"] == _blobs(50, 2, "test", flip=True).y).float().mean())
    assert acc_a > 0.8 and acc_b < 0.2  # the flipped test labels are only ever used for scoring


def test_one_class_training_set_is_a_clear_error():
    one = C.Split(torch.randn(10, 3), torch.zeros(10, dtype=torch.int64), "train")
    with pytest.raises(DataError, match="at least 2"):
        C.choose_C(one)
    with pytest.raises(DataError, match="at least 2"):
        C.train_linear(one, one, seed=0, **C.PROBE)


# --- feature cache -----------------------------------------------------------------------------


def test_feature_cache_reuses_and_invalidates(lite0, digits, caplog):
    x = digits.train_x[:24]
    f1, hit1 = cached_features(lite0, x, "pool", "mnist5k", progress=False)
    f2, hit2 = cached_features(lite0, x, "pool", "mnist5k", progress=False)
    assert (hit1, hit2) == (False, True) and torch.equal(f1, f2) and f1.shape == (24, 1280)
    # any key change computes new features: layer, input size, other images
    assert not cached_features(lite0, x, "stage6", "mnist5k", progress=False)[1]
    assert not cached_features(lite0.at_size(32), x, "pool", "mnist5k", progress=False)[1]
    x2 = x.clone()
    x2[0, 0, 0, 0] += 1
    assert not cached_features(lite0, x2, "pool", "mnist5k", progress=False)[1]
    # a corrupted cache file is detected and rebuilt
    from dlapps.data.cache import cache_path
    from dlapps.data.features import feature_key

    path = cache_path("transfer-features", feature_key(lite0, "pool", "mnist5k", x))
    path.write_bytes(path.read_bytes()[:-200])
    f3, hit3 = cached_features(lite0, x, "pool", "mnist5k", progress=False)
    assert not hit3 and torch.allclose(f1, f3) and "rebuilding" in caplog.text


def test_stratified_subset_draws_per_class():
    y = torch.tensor([0] * 10 + [1] * 5 + [2] * 3)
    idx = stratified_subset(y, 4, seed=1)
    assert torch.bincount(y[idx]).tolist() == [4, 4, 3]
    assert not torch.equal(idx, stratified_subset(y, 4, seed=2))
    assert len(stratified_subset(y, 0, seed=1)) == 18


def test_new_heads_fit_the_task():
    for name in ("squeezenet1_1", "resnet18"):
        b = P.load_backbone(name, pretrained=False).at_size(64)
        net = P.with_new_head(b, 7).eval()
        assert net(torch.rand(2, 3, 64, 64)).flatten(1).shape == (2, 7)
        assert b.net(torch.rand(1, 3, 64, 64)).shape == (1, 1000)  # the original is untouched


# --- runs --------------------------------------------------------------------------------------


def test_pretrained_features_beat_from_scratch_on_a_small_subset(digits, tmp_path):
    cfg = TransferConfig(data="mnist5k", classifiers=["svm", "probe", "fc", "scratch"], per_class=20,
                         test_per_class=20, image_size=SIZE, Cs=[0.01, 1.0], epochs=2, test_curve=True)
    res = run_transfer(cfg, tmp_path, progress=False, data=digits)
    acc = res["test_acc"]
    assert acc["svm"] > 0.7 and acc["probe"] > 0.7 and acc["fc"] > 0.5
    assert acc["svm"] > acc["scratch"] + 0.2
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["test_acc"] == acc and saved["data"]["train_images"] == 200
    assert saved["c_sweep"][0]["C"] == 0.01 and "test_acc" in saved["c_sweep"][0]
    assert sum(map(sum, saved["confusion"]["svm"])) == 200
    html = (tmp_path / "report.html").read_text()
    assert "Confusion matrix: svm" in html and "4,652,008" in html  # Lite0's parameter count


def _write_folder(root, classes: dict[str, list[Image.Image]]) -> None:
    for split in ("train", "test"):
        for c, images in classes.items():
            (root / split / c).mkdir(parents=True)
            for i, img in enumerate(images):
                img.save(root / split / c / f"{i}.png")


def _mixed_images(seed: int, bright: bool) -> list[Image.Image]:
    """Images of every mode and size: L, RGB, RGBA, 16-bit grey; dark or bright."""
    rng = np.random.default_rng(seed)
    base = 180 if bright else 40
    out = []
    for i in range(8):
        h, w = 20 + 3 * i, 30 - i
        a = np.clip(rng.normal(base, 20, (h, w)), 0, 255).astype(np.uint8)
        out.append([Image.fromarray(a), Image.fromarray(np.dstack([a] * 3)),
                    Image.fromarray(np.dstack([a] * 3 + [np.full_like(a, 255)])),
                    Image.fromarray(a.astype(np.uint16) * 257)][i % 4])
    return out


def test_image_folder_with_mixed_modes_and_sizes(tmp_path):
    _write_folder(tmp_path, {"dark": _mixed_images(0, False), "bright": _mixed_images(1, True)})
    cfg = TransferConfig(data=f"imagefolder:{tmp_path}", classifiers=["svm"], image_size=32,
                         Cs=[1.0], folds=2)
    res = run_transfer(cfg, None, progress=False)
    assert res["data"]["classes"] == ["bright", "dark"] and res["test_acc"]["svm"] >= 0.9


def test_bad_image_folders_name_the_problem(tmp_path):
    broken = tmp_path / "broken"
    _write_folder(broken, {"a": _mixed_images(0, False)[:2], "b": _mixed_images(1, True)[:2]})
    (broken / "train" / "a" / "bad.png").write_bytes(b"\x89PNG not really")
    cfg = TransferConfig(data=f"imagefolder:{broken}", classifiers=["svm"], image_size=32)
    with pytest.raises(DataError, match="bad.png"):
        run_transfer(cfg, None, progress=False)
    one = tmp_path / "one"
    _write_folder(one, {"only": _mixed_images(0, False)[:2]})
    with pytest.raises(DataError, match="at least 2"):
        run_transfer(TransferConfig(data=f"imagefolder:{one}", classifiers=["svm"]), None, progress=False)


def test_config_defaults_and_checks():
    cfg = TransferConfig().resolved()
    assert cfg.data in ("fashion", "mnist5k") and cfg.per_class == 100 and cfg.image_size == 64
    assert TransferConfig(data="digits").resolved().per_class == 0  # a named dataset: all images
    with pytest.raises(UnknownNameError, match="finetune"):
        TransferConfig(classifiers=["svn"]).resolved()
    with pytest.raises(ConfigError):
        TransferConfig(Cs=[0.0]).resolved()


def test_compare_sweeps_layers_and_lists_missing_taps(digits, tmp_path):
    cfg = CompareConfig(layers=["pool", "stage6", "relu7"], per_class=10, test_per_class=10, image_size=32,
                        Cs=[0.1, 10.0], folds=2)
    res = run_compare(cfg, tmp_path, progress=False, data=digits)
    assert [c["layer"] for c in res["cells"]] == ["pool", "stage6"]
    assert res["skipped"][0]["layer"] == "relu7" and "pool" in res["skipped"][0]["taps"]
    assert len(res["cells"][0]["runs"][0]["cv_curve"]) == 2 and (tmp_path / "report.html").exists()
    assert res["kind"] == "transfer" and res["mode"] == "compare" and res["config"]["data"] == "mnist5k"
    # a rerun into the same directory reads the finished cells back
    again = run_compare(cfg, tmp_path, progress=False, data=digits)
    assert comparable(again["cells"]) == comparable(res["cells"])


def test_registries_name_the_valid_choices():
    assert C.CLASSIFIERS.names() == ["svm", "probe", "fc", "finetune", "scratch"]
    with pytest.raises(UnknownNameError, match="Did you mean 'finetune'"):
        C.CLASSIFIERS["fintune"]
    with pytest.raises(UnknownNameError, match="Did you mean 'vgg16'"):
        P.load_backbone("vgg61")
    assert P.backbone_names() == ["alexnet", "efficientnet_lite0", "resnet18", "squeezenet1_1", "vgg16"]


# --- resuming ----------------------------------------------------------------------------------

TINY = dict(classifiers=["finetune"], per_class=3, test_per_class=3, image_size=32, epochs=3, batch_size=8)


def test_resumed_finetune_equals_an_uninterrupted_one(digits, tmp_path, monkeypatch):
    from dlapps.engine import trainer

    cfg = TransferConfig(data="mnist5k", **TINY)
    whole = run_transfer(cfg, tmp_path / "whole", progress=False, data=digits)

    class Killed(Exception):
        pass

    saved = []
    real_save = trainer.save_checkpoint

    def save_then_die(run_dir, state):
        real_save(run_dir, state)
        saved.append(state["epoch"])
        if len(saved) == 2:
            raise Killed  # as if the process died after epoch 2's checkpoint

    monkeypatch.setattr(trainer, "save_checkpoint", save_then_die)
    with pytest.raises(Killed):
        run_transfer(cfg, tmp_path / "resumed", progress=False, data=digits)
    monkeypatch.setattr(trainer, "save_checkpoint", real_save)
    assert not (tmp_path / "resumed" / "finetune-seed0" / "cell.json").exists()
    steps = []
    forward = C._ImageClassifier.forward
    monkeypatch.setattr(C._ImageClassifier, "forward", lambda self, *a: steps.append(1) or forward(self, *a))
    resumed = run_transfer(cfg, tmp_path / "resumed", progress=False, data=digits)
    assert len(steps) == 30 // 8  # only the last epoch was trained again
    assert comparable(resumed) == comparable(whole)
    cells = [json.loads((tmp_path / d / "finetune-seed0" / "cell.json").read_text())
             for d in ("whole", "resumed")]
    assert cells[0]["pred"] == cells[1]["pred"] and len(cells[0]["epoch_loss"]) == 3
    # the directory of a run continues only that run
    with pytest.raises(ConfigError, match="epochs"):
        run_transfer(TransferConfig(data="mnist5k", **{**TINY, "epochs": 4}), tmp_path / "resumed",
                     progress=False, data=digits)
    # a checkpoint written for other settings is refused, not resumed
    with pytest.raises(CheckpointError, match="another configuration"):
        net = P.with_new_head(P.load_backbone("efficientnet_lite0", False).at_size(32), 10)
        few = stratified_subset(digits.train_y, 2, 0)
        C.train_network(net, "classifier", C.Split(digits.train_x[few], digits.train_y[few], "train"),
                        C.Split(digits.test_x[:4], digits.test_y[:4], "test"), lambda x: x, epochs=1, lr=1e-3,
                        backbone_lr_factor=0.1, batch_size=8, seed=0, progress=False, fingerprint="other",
                        run_dir=tmp_path / "whole" / "finetune-seed0")


@pytest.mark.slow
def test_killed_finetune_run_ends_as_an_uninterrupted_one(tmp_path):
    """SIGKILLed 3 times (6 epochs of 2 steps), resumed by rerunning the same command; the
    uninterrupted reference runs the same command in the same kind of process (same threads)."""
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"kind": "transfer", "data": "mnist5k", **TINY, "per_class": 2,
                                  "epochs": 6}))
    args = ["transfer", "--config", config, "--workers", "1", "-q"]
    killed, whole = killed_and_whole(args, tmp_path)
    assert comparable(killed) == comparable(whole)
    assert whole["classifiers"]["finetune"]["per_seed"][0]["epoch_loss"][-1] > 0


def test_config_of_another_kind_is_refused(tmp_path):
    other = tmp_path / "config.json"
    other.write_text(json.dumps({"kind": "adapt", "source": "mnist5k"}))
    runner = CliRunner()
    for command in (["transfer"], ["transfer", "compare"]):
        r = runner.invoke(app, [*command, "--config", str(other), "--out", str(tmp_path / "run")])
        assert r.exit_code == 2 and "kind 'adapt'" in r.output and len(r.output.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()


# --- command line ------------------------------------------------------------------------------


def test_cli_unknown_layer_and_backbone(tmp_path):
    runner = CliRunner()
    r = runner.invoke(app, ["transfer", "--layer", "relu7", "--classifier", "svm", "--out", str(tmp_path)])
    assert r.exit_code == 2 and "pool" in r.output and "relu7" in r.output
    assert not (tmp_path / "config.json").exists()  # refused before anything is written
    r = runner.invoke(app, ["transfer", "compare", "--data", "digits", "--backbones", "vgg61"])
    assert r.exit_code == 2 and "vgg16" in r.output
    r = runner.invoke(app, ["transfer", "--classifier", "svn"])
    assert r.exit_code == 2 and "Did you mean 'svm'" in r.output


def test_cli_run_and_activations(tmp_path):
    from skimage import data

    runner = CliRunner()
    out = tmp_path / "run"
    r = runner.invoke(app, ["transfer", "--data", "digits", "--classifier", "svm,probe", "--per-class",
                            "10", "--test-per-class", "5", "--image-size", "32", "--C", "0.1,1",
                            "--out", str(out), "--quiet", "--workers", "1"])
    assert r.exit_code == 0, r.output
    saved = json.loads((out / "results.json").read_text())
    assert set(saved["test_acc"]) == {"svm", "probe"} and saved["kind"] == "transfer"
    assert json.loads((out / "config.json").read_text())["kind"] == "transfer"
    from dlapps.transfer import report

    assert "features + linear SVM" in report.section(out, saved)
    photo = tmp_path / "chelsea.png"
    Image.fromarray(data.chelsea()).save(photo)
    r = runner.invoke(app, ["transfer", "activations", str(photo), "--image-size", "128", "--out",
                            str(tmp_path / "act")])
    assert r.exit_code == 0, r.output
    assert "cat" in r.output and (tmp_path / "act" / "figures" / "activations.png").exists()
    r = runner.invoke(app, ["transfer", "activations", str(tmp_path / "missing.png")])
    assert r.exit_code == 2 and "missing.png" in r.output


def test_a_finetuned_network_is_exported_and_loads_back_in_any_area(digits, tmp_path):
    """The fine-tuned cell writes model.pt; models.export rebuilds it (preprocessing included) and
    it predicts what the run measured; distillation can take it as a teacher."""
    from dlapps.models.export import load_classifier

    run_transfer(TransferConfig(data="mnist5k", **TINY), tmp_path / "run", progress=False, data=digits)
    cell = json.loads((tmp_path / "run" / "finetune-seed0" / "cell.json").read_text())
    net, info = load_classifier(tmp_path / "run" / "finetune-seed0")
    assert info["kind"] == "transfer" and info["classes"] == digits.classes and info["size"] == 32
    _, test = splits(digits, 3, 3, 0)
    with torch.no_grad():
        pred = net(test.x.float() / 255).argmax(1)
    assert pred.tolist() == cell["pred"]
