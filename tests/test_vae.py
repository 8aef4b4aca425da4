"""VAE / conditional VAE: reparameterisation, KL, bounds (ELBO ≤ IWAE), training on real digits,
the generator wrapper with the GAN's sampling and metrics, resume, errors."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch
from torch.distributions import Normal, kl_divergence

from dlapps.engine.trainer import Step
from dlapps.errors import ConfigError, DataError
from dlapps.generate import metrics, sampling, vae
from dlapps.generate.config import VaeConfig
from dlapps.generate.data import GanData, load_gan_data, to_uint8
from dlapps.generate.gan import sample_grid

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TINY = dict(width=8, nz=16, batch_size=32)


@pytest.fixture(scope="module")
def mnist() -> GanData:
    return load_gan_data("mnist5k", 32, 1)


@pytest.fixture(scope="module")
def test_x(mnist) -> torch.Tensor:
    """200 held-out digits as floats in [0, 1]."""
    return mnist.test_x[:200].float() / 255


@pytest.fixture(scope="module")
def trained(mnist, test_x, tmp_path_factory):
    """An unconditional VAE after 200 steps (1,280 digits, 5 epochs of 40), and its test ELBO
    before training."""
    data = replace(mnist, x=mnist.x[:1280], y=mnist.y[:1280])
    trainer = vae.vae_trainer(VaeConfig(epochs=5, lr=2e-3, **TINY), data, tmp_path_factory.mktemp("vae"),
                              progress=False, tensorboard=False)
    untrained = vae.test_elbo(trainer.module, test_x)
    trainer.fit()
    assert trainer.history[-1]["step"] == 200
    return trainer.module, untrained


# --- the pieces --------------------------------------------------------------------------------


def test_reparameterized_sample_has_mean_mu_and_variance_sigma2():
    n = 200_000
    mu, var = torch.tensor([-1.0, 0.5, 2.0]), torch.tensor([1.0, 4.0, 0.25])
    torch.manual_seed(0)
    z = vae.reparameterize(mu.expand(n, 3), var.log().expand(n, 3))
    # 5 standard errors: σ/√n for the mean, σ²·√(2/n) for the variance (≈ 1.6% of σ²)
    assert ((z.mean(0) - mu).abs() < 5 * var.sqrt() / n**0.5).all()
    assert ((z.var(0) - var).abs() < 5 * var * (2 / n) ** 0.5).all()
    eps = torch.tensor([[1.0, -1.0, 2.0]])  # given ε: z = μ + σ ε exactly
    expected = torch.tensor([[0.0, -1.5, 3.0]])
    assert torch.allclose(vae.reparameterize(mu[None], var.log()[None], eps), expected)


def test_kl_equals_the_closed_form_of_torch_distributions():
    g = torch.Generator().manual_seed(0)
    mu, logvar = torch.randn(5, 7, generator=g), torch.randn(5, 7, generator=g)
    ref = kl_divergence(Normal(mu, (0.5 * logvar).exp()), Normal(0.0, 1.0)).sum(1)
    kl = vae.kl_standard_normal(mu, logvar)
    assert kl.shape == (5,) and torch.allclose(kl, ref, atol=1e-5)
    # by hand: q = prior costs 0; μ = 1, σ = 1 costs ½ per dimension
    assert vae.kl_standard_normal(torch.zeros(2, 4), torch.zeros(2, 4)).eq(0).all()
    assert torch.allclose(vae.kl_standard_normal(torch.ones(1, 4), torch.zeros(1, 4)), torch.tensor([2.0]))


def test_binarize_draws_zeros_and_ones_with_the_pixel_mean():
    x = torch.full((100_000,), 0.3)
    b = vae.binarize(x, torch.Generator().manual_seed(0))
    assert set(b.unique().tolist()) == {0.0, 1.0}
    assert abs(b.mean().item() - 0.3) < 0.007  # 5 standard errors √(0.21/10⁵)
    assert torch.equal(b, vae.binarize(x, torch.Generator().manual_seed(0)))  # seeded: repeatable
    black_white = torch.tensor([0, 255, 255, 0], dtype=torch.uint8)  # uint8 pixels are /255
    assert vae.binarize(black_white).tolist() == [0.0, 1.0, 1.0, 0.0]


@pytest.mark.parametrize("size", [32, 64])
@pytest.mark.parametrize("n_classes", [0, 10])
def test_shapes_and_eval_equals_train(size, n_classes):
    model = vae.VAE(VaeConfig(size=size, channels=3, width=8, nz=5), n_classes)
    x, y = torch.rand(4, 3, size, size), torch.arange(4) if n_classes else None
    mu, logvar = model.encode(x, y)
    assert mu.shape == logvar.shape == (4, 5)
    assert model.decode(mu, y).shape == (4, 3, size, size)
    assert model.decoder.net[0].in_features == 5 + n_classes
    assert model.encoder.net[0].in_channels == 3 + n_classes
    assert torch.equal(model.eval().encode(x, y)[0], mu)  # no batch norm: one function in both modes


def test_training_step_minimises_rec_plus_beta_kl_of_a_fresh_binarisation(mnist):
    cfg = VaeConfig(beta=4.0, **TINY)
    model = vae.VAE(cfg, 10)
    batch = (mnist.x[:32].float() / 255, mnist.y[:32], None, None)
    torch.manual_seed(1)
    rec, kl = model.terms(vae.binarize(batch[0]), batch[1])  # the same global draws as the step's
    before = model.decoder.net[0].weight.clone()
    torch.manual_seed(1)
    out = model.training_step(batch, 0.0, Step(model.optimizers(cfg)))
    assert out["loss"] == pytest.approx((rec + 4.0 * kl).mean().item(), rel=1e-5)
    assert out["rec"] == pytest.approx(rec.mean().item(), rel=1e-5)
    assert out["kl"] == pytest.approx(kl.mean().item(), rel=1e-5)
    assert out["elbo"] == pytest.approx(-(out["rec"] + out["kl"]), rel=1e-6)
    assert not torch.equal(before, model.decoder.net[0].weight)  # one Adam step was taken


# --- bounds and training -----------------------------------------------------------------------


def test_training_raises_the_test_elbo(trained, test_x):
    model, untrained = trained
    elbo = vae.test_elbo(model, test_x)
    # untrained ≈ 1024 · ln 2 ≈ 710 nats (every pixel a coin flip); measured −731 → −171
    assert untrained < -650
    assert elbo > -200 and elbo > untrained + 400


def test_iwae_bound_is_above_the_elbo_and_grows_with_k(trained, test_x):
    model, _ = trained
    elbo = vae.test_elbo(model, test_x, seed=3)
    bounds = [vae.iwae_bound(model, test_x, k=k, seed=3) for k in (1, 5, 50)]
    # L_1 is the ELBO with the KL estimated from the one sample (measured 0.3 nats apart)
    assert abs(bounds[0] - elbo) < 2
    # measured −171.4, −165.7, −162.1: gaps of several nats, MC noise on 200 images well under 1
    assert bounds[0] < bounds[1] < bounds[2] and bounds[2] > elbo + 3
    # splitting an image's k samples over several decoder passes changes nothing but the memory
    one_pass, five = (vae.iwae_bound(model, test_x[:10], k=50, seed=3, batch=b) for b in (50, 10))
    assert one_pass == pytest.approx(five, abs=1e-4)


def test_bounds_are_deterministic_in_their_seed(trained, test_x):
    model, _ = trained
    x = test_x[:50]
    once = vae.test_elbo(model, x, seed=1)
    assert vae.test_elbo(model, x, seed=1) == once != vae.test_elbo(model, x, seed=2)
    assert vae.iwae_bound(model, x, k=10, seed=1) == vae.iwae_bound(model, x, k=10, seed=1)
    with pytest.raises(ConfigError, match="k >= 1"):
        vae.iwae_bound(model, x, k=0)


def test_reconstruction_grid(trained, test_x):
    model, _ = trained
    grid = vae.reconstruction_grid(model, test_x, n=10, seed=5)
    assert grid.shape == (20, 1, 32, 32) and grid.dtype == torch.uint8
    originals = vae.binarize(test_x[:10], torch.Generator().manual_seed(5))
    assert torch.equal(grid[:10], (originals * 255).to(torch.uint8))
    recon, grey = grid[10:].float() / 255, test_x[:10]
    own = (recon - grey).pow(2).mean()  # to the intensities its binary input was drawn from
    other = (recon - grey.roll(1, 0)).pow(2).mean()  # to another digit's
    assert own < 0.7 * other  # measured 0.033 vs 0.066 (blurry after 200 steps at width 8)
    with pytest.raises(ConfigError, match="n must"):
        vae.reconstruction_grid(model, test_x[:3], n=4)


# --- the generator wrapper ----------------------------------------------------------------------


def test_generator_shares_weights_and_works_with_sampling_and_metrics(trained):
    model, _ = trained
    g = model.generator()
    assert (g.nz, g.n_classes) == (16, 0)
    assert {id(p) for p in g.parameters()} == {id(p) for p in model.decoder.parameters()}
    z = torch.randn(6, 16)
    out = g(z)
    assert out.min() >= -1 and out.max() <= 1
    assert torch.equal(out, torch.sigmoid(model.decode(z)) * 2 - 1)
    rows = sampling.interpolate(g, pairs=3, steps=5, seed=1)
    assert rows.shape == (15, 1, 32, 32) and rows.dtype == torch.uint8
    assert torch.equal(rows, sampling.interpolate(g, pairs=3, steps=5, seed=1))
    assert not torch.equal(rows[0], rows[4])  # z₁ and z₂ decode to other images
    x, y = metrics.generate(g, 40)
    assert x.shape == (40, 1, 32, 32) and y is None and x.min() >= -1 and x.max() <= 1
    tiled = sample_grid(g, z, None, columns=3)  # 6 images, 2 rows of 3
    assert tiled.shape == (2 * 32, 3 * 32) and (tiled[:32, :32] == to_uint8(out[0])[0].numpy()).all()
    with pytest.raises(ConfigError, match="conditional"):
        sampling.class_grid(g)


def test_conditional_generator_class_grid():
    model = vae.VAE(VaeConfig(conditional=True, **TINY), 10)
    g = model.generator()
    grid = sampling.class_grid(g, columns=4)
    assert grid.shape == (40, 1, 32, 32) and grid.dtype == torch.uint8
    assert not torch.equal(grid[0], grid[4])  # same z, class 0 vs class 1
    assert torch.equal(sampling.sample(g, 5, cls=3), sampling.sample(g, 5, cls=3))
    x, y = torch.rand(6, 1, 32, 32), torch.arange(6)
    bounds = [vae.iwae_bound(model, x, labels, k=4) for labels in (y, y, y.flip(0))]
    assert bounds[0] == bounds[1] != bounds[2]  # the labels reach the encoder and the decoder


# --- errors ------------------------------------------------------------------------------------


def test_conditional_without_labels_is_refused(mnist, tmp_path):
    model = vae.VAE(VaeConfig(conditional=True, **TINY), 10)
    x = torch.rand(2, 1, 32, 32)
    with pytest.raises(ConfigError, match="class labels y"):
        model.terms(x, None)
    with pytest.raises(ConfigError, match="class labels y"):
        model.generator()(torch.randn(2, 16))
    with pytest.raises(ConfigError, match="class labels y"):
        vae.test_elbo(model, x)
    with pytest.raises(ConfigError, match="2 images but 3 labels"):
        vae.iwae_bound(model, x, torch.arange(3), k=2)
    unlabelled = replace(mnist, x=mnist.x[:64], y=None, classes=[])
    with pytest.raises(DataError, match="labelled data"):
        vae.vae_trainer(VaeConfig(conditional=True, **TINY), unlabelled, tmp_path)
    with pytest.raises(ConfigError, match="larger than"):
        vae.vae_trainer(VaeConfig(batch_size=128, width=8), unlabelled, tmp_path)
    assert not any(tmp_path.iterdir())  # refused before any write


# --- resume -------------------------------------------------------------------------------------


def _fit(cfg: VaeConfig, data: GanData, run_dir) -> vae.VAE:
    trainer = vae.vae_trainer(cfg, data, run_dir, progress=False, tensorboard=False)
    trainer.fit()
    return trainer.module


def test_resumed_run_ends_equal_to_uninterrupted(mnist, tmp_path):
    data = replace(mnist, x=mnist.x[:256], y=mnist.y[:256])
    cfg = VaeConfig(conditional=True, epochs=2, **TINY)
    whole = _fit(cfg, data, tmp_path / "whole")
    _fit(replace(cfg, epochs=1), data, tmp_path / "cut")
    torch.randn(100)  # the interrupted process' RNG drifts; the checkpoint must restore it
    resumed = _fit(cfg, data, tmp_path / "cut")
    for a, b in zip(whole.state_dict().values(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    records = map(json.loads, (tmp_path / "cut" / "metrics.jsonl").read_text().splitlines())
    steps = [r for r in records if r["kind"] == "step"]
    assert [r["step"] for r in steps] == list(range(1, 17))  # 256 / 32 per epoch, none twice
    assert {"loss", "rec", "kl", "elbo"} <= set(steps[0])
    assert sorted(p.name for p in (tmp_path / "cut" / "figures" / "epochs").iterdir()) == \
        ["epoch_001.png", "epoch_002.png"]
    loaded, loaded_cfg, state = vae.load_vae(tmp_path / "cut")
    assert loaded.n_classes == 10 and loaded_cfg == cfg and state["epoch"] == 2 and not loaded.training
    for a, b in zip(loaded.state_dict().values(), whole.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    with pytest.raises(DataError, match="no config.json"):
        vae.load_vae(tmp_path / "nothing")
    (tmp_path / "fresh").mkdir()
    (tmp_path / "fresh" / "config.json").write_bytes((tmp_path / "cut" / "config.json").read_bytes())
    with pytest.raises(DataError, match="no checkpoint"):
        vae.load_vae(tmp_path / "fresh")
