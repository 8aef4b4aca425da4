"""Class model visualisation: an image the network finds maximally "class y" (Simonyan et al.
2014, with the regularisers of Yosinski et al. 2015).

Gradient ascent on ``S_y(x) − λ‖x − ½‖²`` (the image centred at mid-grey, as Simonyan's
mean-subtracted input) in [0,1] pixel space. Each iteration:

1. jitter: roll the image by a random (dx, dy) with |d| ≤ ``jitter`` pixels;
2. step: ``x ← x + lr · ∇ / ‖∇‖₂`` — the gradient of the objective, normalised so ``lr`` is the L2
   length of the step in pixel units (independent of the model's score scale);
3. undo the jitter; clamp to [0,1];
4. every ``blur_every`` iterations, a Gaussian blur of std ``blur_sigma`` pixels.

Start from noise (mid-grey plus N(0, 0.1²), seeded) or from a real image (``init``). The
target's softmax probability is recorded at every iteration and snapshots are kept at chosen
iterations, so a single run gives the "over iterations" row of the parameter comparison
(:func:`compare`).

The ascent keeps its own loop rather than :class:`dlapps.engine.Trainer`: it optimises one image,
not a model, with a normalised step (no torch optimizer), seeded jitter and a periodic blur, and
has nothing to checkpoint (a run is seconds).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
import torchvision.transforms.functional as TF
from tqdm import tqdm

from dlapps.errors import ConfigError, UnknownNameError
from dlapps.explain.models import ExplainModel


@dataclass
class ClassVisSettings:
    """The course's defaults (docs/PAPERS.md §4): l2 = 1e-3, lr = 5, blur every 10, 200 iterations."""

    iters: int = 200
    lr: float = 5.0
    l2: float = 1e-3
    blur_every: int = 10
    blur_sigma: float = 0.5
    jitter: int = 16
    seed: int = 0

    def validate(self) -> ClassVisSettings:
        if self.iters < 1 or self.lr <= 0 or self.l2 < 0 or self.blur_every < 0 or self.jitter < 0:
            raise ConfigError(
                f"class visualisation needs iters >= 1, lr > 0, l2 >= 0, blur_every >= 0 "
                f"and jitter >= 0; got {self}"
            )
        return self


@dataclass
class ClassVisResult:
    target: int
    image: torch.Tensor  # (3,S,S) in [0,1]
    probabilities: list[float]  # target probability before each iteration, + final
    scores: list[float]  # target logit, same points
    snapshots: dict[int, torch.Tensor] = field(default_factory=dict)  # iteration -> (3,S,S)


def objective(
    model: ExplainModel, x: torch.Tensor, target: int, l2: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """(S_y(x) − λ‖x − ½‖² summed over the batch, the logits)."""
    logits = model.net(x)
    return logits[:, target].sum() - l2 * ((x - 0.5) ** 2).sum(), logits


def ascent_step(
    model: ExplainModel, x: torch.Tensor, target: int, lr: float, l2: float, shift: tuple[int, int] = (0, 0)
) -> tuple[torch.Tensor, torch.Tensor]:
    """One jittered, normalised gradient-ascent step; returns (new x clamped to [0,1], logits at x)."""
    xs = torch.roll(x.detach(), shifts=shift, dims=(2, 3)).requires_grad_(True)
    with torch.enable_grad():
        value, logits = objective(model, xs, target, l2)
        (g,) = torch.autograd.grad(value, xs)
    g = g / g.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, 1, 1, 1)
    stepped = torch.roll(xs.detach() + lr * g, shifts=(-shift[0], -shift[1]), dims=(2, 3))
    return stepped.clamp(0, 1), logits.detach()


def class_visualization(
    model: ExplainModel,
    target: int,
    settings: ClassVisSettings | None = None,
    init: torch.Tensor | None = None,
    snapshots: Sequence[int] = (),
    progress: bool = False,
) -> ClassVisResult:
    """Run the ascent; ``init`` (3,S,S) in [0,1] or None for noise; keep ``snapshots`` iterations."""
    s = (settings or ClassVisSettings()).validate()
    size, device = model.input_size, model.device
    g = torch.Generator().manual_seed(s.seed)
    if init is None:
        x = (0.5 + 0.1 * torch.randn((1, 3, size, size), generator=g)).clamp(0, 1)
    else:
        x = init.detach().reshape(1, 3, size, size).clone()
    x = x.to(device, next(model.net.parameters()).dtype)
    probs, scores, snaps = [], [], {}
    kernel = 2 * round(3 * s.blur_sigma) + 1
    for it in tqdm(
        range(s.iters), desc=f"classvis {model.classes[target]}", disable=not progress, leave=False
    ):
        if it in snapshots:
            snaps[it] = x[0].cpu()
        shift = tuple(int(v) for v in torch.randint(-s.jitter, s.jitter + 1, (2,), generator=g))
        x, logits = ascent_step(model, x, target, s.lr, s.l2, shift)
        probs.append(float(logits.softmax(1)[0, target]))
        scores.append(float(logits[0, target]))
        if s.blur_every and (it + 1) % s.blur_every == 0 and kernel > 1:
            x = TF.gaussian_blur(x, [kernel, kernel], [s.blur_sigma, s.blur_sigma]).clamp(0, 1)
    with torch.no_grad():
        logits = model.net(x)
    probs.append(float(logits.softmax(1)[0, target]))
    scores.append(float(logits[0, target]))
    snaps[s.iters] = x[0].cpu()
    return ClassVisResult(target, x[0].cpu(), probs, scores, snaps)


COMPARE_GRID = {"lr": (1.0, 5.0, 25.0), "l2": (0.0, 1e-3, 1e-2), "blur_every": (0, 10, 50)}
ITER_POINTS = (25, 50, 100, 200)  # the iteration counts compare shows by default
PARAMETERS = ("lr", "l2", "blur_every", "blur_sigma", "jitter", "seed")  # what compare can vary


def compare(
    model: ExplainModel,
    target: int,
    base: ClassVisSettings | None = None,
    grid: dict[str, Sequence[float]] | None = None,
    iter_points: Sequence[int] = ITER_POINTS,
    init: torch.Tensor | None = None,
    progress: bool = False,
) -> dict[str, list[tuple[float, ClassVisResult]]]:
    """The course's parameter study: one parameter varied at a time around ``base``.

    Returns ``{"iters": [...], "lr": [...], ...}``: for each parameter, (value, result) pairs. The
    ``iters`` row costs nothing extra: it is the snapshots of one run with ``max(iter_points)``.
    """
    from dataclasses import replace

    base = (base or ClassVisSettings()).validate()
    grid = COMPARE_GRID if grid is None else grid
    for name in grid:
        if name not in PARAMETERS:
            raise UnknownNameError("class-visualisation parameter", name, PARAMETERS)
    longest = replace(base, iters=max(iter_points))
    run = class_visualization(model, target, longest, init, snapshots=iter_points, progress=progress)
    rows: dict[str, list[tuple[float, ClassVisResult]]] = {"iters": []}
    for n in iter_points:
        snap = ClassVisResult(target, run.snapshots[n], run.probabilities[: n + 1], run.scores[: n + 1])
        rows["iters"].append((n, snap))
    for name, values in grid.items():
        kind = type(getattr(base, name))
        rows[name] = [
            (v, class_visualization(model, target, replace(base, **{name: kind(v)}), init, progress=progress))
            for v in values
        ]
    return rows
