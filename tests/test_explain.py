"""dlapps.explain on tiny models: gradients checked by hand, attacks' contracts, hooks, class names."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from dlapps.errors import DataError
from dlapps.explain import attacks, saliency
from dlapps.explain.classvis import ClassVisSettings, ascent_step, class_visualization, objective
from dlapps.explain.inputs import AmbiguousClassError, UnknownClassError, load_images, resolve_class
from dlapps.explain.metrics import rise_curves
from dlapps.explain.models import ExplainModel, fit_images

SIZE = 12


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def tiny_cnn(seed: int = 0, classes: int = 5) -> ExplainModel:
    """conv-ReLU(inplace)-conv-ReLU-avgpool-linear on 12x12 RGB; float64 for exact gradient checks."""
    torch.manual_seed(seed)
    net = nn.Sequential(
        nn.Conv2d(3, 6, 3, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(6, 8, 3, padding=1),
        nn.ReLU(inplace=True),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8, classes),
    )
    return ExplainModel.wrap(net.double(), [f"c{i}" for i in range(classes)], SIZE, "tiny")


@pytest.fixture(scope="module")
def digits_cnn(sklearn_digits_cnn) -> ExplainModel:
    """A tiny CNN trained (~1 s) on scikit-learn's real 8x8 digits, upscaled to 12x12 RGB.

    Random weights leave a net whose logits barely depend on the input; attacks need a real one.
    """
    net, x, y = sklearn_digits_cnn(SIZE, epochs=10)
    with torch.no_grad():
        accuracy = (net(x).argmax(1) == y).float().mean()
    assert accuracy > 0.85, accuracy
    model = ExplainModel.wrap(net.double(), [str(i) for i in range(10)], SIZE, "digits")
    model.test_images = x[::180][:6].double()  # one of each of six digits
    return model


def linear_cnn(classes: int = 3) -> ExplainModel:
    """A convolution as large as the image: S_k(x) = <W_k, x> + b_k, so ∂S_k/∂x = W_k exactly."""
    torch.manual_seed(1)
    net = nn.Sequential(nn.Conv2d(3, classes, SIZE), nn.Flatten()).double()
    return ExplainModel.wrap(net, [f"c{i}" for i in range(classes)], SIZE, "linear")


def images(n: int = 3, seed: int = 0) -> torch.Tensor:
    return torch.rand((n, 3, SIZE, SIZE), generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


# --- saliency ----------------------------------------------------------------------------------


def test_vanilla_saliency_is_the_hand_computed_gradient():
    model = linear_cnn()
    x, target = images(), torch.tensor([0, 2, 1])
    w = model.net[0].weight.detach()  # (K, 3, S, S)
    torch.testing.assert_close(saliency.attribute(model, x, target, "vanilla"), w[target])  # input-shaped
    expected = w[target].abs().amax(1)  # max over channels of |W_y|
    expected = expected / expected.flatten(1).amax(1)[:, None, None]  # normalised: peak 1
    torch.testing.assert_close(saliency.saliency(model, x, target, "vanilla"), expected)


def test_vanilla_saliency_matches_finite_differences_on_a_nonlinear_net():
    model = tiny_cnn()
    x, target = images(1), torch.tensor([3])
    grad = saliency.score_gradient(model.net, x, target)
    h = 1e-6
    for c, i, j in [(0, 2, 3), (1, 7, 7), (2, 11, 0)]:
        e = torch.zeros_like(x)
        e[0, c, i, j] = h
        numeric = (model.net(x + e)[0, 3] - model.net(x - e)[0, 3]) / (2 * h)
        assert float(grad[0, c, i, j]) == pytest.approx(float(numeric), rel=1e-5, abs=1e-9)
    assert torch.equal(saliency.attribute(model, x, target, "vanilla"), grad)


def test_reductions_and_normalisation_by_hand():
    a = torch.tensor([[[[1.0, -4.0]], [[-3.0, 2.0]]]])  # (1, C=2, 1, 2)
    by_hand = {"max-abs": [3.0, 4.0], "sum": [-2.0, -2.0], "sum-abs": [2.0, 2.0], "abs-sum": [4.0, 6.0]}
    for name, expected in by_hand.items():
        assert saliency.reduce(a, name).flatten().tolist() == expected, name
    normalised = saliency.normalise(torch.tensor([[[1.0, -4.0]], [[0.0, 0.0]]]))
    assert normalised.tolist() == [[[0.25, -1.0]], [[0, 0]]]
    from dlapps.errors import UnknownNameError

    with pytest.raises(UnknownNameError, match="Did you mean 'max-abs'"):
        saliency.reduce(a, "maxabs")


def test_integrated_gradients_converge_by_tripling_the_steps_until_complete():
    model = tiny_cnn()
    x, target = images(2), torch.tensor([1, 4])
    with torch.no_grad():
        diff = (model.net(x) - model.net(torch.zeros_like(x))).gather(1, target[:, None])[:, 0]
    res = saliency.integrated_gradients(model, x, target, steps=2, tolerance=0.002)
    assert res.converged.all() and (res.steps > 2).all() and set(res.steps.tolist()) <= {6, 18, 54, 162, 486}
    torch.testing.assert_close(res.attributions.sum((1, 2, 3)), diff, rtol=0.002, atol=0)
    torch.testing.assert_close(res.delta, res.attributions.sum((1, 2, 3)) - diff)
    torch.testing.assert_close(res.gap, res.delta.abs() / diff.abs())
    fixed = saliency.integrated_gradients(model, x, target, steps=2, tolerance=None)  # exactly 2 steps
    assert fixed.steps.tolist() == [2, 2] and fixed.converged.all() and (fixed.gap > res.gap).all()
    capped = saliency.integrated_gradients(model, x, target, steps=2, tolerance=1e-9, max_steps=20)
    assert capped.steps.tolist() == [18, 18] and not capped.converged.any()  # 54 would pass max_steps
    assert "did NOT converge on 2 of 2 images: stopped at 18 steps" in saliency.steps_note(capped)
    assert "converged on all 2 images" in saliency.steps_note(res)
    timed = saliency.integrated_gradients(model, x, target, steps=2, tolerance=1e-9, max_seconds=0.0)
    assert timed.steps.tolist() == [2, 2]  # the next refinement would pass the time cap


def test_integrated_gradients_baselines_and_bad_settings():
    from dlapps.errors import ConfigError, UnknownNameError

    model = tiny_cnn()
    x, target = images(2), torch.tensor([1, 4])
    blurred = saliency.ig_baselines(x, "blurred")
    assert blurred.shape == (1, *x.shape) and blurred.std() < x.std()
    noise = saliency.ig_baselines(x, "uniform", samples=3)
    assert noise.shape == (3, *x.shape) and noise.min() >= 0 and noise.max() <= 1
    res = saliency.integrated_gradients(model, x, target, steps=4, baseline="uniform", samples=3,
                                        tolerance=0.01)
    with torch.no_grad():  # complete against the mean score of the noise baselines
        base = torch.stack([model.net(b).gather(1, target[:, None])[:, 0] for b in noise]).mean(0)
        diff = model.net(x).gather(1, target[:, None])[:, 0] - base
    assert res.converged.all()
    torch.testing.assert_close(res.attributions.sum((1, 2, 3)), diff, rtol=0.01, atol=0)
    with pytest.raises(UnknownNameError, match="Did you mean 'blurred'"):
        saliency.integrated_gradients(model, x, target, baseline="blured")
    with pytest.raises(ConfigError, match="at least 1 step, got 0"):
        saliency.integrated_gradients(model, x, target, steps=0)


def test_noise_tunnel_without_noise_is_the_method_and_its_variance_zero():
    model = tiny_cnn()
    x, target = images(2), torch.tensor([1, 4])
    for method in ("vanilla", "gradcam", "ig"):
        plain = saliency.attribute(model, x, target, method, steps=8, tolerance=None)
        smooth = saliency.attribute(model, x, target, f"{method}+smoothgrad", n=3, sigma=0.0, steps=8,
                                    tolerance=None)
        torch.testing.assert_close(smooth, plain)
        var = saliency.attribute(model, x, target, f"{method}+vargrad", n=3, sigma=0.0, steps=8,
                                 tolerance=None)
        assert var.abs().max() < 1e-12 and var.shape == plain.shape
    noisy = saliency.attribute(model, x, target, "vanilla+vargrad", n=4, sigma=0.2)
    assert (noisy >= 0).all() and noisy.max() > 0
    torch.testing.assert_close(saliency.attribute(model, x, target, "smoothgrad", n=4, seed=3),
                               saliency.attribute(model, x, target, "vanilla+smoothgrad", n=4, seed=3))


def test_every_method_gives_one_map_per_image_on_one_scale():
    model = tiny_cnn()
    x = images(2)
    for name in [*saliency.METHODS, "ig+smoothgrad", "gradcam+vargrad"]:
        a = saliency.attribute(model, x, model.predict(x)[0], name, n=2, steps=4)
        assert a.shape in {(2, 3, SIZE, SIZE), (2, 1, SIZE, SIZE)}, name
        m = saliency.saliency(model, x, method=name, n=2, steps=4)
        assert m.shape == (2, SIZE, SIZE) and (m >= 0).all(), name
        torch.testing.assert_close(m.flatten(1).amax(1), torch.ones(2, dtype=m.dtype))


def test_the_edge_control_ignores_the_model():
    x = images(1)
    x[0, :, :, 6:] = 1.0  # a vertical edge between columns 5 and 6
    x[0, :, :, :6] = 0.0
    models = (tiny_cnn(0), tiny_cnn(1), linear_cnn())
    maps = [saliency.saliency(m, x, torch.tensor([0]), "edge") for m in models]
    assert torch.equal(maps[0], maps[1]) and torch.equal(maps[0], maps[2])
    assert maps[0][0, :, 5:7].min() == 1 and maps[0][0, :, :4].max() == 0


def test_unknown_saliency_method_or_attack_names_the_closest():
    from dlapps.errors import UnknownNameError

    model, x = tiny_cnn(), images(1)
    with pytest.raises(UnknownNameError, match="Did you mean 'smoothgrad'"):
        saliency.saliency(model, x, method="smoothgrd")
    with pytest.raises(UnknownNameError, match="Did you mean 'pgd-l2'"):
        attacks.run_attack(model, x, "pgd_l2")
    with pytest.raises(UnknownNameError, match="unknown saliency method 'gradcm'.*<method>\\+vargrad"):
        saliency.saliency(model, x, method="gradcm+vargrad")
    assert saliency.METHODS.names() == ["vanilla", "smoothgrad", "ig", "gradcam", "gradcampp", "edge"]
    assert [attacks.ATTACKS[m].norm for m in attacks.ATTACKS] == ["l2", "linf", "linf", "l2", "l2"]


def test_gradcam_hooks_are_removed_after_use_and_on_exception():
    model = tiny_cnn()
    layer = model.cam_layer
    assert isinstance(layer, nn.ReLU)  # the last spatial map: after the in-place ReLU
    cam = saliency.GradCAM(model)
    cam(images(1), torch.tensor([0]))
    assert not layer._forward_hooks
    with pytest.raises(RuntimeError):  # class 99 does not exist: gather fails inside the hooked pass
        cam(images(1), torch.tensor([99]))
    assert not layer._forward_hooks


def test_gradcam_equals_its_definition():
    model = tiny_cnn()
    x, target = images(1), torch.tensor([2])
    feats = model.net[:4](x.requires_grad_(True))  # conv-relu-conv-relu: A (1,8,12,12)
    feats.retain_grad()
    model.net[4:](feats)[0, 2].backward()
    expected = torch.relu((feats.grad.mean((2, 3))[:, :, None, None] * feats).sum(1, keepdim=True))
    torch.testing.assert_close(saliency.GradCAM(model)(x, target), expected.detach())


def test_a_new_cam_overrides_one_function():
    class Uniform(saliency.CAM):
        def channel_weights(self, activations, grads):
            return torch.ones(activations.shape[:2], dtype=activations.dtype)

    model = tiny_cnn()
    m = Uniform(model)(images(1), torch.tensor([0]))
    feats = model.net[:4](images(1)).sum(1, keepdim=True).detach()
    torch.testing.assert_close(m, feats)


def test_rise_deletion_ranks_a_faithful_map_below_a_reversed_one():
    model = linear_cnn(2)
    x, target = images(2), torch.tensor([0, 0])
    w = model.net[0].weight.detach()[0]
    contribution = (w * x).sum(1)  # each pixel's share of the class-0 score
    good, bad = contribution, -contribution
    scores_good = rise_curves(model, x, good, target, steps=12, patch=1)
    scores_bad = rise_curves(model, x, bad, target, steps=12, patch=1)
    assert (scores_good["deletion_auc"] < scores_bad["deletion_auc"]).all()
    assert (scores_good["insertion_auc"] > scores_bad["insertion_auc"]).all()
    assert scores_good["deletion"].shape == (2, 13)


def test_rise_deletes_to_zeros_of_the_normalised_input():
    from dlapps.errors import UnknownNameError
    from dlapps.explain.metrics import deletion_substrate
    from dlapps.models.digits import Normalize

    torch.manual_seed(1)
    mean = [0.2, 0.5, 0.7]
    net = nn.Sequential(Normalize(mean, [0.5] * 3), nn.Conv2d(3, 2, SIZE), nn.Flatten()).double()
    model = ExplainModel.wrap(net, ["a", "b"], SIZE, "normalised")
    assert deletion_substrate(model).flatten().tolist() == pytest.approx(mean)
    assert deletion_substrate(model, "black").abs().sum() == 0
    assert deletion_substrate(linear_cnn(), "mean").abs().sum() == 0  # no Normalize: black
    with pytest.raises(UnknownNameError, match="grey"):
        deletion_substrate(model, "grey")
    x, target = images(1), torch.tensor([0])
    flat = torch.tensor(mean, dtype=torch.float64).view(1, 3, 1, 1).expand(1, 3, SIZE, SIZE)
    p_flat = model.net(flat).softmax(1)[0, 0]  # the normalised input is all zeros: p = softmax(bias)
    curves = rise_curves(model, x, torch.rand(1, SIZE, SIZE), target, steps=4)
    assert curves["deletion"][0, -1] == pytest.approx(float(p_flat))
    black = rise_curves(model, x, torch.rand(1, SIZE, SIZE), target, steps=4, substrate="black")
    p_black = model.net(torch.zeros_like(x)).softmax(1)[0, 0]
    assert black["deletion"][0, -1] == pytest.approx(float(p_black))
    assert abs(float(p_black) - float(p_flat)) > 1e-3  # the two substrates differ for this model


def test_faithfulness_correlation_is_one_for_the_exact_contributions_of_a_linear_model():
    from dlapps.explain.metrics import faithfulness_correlation

    model = linear_cnn(2)
    x, target = images(2), torch.tensor([0, 1])
    w = model.net[0].weight.detach()
    contribution = (w[target] * x).sum(1)  # deleting S to black drops S_y by exactly Σ_S contribution
    rho = faithfulness_correlation(model, x, contribution, target, runs=30, subset=20)
    torch.testing.assert_close(rho, torch.ones(2, dtype=rho.dtype))
    reverse = faithfulness_correlation(model, x, -contribution, target, runs=30, subset=20)
    torch.testing.assert_close(reverse, -rho)
    noise = faithfulness_correlation(model, x, torch.rand(2, SIZE, SIZE), target, runs=60, subset=20)
    assert noise.abs().max() < 0.5
    with pytest.raises(Exception, match="subset < 144 pixels"):
        faithfulness_correlation(model, x, contribution, target, subset=224)


def test_max_sensitivity_by_hand():
    from dlapps.explain.metrics import max_sensitivity

    model, x, target = linear_cnn(), images(2), torch.tensor([0, 1])
    constant = max_sensitivity(x, target, lambda z, t: saliency.saliency(model, z, t, "vanilla"), samples=3)
    assert constant.abs().max() < 1e-12  # a linear model's gradient does not move with the input
    got = max_sensitivity(x, target, lambda z, t: z.mean(1), samples=3, radius=0.1, seed=4)
    g = torch.Generator().manual_seed(4)
    deltas = [(torch.rand(x.shape, generator=g, dtype=x.dtype) * 2 - 1) * 0.1 for _ in range(3)]
    moved = torch.stack([d.mean(1).flatten(1).norm(dim=1) for d in deltas])
    by_hand = moved.amax(0) / x.flatten(1).norm(dim=1)
    torch.testing.assert_close(got, by_hand)


def test_rise_tiles_move_together():
    from dlapps.explain.metrics import perturbed, tile_ranks

    m = torch.arange(36.0).view(6, 6)  # most salient: bottom-right
    rank, n = tile_ranks(m, 4)  # tiles of 4 with ceil: 2x2 tiles (the last ones 2 px wide)
    assert n == 4 and rank[5, 5] == 0 and rank[0, 0] == 3 and rank[4, 4] == rank[5, 5]
    batch = perturbed(torch.ones(1, 6, 6), torch.zeros(1, 6, 6), rank, n, steps=4)
    assert batch.shape == (5, 1, 6, 6)
    assert (
        batch[0].sum() == 36
        and batch[1][0, 4:, 4:].sum() == 0
        and batch[1].sum() == 32
        and batch[4].sum() == 0
    )


# --- attacks -----------------------------------------------------------------------------------


def test_fgsm_perturbation_is_exactly_eps_before_clipping_and_the_result_stays_in_range():
    model = tiny_cnn()
    x = images(4)
    x[0] = 0.0  # at the bounds, so clipping must act
    x[1] = 1.0
    eps = 8 / 255
    labels = model.predict(x)[0]
    delta = attacks.fgsm_perturbation(model, x, labels, eps)
    nonzero = delta[delta != 0].abs()
    assert nonzero.numel() > 0.9 * delta.numel()
    assert torch.all(nonzero == eps) and float(delta.abs().max()) == eps
    res = attacks.fgsm(model, x, eps)
    assert float(res.x_adv.min()) >= 0.0 and float(res.x_adv.max()) <= 1.0
    torch.testing.assert_close(res.x_adv, (x + delta).clamp(0, 1))
    assert (res.linf <= eps + 1e-12).all()


def test_naive_attack_stops_at_the_first_iteration_where_argmax_is_the_target(digits_cnn):
    model = digits_cnn
    x = model.test_images[:3]
    pred = model.predict(x)[0]
    target = (pred + 1) % 10
    res = attacks.naive(model, x, target, lr=0.2, max_iter=200)
    assert res.success.all()
    assert (res.pred == target).all()
    for i in range(3):
        k = int(res.iterations[i])
        assert k >= 1
        before = attacks.naive(model, x[i : i + 1], target[i : i + 1], lr=0.2, max_iter=k - 1)
        assert not before.success[0] and before.pred[0] != target[i]  # one step fewer: not there yet
        torch.testing.assert_close(
            attacks.naive(model, x[i : i + 1], target[i : i + 1], lr=0.2, max_iter=k).x_adv,
            res.x_adv[i : i + 1],
        )


def test_target_equal_to_the_prediction_is_said_not_looped():
    model = tiny_cnn()
    x = images(2)
    pred = model.predict(x)[0]
    for method in ("naive", "pgd", "deepfool", "fgsm"):
        res = attacks.run_attack(model, x, method, pred)
        assert res.success.all() and (res.iterations == 0).all(), method
        assert res.notes == [attacks.ALREADY] * 2
        assert torch.equal(res.x_adv, x) and (res.l2 == 0).all()


def test_an_attack_that_fails_within_its_budget_is_reported_with_its_numbers():
    model = tiny_cnn()
    x = images(2)
    target = (model.predict(x)[0] + 2) % 5
    res = attacks.naive(model, x, target, lr=1e-4, max_iter=3)
    assert not res.success.any()
    assert (res.iterations == 3).all()
    rows = res.rows(["a", "b"], model.classes)
    assert rows[0]["success"] is False and rows[0]["iterations"] == 3
    assert 0 < rows[0]["l2"] <= 3e-4 + 1e-9 and rows[0]["linf"] > 0 and rows[0]["seconds"] >= 0
    assert "failed within 3 iterations" in rows[0]["note"]


def test_pgd_stays_inside_its_ball():
    model = tiny_cnn()
    x = images(3)
    for norm, eps in (("linf", 2 / 255), ("l2", 0.05)):
        res = attacks.pgd(model, x, eps, norm=norm, steps=5)
        size = res.linf if norm == "linf" else res.l2
        assert (size <= eps + 1e-9).all() and (res.x_adv >= 0).all() and (res.x_adv <= 1).all()


def test_deepfool_finds_the_analytic_minimal_perturbation_of_a_linear_classifier():
    model = linear_cnn(2)
    x = 0.25 + 0.5 * images(3)  # away from the bounds, so clipping does not act
    res = attacks.deepfool(model, x, overshoot=0.02)
    w = model.net[0].weight.detach()
    with torch.no_grad():
        logits = model.net(x)
    distance = (logits[:, 0] - logits[:, 1]).abs() / (w[0] - w[1]).norm()
    assert res.success.all() and (res.iterations == 1).all()
    torch.testing.assert_close(res.l2, 1.02 * (distance + 1e-4 / (w[0] - w[1]).norm()), rtol=1e-6, atol=1e-9)


def test_deepfool_needs_less_l2_than_the_smallest_successful_fgsm(digits_cnn):
    model = digits_cnn
    x = model.test_images[:4]
    df = attacks.deepfool(model, x, max_iter=50)
    assert df.success.all()
    smallest = torch.full((4,), float("inf"), dtype=torch.float64)
    for eps in [k / 255 for k in (1, 2, 4, 8, 16, 32, 64)]:
        fg = attacks.fgsm(model, x, eps)
        smallest = torch.where(fg.success & smallest.isinf(), fg.l2, smallest)
    ok = smallest.isfinite()
    assert ok.any() and (df.l2[ok] < smallest[ok]).all()


def test_success_curve_is_monotone_for_a_minimal_attack_and_counts_per_eps(digits_cnn):
    model = digits_cnn
    x = model.test_images[:4]
    curve = attacks.success_curve(model, x, "deepfool", [0.01, 0.1, 1.0, 10.0])
    rates = [p["success_rate"] for p in curve]
    assert rates == sorted(rates) and rates[-1] == 1.0
    curve = attacks.success_curve(model, x, "fgsm", [0.0001, 0.5])
    assert curve[0]["success_rate"] <= curve[1]["success_rate"]


# --- class visualisation -----------------------------------------------------------------------


def test_classvis_step_increases_the_target_score():
    model = tiny_cnn()
    x = images(1)
    for target in range(5):
        before = float(model.net(x)[0, target])
        after_x, _ = ascent_step(model, x, target, lr=0.05, l2=0.0)
        assert float(model.net(after_x)[0, target]) > before
    value = lambda z: float(objective(model, z, 1, 1e-3)[0])  # noqa: E731
    assert value(ascent_step(model, x, 1, lr=0.05, l2=1e-3)[0]) > value(x)


def test_classvis_reaches_the_target_and_keeps_pixels_in_range(digits_cnn):
    model = digits_cnn
    res = class_visualization(
        model, 2, ClassVisSettings(iters=40, lr=0.5, jitter=2, blur_every=10), snapshots=(0, 20)
    )
    assert res.probabilities[-1] > res.probabilities[0]
    assert res.probabilities[-1] > 0.5
    assert sorted(res.snapshots) == [0, 20, 40]
    assert float(res.image.min()) >= 0 and float(res.image.max()) <= 1


# --- names and images --------------------------------------------------------------------------


def test_class_names_indices_fuzzy_and_ambiguous():
    from dlapps.models.pretrained import imagenet_classes

    classes = imagenet_classes()
    assert resolve_class("quail", classes) == 85
    assert resolve_class("Yorkshire terrier", classes) == classes.index("Yorkshire terrier")
    assert resolve_class("yorkshire", classes) == classes.index("Yorkshire terrier")
    assert resolve_class("76", classes) == 76
    with pytest.raises(UnknownClassError, match="Closest:.*'quail' \\(85\\)"):
        resolve_class("quial", classes)
    with pytest.raises(AmbiguousClassError, match="'Border terrier'.*'Norfolk terrier'") as err:
        resolve_class("terrier", classes)
    assert len(err.value.close) > 10
    assert resolve_class("crane", classes) == 517  # exact beats 'crane bird' (134)
    assert resolve_class("crane bird", classes) == 134
    with pytest.raises(Exception, match="0-999"):
        resolve_class("1000", classes)


def test_images_16_bit_rgba_grey_tiny_and_unreadable(tmp_path):
    from PIL import Image

    good = tmp_path / "good"
    good.mkdir()
    ramp = (np.arange(64 * 48, dtype=np.uint16).reshape(48, 64) * 20).astype(np.uint16)
    Image.fromarray(ramp).save(good / "deep.png")  # 16-bit grey
    rgba = np.zeros((40, 30, 4), np.uint8)
    rgba[..., 0], rgba[..., 3] = 200, 10
    Image.fromarray(rgba, "RGBA").save(good / "alpha.png")
    loaded = load_images([good / "deep.png", good / "alpha.png", "camera"])
    x = fit_images([im.pixels for im in loaded], 16)
    assert x.shape == (3, 3, 16, 16) and x.dtype == torch.float32
    assert float(x[0].max()) > 0.9 and torch.allclose(x[0][0], x[0][2])  # 16-bit scaled, grey replicated
    assert float(x[1][0].mean()) == pytest.approx(200 / 255, abs=1e-3)  # alpha dropped, colour kept
    Image.fromarray(np.zeros((1, 1, 3), np.uint8)).save(tmp_path / "dot.png")
    with pytest.raises(DataError, match="dot.png is 1x1"):
        load_images([tmp_path / "dot.png"])
    (tmp_path / "junk.jpg").write_bytes(b"not an image")
    with pytest.raises(DataError, match="junk.jpg"):
        load_images([tmp_path / "junk.jpg"])
    with pytest.raises(Exception, match="chelsea"):
        load_images(["chelsae"])
    assert [im.name for im in load_images([good])] == ["alpha.png", "deep.png"]
    with pytest.raises(DataError, match="junk.jpg"):  # a folder with an unreadable file names it
        load_images([tmp_path])


def test_activation_maps_of_the_first_layer():
    from dlapps.explain.activations import activation_maps

    model = tiny_cnn()
    a = activation_maps(model, images(2), "first", count=4)
    with torch.no_grad():
        expected = model.net[0](images(2))[:, :4]
    torch.testing.assert_close(a, expected)
    assert not model.first_conv._forward_hooks
    with pytest.raises(Exception, match="unknown layer"):
        activation_maps(model, images(1), "nope")
