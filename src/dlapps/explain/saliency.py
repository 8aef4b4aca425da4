"""Saliency maps: which pixels the class score depends on.

Every method takes a batch ``x`` (N,3,H,W) in [0,1], the pixel-space classifier and one target
class per image, and returns maps (N,H,W), non-negative, larger = more important.

* **Vanilla** (Simonyan et al. 2014): ``M_ij = max_c |∂S_y/∂x_cij|``, the magnitude of the class
  score's gradient, maximised over the colour channels.
* **SmoothGrad** (Smilkov et al. 2017): the vanilla map averaged over ``n`` copies of the image
  with Gaussian noise of std ``sigma`` (pixel units); it removes the gradient's high-frequency
  shattering. The noisy copies go through the network as one batch per chunk.
* **Integrated Gradients** (Sundararajan et al. 2017): ``(x − x̄) · ∫₀¹ ∂S_y/∂x(x̄ + α(x − x̄)) dα``
  (Riemann midpoint sum, ``steps`` points, black baseline x̄ = 0), summed over channels, absolute
  value. Satisfies completeness: the attributions sum to S_y(x) − S_y(x̄).
* **Grad-CAM** (Selvaraju et al. 2017): weights ``α_k = mean_ij ∂S_y/∂A_kij`` of a late layer's
  feature maps A, map ``ReLU(Σ_k α_k A_k)`` upsampled to the image. :class:`CAM` is a template:
  a new CAM variant subclasses it and overrides :meth:`CAM.channel_weights` only (see
  :class:`GradCAMPlusPlus`). Hooks live only inside a ``with`` block, so they are released after
  use and on exceptions (no leaked hooks holding activations).

:data:`METHODS` and :data:`BASELINES` are the registries of these by name (``"vanilla"``, ...).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from dlapps.explain.models import ExplainModel, record_output
from dlapps.registry import Registry

SaliencyFn = Callable[[ExplainModel, torch.Tensor, torch.Tensor], torch.Tensor]


def score_gradient(net: nn.Module, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """∂S_y/∂x for each image: the gradient of its target logit with respect to its pixels."""
    x = x.detach().requires_grad_(True)
    with torch.enable_grad():
        scores = net(x).gather(1, target.view(-1, 1)).sum()
        (grad,) = torch.autograd.grad(scores, x)
    return grad


def vanilla(model: ExplainModel, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Simonyan's map: max over channels of |∂S_y/∂x|."""
    return score_gradient(model.net, x, target).abs().amax(1)


def smoothgrad(
    model: ExplainModel,
    x: torch.Tensor,
    target: torch.Tensor,
    n: int = 16,
    sigma: float = 0.15,
    seed: int = 0,
    chunk: int = 32,
) -> torch.Tensor:
    """Mean of the vanilla map over ``n`` noisy copies (noise std ``sigma`` in pixel units)."""
    g = torch.Generator(device="cpu").manual_seed(seed)
    total = torch.zeros(x.shape[0], *x.shape[2:], device=x.device)
    reps = max(1, chunk // x.shape[0])
    for start in range(0, n, reps):
        k = min(reps, n - start)
        noise = torch.randn((k, *x.shape), generator=g).to(x.device) * sigma
        noisy = (x.unsqueeze(0) + noise).flatten(0, 1)
        grad = score_gradient(model.net, noisy, target.repeat(k))
        total += grad.abs().amax(1).view(k, *total.shape).sum(0)
    return total / n


def integrated_gradients(
    model: ExplainModel, x: torch.Tensor, target: torch.Tensor, **options
) -> torch.Tensor:
    """|Σ_c (x − x̄) · mean_α ∂S_y/∂x(x̄ + α(x − x̄))|; ``options`` as :func:`ig_attributions`."""
    return ig_attributions(model, x, target, **options).sum(1).abs()


def ig_attributions(
    model: ExplainModel,
    x: torch.Tensor,
    target: torch.Tensor,
    steps: int = 32,
    baseline: torch.Tensor | None = None,
    chunk: int = 32,
) -> torch.Tensor:
    """The signed per-channel IG attributions (N,3,H,W); they sum to S_y(x) − S_y(x̄)."""
    baseline = torch.zeros_like(x) if baseline is None else baseline.expand_as(x)
    alphas = (torch.arange(steps, device=x.device, dtype=x.dtype) + 0.5) / steps
    total = torch.zeros_like(x)
    reps = max(1, chunk // x.shape[0])
    for start in range(0, steps, reps):
        a = alphas[start : start + reps].view(-1, 1, 1, 1, 1)
        path = (baseline + a * (x - baseline)).flatten(0, 1)
        total += score_gradient(model.net, path, target.repeat(len(a))).view(len(a), *x.shape).sum(0)
    return (x - baseline) * total / steps


class CAM:
    """Class activation maps from a layer's feature maps A (N,K,h,w) and their gradients.

    ``map = ReLU(Σ_k w_k A_k)``, bilinearly upsampled to the input and scaled to [0,1] per image;
    subclasses choose the channel weights ``w`` (N,K) in :meth:`channel_weights`.
    """

    def __init__(self, model: ExplainModel, layer: nn.Module | None = None):
        self.model = model
        self.layer = layer if layer is not None else model.cam_layer

    def channel_weights(self, activations: torch.Tensor, grads: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def __call__(self, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        with record_output(self.layer) as store, torch.enable_grad():
            scores = self.model.net(x.detach().requires_grad_(True)).gather(1, target.view(-1, 1)).sum()
            acts = store["activations"]
            (grads,) = torch.autograd.grad(scores, acts)
        weights = self.channel_weights(acts.detach(), grads)
        cam = F.relu((weights[:, :, None, None] * acts.detach()).sum(1, keepdim=True))
        cam = F.interpolate(cam, size=x.shape[2:], mode="bilinear", align_corners=False)[:, 0]
        peak = cam.flatten(1).amax(1).clamp_min(1e-12)
        return cam / peak[:, None, None]


class GradCAM(CAM):
    """Grad-CAM: w_k = spatial mean of ∂S_y/∂A_k."""

    def channel_weights(self, activations: torch.Tensor, grads: torch.Tensor) -> torch.Tensor:
        return grads.mean((2, 3))


class GradCAMPlusPlus(CAM):
    """Grad-CAM++ (Chattopadhyay et al. 2018), with the usual exp(S) second-order simplification.

    ``w_k = Σ_ij α_kij ReLU(g_kij)``, ``α = g² / (2g² + Σ_ij A_kij g³)``.
    """

    def channel_weights(self, activations: torch.Tensor, grads: torch.Tensor) -> torch.Tensor:
        g2, g3 = grads**2, grads**3
        denom = 2 * g2 + activations.sum((2, 3), keepdim=True) * g3
        alpha = g2 / torch.where(denom != 0, denom, torch.ones_like(denom))
        return (alpha * F.relu(grads)).sum((2, 3))


def gradcam(model: ExplainModel, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return GradCAM(model)(x, target)


def gradcampp(model: ExplainModel, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return GradCAMPlusPlus(model)(x, target)


def random_map(model: ExplainModel, x: torch.Tensor, target: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """The baseline every method must beat: uniform noise, same shape."""
    g = torch.Generator().manual_seed(seed)
    return torch.rand((x.shape[0], *x.shape[2:]), generator=g).to(x.device)


def smooth_random_map(
    model: ExplainModel, x: torch.Tensor, target: torch.Tensor, seed: int = 0, cells: int = 7
) -> torch.Tensor:
    """A baseline as contiguous as a real map: a random ``cells`` x ``cells`` grid, bicubic upsampled."""
    g = torch.Generator().manual_seed(seed)
    grid = torch.rand((x.shape[0], 1, cells, cells), generator=g)
    return F.interpolate(grid, size=x.shape[2:], mode="bicubic", align_corners=False)[:, 0].to(x.device)


BASELINES: Registry[SaliencyFn] = Registry("saliency baseline")
BASELINES.register("random", random_map)
BASELINES.register("random-smooth", smooth_random_map)

METHODS: Registry[SaliencyFn] = Registry("saliency method")
METHODS.register("vanilla", vanilla)
METHODS.register("smoothgrad", smoothgrad)
METHODS.register("ig", integrated_gradients)
METHODS.register("gradcam", gradcam)
METHODS.register("gradcampp", gradcampp)


def saliency(
    model: ExplainModel, x: torch.Tensor, target: torch.Tensor | None = None, method: str = "vanilla"
) -> torch.Tensor:
    """Maps (N,H,W) by ``method`` (see :data:`METHODS`); the target defaults to the prediction."""
    fn = METHODS[method]  # an unknown name: UnknownNameError with "did you mean"
    x = x.to(model.device)
    target = model.predict(x)[0] if target is None else target.to(model.device)
    return fn(model, x, target)
