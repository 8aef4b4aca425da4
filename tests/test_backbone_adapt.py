"""Domain adaptation on a pretrained backbone over the user's own ImageFolder domains: any
method composes with any backbone (new bottleneck, classifier and discriminator on it)."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from dlapps.adapt.config import AdaptConfig
from dlapps.adapt.experiment import run_adapt
from dlapps.adapt.methods import METHODS
from dlapps.cli import app
from dlapps.models.adaptation import build_backbone_net

FAST = dict(epochs=1, batch_size=16, image_size=32, tsne=False, a_distance=False, selection=False,
            device="cpu")


def test_backbone_net_shapes_and_rates():
    net = build_backbone_net("efficientnet_lite0", 3, 32)
    x = torch.rand(4, 3, 32, 32)
    assert net(x).shape == (4, 3) and net.embed(x).shape == (4, 256)
    assert net.discriminator(net.embed(x)).shape == (4, 1)
    method = METHODS["dann"](net, AdaptConfig(backbone="efficientnet_lite0"))
    rest, body = method.param_groups()
    assert body["lr_mult"] == 0.1 and "lr_mult" not in rest
    n_body = sum(p.numel() for p in body["params"])
    assert n_body == sum(p.numel() for p in net.features.body.parameters()) > 3_000_000
    # every trainable parameter is in exactly one group
    ids = [id(p) for g in (rest, body) for p in g["params"]]
    assert len(ids) == len(set(ids)) == sum(1 for p in method.parameters() if p.requires_grad)


def test_pretrained_features_are_imagenet_features():
    """The body keeps the ImageNet weights: the same pooled features as the backbone's own net."""
    from dlapps.models.pretrained import load_backbone

    net = build_backbone_net("efficientnet_lite0", 3, 64).eval()
    ref = load_backbone("efficientnet_lite0").net.eval()
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        pooled = ref.forward_head(ref.forward_features(net.normalize(x)), pre_logits=True)
        assert torch.allclose(net.features.body(net.normalize(x)), pooled, atol=1e-5)


@pytest.mark.slow
def test_every_method_runs_on_a_backbone_over_image_folders(folder_pair, tmp_path):
    source, target = folder_pair
    cfg = AdaptConfig(source=f"imagefolder:{source}", target=f"imagefolder:{target}",
                      backbone="efficientnet_lite0", train_limit=32,
                      methods=["source", "dann", "cdan", "adda", "drcn", "dan"], **FAST)
    results = run_adapt(cfg, out=tmp_path / "run", progress=False, workers=1)
    assert results["kind"] == "adapt" and results["config"]["backbone"] == "efficientnet_lite0"
    for r in results["runs"]:
        assert 0 <= r["target_acc"] <= 1 and r["steps"] == 2, r
    assert (tmp_path / "run" / "report.html").is_file()


@pytest.mark.slow
def test_cli_dann_on_a_backbone_end_to_end(folder_pair, tmp_path):
    source, target = folder_pair
    out = tmp_path / "cli"
    result = CliRunner().invoke(app, [
        "adapt", "--source", f"imagefolder:{source}", "--target", f"imagefolder:{target}",
        "--backbone", "efficientnet_lite0", "--methods", "source,dann", "--epochs", "2",
        "--batch-size", "16", "--image-size", "32", "--no-tsne", "--no-a-distance", "--out", str(out),
        "--quiet", "--workers", "1"])
    assert result.exit_code == 0, result.output
    saved = json.loads((out / "results.json").read_text())
    assert [r["method"] for r in saved["runs"]] == ["source", "dann"]
    dann = saved["runs"][1]
    assert dann["domain_acc"] is not None and dann["steps"] == 2 * (90 // 16)
    assert json.loads((out / "config.json").read_text())["kind"] == "adapt"


def test_unknown_backbone_is_one_line(tmp_path):
    result = CliRunner().invoke(app, ["adapt", "--backbone", "efficientnet_lite1",
                                      "--out", str(tmp_path / "x")])
    assert result.exit_code == 2
    assert "unknown backbone 'efficientnet_lite1'" in result.output and "efficientnet_lite0" in result.output
    assert "Traceback" not in result.output


def test_different_class_sets_are_refused(folder_pair, tmp_path):
    import shutil

    source, target = folder_pair
    other = tmp_path / "other"
    shutil.copytree(target, other)
    for split in ("train", "test"):
        (other / split / "2").rename(other / split / "seven")
    result = CliRunner().invoke(app, ["adapt", "--source", f"imagefolder:{source}", "--target",
                                      f"imagefolder:{other}", "--backbone", "efficientnet_lite0",
                                      "--out", str(tmp_path / "run")])
    assert result.exit_code == 2 and "different classes" in result.output
    assert "only in source: ['2']" in result.output and "seven" in result.output
