"""Attributions and saliency maps: which pixels the class score S_y depends on.

Three named steps, so every method's map sits on one scale:

1. **attribute** — a method (:data:`METHODS`) takes a batch ``x`` (N,C,H,W) in [0,1], the
   pixel-space classifier and one target class per image, and returns *input-shaped*
   attributions: (N,C,H,W) for the pixel methods, (N,1,H,W) for the CAMs (one map for all
   channels);
2. **reduce** (:data:`REDUCTIONS`) over the channels to a map (N,H,W): ``max-abs`` =
   ``max_c |a_c|``, ``sum`` = ``Σ_c a_c``, ``sum-abs`` = ``|Σ_c a_c|``, ``abs-sum`` = ``Σ_c |a_c|``;
   each method names its default;
3. **normalise**: each map divided by its largest ``|m|``, so the maps are in [0,1] (signed
   reductions: [−1,1]).

:func:`saliency` runs all three. The methods:

* **vanilla** (Simonyan et al. 2014): the gradient ``∂S_y/∂x``; with ``max-abs`` it is
  Simonyan's map ``max_c |∂S_y/∂x_c|`` (Captum's ``Saliency``).
* **ig**, Integrated Gradients (Sundararajan et al. 2017):
  ``IG(x) = (x − x̄) ⊙ ∫₀¹ ∂S_y/∂x(x̄ + α(x − x̄)) dα``, by the Riemann midpoint rule
  (Captum's ``riemann_middle``). It is *complete*: ``Σ IG = S_y(x) − S_y(x̄)`` — for the exact
  integral. The sum's gap is the convergence check, reported per image as
  ``gap = |Σ IG − (S_y(x) − S_y(x̄))| / |S_y(x) − S_y(x̄)|``. With a ``tolerance`` the steps are
  tripled (32 → 96 → 288 → ...) for the images whose gap is above it, until it is below, or
  ``max_steps`` or ``max_seconds`` would be passed. Tripling keeps every earlier point: the
  midpoints ``(k + ½)/n`` of n steps are the points ``j = 3k + 1`` of 3n steps, so a refinement
  costs only the 2n new gradients. Baselines x̄ (:data:`IG_BASELINES`): ``black`` (0),
  ``blurred`` (the image under a Gaussian of σ = side/16) and ``uniform`` (``samples`` draws of
  U(0,1) noise, the attributions averaged: expected gradients, Erion et al. 2021; completeness
  then holds for the mean baseline score).
* **gradcam** (Selvaraju et al. 2017): weights ``α_k = mean_ij ∂S_y/∂A_kij`` of a late layer's
  feature maps A, attribution ``ReLU(Σ_k α_k A_k)`` bilinearly upsampled to the image (Captum's
  ``LayerGradCam`` + ``LayerAttribution.interpolate``). :class:`CAM` is a template: a variant
  overrides :meth:`CAM.channel_weights` only (:class:`GradCAMPlusPlus`). Hooks live only inside a
  ``with`` block, so they are released after use and on exceptions.
* **edge**: a control that ignores the model — the Sobel gradient magnitude of the grey image.
  Its map looks plausible and fails the sanity check (:mod:`.sanity`) by construction.

Any method smoothed (Captum's ``NoiseTunnel``): ``<method>+smoothgrad`` is the mean and
``<method>+vargrad`` the variance of the method's attributions over ``n`` copies
``x + N(0, σ²)`` (σ = ``sigma`` in pixel units; Smilkov et al. 2017, Adebayo et al. 2018):
``SG = (1/n) Σ a(x + ε_i)``, ``VG = (1/n) Σ a(x + ε_i)² − SG²``. ``smoothgrad`` alone is
``vanilla+smoothgrad``. The noise is drawn image-major per chunk of copies, as Captum draws it.

:data:`BASELINES` are the random maps every method must beat (maps, not attributions).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
import torchvision.transforms.functional as TF
from torch import nn

from dlapps.errors import ConfigError
from dlapps.explain.models import ExplainModel, record_output
from dlapps.registry import Registry

SaliencyFn = Callable[[ExplainModel, torch.Tensor, torch.Tensor], torch.Tensor]
TUNNELS = ("smoothgrad", "vargrad")


def score_gradient(net: nn.Module, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """∂S_y/∂x for each image: the gradient of its target logit with respect to its pixels."""
    x = x.detach().requires_grad_(True)
    with torch.enable_grad():
        scores = net(x).gather(1, target.view(-1, 1)).sum()
        (grad,) = torch.autograd.grad(scores, x)
    return grad


def scores(net: nn.Module, x: torch.Tensor, target: torch.Tensor, chunk: int = 32) -> torch.Tensor:
    """S_y(x) (N,), the target logits, in batches of ``chunk``."""
    with torch.no_grad():
        return torch.cat([net(b).gather(1, t.view(-1, 1))[:, 0]
                          for b, t in zip(x.split(chunk), target.split(chunk), strict=True)])


def vanilla(model: ExplainModel, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The gradient ∂S_y/∂x (N,C,H,W)."""
    return score_gradient(model.net, x, target)


# --- Integrated Gradients ----------------------------------------------------------------------

IG_BASELINES: Registry[Callable[[torch.Tensor, int, torch.Generator], torch.Tensor]] = Registry("IG baseline")


@IG_BASELINES.register("black")
def black_baseline(x: torch.Tensor, samples: int, g: torch.Generator) -> torch.Tensor:
    return torch.zeros_like(x)[None]


@IG_BASELINES.register("blurred")
def blurred_baseline(x: torch.Tensor, samples: int, g: torch.Generator) -> torch.Tensor:
    sigma = max(x.shape[-2:]) / 16
    return TF.gaussian_blur(x, [2 * int(3 * sigma) + 1] * 2, [sigma, sigma])[None]


@IG_BASELINES.register("uniform")
def uniform_baseline(x: torch.Tensor, samples: int, g: torch.Generator) -> torch.Tensor:
    return torch.rand((samples, *x.shape), generator=g).to(x)


def ig_baselines(x: torch.Tensor, baseline: str = "black", samples: int = 8, seed: int = 0) -> torch.Tensor:
    """The baselines x̄ (B,N,C,H,W) of ``baseline`` (see :data:`IG_BASELINES`); B = 1 except
    for ``uniform`` (B = ``samples``)."""
    return IG_BASELINES[baseline](x, samples, torch.Generator().manual_seed(seed))


@dataclass
class IGResult:
    """Integrated Gradients with their completeness check, per image."""

    attributions: torch.Tensor  # (N,C,H,W), averaged over the baselines
    delta: torch.Tensor  # Σ attributions − (S_y(x) − mean S_y(x̄)): Captum's convergence delta
    gap: torch.Tensor  # |delta| / |S_y(x) − mean S_y(x̄)|
    steps: torch.Tensor  # the Riemann steps each image ended with
    converged: torch.Tensor  # gap ≤ tolerance (all True without a tolerance)
    seconds: float
    baseline: str = "black"
    tolerance: float | None = None

    def per_image(self) -> list[dict]:
        """JSON-ready: steps, gap, converged and the score difference of each image."""
        return [{"steps": int(s), "gap": float(g), "converged": bool(c), "delta": float(d)}
                for s, g, c, d in zip(self.steps, self.gap, self.converged, self.delta, strict=True)]


def _new_alphas(old: int, new: int, device, dtype) -> torch.Tensor:
    """The midpoints of ``new`` steps that are not midpoints of ``old`` steps (all when old = 0)."""
    j = torch.arange(new, device=device)
    if old:
        j = j[j % 3 != 1]
    return (j.to(dtype) + 0.5) / new


def integrated_gradients(
    model: ExplainModel,
    x: torch.Tensor,
    target: torch.Tensor,
    steps: int = 32,
    baseline: str = "black",
    tolerance: float | None = 0.05,
    max_steps: int = 2592,
    max_seconds: float = 600.0,
    samples: int = 8,
    seed: int = 0,
    chunk: int = 32,
) -> IGResult:
    """IG by the midpoint rule from ``steps`` points, tripled per image until its completeness gap
    is ≤ ``tolerance`` (None: ``steps`` exactly, as Captum), within ``max_steps`` and about
    ``max_seconds`` (the next refinement is skipped when its predicted time would pass it)."""
    if steps < 1:
        raise ConfigError(f"Integrated Gradients needs at least 1 step, got {steps}")
    start = time.perf_counter()
    bases = ig_baselines(x, baseline, samples, seed)  # (B,N,C,H,W)
    b, n = len(bases), len(x)
    s_x = scores(model.net, x, target, chunk)
    s_base = scores(model.net, bases.flatten(0, 1), target.repeat(b), chunk).view(b, n).mean(0)
    diff = s_x - s_base
    total = torch.zeros_like(bases)  # Σ over the points of ∂S_y/∂x, per baseline and image
    done = torch.zeros(n, dtype=torch.long, device=x.device)  # steps of the current sums
    active = torch.arange(n, device=x.device)
    counted, rate = 0, None  # gradients computed and their rate (per second)
    while True:
        new_steps = steps if not counted else 3 * int(done[active[0]])
        alphas = _new_alphas(int(done[active[0]]), new_steps, x.device, x.dtype)
        xa, ba = x[active], bases[:, active]
        for a in alphas.split(max(1, chunk // (b * len(active)))):  # ≤ max(chunk, B·active) images
            path = (ba[None] + a.view(-1, 1, 1, 1, 1, 1) * (xa - ba)[None]).flatten(0, 2)
            labels = target[active].repeat(len(a) * b)
            grads = torch.cat([score_gradient(model.net, p, t)
                               for p, t in zip(path.split(chunk), labels.split(chunk), strict=True)])
            total[:, active] += grads.view(len(a), b, len(active), *x.shape[1:]).sum(0)
            counted += len(path)
        done[active] = new_steps
        rate = counted / (time.perf_counter() - start)
        attributions = ((x - bases) * total / done.view(1, -1, 1, 1, 1)).mean(0)
        delta = attributions.flatten(1).sum(1) - diff
        gap = delta.abs() / diff.abs().clamp_min(1e-12)
        if tolerance is None:
            break
        active = (gap > tolerance).nonzero().squeeze(1)
        if not len(active):
            break
        next_steps, cost = 3 * new_steps, 2 * new_steps * b * len(active)
        if next_steps > max_steps or time.perf_counter() - start + cost / rate > max_seconds:
            break
    converged = gap <= tolerance if tolerance is not None else torch.ones(n, dtype=torch.bool)
    return IGResult(attributions, delta, gap, done, converged, time.perf_counter() - start, baseline,
                    tolerance)


def ig(model: ExplainModel, x: torch.Tensor, target: torch.Tensor, **options) -> torch.Tensor:
    """The attributions of :func:`integrated_gradients` (N,C,H,W)."""
    return integrated_gradients(model, x, target, **options).attributions


# --- class activation maps ---------------------------------------------------------------------


class CAM:
    """Class activation maps from a layer's feature maps A (N,K,h,w) and their gradients.

    ``ReLU(Σ_k w_k A_k)`` bilinearly upsampled to the input, (N,1,H,W); subclasses choose the
    channel weights ``w`` (N,K) in :meth:`channel_weights`.
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
        return F.interpolate(cam, size=x.shape[2:], mode="bilinear", align_corners=False)


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


def edge(model: ExplainModel, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Sobel gradient magnitude of the grey image (N,1,H,W): independent of the model."""
    sobel = torch.tensor([[1.0, 0, -1], [2, 0, -2], [1, 0, -1]], dtype=x.dtype, device=x.device)
    kernels = torch.stack([sobel, sobel.T])[:, None]
    grads = F.conv2d(F.pad(x.mean(1, keepdim=True), (1, 1, 1, 1), mode="replicate"), kernels)
    return grads.norm(dim=1, keepdim=True)


# --- the registry, the noise tunnel, reductions ------------------------------------------------


@dataclass(frozen=True)
class Method:
    """An attribution method: its function, the reduction to its map, the options it takes."""

    attribute: Callable[..., torch.Tensor]  # (model, x, target, **options) -> (N,C,H,W) or (N,1,H,W)
    reduction: str
    options: tuple[str, ...] = ()


IG_OPTIONS = ("steps", "baseline", "tolerance", "max_steps", "max_seconds", "samples", "seed", "chunk")
TUNNEL_OPTIONS = ("n", "sigma", "seed", "chunk")


def noise_tunnel(
    model: ExplainModel,
    x: torch.Tensor,
    target: torch.Tensor,
    method: str = "vanilla",
    kind: str = "smoothgrad",
    n: int = 16,
    sigma: float = 0.15,
    seed: int = 0,
    chunk: int = 32,
    **options,
) -> torch.Tensor:
    """Mean (``smoothgrad``) or variance (``vargrad``) of ``method``'s attributions over ``n``
    noisy copies; ``options`` go to the method."""
    if n < 1 or sigma < 0:
        raise ConfigError(f"{kind} needs n >= 1 and sigma >= 0, got n={n}, sigma={sigma}")
    g = torch.Generator().manual_seed(seed)
    first = second = 0
    reps = max(1, chunk // len(x))
    for start in range(0, n, reps):
        k = min(reps, n - start)
        noise = (torch.randn((len(x) * k, *x.shape[1:]), generator=g) * sigma).to(x)  # image-major
        a = attribute(model, x.repeat_interleave(k, 0) + noise, target.repeat_interleave(k), method,
                      chunk=chunk, **options)
        a = a.view(len(x), k, *a.shape[1:])
        first, second = first + a.sum(1), second + (a**2).sum(1)
    mean = first / n
    return mean if kind == "smoothgrad" else second / n - mean**2


def _tunnelled(name: str) -> Method | None:
    """``<method>+smoothgrad`` / ``<method>+vargrad`` for any registered method."""
    base, _, kind = name.rpartition("+")
    if kind not in TUNNELS or not base:
        return None
    inner = METHODS[base]

    def run(model, x, target, **options):
        return noise_tunnel(model, x, target, base, kind, **options)

    return Method(run, inner.reduction, tuple(dict.fromkeys((*inner.options, *TUNNEL_OPTIONS))))


METHODS: Registry[Method] = Registry("saliency method", extra_names=tuple(f"<method>+{t}" for t in TUNNELS),
                                     fallback=_tunnelled)
METHODS.register("vanilla", Method(vanilla, "max-abs"))
METHODS.register("smoothgrad", Method(lambda model, x, target, **o: noise_tunnel(model, x, target, **o),
                                      "max-abs", TUNNEL_OPTIONS))
METHODS.register("ig", Method(ig, "sum-abs", IG_OPTIONS))
METHODS.register("gradcam", Method(gradcam, "sum"))
METHODS.register("gradcampp", Method(gradcampp, "sum"))
METHODS.register("edge", Method(edge, "sum"))

REDUCTIONS: Registry[Callable[[torch.Tensor], torch.Tensor]] = Registry("reduction")
REDUCTIONS.register("max-abs", lambda a: a.abs().amax(1))
REDUCTIONS.register("sum", lambda a: a.sum(1))
REDUCTIONS.register("sum-abs", lambda a: a.sum(1).abs())
REDUCTIONS.register("abs-sum", lambda a: a.abs().sum(1))


def attribute(model: ExplainModel, x: torch.Tensor, target: torch.Tensor, method: str = "vanilla",
              **options) -> torch.Tensor:
    """``method``'s attributions (N,C,H,W) or (N,1,H,W); of ``options`` it takes those it has
    (``steps``, ``baseline``, ``n``, ``sigma``, ...; see :data:`METHODS`), ignoring the rest."""
    spec = METHODS[method]
    return spec.attribute(model, x, target, **{k: v for k, v in options.items() if k in spec.options})


def reduce(attributions: torch.Tensor, reduction: str) -> torch.Tensor:
    """(N,C,H,W) -> (N,H,W) by a named :data:`REDUCTIONS` entry."""
    return REDUCTIONS[reduction](attributions)


def normalise(maps: torch.Tensor) -> torch.Tensor:
    """Each map divided by its largest |value| (an all-zero map stays zero)."""
    peak = maps.flatten(1).abs().amax(1).clamp_min(1e-12)
    return maps / peak.view(-1, *[1] * (maps.ndim - 1))


def saliency(
    model: ExplainModel,
    x: torch.Tensor,
    target: torch.Tensor | None = None,
    method: str = "vanilla",
    reduction: str | None = None,
    **options,
) -> torch.Tensor:
    """Normalised maps (N,H,W) of ``method``, reduced by ``reduction`` (default: the method's own);
    the target defaults to the prediction."""
    spec = METHODS[method]  # an unknown name: UnknownNameError with "did you mean"
    x = x.to(model.device)
    target = model.predict(x)[0] if target is None else target.to(model.device)
    return normalise(reduce(attribute(model, x, target, method, **options), reduction or spec.reduction))


# --- random maps -------------------------------------------------------------------------------


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


def steps_note(result: IGResult) -> str:
    """One line on IG's completeness: what a report says beside the maps."""
    low, high, worst = int(result.steps.min()), int(result.steps.max()), float(result.gap.max())
    steps = f"{low}" if low == high else f"{low}-{high}"
    if result.tolerance is None:
        return f"Integrated Gradients at a fixed {steps} steps: completeness gaps up to {worst:.1%}"
    bad = (~result.converged).nonzero().flatten().tolist()
    if not bad:
        return (f"Integrated Gradients converged on all {len(result.gap)} images: completeness gap "
                f"≤ {result.tolerance:.0%} after {steps} steps ({result.seconds:.1f} s)")
    return (f"Integrated Gradients did NOT converge on {len(bad)} of {len(result.gap)} images: "
            f"stopped at {int(result.steps[bad].max())} steps with completeness gaps up to {worst:.1%} "
            f"(tolerance {result.tolerance:.0%}); raise --ig-max-steps or --ig-max-seconds")
