"""DCGAN / cDCGAN: networks, losses, training on the engine (resume, kills, NaN), metrics, data
errors, CLI."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from dlapps.cli import app
from dlapps.errors import ConfigError, DataError, NonFiniteLossError, UnknownNameError
from dlapps.generate import metrics
from dlapps.generate.compare import cells, parse_grid
from dlapps.generate.config import GanConfig
from dlapps.generate.data import GanData, load_gan_data
from dlapps.generate.dcgan import build_gan
from dlapps.generate.gan import gan_trainer, load_generator
from dlapps.generate.losses import discriminator_loss, generator_loss
from dlapps.generate.sampling import check_class, lerp, slerp
from killing import comparable, dlapps, kill_and_resume

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def mnist() -> GanData:
    return load_gan_data("mnist5k", 32, 1)


@pytest.fixture(scope="module")
def small(mnist) -> GanData:
    """512 training images: enough for a few steps of a narrow GAN."""
    return replace(mnist, x=mnist.x[::8][:512], y=mnist.y[::8][:512])


@pytest.fixture(scope="module")
def judge(mnist):
    """A quick judge: 8 epochs on 1,000 digits (> 90% on the held-out ones)."""
    return metrics.get_judge(replace(mnist, x=mnist.x[::4], y=mnist.y[::4]), epochs=8)


TINY = dict(ngf=8, ndf=8, nz=16, batch_size=64)


# --- networks --------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [32, 64])
@pytest.mark.parametrize("n_classes", [0, 10])
def test_shapes_through_g_and_d(size, n_classes):
    g, d = build_gan(nz=20, ngf=8, ndf=8, nc=3, size=size, n_classes=n_classes)
    z, y = torch.randn(5, 20), torch.arange(5) if n_classes else None
    x = g(z, y)
    assert x.shape == (5, 3, size, size)
    assert x.min() >= -1 and x.max() <= 1
    p = d(x, y)
    assert p.shape == (5,) and ((p > 0) & (p < 1)).all()
    n_blocks = sum(isinstance(m, torch.nn.ConvTranspose2d) for m in g.net)
    assert n_blocks == (5 if size == 64 else 4)  # the 64x64 variant has one more block


def test_odd_size_and_bad_init_are_refused():
    with pytest.raises(ConfigError, match="32, 64"):
        build_gan(size=48)
    with pytest.raises(UnknownNameError, match="dcgan"):
        build_gan(init="xavier")


def test_dcgan_init_statistics_vs_default():
    torch.manual_seed(0)
    g, d = build_gan(ngf=64, ndf=64, init="dcgan")
    convs = [m.weight for m in [*g.modules(), *d.modules()]
             if isinstance(m, torch.nn.Conv2d | torch.nn.ConvTranspose2d)]
    w = torch.cat([c.flatten() for c in convs])
    assert abs(w.mean()) < 1e-3 and abs(w.std() - 0.02) < 1e-3
    gammas = torch.cat([m.weight for m in g.modules() if isinstance(m, torch.nn.BatchNorm2d)])
    assert abs(gammas.mean() - 1) < 0.01 and abs(gammas.std() - 0.02) < 0.005
    g_default, _ = build_gan(ngf=64, ndf=64, init="default")
    first = g_default.net[0].weight
    assert abs(first.std() - 0.02) > 0.005  # PyTorch's Kaiming-uniform is not N(0, 0.02)
    assert all(m.weight.eq(1).all() for m in g_default.modules() if isinstance(m, torch.nn.BatchNorm2d))


def test_conditioning_changes_the_output_and_cdx_ignores_y():
    torch.manual_seed(0)
    g, d = build_gan(nz=16, ngf=8, ndf=8, n_classes=10)
    g.eval()
    d.eval()
    z = torch.randn(1, 16).repeat(10, 1)
    x = g(z, torch.arange(10))
    # same z, other class: another image (relative: at init in eval mode the images are faint)
    assert (x[0] - x[1]).abs().max() > 0.05 * x.abs().max()
    same = x[:1].repeat(10, 1, 1, 1)
    verdicts = d(same, torch.arange(10))
    assert verdicts.max() - verdicts.min() > 1e-4  # same image, other class: another verdict
    g2, d_cdx = build_gan(nz=16, ngf=8, ndf=8, n_classes=10, d_conditional=False)
    assert d_cdx.net[0].in_channels == 1 and g2.net[0].in_channels == 26
    with pytest.raises(ConfigError, match="labels"):
        g(z)


# --- losses ----------------------------------------------------------------------------------


def test_losses_on_known_discriminator_outputs():
    half = torch.full((4,), 0.5)
    assert math.isclose(generator_loss(half, True).item(), math.log(2), rel_tol=1e-6)
    assert math.isclose(generator_loss(half, False).item(), -math.log(2), rel_tol=1e-6)
    assert math.isclose(discriminator_loss(half, half).item(), 2 * math.log(2), rel_tol=1e-6)
    d_real, d_fake = torch.tensor([0.9, 0.8]), torch.tensor([0.1, 0.3])
    expected = -(math.log(0.9) + math.log(0.8)) / 2 - (math.log(0.9) + math.log(0.7)) / 2
    assert math.isclose(discriminator_loss(d_real, d_fake).item(), expected, rel_tol=1e-6)
    nonsat, minimax = -(math.log(0.1) + math.log(0.3)) / 2, (math.log(0.9) + math.log(0.7)) / 2
    assert math.isclose(generator_loss(d_fake, True).item(), nonsat, rel_tol=1e-6)
    assert math.isclose(generator_loss(d_fake, False).item(), minimax, rel_tol=1e-6)


def test_minimax_saturates_where_nonsaturating_does_not():
    """When D rejects a sample (logit −5), the minimax gradient on the logit is ≈ −D ≈ −0.007,
    the non-saturating one ≈ −(1 − D) ≈ −0.99."""
    grads = {}
    for flag in (True, False):
        logit = torch.tensor([-5.0], requires_grad=True)
        generator_loss(torch.sigmoid(logit), flag).backward()
        grads[flag] = logit.grad.item()
    s = torch.sigmoid(torch.tensor(-5.0)).item()
    assert math.isclose(grads[True], -(1 - s), rel_tol=1e-4)
    assert math.isclose(grads[False], -s, rel_tol=1e-4)


# --- training: resume and NaN ----------------------------------------------------------------


def _fit(cfg: GanConfig, data: GanData, run_dir):
    trainer = gan_trainer(cfg, data, run_dir, progress=False, tensorboard=False)
    trainer.fit()
    return trainer.module


def test_resumed_run_ends_equal_to_uninterrupted(small, judge, tmp_path):
    cfg = GanConfig(conditional=True, epochs=2, **TINY)
    whole = _fit(cfg, small, tmp_path / "whole")
    _fit(replace(cfg, epochs=1), small, tmp_path / "cut")
    torch.randn(100)  # the interrupted process' RNG drifts; the checkpoint must restore it
    resumed = _fit(cfg, small, tmp_path / "cut")
    for a, b in zip(whole.state_dict().values(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b)  # G and D
    fids = [metrics.quality(judge, small.x, *metrics.generate(gan.g, 200, 0, 10), kid_subsets=2)["fid"]
            for gan in (whole, resumed)]
    assert fids[0] == fids[1]
    records = map(json.loads, (tmp_path / "cut" / "metrics.jsonl").read_text().splitlines())
    steps = [r["step"] for r in records if r["kind"] == "step"]
    assert steps == list(range(1, 2 * (len(small.x) // 64) + 1))  # per iteration, none twice
    assert sorted(p.name for p in (tmp_path / "cut" / "figures" / "epochs").iterdir()) == \
        ["epoch_001.png", "epoch_002.png"]
    g, d, loaded_cfg, state = load_generator(tmp_path / "cut")
    assert state["epoch"] == 2 and loaded_cfg == cfg and g.n_classes == 10
    assert json.loads((tmp_path / "cut" / "config.json").read_text())["kind"] == "generate"
    assert all(torch.equal(a, b) for a, b in zip(g.state_dict().values(), whole.g.state_dict().values(),
                                                 strict=True))


def test_nan_stops_with_the_step_named_and_keeps_the_last_checkpoint(small, tmp_path):
    cfg = GanConfig(epochs=1, **TINY)
    _fit(cfg, small, tmp_path)
    before = (tmp_path / "checkpoint.pt").read_bytes()
    trainer = gan_trainer(replace(cfg, epochs=2), small, tmp_path, progress=False, tensorboard=False)
    calls = {"n": 0}

    def poison(module, inputs, output):  # 3 D passes per step: NaN from the 3rd step of epoch 2
        calls["n"] += 1
        return output * float("nan") if calls["n"] > 6 else output

    trainer.module.d.net[0].register_forward_hook(poison)
    step = len(small.x) // 64 + 3
    with pytest.raises(NonFiniteLossError, match=rf"step {step} \(epoch 2\): loss_d=nan"):
        trainer.fit()
    assert (tmp_path / "checkpoint.pt").read_bytes() == before


def test_checkpoint_of_another_configuration_is_refused(small, tmp_path):
    from dlapps.errors import CheckpointError

    _fit(GanConfig(epochs=1, **TINY), small, tmp_path)
    config = (tmp_path / "config.json").read_bytes()
    with pytest.raises(CheckpointError, match="another configuration"):
        gan_trainer(GanConfig(epochs=2, loss="minimax", **TINY), small, tmp_path, progress=False).fit()
    assert (tmp_path / "config.json").read_bytes() == config  # refused before any write


# --- data ------------------------------------------------------------------------------------


def _write_pngs(folder, shape, n=6):
    from PIL import Image

    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        Image.fromarray(rng.integers(0, 255, shape, dtype=np.uint8)).save(folder / f"{i}.png")


def test_folder_data_unlabelled_non_square_resized_tiny_refused(tmp_path, small):
    _write_pngs(tmp_path / "wide", (40, 90, 3))
    data = load_gan_data(f"folder:{tmp_path / 'wide'}", 32, 3)
    assert data.x.shape == (5, 3, 32, 32) and data.test_x.shape == (1, 3, 32, 32) and not data.labelled
    with pytest.raises(DataError, match="labelled data"):
        gan_trainer(GanConfig(conditional=True, channels=3, batch_size=4), data, tmp_path / "run")
    _fit(GanConfig(channels=3, batch_size=4, epochs=1, **{k: 8 for k in ("ngf", "ndf", "nz")}),
         data, tmp_path / "run")  # unconditional is fine
    _write_pngs(tmp_path / "tiny", (4, 4))
    with pytest.raises(DataError, match="at least 8"):
        load_gan_data(f"folder:{tmp_path / 'tiny'}", 32, 1)
    with pytest.raises(DataError, match="does not exist"):
        load_gan_data(f"folder:{tmp_path / 'nope'}")
    with pytest.raises(UnknownNameError, match="mnist5k"):
        load_gan_data("mnist5", 32, 1)


def test_config_errors():
    with pytest.raises(UnknownNameError, match="minimax"):
        GanConfig(loss="minmax").validate()
    with pytest.raises(ConfigError, match="beta1_d"):
        GanConfig(beta1_d=1.5).validate()
    with pytest.raises(ConfigError, match="conditional"):
        GanConfig(d_conditional=False).validate()


# --- metrics ---------------------------------------------------------------------------------


def test_real_vs_real_is_near_zero_and_grows_with_noise(mnist, judge):
    assert judge.test_acc > 0.9
    a, b = metrics.embed(judge, mnist.x[0::4]), mnist.x[1::4]  # 1,000 + 1,000 of every class
    noise = torch.randn(b.shape, generator=torch.Generator().manual_seed(0))
    noisy = [metrics.quality(judge, a, b.float() / 127.5 - 1 + s * noise, kid_subset_size=500)
             for s in (0.0, 0.3, 0.8)]
    fids, kids, scores = ([q[k] for q in noisy] for k in ("fid", "kid", "is"))
    assert fids[0] < 0.05 * fids[2] and abs(kids[0]) < 0.01 * kids[2]
    assert fids[0] < fids[1] < fids[2] and kids[0] < kids[1] < kids[2]
    assert scores[0] > scores[2] and scores[0] <= 10  # real digits: confident and balanced
    labelled = metrics.quality(judge, a, b, fake_labels=mnist.y[1::4], kid_subsets=2)
    assert labelled["label_acc"] > 0.9
    assert np.trace(labelled["confusion"]) == round(1000 * labelled["label_acc"])
    assert labelled["n_samples"] == 1000


def test_inception_fid_needs_the_weights_file(tmp_path):
    with pytest.raises(DataError, match="not found"):
        metrics.inception_fid(torch.zeros(2, 1, 32, 32), torch.zeros(2, 1, 32, 32), tmp_path / "nope.pth")


# --- sampling --------------------------------------------------------------------------------


def test_slerp_keeps_the_norm_and_lerp_cuts_inside():
    z1, z2 = torch.randn(64, 1000), torch.randn(64, 1000)
    alpha = torch.linspace(0, 1, 5)
    s, lin = slerp(z1, z2, alpha), lerp(z1, z2, alpha)
    assert torch.allclose(s[:, 0], z1, atol=1e-4) and torch.allclose(s[:, -1], z2, atol=1e-4)
    mid_s, mid_l = s[:, 2].norm(dim=1).mean(), lin[:, 2].norm(dim=1).mean()
    assert abs(mid_s / math.sqrt(1000) - 1) < 0.05 and abs(mid_l / math.sqrt(500) - 1) < 0.05


def test_class_index_out_of_range():
    g, _ = build_gan(nz=8, ngf=8, ndf=8, n_classes=10)
    with pytest.raises(ConfigError, match="out of range"):
        check_class(g, 10)
    with pytest.raises(ConfigError, match="conditional"):
        check_class(build_gan(nz=8, ngf=8, ndf=8)[0], 3)


# --- compare grid -------------------------------------------------------------------------


def test_grid_parsing_and_cells():
    grid = parse_grid(["ngf=8,32 loss=nonsat,minimax", "beta1=0.9"])
    assert grid == {"ngf": [8, 32], "loss": ["nonsat", "minimax"], "beta1": [0.9]}
    one = cells(GanConfig(), grid)
    assert list(one) == ["base", "ngf=8", "loss=minimax", "beta1=0.9"]
    assert one["beta1=0.9"].beta1_g == one["beta1=0.9"].beta1_d == 0.9
    assert len(cells(GanConfig(), grid, product=True)) == 4
    with pytest.raises(UnknownNameError, match="ngf"):
        parse_grid(["ngg=8"])
    with pytest.raises(ConfigError, match="not a int"):
        parse_grid(["ngf=eight"])
    with pytest.raises(UnknownNameError, match="minimax"):
        cells(GanConfig(), parse_grid(["loss=true"]))


# --- command line ----------------------------------------------------------------------------


def test_cli_train_sample_interpolate_grid(tmp_path, digit_folder):
    runner = CliRunner()
    out = tmp_path / "run"
    r = runner.invoke(app, ["gan", "train", "--data", f"imagefolder:{digit_folder}", "--conditional",
                            "--epochs", "1", "--ngf", "8", "--ndf", "8", "--nz", "16", "--batch-size", "64",
                            "--n-samples", "200", "--out", str(out), "--quiet"])
    assert r.exit_code == 0, r.output
    results = json.loads((out / "results.json").read_text())
    for key in ("fid", "kid", "is", "label_acc"):
        assert isinstance(results[key], float)
    assert results["n_samples"] == 200 and results["floor"]["fid"] < results["fid"]
    cell = out / "cdcgan-seed0"
    cell_results = json.loads((cell / "results.json").read_text())
    assert len(cell_results["confusion"]) == 10
    for name in ("curves.png", "samples.png", "epochs.gif", "class_grid.png", "interpolation.png",
                 "interpolation_slerp.png", "confusion.png"):
        assert (cell / "figures" / name).is_file(), name
    assert results["kind"] == cell_results["kind"] == "generate" and results["config"]["conditional"]
    assert b"<img" in (out / "report.html").read_bytes()
    # --config: the cell's config.json with the same --out is the same run (kept, not retrained)
    r = runner.invoke(app, ["gan", "train", "--config", str(cell / "config.json"), "--n-samples", "200",
                            "--out", str(out), "--quiet"])
    assert r.exit_code == 0, r.output
    assert comparable(json.loads((out / "results.json").read_text())) == comparable(results)
    for args, figure in ((["sample", str(out), "--class", "7", "--n", "20"], "samples.png"),
                         (["interpolate", str(out), "--slerp"], "interpolation_slerp.png"),
                         (["grid", str(cell)], "class_grid.png")):
        dest = tmp_path / args[0]
        r = runner.invoke(app, ["gan", *args, "--out", str(dest)])
        assert r.exit_code == 0, r.output
        assert (dest / figure).is_file() and (dest / "results.json").is_file()
    r = runner.invoke(app, ["gan", "sample", str(out), "--class", "12", "--out", str(tmp_path / "bad")])
    assert r.exit_code == 2 and "out of range" in r.output
    r = runner.invoke(app, ["gan", "train", "--cdx", "--out", str(tmp_path / "bad")])
    assert r.exit_code == 2 and "--conditional" in r.output
    r = runner.invoke(app, ["gan", "sample", str(tmp_path / "empty")])
    assert r.exit_code == 2 and "no trained model" in r.output
    assert b"<img" in (tmp_path / "grid" / "report.html").read_bytes()


@pytest.mark.parametrize("command", [["train"], ["compare", "--grid", "ngf=8,16"], []])
def test_config_of_another_kind_is_refused(tmp_path, command):
    other = tmp_path / "config.json"
    other.write_text(json.dumps({"kind": "adapt", "source": "mnist5k", "epochs": 2}))
    r = CliRunner().invoke(app, ["gan", *command, "--config", str(other), "--out", str(tmp_path / "run")])
    assert r.exit_code == 2, r.output
    assert "kind 'adapt'" in r.output and len(r.output.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()


def test_report_section_and_render_from_the_run_alone(tmp_path, small):
    from dlapps.config import config_dict
    from dlapps.generate import report
    from dlapps.runs import write_results

    cfg = GanConfig(epochs=1, **TINY)
    _fit(cfg, small, tmp_path)
    (tmp_path / "figures" / "epochs" / "epoch_001.png").rename(tmp_path / "figures" / "samples.png")
    write_results(tmp_path, "generate", config_dict(cfg), {"name": "dcgan-seed0", "fid": 12.5, "epochs": 1})
    html = report.section(tmp_path, json.loads((tmp_path / "results.json").read_text()))
    assert "<h2>" not in html and "<h3>Quality</h3>" in html and "12.5" in html and "<img" in html
    assert report.title({"title": "dlapps gan: x"}) == "dlapps gan: x"
    page = report.render(tmp_path).read_text()
    assert page.startswith("<!DOCTYPE html>") and "<h1>dlapps gan: " in page


def test_cells_in_worker_processes_equal_cells_trained_here(tmp_path, digit_folder):
    from dlapps.generate.experiment import run_variants

    base = GanConfig(data=f"imagefolder:{digit_folder}", epochs=1, **TINY)
    variants = {"dcgan": base, "cdcgan": replace(base, conditional=True)}
    here = run_variants(variants, [0], tmp_path / "here", n_samples=100, progress=False, workers=1)
    there = run_variants(variants, [0], tmp_path / "there", n_samples=100, progress=False, workers=2)
    assert there["workers"] == 2
    for name in variants:
        a, b = (torch.load(d / f"{name}-seed0" / "checkpoint.pt", weights_only=True)["module"]
                for d in (tmp_path / "here", tmp_path / "there"))
        assert all(torch.equal(a[k], b[k]) for k in a if k.startswith("g."))
        assert here["variants"][name]["fid"] == there["variants"][name]["fid"]


@pytest.mark.slow
def test_killed_three_times_ends_as_an_uninterrupted_run(tmp_path, digit_folder):
    """`dlapps gan train`, SIGKILLed at random moments and rerun with the same --out, ends with the
    results.json of a run that was never interrupted (weights, FID, KID, IS, label accuracy)."""
    args = ["gan", "train", "--data", f"imagefolder:{digit_folder}", "--conditional", "--epochs", "3",
            "--ngf", "8", "--ndf", "8", "--nz", "16", "--batch-size", "32", "--n-samples", "100", "--quiet"]
    whole = tmp_path / "whole"
    dlapps(*args, "--out", whole)
    out = tmp_path / "killed"
    killed = kill_and_resume([*args, "--out", out], [*args, "--out", out], out, max_delay=1.5)
    assert killed.pop("_kills") >= 1
    assert comparable(killed) == comparable(json.loads((whole / "results.json").read_text()))
    assert killed["variants"]["cdcgan"]["fid"]["mean"] > 0


def test_channels_last_is_a_speed_setting_only(tmp_path):
    """G and D train in NHWC by default; the memory format is left out of the fingerprint, so a run
    resumes whichever layout it was started with, and --no-channels-last reaches the config."""
    from dlapps.generate.config import GanConfig
    from dlapps.generate.data import load_gan_data
    from dlapps.generate.gan import gan_trainer

    assert GanConfig().fingerprint() == GanConfig(channels_last=False).fingerprint()
    cfg = GanConfig(epochs=1, batch_size=32)
    data = load_gan_data(cfg.data, cfg.size, cfg.channels)
    trainer = gan_trainer(cfg, data, tmp_path, progress=False, tensorboard=False)
    weight = next(p for p in trainer.module.g.parameters() if p.ndim == 4)
    assert weight.is_contiguous(memory_format=torch.channels_last) and not weight.is_contiguous()
    plain = gan_trainer(replace(cfg, channels_last=False), data, tmp_path / "b", progress=False,
                        tensorboard=False)
    assert next(p for p in plain.module.g.parameters() if p.ndim == 4).is_contiguous()
    r = CliRunner().invoke(app, ["gan", "train", "--no-channels-last", "--epochs", "0",
                                 "--out", str(tmp_path / "c")])
    assert r.exit_code != 0 and "epochs" in r.output  # the flag parses; the bad epochs is the one error
