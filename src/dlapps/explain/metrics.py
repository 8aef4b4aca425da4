"""Faithfulness of a saliency map: the RISE deletion and insertion curves (Petsiuk et al. 2018),
Quantus's faithfulness correlation and max-sensitivity.

The image is cut into ``patch`` x ``patch`` tiles, ranked by their mean saliency, most salient
first. **Deletion** replaces the top fraction f of tiles by zeros *of the network's input* and
records the model's probability of the explained class; a faithful map makes it drop fast, so a
*low* area under the curve is good. **Insertion** starts from a blurred copy of the image
(Gaussian, kernel 11, σ = 5, as RISE's code) and puts the original tiles back in the same order;
the probability should rise fast, so a *high* area is good.

What "zeros" means: RISE's code normalises the image first and then deletes with
``torch.zeros_like``, so a deleted pixel is zero *after* normalisation, i.e. the normalisation's
mean colour in pixel space (``substrate="mean"``, the default: ImageNet's mean for torchvision
backbones, grey 0.5 for EfficientNet-Lite0, the data mean for the digits nets). ``"black"``
deletes to pixel value 0 instead, a harsher, out-of-distribution substrate.

Granularity: ``patch=1`` is RISE's protocol (single pixels); ``patch>1`` ranks and moves
``patch`` x ``patch`` tiles. Two random baselines are reported: i.i.d. noise, and smooth noise (a
random 7x7 grid upsampled, RISE's own mask prior) whose blobs are as contiguous as a real map's.
Measured (bench/explain_bench.py, EfficientNet-Lite0, the bundled photos; docs/RESULTS.md):
deleting scattered pixels, which is what the i.i.d. map does, is itself noise that can destroy
the prediction faster than removing the object — with the black substrate at 160 px the i.i.d.
map wins deletion against every method, while with RISE's substrate at the model's 224 px every
method beats it on both curves.

The curves are sampled at ``steps + 1`` evenly spaced fractions f ∈ [0, 1]; the area uses the
trapezoid rule on f, so it is normalised to [0, 1] (the probability's own scale). Each image's
``steps + 1`` perturbed copies go through the network in one batch (per ``chunk``).

**Faithfulness correlation** (Bhatt et al. 2020, Quantus's ``FaithfulnessCorrelation``): for
``runs`` random subsets S of ``subset`` pixels, set S to the substrate (all channels; Quantus's
"black") and correlate, over the runs, the map's mass on S with the drop of the target logit:
``ρ = Pearson( Σ_{i∈S} m_i , S_y(x) − S_y(x_{S→0}) )``. A faithful map: ρ near 1; a random one: 0.
Every method is scored on the same subsets (one seed).

**Max-sensitivity** (Yeh et al. 2019, Quantus's ``MaxSensitivity``): how far the (normalised)
map moves under a small input change, ``max_k ‖Φ(x + δ_k) − Φ(x)‖_F / ‖x‖_F`` with
``δ_k ~ U(−r, r)^d`` (r = ``radius`` = 0.2, Quantus's default; ``samples`` draws instead of its
200, as each one recomputes the explanation). Lower is more robust; a map that ignores the input
scores 0, so it is read beside faithfulness, never alone.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
import torchvision.transforms.functional as TF

from dlapps.errors import ConfigError
from dlapps.explain.models import ExplainModel
from dlapps.registry import Registry

SUBSTRATES: Registry[Callable[[ExplainModel], torch.Tensor]] = Registry("deletion substrate")


@SUBSTRATES.register("mean")
def normalisation_mean(model: ExplainModel) -> torch.Tensor:
    """The colour the model's :class:`~dlapps.models.digits.Normalize` maps to zero (RISE's
    ``zeros_like`` of the normalised input); black for a model without one."""
    from dlapps.models.digits import Normalize

    for module in model.net.modules():
        if isinstance(module, Normalize):
            return module.mean[0].detach().to(model.device)
    return torch.zeros(1, 1, 1, device=model.device)


@SUBSTRATES.register("black")
def black(model: ExplainModel) -> torch.Tensor:
    return torch.zeros(1, 1, 1, device=model.device)


def deletion_substrate(model: ExplainModel, substrate: str = "mean") -> torch.Tensor:
    """The pixel colour (C,1,1) a deleted pixel takes, by name (see :data:`SUBSTRATES`)."""
    return SUBSTRATES[substrate](model)


def tile_ranks(saliency_map: torch.Tensor, patch: int) -> tuple[torch.Tensor, int]:
    """Each pixel's rank (0 = most salient) of the tile it lies in, and the number of tiles."""
    h, w = saliency_map.shape
    tiles = F.avg_pool2d(saliency_map[None, None], patch, ceil_mode=True)[0, 0]
    order = tiles.flatten().argsort(descending=True)
    rank = torch.empty_like(order)
    rank[order] = torch.arange(len(order), device=order.device)
    rank = rank.view(tiles.shape).repeat_interleave(patch, 0).repeat_interleave(patch, 1)
    return rank[:h, :w], len(order)


def perturbed(
    start: torch.Tensor, finish: torch.Tensor, rank: torch.Tensor, n_tiles: int, steps: int
) -> torch.Tensor:
    """(steps+1, C,H,W): ``start`` with its top f of tiles (by ``rank``) taken from ``finish``."""
    counts = torch.linspace(0, n_tiles, steps + 1, device=start.device).round().long()
    mask = (rank.view(1, 1, *rank.shape) < counts.view(-1, 1, 1, 1)).to(start.dtype)
    return start * (1 - mask) + finish * mask


def rise_curves(
    model: ExplainModel,
    x: torch.Tensor,
    maps: torch.Tensor,
    target: torch.Tensor,
    steps: int = 24,
    patch: int = 1,
    chunk: int = 32,
    substrate: str = "mean",
) -> dict[str, torch.Tensor]:
    """Deletion and insertion curves (N, steps+1) and their normalised AUCs (N,); ``substrate``:
    what deleted pixels become (see :func:`deletion_substrate`)."""
    x, maps, target = x.to(model.device), maps.to(model.device), target.to(model.device)
    deleted = deletion_substrate(model, substrate).to(x.dtype)
    blurred = TF.gaussian_blur(x, [11, 11], [5.0, 5.0])
    curves = {"deletion": [], "insertion": []}
    for i in range(len(x)):
        rank, n_tiles = tile_ranks(maps[i].to(x.dtype), patch)
        batches = {
            "deletion": perturbed(x[i], deleted.expand_as(x[i]), rank, n_tiles, steps),
            "insertion": perturbed(blurred[i], x[i], rank, n_tiles, steps),
        }
        for name, batch in batches.items():
            with torch.no_grad():
                p = torch.cat([model.net(b).softmax(1)[:, target[i]] for b in batch.split(chunk)])
            curves[name].append(p.cpu())
    out = {k: torch.stack(v) for k, v in curves.items()}
    for k in list(out):
        out[f"{k}_auc"] = torch.trapezoid(out[k], dx=1.0 / steps, dim=1)
    return out


def _score(model: ExplainModel, x: torch.Tensor, target: int, chunk: int) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([model.net(b)[:, target] for b in x.split(chunk)])


def faithfulness_correlation(
    model: ExplainModel,
    x: torch.Tensor,
    maps: torch.Tensor,
    target: torch.Tensor,
    runs: int = 100,
    subset: int = 224,
    substrate: str = "black",
    seed: int = 0,
    chunk: int = 32,
) -> torch.Tensor:
    """Pearson correlation (N,) between a random pixel subset's saliency mass and the target
    logit's drop when that subset is deleted, over ``runs`` subsets of ``subset`` pixels."""
    x, maps, target = x.to(model.device), maps.to(model.device), target.to(model.device)
    pixels = x.shape[2] * x.shape[3]
    if not 1 <= subset < pixels or runs < 2:
        raise ConfigError(f"faithfulness correlation needs 1 <= subset < {pixels} pixels and runs >= 2, "
                          f"got subset={subset}, runs={runs}")
    fill = deletion_substrate(model, substrate).to(x.dtype)
    g = torch.Generator().manual_seed(seed)
    out = []
    for i in range(len(x)):
        idx = torch.stack([torch.randperm(pixels, generator=g)[:subset] for _ in range(runs)]).to(x.device)
        mask = torch.zeros(runs, pixels, dtype=x.dtype, device=x.device).scatter_(1, idx, 1.0)
        mask = mask.view(runs, 1, *x.shape[2:])
        drop = _score(model, x[i : i + 1], int(target[i]), chunk) - _score(
            model, x[i] * (1 - mask) + fill * mask, int(target[i]), chunk)
        mass = maps[i].flatten()[idx].sum(1)
        out.append(torch.corrcoef(torch.stack([mass, drop]))[0, 1].cpu())
    return torch.stack(out)


def max_sensitivity(
    x: torch.Tensor,
    target: torch.Tensor,
    explain: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    samples: int = 10,
    radius: float = 0.2,
    seed: int = 0,
) -> torch.Tensor:
    """``max_k ‖explain(x + δ_k) − explain(x)‖_F / ‖x‖_F`` per image (N,), δ_k ~ U(−radius, radius);
    ``explain(x, target)`` returns normalised maps (N,H,W)."""
    if samples < 1 or radius <= 0:
        raise ConfigError(f"max-sensitivity needs samples >= 1 and radius > 0, got {samples}, {radius}")
    g = torch.Generator().manual_seed(seed)
    base, size = explain(x, target), x.flatten(1).norm(dim=1)
    worst = torch.zeros(len(x), dtype=x.dtype, device=x.device)
    for _ in range(samples):
        delta = ((torch.rand(x.shape, generator=g, dtype=x.dtype) * 2 - 1) * radius).to(x.device)
        moved = (explain(x + delta, target) - base).flatten(1).norm(dim=1) / size
        worst = torch.maximum(worst, moved.to(worst))
    return worst.cpu()
