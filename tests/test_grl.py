"""The gradient reversal layer and the schedules."""

import math

import pytest
import torch

from dlapps.adapt.grl import GradientReversal, grad_reverse
from dlapps.engine.schedules import annealed, lambda_schedule, lr_schedule, sigmoid_ramp, step_decay
from dlapps.errors import ConfigError, UnknownNameError


def test_forward_is_identity():
    x = torch.randn(4, 7)
    assert torch.equal(grad_reverse(x, 0.3), x)
    assert torch.equal(GradientReversal(5.0)(x), x)


@pytest.mark.parametrize("lam", [0.0, 0.25, 1.0, 3.0])
def test_backward_is_minus_lambda_times_grad(lam):
    x = torch.randn(5, 3, requires_grad=True)
    w = torch.randn(5, 3)
    (grad_reverse(x, lam) * w).sum().backward()
    assert torch.allclose(x.grad, -lam * w)


@pytest.mark.parametrize("lam", [0.5, 2.0])
def test_gradcheck(lam):
    # gradcheck compares the analytical Jacobian with finite differences of the forward. The GRL's
    # forward is the identity, so we check it inside f(x) = R(x) - (1 + lam) * stopgrad(x), whose
    # forward is -lam * x: finite differences give -lam * I, and autograd must give the same
    # through the GRL alone (the detached term contributes nothing).
    def f(x):
        return grad_reverse(x, lam) - (1 + lam) * x.detach()

    x = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(f, (x,))
    # and a plain identity would fail the same check
    assert not torch.autograd.gradcheck(lambda x: x - (1 + lam) * x.detach(), (x,), raise_exception=False)


def test_module_coefficient_is_settable():
    grl = GradientReversal()
    x = torch.ones(2, requires_grad=True)
    grl.coeff = 0.7
    grl(x).sum().backward()
    assert torch.allclose(x.grad, torch.full((2,), -0.7))


def test_dann_lambda_schedule_values():
    lam = sigmoid_ramp(gamma=10)
    assert lam(0.0) == 0.0
    assert lam(0.5) == pytest.approx(2 / (1 + math.exp(-5)) - 1)  # 0.98661
    assert lam(1.0) == pytest.approx(0.9999092, abs=1e-6)
    assert sigmoid_ramp(gamma=10, maximum=0.5)(1.0) == pytest.approx(0.5 * 0.9999092, abs=1e-6)


def test_annealed_lr_values():
    lr = annealed(0.01, alpha=10, beta=0.75)
    assert lr(0.0) == pytest.approx(0.01)
    assert lr(0.5) == pytest.approx(0.01 / 6**0.75)
    assert lr(1.0) == pytest.approx(0.01 / 11**0.75)  # 0.0016585


def test_step_decay_and_constant():
    lr = step_decay(0.1, milestones=(0.5, 0.75), factor=0.1)
    assert [lr(p) for p in (0.0, 0.5, 1.0)] == pytest.approx([0.1, 0.01, 0.001])
    assert lambda_schedule("constant", maximum=0.3)(0.9) == 0.3


def test_schedule_errors():
    with pytest.raises(UnknownNameError, match="sigmoid"):
        lambda_schedule("cosine")
    with pytest.raises(ConfigError, match="positive"):
        lr_schedule("anneal", -0.01)
