"""VADA, DIRT-T and MCC: their losses against hand computations, and the methods' behaviour."""

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from dlapps.adapt.losses import class_confusion, conditional_entropy, vat_direction, vat_loss
from dlapps.adapt.methods import get_method
from dlapps.adapt.methods.dirt_t import DIRTT, deployed
from dlapps.engine import seed_everything
from dlapps.errors import ConfigError
from dlapps.models import build_digits_net


def _cfg(**options):
    return SimpleNamespace(lambda_schedule="constant", gamma=10.0, lambda_max=1.0, method_options=options)


def _net(seed=0):
    seed_everything(seed)
    return build_digits_net("mnist", 3, 28, 10, [0.5] * 3)


def _batch(n=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(n, 3, 28, 28, generator=g), torch.randint(0, 10, (n,), generator=g),
            torch.rand(n, 3, 28, 28, generator=g) * 0.5, None)


def _loss(method, batch, progress, seed=1):
    """The method's output on ``batch`` with VAT's random start fixed by ``seed``."""
    seed_everything(seed)
    return method(*batch, progress)


# --- losses -------------------------------------------------------------------------------------

def test_conditional_entropy_by_hand():
    probs = torch.tensor([[0.5, 0.25, 0.25], [1 / 3, 1 / 3, 1 / 3]])
    logits = probs.log() + torch.tensor([[2.0], [-7.0]])  # a shift per row changes nothing
    expected = (1.5 * math.log(2) + math.log(3)) / 2  # H = ½ln2 + 2·¼ln4, and ln3
    assert float(conditional_entropy(logits)) == pytest.approx(expected, rel=1e-6)
    confident = torch.tensor([[500.0, -500, 0], [0, 0, 900]])
    assert float(conditional_entropy(confident)) == pytest.approx(0, abs=1e-6)
    assert float(conditional_entropy(torch.zeros(4, 7))) == pytest.approx(math.log(7), rel=1e-6)


def test_vat_direction_is_one_power_iteration_of_the_kl_hessian():
    """For logits = flat(z) W the Hessian of KL(p ‖ softmax(flat(z + r) W)) at r = 0 is
    H = W (diag p − p pᵀ) Wᵀ, and d ∝ H r0 for the random start r0 (to O(ξ))."""
    g = torch.Generator().manual_seed(3)
    z, w = torch.randn(5, 2, 3, generator=g), torch.randn(6, 4, generator=g)
    fn = lambda v: v.flatten(1) @ w  # noqa: E731
    logits = fn(z)
    d = vat_direction(fn, z, logits, xi=1e-3, generator=torch.Generator().manual_seed(7))
    assert d.shape == z.shape
    assert torch.allclose(d.flatten(1).norm(dim=1), torch.ones(5))
    r0 = torch.randn(z.shape, generator=torch.Generator().manual_seed(7)).flatten(1)
    p = logits.softmax(1)
    for i in range(5):
        hessian = w @ (torch.diag(p[i]) - torch.outer(p[i], p[i])) @ w.T
        expected = hessian @ r0[i]
        cos = torch.dot(d[i].flatten(), expected) / expected.norm()
        assert float(cos) > 0.999
    # the loss is the KL at z + ε d (per row, and their mean)
    rows = vat_loss(fn, z, logits, 2.0, 1e-3, torch.Generator().manual_seed(7), reduction="none")
    q = fn(z + 2.0 * d).log_softmax(1)
    assert torch.allclose(rows, (p * (p.log() - q)).sum(1), atol=1e-6)
    mean = vat_loss(fn, z, logits, 2.0, 1e-3, torch.Generator().manual_seed(7))
    assert float(mean) == pytest.approx(float(rows.mean()), rel=1e-6)
    # the most sensitive direction beats a random one of the same length
    random = (r0 / r0.norm(dim=1, keepdim=True)).view_as(z)
    assert float(mean) > float((p * (p.log() - fn(z + 2.0 * random).log_softmax(1))).sum(1).mean())


def test_class_confusion_by_hand():
    logits, t = np.array([[2.0, 0.0], [0.0, 1.0], [0.5, 0.5]]), 2.0
    e = np.exp(logits / t)
    p = e / e.sum(1, keepdims=True)
    h = -(p * np.log(p)).sum(1)
    w = 3 * (1 + np.exp(-h)) / (1 + np.exp(-h)).sum()
    c = np.array([[sum(w[i] * p[i, j] * p[i, k] for i in range(3)) for k in range(2)] for j in range(2)])
    expected = (c[0, 1] / c[0].sum() + c[1, 0] / c[1].sum()) / 2
    value = class_confusion(torch.tensor(logits, dtype=torch.float32), t)
    assert float(value) == pytest.approx(expected, rel=1e-5)
    # confident predictions of different classes: a diagonal confusion, no loss; uniform: (K − 1)/K
    assert float(class_confusion(torch.eye(3) * 60, 1.0)) == pytest.approx(0, abs=1e-6)
    assert float(class_confusion(torch.zeros(5, 4), 2.5)) == pytest.approx(0.75, rel=1e-6)


# --- methods ------------------------------------------------------------------------------------

STAGE_KEYS = {
    ("vada", 0.5): {"cls_loss", "domain_loss", "cond_entropy", "vat_source", "vat_target", "train_acc",
                    "train_domain_acc", "lambda"},
    ("dirt-t", 0.3): {"cls_loss", "domain_loss", "cond_entropy", "vat_source", "vat_target", "lambda"},
    ("dirt-t", 0.7): {"teacher_kl", "cond_entropy", "vat_target"},
    ("mcc", 0.5): {"cls_loss", "confusion_loss", "train_acc"},
}


@pytest.mark.parametrize(("name", "progress"), list(STAGE_KEYS))
def test_forward_is_finite_logs_its_terms_and_trains_the_features(name, progress):
    m = get_method(name)(_net(), _cfg())
    out = m(*_batch(), progress)
    assert torch.isfinite(out["loss"]) and STAGE_KEYS[name, progress] <= set(out)
    out["loss"].backward()
    assert m.net.features[0].weight.grad.abs().sum() > 0
    touched = any(p.grad is not None and p.grad.abs().sum() > 0 for p in m.net.discriminator.parameters())
    assert touched == ("domain_loss" in out)


def test_vada_sums_its_weighted_terms_and_reverses_the_domain_gradient():
    m = get_method("vada")(_net(), _cfg(vada={"source_vat": 2.0, "target_weight": 0.5, "domain_weight": 0.3}))
    out = m(*_batch(), 0.5)
    expected = (out["cls_loss"] + out["domain_loss"] + 2.0 * out["vat_source"]
                + 0.5 * (out["cond_entropy"] + out["vat_target"]))
    assert out["loss"].item() == pytest.approx(expected.item(), rel=1e-6)
    assert out["vat_source"].item() > 0 and out["vat_target"].item() > 0
    out["domain_loss"].backward()
    nogrl = get_method("dann-nogrl")(_net(), _cfg())
    nogrl(*_batch(), 0.5)["domain_loss"].backward()
    # G_d learns L_d at weight 1; G_f gets −λ_d λ_p times its gradient (λ_p = 1 here)
    assert torch.allclose(m.net.discriminator[0].weight.grad, nogrl.net.discriminator[0].weight.grad)
    assert torch.allclose(m.net.features[0].weight.grad, -0.3 * nogrl.net.features[0].weight.grad, atol=1e-7)


def test_dirt_t_drops_the_source_at_the_switch_and_refreshes_its_teacher_by_interval():
    m = DIRTT(_net(), _cfg())
    batch, other_labels = _batch(), (_batch()[1] + 1) % 10
    relabelled = (batch[0], other_labels, *batch[2:])
    assert _loss(m, batch, 0.3)["loss"].item() != _loss(m, relabelled, 0.3)["loss"].item()
    assert int(m.teacher_interval) == -1
    out = _loss(m, batch, 0.5)  # the switch: the teacher is the network, KL 0
    assert int(m.teacher_interval) == 0 and out["teacher_kl"].item() == pytest.approx(0, abs=1e-6)
    assert out["loss"].item() == _loss(m, relabelled, 0.5)["loss"].item()  # labels play no part
    opt = torch.optim.SGD(m.parameters(), lr=0.1)
    teacher = {k: v.clone() for k, v in m.teacher.state_dict().items()}
    for progress in (0.52, 0.57):  # steps within interval 0: the teacher stays
        opt.zero_grad()
        out = _loss(m, batch, progress)
        out["loss"].backward()
        opt.step()
        assert all(torch.equal(teacher[k], v) for k, v in m.teacher.state_dict().items())
    assert out["teacher_kl"].item() > 0  # the network has moved away from it
    _loss(m, batch, 0.6)  # interval 1 begins: the teacher is the current network
    assert int(m.teacher_interval) == 1
    now = deployed(m.net).state_dict()
    assert all(torch.equal(now[k], v) for k, v in m.teacher.state_dict().items())


def test_dirt_t_guard_ends_a_collapsing_refinement_and_restores_the_teacher():
    """At a refresh, a student whose recent target predictions fall on fewer than ``guard`` (0.75)
    times the effective number of classes VADA's solution predicted is reset to the teacher and
    refines no more (only β KL to the frozen teacher is left); a student that keeps its classes
    refreshes the teacher as before; guard 0 and the paper preset never stop."""
    m = DIRTT(_net(), _cfg())
    opt = torch.optim.SGD(m.parameters(), lr=0.1)
    for progress in (0.5, 0.55):  # the teacher is taken at 0.5; the student moves away
        opt.zero_grad()
        _loss(m, _batch(), progress)["loss"].backward()
        opt.step()
    teacher = {k: v.clone() for k, v in m.teacher.state_dict().items()}
    m.mean_vada.copy_(torch.full((10,), 0.1))  # the teacher: all ten classes (exp H = 10)
    m.mean_student.copy_(torch.tensor([0.9] + [0.1 / 9] * 9))  # the student: exp H ≈ 1.6 < 7.5
    out = _loss(m, _batch(), 0.6)
    assert int(m.stopped) == 1 and out["refine_stopped"] == 1.0 and "cond_entropy" not in out
    now = deployed(m.net).state_dict()
    assert all(torch.equal(now[k], v) for k, v in teacher.items())  # the student is the teacher
    assert out["teacher_kl"].item() == pytest.approx(0, abs=1e-6)
    _loss(m, _batch(), 0.7)  # no more refreshes, however long it runs
    assert all(torch.equal(m.teacher.state_dict()[k], v) for k, v in teacher.items())

    for guard_off in (DIRTT(_net(), _cfg(**{"dirt-t": {"guard": 0}})),
                      DIRTT(_net(), SimpleNamespace(**vars(_cfg()), preset="paper"))):
        assert guard_off.guard == 0
        _loss(guard_off, _batch(), 0.5)
        guard_off.mean_vada.copy_(torch.full((10,), 0.1))
        guard_off.mean_student.copy_(torch.tensor([0.9] + [0.1 / 9] * 9))
        assert _loss(guard_off, _batch(), 0.6)["refine_stopped"] == 0.0 and int(guard_off.stopped) == 0
    kept = DIRTT(_net(), _cfg())
    _loss(kept, _batch(), 0.5)
    kept.mean_vada.copy_(torch.full((10,), 0.1))
    kept.mean_student.copy_(torch.tensor([0.16] * 5 + [0.04] * 5))  # exp H ≈ 8.6: not collapsed
    _loss(kept, _batch(), 0.6)
    assert int(kept.stopped) == 0 and int(kept.teacher_interval) == 1
    vada, student = kept.mean_vada.clone(), kept.mean_student.clone()
    _loss(kept, _batch(), 0.65)  # VADA's reference stays; the student's average moves
    assert torch.equal(kept.mean_vada, vada) and not torch.equal(kept.mean_student, student)


def test_dirt_t_resumes_with_its_teacher():
    m = DIRTT(_net(), _cfg())
    opt = torch.optim.SGD(m.parameters(), lr=0.1)
    for progress in (0.5, 0.52):
        opt.zero_grad()
        _loss(m, _batch(), progress)["loss"].backward()
        opt.step()
    state = m.state_dict()
    assert "teacher_interval" in state and any(k.startswith("teacher.") for k in state)
    resumed = DIRTT(_net(seed=5), _cfg())
    resumed.load_state_dict(state)
    assert torch.equal(_loss(m, _batch(), 0.55)["loss"], _loss(resumed, _batch(), 0.55)["loss"])
    # without the saved teacher the loss differs (the network's own copy would be the teacher)
    fresh = DIRTT(_net(seed=5), _cfg())
    fresh.load_state_dict({k: v for k, v in state.items() if not k.startswith("teacher")}, strict=False)
    assert not torch.equal(_loss(m, _batch(), 0.55)["loss"], _loss(fresh, _batch(), 0.55)["loss"])


@pytest.mark.parametrize(("name", "options", "words"), [
    ("vada", {"radius": -1}, "vada's radius must be a positive number, got -1"),
    ("vada", {"domain_weight": -0.5}, "vada's domain_weight must be a number ≥ 0, got -0.5"),
    ("vada", {"xi": float("nan")}, "vada's xi must be a positive number, got nan"),
    ("dirt-t", {"beta": 0}, "dirt-t's beta must be a positive number, got 0"),
    ("dirt-t", {"radius": "big"}, "dirt-t's radius must be a positive number, got 'big'"),
    ("dirt-t", {"switch": 1.0}, "dirt-t's switch must be a fraction between 0 and 1, got 1.0"),
    ("dirt-t", {"refresh": 0}, "dirt-t's refresh must be a fraction in (0, 1], got 0"),
    ("dirt-t", {"guard": 1.5}, "dirt-t's guard must be in [0, 1), got 1.5"),
    ("mcc", {"temperature": 0}, "mcc's temperature must be a positive number, got 0"),
    ("mcc", {"weight": float("inf")}, "mcc's weight must be a number ≥ 0, got inf"),
])
def test_out_of_range_options_are_one_clear_line(name, options, words):
    with pytest.raises(ConfigError) as error:
        get_method(name)(_net(), _cfg(**{name: options}))
    assert str(error.value) == words


@pytest.mark.parametrize("name", ["vada", "dirt-t", "mcc"])
def test_composes_with_self_training(name):
    method = get_method(f"{name}+self-train")
    assert method.base is get_method(name) and method.uses_target_images
    m = method(_net(), _cfg())
    out = m(*_batch(), 0.7)
    assert torch.isfinite(out["loss"]) and {"pseudo_loss", "alpha"} <= set(out) and out["alpha"] == 1.0
    out["loss"].backward()
    assert m.net.features[0].weight.grad.abs().sum() > 0
