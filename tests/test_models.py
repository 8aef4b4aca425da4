"""The papers' networks and the configuration."""

import json

import pytest
import torch

from dlapps.adapt.config import PRESETS, AdaptConfig, preset
from dlapps.errors import ConfigError, UnknownNameError
from dlapps.models import build_digits_net
from dlapps.models.nets import build_net
from dlapps.ssl.base import Encoder


def test_domain_hidden_reaches_the_domain_classifier():
    """``--domain-hidden 500,500`` (issue 16's measured alternative) is parsed, validated and
    builds a 768-500-500-1 domain classifier; the label predictor is untouched."""
    from dlapps.cli_support import parse_ints
    from dlapps.config import merge

    widths = parse_ints("500, 500", "--domain-hidden", "layer widths like 500,500")
    cfg = merge(AdaptConfig, None, {"domain_hidden": widths})
    assert cfg.domain_hidden == [500, 500]
    net = build_digits_net("mnist", 3, 28, domain_hidden=cfg.domain_hidden)
    assert [m.out_features for m in net.discriminator if isinstance(m, torch.nn.Linear)] == [500, 500, 1]
    assert [m.out_features for m in net.classifier if isinstance(m, torch.nn.Linear)] == [100, 100, 10]
    for bad in ([], [500, 0], [1.5], "500"):
        with pytest.raises(ConfigError, match="--domain-hidden"):
            AdaptConfig(domain_hidden=bad).validate()


def test_mnist_net_matches_the_paper():
    net = build_digits_net("mnist", 3, 28)
    assert net.feature_dim == 768  # 48 maps of 4x4
    convs = [m for m in net.features if isinstance(m, torch.nn.Conv2d)]
    assert [(c.out_channels, c.kernel_size) for c in convs] == [(32, (5, 5)), (48, (5, 5))]
    linears = [m.out_features for m in net.classifier if isinstance(m, torch.nn.Linear)]
    assert linears == [100, 100, 10]
    assert [m.out_features for m in net.discriminator if isinstance(m, torch.nn.Linear)] == [100, 1]
    x = torch.rand(4, 3, 28, 28)
    assert net(x).shape == (4, 10) and net.embed(x).shape == (4, 768)


def test_svhn_net_shapes():
    net = build_digits_net("svhn", 3, 32)
    assert [m.out_features for m in net.classifier if isinstance(m, torch.nn.Linear)] == [3072, 2048, 10]
    assert [m.out_features for m in net.discriminator if isinstance(m, torch.nn.Linear)] == [1024, 1024, 1]
    assert any(isinstance(m, torch.nn.Dropout) for m in net.classifier)
    assert net(torch.rand(2, 3, 32, 32)).shape == (2, 10)


def _textbook_order(body: torch.nn.Sequential) -> torch.nn.Sequential:
    """The same modules with every (pool, ReLU) pair put back in the lecture's ReLU → pool order."""
    mods = list(body)
    for i in range(len(mods) - 1):
        if isinstance(mods[i], torch.nn.MaxPool2d) and isinstance(mods[i + 1], torch.nn.ReLU):
            mods[i], mods[i + 1] = mods[i + 1], mods[i]
    assert mods != list(body)  # the fast order is in use
    return torch.nn.Sequential(*mods)


@pytest.mark.parametrize("build, shape", [
    (lambda: build_digits_net("mnist", 3, 28).features, (6, 3, 28, 28)),
    (lambda: build_digits_net("svhn", 3, 32, batchnorm=True).features, (6, 3, 32, 32)),
    (lambda: build_net("cnn", 1, 28, 10).body, (6, 1, 28, 28)),
    (lambda: Encoder(1, 8).body, (6, 1, 28, 28)),
])
def test_pool_before_relu_is_the_same_function_and_gradient(build, shape):
    torch.manual_seed(0)
    body, x = build().train(), torch.randn(shape, requires_grad=True)
    torch.manual_seed(1)  # the same dropout masks for both orders
    fast = body(x)
    (g_fast,) = torch.autograd.grad(fast.square().sum(), x)
    torch.manual_seed(1)
    slow = _textbook_order(body)(x)
    (g_slow,) = torch.autograd.grad(slow.square().sum(), x)
    assert torch.allclose(fast, slow) and torch.allclose(g_fast, g_slow)


def test_normalisation_lives_in_the_net_and_init_is_glorot():
    net = build_digits_net("mnist", 3, 28, mean=[0.2, 0.3, 0.4])
    centred = net.normalize(torch.full((1, 3, 1, 1), 0.5)).flatten()
    assert torch.allclose(centred, torch.tensor([0.3, 0.2, 0.1]))
    w = net.features[0].weight
    bound = (6 / (3 * 25 + 32 * 25)) ** 0.5  # Glorot uniform for a 5x5 conv, 3 -> 32 maps
    assert w.abs().max() <= bound and w.abs().max() > 0.9 * bound
    assert torch.count_nonzero(net.features[0].bias) == 0


def test_batchnorm_option_and_unknown_arch():
    net = build_digits_net("mnist", batchnorm=True)
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in net.features)
    with pytest.raises(UnknownNameError, match="svhn"):
        build_digits_net("lenet")


def test_presets_and_overrides():
    paper = preset("paper")
    assert (paper.lr, paper.batch_size, paper.gamma, paper.epochs) == (0.01, 64, 10.0, 100)
    fast = preset("fast", epochs=3, seeds=[0, 1])
    assert fast.epochs == 3 and fast.seeds == [0, 1] and fast.batch_size == 32
    assert set(PRESETS) == {"paper", "fast"}
    with pytest.raises(UnknownNameError):
        preset("turbo")


def test_config_file_round_trip_and_unknown_keys(tmp_path):
    cfg = preset("fast", methods=["dann"])
    path = tmp_path / "config.json"
    path.write_text(json.dumps(cfg.to_dict()))
    assert AdaptConfig.load(path) == cfg
    path.write_text(json.dumps({**cfg.to_dict(), "learning_rate": 3}))
    with pytest.raises(ConfigError, match="learning_rate"):
        AdaptConfig.load(path)
    path.write_text("{not json")
    with pytest.raises(ConfigError, match="cannot read"):
        AdaptConfig.load(path)


def test_fingerprint_tracks_what_training_computes():
    a = AdaptConfig()
    same = AdaptConfig(tsne=False, device="cpu")  # how to run and what to draw: not what trains
    assert a.training_fingerprint("dann", 0) == same.training_fingerprint("dann", 0)
    assert a.training_fingerprint("dann", 0) != AdaptConfig(lr=0.02).training_fingerprint("dann", 0)
    assert a.training_fingerprint("dann", 0) != a.training_fingerprint("dann", 1)


def test_auto_architecture():
    assert AdaptConfig().resolved_arch() == "mnist" and AdaptConfig().resolved_image_size() == 28
    assert AdaptConfig(source="svhn", target="mnist").resolved_image_size() == 32
