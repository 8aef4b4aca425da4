"""dlapps.explain against the reference libraries: Captum for the attributions, torchattacks for
FGSM and PGD (random start off), on a small float64 CNN, to floating-point precision."""

from __future__ import annotations

import pytest
import torch
import torchattacks
from captum.attr import IntegratedGradients, LayerAttribution, LayerGradCam, NoiseTunnel, Saliency
from torch import nn

from dlapps.explain import attacks
from dlapps.explain.models import ExplainModel
from dlapps.explain.saliency import attribute, ig_baselines, integrated_gradients

pytestmark = [pytest.mark.usefixtures("one_torch_thread"),
              pytest.mark.filterwarnings("ignore:Input Tensor 0 did not already require gradients")]
SIZE = 12
EXACT = {"rtol": 1e-6, "atol": 1e-9}  # Captum builds its α grid in float32: 1e-8 relative differences


@pytest.fixture(scope="module")
def small():
    """conv-ReLU-conv-ReLU-avgpool(2)-linear on 12x12 RGB, float64; three images and targets."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(), nn.Conv2d(6, 8, 3, padding=1), nn.ReLU(),
                        nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(32, 5)).double()
    model = ExplainModel.wrap(net, list("abcde"), SIZE, "small")
    x = torch.rand((3, 3, SIZE, SIZE), generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    return model, x, torch.tensor([0, 3, 1])


def test_vanilla_is_captum_saliency(small):
    model, x, t = small
    ref = Saliency(model.net).attribute(x, t, abs=False)
    torch.testing.assert_close(attribute(model, x, t, "vanilla"), ref, **EXACT)


@pytest.mark.parametrize("baseline", ["black", "blurred"])
def test_integrated_gradients_and_their_delta_are_captums(small, baseline):
    model, x, t = small
    res = integrated_gradients(model, x, t, steps=20, baseline=baseline, tolerance=None)
    ig = IntegratedGradients(model.net)
    ref, delta = ig.attribute(x, ig_baselines(x, baseline)[0], t, n_steps=20, method="riemann_middle",
                              return_convergence_delta=True)
    torch.testing.assert_close(res.attributions, ref, **EXACT)
    torch.testing.assert_close(res.delta, delta, **EXACT)


def test_converged_integrated_gradients_are_captums_at_the_steps_they_took(small):
    model, x, t = small
    res = integrated_gradients(model, x, t, steps=4, tolerance=0.01)
    assert res.converged.all() and (res.gap <= 0.01).all()
    assert set(res.steps.tolist()) <= {4, 12, 36, 108, 324} and len(set(res.steps.tolist())) > 1
    for i, steps in enumerate(res.steps.tolist()):
        one = x[i : i + 1]
        ref = IntegratedGradients(model.net).attribute(one, torch.zeros_like(one), t[i : i + 1],
                                                       n_steps=steps, method="riemann_middle")
        torch.testing.assert_close(res.attributions[i : i + 1], ref, **EXACT)


def test_expected_gradients_are_captums_ig_averaged_over_the_noise_baselines(small):
    model, x, t = small
    res = integrated_gradients(model, x, t, steps=8, baseline="uniform", samples=3, tolerance=None)
    bases = ig_baselines(x, "uniform", samples=3)
    ig = IntegratedGradients(model.net)
    ref = torch.stack([ig.attribute(x, b, t, n_steps=8, method="riemann_middle") for b in bases]).mean(0)
    torch.testing.assert_close(res.attributions, ref, **EXACT)


def test_gradcam_is_captums_layer_gradcam_upsampled(small):
    model, x, t = small
    cam = LayerGradCam(model.net, model.cam_layer).attribute(x, t, relu_attributions=True)
    ref = LayerAttribution.interpolate(cam, (SIZE, SIZE), "bilinear")
    torch.testing.assert_close(attribute(model, x, t, "gradcam"), ref, **EXACT)


@pytest.mark.parametrize(("method", "kind", "reference", "options"), [
    ("vanilla", "smoothgrad", lambda m: Saliency(m.net), {"abs": False}),
    ("vanilla", "vargrad", lambda m: Saliency(m.net), {"abs": False}),
    ("ig", "smoothgrad", lambda m: IntegratedGradients(m.net), {"n_steps": 6, "method": "riemann_middle"}),
    ("ig", "vargrad", lambda m: IntegratedGradients(m.net), {"n_steps": 6, "method": "riemann_middle"}),
    ("gradcam", "smoothgrad", lambda m: LayerGradCam(m.net, m.cam_layer), {"relu_attributions": True}),
])
def test_every_method_smoothed_is_captums_noise_tunnel(small, method, kind, reference, options):
    model, x, t = small
    torch.manual_seed(5)  # Captum draws from the global generator, image-major per batch of copies
    ref = NoiseTunnel(reference(model)).attribute(x, nt_type=kind, nt_samples=8, nt_samples_batch_size=4,
                                                  stdevs=0.15, target=t, **options)
    if method == "gradcam":
        ref = LayerAttribution.interpolate(ref, (SIZE, SIZE), "bilinear")
    got = attribute(model, x, t, f"{method}+{kind}", n=8, sigma=0.15, seed=5, chunk=12, steps=6,
                    tolerance=None)
    torch.testing.assert_close(got, ref, **EXACT)
    assert got.abs().max() > 0


def test_fgsm_is_torchattacks(small):
    model, x, _ = small
    labels = model.predict(x)[0]
    for eps in (1 / 255, 8 / 255):
        ref = torchattacks.FGSM(model.net, eps=eps)(x, labels)
        torch.testing.assert_close(attacks.fgsm(model, x, eps).x_adv, ref, **EXACT)


@pytest.mark.parametrize(("norm", "eps", "targeted"), [("linf", 8 / 255, False), ("linf", 16 / 255, True),
                                                      ("l2", 0.5, False)])
def test_pgd_without_random_start_is_torchattacks_up_to_its_early_stop(small, norm, eps, targeted):
    """dlapps stops an image at its first successful step; torchattacks run for that many steps
    lands on the same point (and on the full budget's point for an image that never succeeds)."""
    model, x, _ = small
    labels = model.predict(x)[0]
    goal = (labels + 1) % 5 if targeted else None
    res = attacks.pgd(model, x, eps, goal, norm=norm, steps=10)
    assert res.iterations.min() < 10 or targeted  # one image stops early: the stop is checked
    kind = torchattacks.PGD if norm == "linf" else torchattacks.PGDL2
    for i, k in enumerate(res.iterations.tolist()):
        ta = kind(model.net, eps=eps, alpha=2.5 * eps / 10, steps=k, random_start=False)
        if targeted:
            ta.set_mode_targeted_by_label(quiet=True)
        ref = ta(x[i : i + 1], (goal if targeted else labels)[i : i + 1])
        torch.testing.assert_close(res.x_adv[i : i + 1], ref, **EXACT)
