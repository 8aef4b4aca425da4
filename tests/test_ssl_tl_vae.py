"""Transfer learning + VAE (dlapps.ssl.tl_vae): the KL and the reparameterisation against their
formulas, training on real EfficientNet-Lite0 features of Fashion-MNIST, the judged features
(deterministic, cached, the same after a resume) and that they cluster better than noise."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
from sklearn.cluster import KMeans
from sklearn.metrics import normalized_mutual_info_score

from dlapps.engine.batches import to_float
from dlapps.errors import ConfigError
from dlapps.ssl import tl_vae
from dlapps.ssl.base import Encoder, PretrainInfo
from dlapps.ssl.tl_vae import TransferVAE, kl_standard_normal, reparameterise

N = 300
CPU = torch.device("cpu")


def make(n: int = N, **options) -> TransferVAE:
    info = PretrainInfo(n_images=n, channels=1, size=28, num_classes=10)
    config = SimpleNamespace(method_options={"tl-vae": options} if options else {})
    return TransferVAE(Encoder(1, 8), info, config)


@pytest.fixture(scope="module")
def fashion():
    from dlapps.data import load_domain

    d = load_domain("fashion")
    pick = torch.randperm(len(d.train_y), generator=torch.Generator().manual_seed(0))[:N]
    return d.train_x[pick], d.train_y[pick], d.test_x[:24]


@pytest.fixture(scope="module")
def trained(fashion):
    """A method set up on 300 real images and trained for 150 Adam steps."""
    x, _, _ = fashion
    torch.manual_seed(0)
    m = make(latent=16)
    m.setup(x, CPU)
    opt = torch.optim.Adam(m.parameters(), lr=1e-3)
    m.train()
    first = None
    for step in range(150):
        out = m(None, torch.randint(0, N, (64,)), step / 150)
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        first = first if first is not None else out
    return m, first


def test_kl_closed_form_on_hand_values():
    mu = torch.tensor([[1.0, -2.0]])
    logvar = torch.tensor([[0.0, math.log(4.0)]])
    # −½[(1 + 0 − 1 − 1) + (1 + log 4 − 4 − 4)] = ½(8 − log 4) = 4 − log 2
    assert kl_standard_normal(mu, logvar).item() == pytest.approx(4 - math.log(2), abs=1e-6)
    ref = torch.distributions.kl_divergence(torch.distributions.Normal(mu, (0.5 * logvar).exp()),
                                            torch.distributions.Normal(0.0, 1.0)).sum(-1)
    torch.testing.assert_close(kl_standard_normal(mu, logvar), ref)
    assert kl_standard_normal(torch.zeros(3, 5), torch.zeros(3, 5)).abs().max().item() == 0.0


def test_reparameterisation_has_the_posterior_mean_and_std():
    torch.manual_seed(0)
    mu = torch.tensor([2.0, -1.0]).expand(200_000, 2)
    logvar = torch.tensor([math.log(0.25), math.log(9.0)]).expand(200_000, 2)
    z = reparameterise(mu, logvar)
    torch.testing.assert_close(z.mean(0), torch.tensor([2.0, -1.0]), atol=0.02, rtol=0)
    torch.testing.assert_close(z.std(0), torch.tensor([0.5, 3.0]), atol=0.02, rtol=0)


def test_options_are_checked():
    ok = dict(TransferVAE.options)
    TransferVAE.check(ok, 28)
    for bad in ({"input_size": 16}, {"latent": 0}, {"hidden": 2.5}, {"beta": -1.0}, {"beta": "x"}):
        with pytest.raises(ConfigError, match="tl-vae"):
            TransferVAE.check({**ok, **bad}, 28)
    with pytest.raises(ConfigError, match="input_size"):
        make(input_size=8)


def test_training_lowers_the_vae_loss_and_leaves_the_encoder_alone(fashion, trained):
    m, first = trained
    assert m.pretrain_features.shape == (N, tl_vae.FEATURE_DIM)
    assert set(first) >= {"loss", "recon", "kl"}
    torch.testing.assert_close(first["loss"].detach(), first["recon"] + m.beta * first["kl"])
    torch.manual_seed(1)
    after = m(None, torch.arange(N), 1.0)
    assert after["loss"].item() < 0.8 * first["loss"].item()
    # the pixels are never read; the kept encoder is frozen and never gets a gradient
    assert all(not p.requires_grad and p.grad is None for p in m.encoder.parameters())
    # the backbone is not part of the module: not checkpointed, not optimised
    assert all(k.split(".")[0] in ("encoder", "vae_encoder", "vae_decoder", "feature_mean", "feature_std",
                                   "standardised") for k in m.state_dict())


def test_features_are_deterministic_latent_means_cached_on_disk(fashion, trained, tmp_path, monkeypatch):
    m, _ = trained
    x, _, test_x = fashion
    m.eval()
    monkeypatch.setenv("DLAPPS_DATA", str(tmp_path))
    hits = []
    real = tl_vae.cached_features

    def spy(*args, **kwargs):
        feats, hit = real(*args, **kwargs)
        hits.append(hit)
        return feats, hit

    monkeypatch.setattr(tl_vae, "cached_features", spy)
    a = m.features(test_x, CPU)
    b = m.features(test_x, CPU)
    assert a.shape == (len(test_x), m.latent) and a.device.type == "cpu"
    assert torch.equal(a, b) and hits == [False, True]  # extracted once, then read from the cache
    assert list((tmp_path / "cache").glob("transfer-features-*.pt"))
    # rows of the pretraining set come from setup's features: no extraction at all
    sub = m.features(x[10:50], CPU)
    assert hits == [False, True]
    torch.testing.assert_close(sub, m.features(x, CPU)[10:50])
    # μ of the standardised features, no sampling
    mu, _ = m.encode(m.standardise(m.pretrain_features[10:50]))
    torch.testing.assert_close(sub, mu)
    # embed reads pixels through the backbone (uncached) and agrees
    torch.testing.assert_close(m.embed(to_float(test_x[:6])), a[:6], atol=1e-4, rtol=1e-4)


def test_a_resumed_model_gives_the_same_features(fashion, trained):
    m, _ = trained
    x, _, _ = fashion
    m.eval()
    want = m.features(x[:20], CPU)
    for order in ("load-then-setup", "setup-then-load"):
        fresh = make(latent=16)
        fresh._backbone = m.backbone  # share the loaded network (saves a second load)
        if order == "setup-then-load":
            fresh.setup(x, CPU)
        fresh.load_state_dict(m.state_dict())
        if order == "load-then-setup":
            fresh.setup(x, CPU)  # the checkpoint's statistics are kept, not recomputed
            torch.testing.assert_close(fresh.feature_mean, m.feature_mean, atol=0, rtol=0)
        torch.testing.assert_close(fresh.eval().features(x[:20], CPU), want, atol=0, rtol=0)
    unset = make(latent=16)
    with pytest.raises(RuntimeError, match="setup"):
        unset.features(x[:2], CPU)


def test_setup_keeps_statistics_already_set(fashion, trained):
    m, _ = trained
    x, _, _ = fashion
    fresh = make(latent=16)
    fresh._backbone = m.backbone
    fresh.feature_mean.fill_(3.0)
    fresh.standardised.fill_(True)  # as after loading a checkpoint
    fresh.setup(x, CPU)
    assert torch.all(fresh.feature_mean == 3.0)


def test_latent_means_cluster_better_than_noise(fashion, trained):
    m, _ = trained
    x, y, _ = fashion
    z = m.eval().features(x, CPU).numpy()
    noise = torch.randn(N, m.latent, generator=torch.Generator().manual_seed(0)).numpy()

    def nmi(f):
        ids = KMeans(10, n_init=3, random_state=0).fit_predict(f)
        return normalized_mutual_info_score(y.numpy(), ids)

    assert nmi(z) > nmi(noise) + 0.2
