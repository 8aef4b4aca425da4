"""Sanity checks for saliency methods (Adebayo et al., "Sanity Checks for Saliency Maps", NeurIPS
2018): a map that explains the *model* must change when the model does.

* **Cascading model-parameter randomisation.** The network is cut into layers
  (:func:`randomisation_layers`: its parameterised blocks in forward order, at most
  ``max_layers``) and re-initialised one layer at a time from the top (the logits) down, the
  earlier ones staying random, each with PyTorch's own initialiser (``reset_parameters``:
  Kaiming-uniform weights, BatchNorm to the identity), seeded. After each step every method's map
  of the same images, for the same target class, is compared with its map on the trained network.
* **Data randomisation.** The same architecture trained from scratch on its training data with
  the labels permuted (it can only memorise them; the accuracy reached on the permuted labels is
  reported) — only where dlapps can retrain the network cheaply (``model.training_data``: the
  digits networks of ``dlapps adapt``).

Similarity of a map m to the trained network's m₀, per image: the **Spearman** rank correlation
``ρ = corr(rank(m), rank(m₀))`` (ties averaged; a constant map has no ranking: ρ = 0 against a
map that has one, 1 against another constant map)
and **SSIM** (Wang et al. 2004, scikit-image, 7x7 windows) of the two maps scaled to [0,1] by
their own min and max. A method whose mean ρ is still ≥ ``flag_at`` (0.5) with *every* layer
random (or after label randomisation) is **flagged**: its maps do not depend on what the network
learned — e.g. the ``edge`` control, which never looks at the network. Integrated Gradients
with a black baseline is ``x ⊙ (mean gradient)``: zero wherever the image is black, whatever the
weights, so on images with large black areas (digits) those tied zeros alone keep its ρ high —
Adebayo et al.'s caveat on input structure; its SSIM still falls.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from dlapps.errors import ConfigError
from dlapps.explain.models import ExplainModel
from dlapps.registry import Registry

Explain = Callable[[ExplainModel, torch.Tensor, torch.Tensor], torch.Tensor]  # -> maps (N,H,W)
FLAG_AT = 0.5


def _params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def randomisation_layers(model: ExplainModel, max_layers: int = 12) -> list[str]:
    """The module paths randomised one at a time, in forward order: starting from the whole
    network, the group with the most parameters is split into its children (those with
    parameters that take part in a forward pass) while the count stays ≤ ``max_layers``."""
    used: set[nn.Module] = set()
    hooks = [m.register_forward_hook(lambda mod, _i, _o: used.add(mod)) for m in model.net.modules()]
    try:
        with torch.no_grad():
            p = next(model.net.parameters())
            model.net(torch.zeros(1, 3, model.input_size, model.input_size, device=p.device, dtype=p.dtype))
    finally:
        for h in hooks:
            h.remove()

    def children(name: str, module: nn.Module) -> list[tuple[str, nn.Module]]:
        kids = [(f"{name}.{n}".lstrip("."), c) for n, c in module.named_children()
                if c in used and _params(c)]
        return kids if not list(module.parameters(recurse=False)) else []

    groups = [("", model.net)]
    while True:
        splittable = [(i, kids) for i, (n, m) in enumerate(groups) if (kids := children(n, m))
                      and len(groups) + len(kids) - 1 <= max_layers]
        if not splittable:
            return [n for n, _ in groups]
        i, kids = max(splittable, key=lambda s: (len(s[1]) == 1, _params(groups[s[0]][1])))
        groups[i : i + 1] = kids


def with_net(model: ExplainModel, net: nn.Module) -> ExplainModel:
    """``model`` around a copy ``net`` of its network (its layers found by the same paths)."""
    paths = {m: n for n, m in model.net.named_modules()}
    return replace(model, net=net, first_conv=net.get_submodule(paths[model.first_conv]),
                   cam_layer=net.get_submodule(paths[model.cam_layer]))


def reinitialise(module: nn.Module, seed: int) -> None:
    """Every submodule's ``reset_parameters`` (PyTorch's initialisers) under a seed, leaving the
    global random state as it was."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for m in module.modules():
            if hasattr(m, "reset_parameters"):
                m.reset_parameters()


def _unit(m: np.ndarray) -> np.ndarray:
    span = m.max() - m.min()
    return (m - m.min()) / span if span > 0 else np.zeros_like(m)


def similarity(reference: torch.Tensor, maps: torch.Tensor) -> dict[str, list[float]]:
    """Spearman ρ and SSIM of each map (N,H,W) to its reference, per image."""
    from scipy.stats import spearmanr
    from skimage.metrics import structural_similarity

    out = {"spearman": [], "ssim": []}
    as_numpy = lambda t: t.detach().cpu().double().numpy()  # noqa: E731
    for a, b in zip(as_numpy(reference), as_numpy(maps), strict=True):
        flat = int(a.std() == 0) + int(b.std() == 0)
        rho = spearmanr(a.ravel(), b.ravel()).statistic if not flat else 1.0 if flat == 2 else 0.0
        out["spearman"].append(float(rho))
        out["ssim"].append(float(structural_similarity(_unit(a), _unit(b), data_range=1.0)))
    return out


@dataclass
class SanityResult:
    """One check: each method's similarity to the trained network's maps, step by step."""

    check: str  # "model" (cascading randomisation) or "data" (label randomisation)
    steps: list[str]  # "trained", then what is random at each step
    spearman: dict[str, list[list[float]]]  # method -> step -> image
    ssim: dict[str, list[list[float]]]
    maps: dict[str, list[torch.Tensor]] = field(repr=False)  # method -> step -> maps (N,H,W)
    flag_at: float = FLAG_AT
    info: dict = field(default_factory=dict)

    def mean(self, metric: str, method: str) -> list[float]:
        return [float(np.mean(v)) for v in getattr(self, metric)[method]]

    def flagged(self) -> dict[str, bool]:
        """Methods whose maps are still similar (mean ρ ≥ flag_at) at the last step."""
        return {m: self.mean("spearman", m)[-1] >= self.flag_at for m in self.spearman}

    def table(self) -> list[dict]:
        """JSON-ready rows: step, method, mean Spearman and SSIM over the images."""
        return [{"check": self.check, "step": k, "random": s, "method": m,
                 "spearman": self.mean("spearman", m)[k], "ssim": self.mean("ssim", m)[k]}
                for m in self.spearman for k, s in enumerate(self.steps)]

    def summary(self) -> dict[str, dict]:
        flags = self.flagged()
        return {m: {"spearman": self.mean("spearman", m)[-1], "ssim": self.mean("ssim", m)[-1],
                    "flagged": flags[m]} for m in self.spearman}


def _compare(check: str, models: Iterable[tuple[str, ExplainModel]], x: torch.Tensor, target: torch.Tensor,
             explain: dict[str, Explain], flag_at: float, info: dict | None = None) -> SanityResult:
    """Each method's maps on each model in turn (``models`` may reuse one network, changed between
    steps), compared with its maps on the first."""
    empty = lambda: {m: [] for m in explain}  # noqa: E731
    res = SanityResult(check, [], empty(), empty(), empty(), flag_at, info or {})
    for step, model in models:
        res.steps.append(step)
        for name, fn in explain.items():
            m = fn(model, x, target).detach().cpu()
            sim = similarity(res.maps[name][0] if res.maps[name] else m, m)
            res.maps[name].append(m)
            res.spearman[name].append(sim["spearman"])
            res.ssim[name].append(sim["ssim"])
    return res


def cascading_randomisation(
    model: ExplainModel,
    x: torch.Tensor,
    target: torch.Tensor,
    explain: dict[str, Explain],
    max_layers: int = 12,
    seed: int = 0,
    flag_at: float = FLAG_AT,
) -> SanityResult:
    """Each method's maps on the trained network, then with its layers randomised from the top
    down, one more at each step (:func:`randomisation_layers`)."""
    layers = randomisation_layers(model, max_layers)
    net = copy.deepcopy(model.net)

    def cascade():
        yield "trained", model
        for k, name in enumerate(reversed(layers)):
            reinitialise(net.get_submodule(name), seed + k)
            yield f"+{name or 'all'}", with_net(model, net)

    return _compare("model", cascade(), x, target, explain, flag_at, {"layers": layers})


def check_retrainable(model: ExplainModel) -> None:
    """ConfigError, saying which check applies, for a model dlapps cannot retrain."""
    if model.training_data is None:
        raise ConfigError(f"the data-randomisation check retrains the network, and {model.name} cannot be "
                          "retrained here (only the digits networks of `dlapps adapt` can); the model-"
                          "randomisation check applies: --checks model")


def random_label_model(
    model: ExplainModel,
    epochs: int = 30,
    limit: int = 2000,
    lr: float = 1e-3,
    batch: int = 64,
    seed: int = 0,
) -> tuple[ExplainModel, float]:
    """The architecture re-initialised and trained (Adam, ``epochs`` over ``limit`` training
    images) on permuted labels; with the accuracy it reaches on them (memorisation).

    A plain loop rather than :class:`dlapps.engine.Trainer`: seconds of training, nothing to
    checkpoint, and the model is thrown away after the check."""
    check_retrainable(model)
    if epochs < 1 or limit < 2:
        raise ConfigError(f"label randomisation needs epochs >= 1 and limit >= 2, got {epochs}, {limit}")
    images, labels = model.training_data()
    g = torch.Generator().manual_seed(seed)
    keep = torch.randperm(len(images), generator=g)[:limit]
    images, labels = images[keep].to(model.device), labels[keep][torch.randperm(len(keep), generator=g)]
    labels = labels.to(model.device)
    net = copy.deepcopy(model.net)
    reinitialise(net, seed)
    params = [p.requires_grad_(True) for p in net.parameters()]
    opt = torch.optim.Adam(params, lr=lr)
    net.train()
    with torch.enable_grad():
        for _ in range(epochs):
            for idx in torch.randperm(len(images), generator=g).split(batch):
                opt.zero_grad()
                F.cross_entropy(net(images[idx]), labels[idx]).backward()
                opt.step()
    retrained = with_net(model, net)  # eval mode, parameters frozen
    pred = torch.cat([retrained.predict(b)[0] for b in images.split(256)])
    return retrained, float((pred == labels).float().mean())


def data_randomisation(
    model: ExplainModel,
    x: torch.Tensor,
    target: torch.Tensor,
    explain: dict[str, Explain],
    epochs: int = 30,
    limit: int = 2000,
    seed: int = 0,
    flag_at: float = FLAG_AT,
) -> SanityResult:
    """Each method's maps on the trained network and on the network trained on permuted labels."""
    retrained, accuracy = random_label_model(model, epochs, limit, seed=seed)
    return _compare("data", [("trained", model), ("random labels", retrained)], x, target, explain, flag_at,
                    {"random_label_train_accuracy": accuracy, "epochs": epochs, "images": limit})


CHECKS: Registry[str] = Registry("sanity check")
CHECKS.register("model", "cascading model-parameter randomisation")
CHECKS.register("data", "data (label) randomisation")
