"""Sanity checks (Adebayo et al. 2018) on small networks: the layers randomised, the similarity
measures by hand, a model-independent map flagged, gradient maps not."""

from __future__ import annotations

import pytest
import torch

from dlapps.errors import ConfigError
from dlapps.explain import sanity
from dlapps.explain.models import ExplainModel
from dlapps.explain.saliency import saliency

pytestmark = pytest.mark.usefixtures("one_torch_thread")
SIZE = 12


@pytest.fixture(scope="module")
def digits(sklearn_digits_cnn):
    """A small CNN trained briefly on scikit-learn's 8x8 digits (upscaled to 12x12 RGB), with its
    training data, so it can be retrained; six test images."""
    net, x, y = sklearn_digits_cnn(SIZE, epochs=4)
    model = ExplainModel.wrap(net, [str(i) for i in range(10)], SIZE, "digits", training_data=lambda: (x, y))
    test = x[::300][:6]
    return model, test, model.predict(test)[0]


def explainers(*methods: str) -> dict:
    return {m: (lambda model, x, t, m=m: saliency(model, x, t, m, steps=8, tolerance=None)) for m in methods}


def test_similarity_by_hand():
    m = torch.rand(2, SIZE, SIZE, generator=torch.Generator().manual_seed(0))
    same = sanity.similarity(m, m)
    assert same["spearman"] == pytest.approx([1, 1]) and same["ssim"] == pytest.approx([1, 1])
    assert sanity.similarity(m, -m)["spearman"] == pytest.approx([-1, -1])
    assert sanity.similarity(m, 3 * m**2)["spearman"] == pytest.approx([1, 1])  # ranks only
    flat = sanity.similarity(m, torch.zeros_like(m))
    assert flat["spearman"] == [0.0, 0.0] and max(flat["ssim"]) < 0.1  # a constant map has no ranking
    assert sanity.similarity(0 * m, 0 * m)["spearman"] == [1.0, 1.0]  # ... and is unchanged


def test_layers_are_the_used_parameterised_blocks_in_forward_order():
    from dlapps.models import build_digits_net

    net = build_digits_net("mnist", 3, 28, 10)  # its domain discriminator takes no part in forward
    model = ExplainModel.wrap(net, [str(i) for i in range(10)], 28)
    layers = sanity.randomisation_layers(model)
    assert layers == ["features.0", "features.3", "classifier.0", "classifier.2", "classifier.4"]
    assert sanity.randomisation_layers(model, max_layers=2) == ["features", "classifier"]


def test_cascading_randomisation_flags_the_edge_map_and_not_the_gradient_maps(digits):
    model, x, target = digits
    before = [p.clone() for p in model.net.parameters()]
    rng = torch.get_rng_state()
    res = sanity.cascading_randomisation(model, x, target, explainers("vanilla", "gradcam", "ig", "edge"))
    assert torch.equal(torch.get_rng_state(), rng)  # seeded re-initialisation, global state untouched
    assert all(torch.equal(a, b) for a, b in zip(before, model.net.parameters(), strict=True))
    assert res.steps == ["trained", "+6", "+2", "+0"]  # top (the logits) first
    assert res.info["layers"] == ["0", "2", "6"]
    for m in ("vanilla", "gradcam", "ig", "edge"):
        assert res.mean("spearman", m)[0] == pytest.approx(1) and res.mean("ssim", m)[0] == pytest.approx(1)
    assert res.mean("spearman", "edge") == pytest.approx([1, 1, 1, 1])
    assert res.flagged() == {"vanilla": False, "gradcam": False, "ig": True, "edge": True}
    for m in ("vanilla", "gradcam"):
        assert res.mean("spearman", m)[-1] < 0.5, m
    # IG with a black baseline is (x − 0) ⊙ (mean gradient): zero wherever the digit's background is
    # black, for any weights; those tied zeros alone keep its ranks similar (Adebayo et al.'s caveat on
    # input structure), though its structure is gone (SSIM)
    black = x.amax(1) == 0
    assert black.float().mean() > 0.3
    assert all((m[black] == 0).all() for m in res.maps["ig"])
    assert res.mean("ssim", "ig")[-1] < 0.5
    rows = res.table()
    assert len(rows) == 4 * 4 and {"check", "step", "random", "method", "spearman", "ssim"} <= set(rows[0])
    again = sanity.cascading_randomisation(model, x, target, explainers("vanilla"))
    assert again.spearman["vanilla"] == res.spearman["vanilla"]  # deterministic


def test_data_randomisation_retrains_on_permuted_labels(digits):
    model, x, target = digits
    res = sanity.data_randomisation(model, x, target, explainers("vanilla", "edge"), epochs=3, limit=300)
    assert res.steps == ["trained", "random labels"]
    assert res.flagged() == {"vanilla": False, "edge": True}
    assert 0 <= res.info["random_label_train_accuracy"] <= 1 and res.info["images"] == 300
    retrained, accuracy = sanity.random_label_model(model, epochs=3, limit=300)
    assert accuracy == res.info["random_label_train_accuracy"]  # seeded
    assert not retrained.net[0].weight.requires_grad and not retrained.net.training


def test_a_model_that_cannot_be_retrained_says_which_check_applies(digits):
    model, x, target = digits
    frozen = ExplainModel.wrap(model.net, model.classes, SIZE, "frozen")
    with pytest.raises(ConfigError, match="cannot be retrained.*--checks model"):
        sanity.data_randomisation(frozen, x, target, explainers("vanilla"))
