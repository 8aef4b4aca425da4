"""Adversarial examples in [0,1] pixel space: the fooling image and three classic attacks.

All attacks take a batch ``x`` (N,3,H,W) in [0,1]; the network's normalisation is inside the
model, so every step is taken, projected and clipped in pixel space. Each returns an
:class:`AttackResult` with, per image, ``success``, the iterations used, the final prediction and
score, and the L2 / L∞ norms of the perturbation. A per-image goal is checked *before* every step
and an image stops as soon as it reaches it, so

* an image that already meets the goal (``target`` = current prediction) reports 0 iterations and
  the note ``already the target`` instead of being pushed further;
* an image that does not succeed within the budget is reported with ``success=False`` and its
  numbers (never an exception).

Attacks (targeted when ``target`` is given, else untargeted against the clean prediction):

* ``naive`` — the fooling image of CS231n: gradient ascent on the target score S_t with a step
  of fixed L2 length, ``x ← clip(x + lr · ∇S_t / ‖∇S_t‖₂)``, until argmax = t.
* ``fgsm`` (Goodfellow et al. 2015) — one step ``x + ε · sign(∇_x L)`` (L = cross-entropy; minus
  the sign of the target's loss when targeted), then clip to [0,1].
* ``pgd`` (Madry et al. 2018) — iterated FGSM-like steps of size α projected back onto the L∞ or
  L2 ball of radius ε around x (α = 2.5 ε / steps by default); no random start, so the result is
  deterministic and an image stops at the first step that succeeds.
* ``deepfool`` (Moosavi-Dezfooli et al. 2016) — linearise the classifier around the current
  point, step to the nearest linearised decision boundary among the top ``candidates`` classes:
  ``r = (|f_l| + 1e-4) / ‖w_l‖² · w_l``, ``l = argmin_k |f_k| / ‖w_k‖``, with f_k = S_k − S_ref,
  w_k = ∇f_k; the accumulated r is scaled by (1 + overshoot). Targeted: the only candidate is t.
  All images are processed as one batch; finished images drop out of the batch.

:func:`success_curve` gives the success rate against ε in one call (foolbox style): FGSM and PGD
run once per ε; minimum-perturbation attacks (naive, DeepFool) run once and count an image as a
success at ε when its perturbation's norm is ≤ ε. :data:`ATTACKS` registers them by name with
their norm and default budget.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from dlapps.errors import ConfigError, UnknownNameError
from dlapps.explain.models import ExplainModel
from dlapps.registry import Registry

ALREADY = "already the target: nothing to do"


@dataclass
class AttackResult:
    """Per-image outcome of one attack on one batch (tensors of length N on the CPU)."""

    method: str
    x_adv: torch.Tensor
    original: torch.Tensor  # clean prediction
    target: torch.Tensor | None  # the class aimed at (targeted attacks)
    pred: torch.Tensor  # prediction on x_adv
    prob: torch.Tensor  # softmax probability of pred on x_adv
    goal_prob: torch.Tensor  # target's probability (targeted) or the original class's (untargeted)
    goal_score: torch.Tensor  # the corresponding logit
    success: torch.Tensor
    iterations: torch.Tensor
    l2: torch.Tensor
    linf: torch.Tensor
    seconds: float  # wall time per image (batch time / N)
    eps: float | None = None
    notes: list[str] = field(default_factory=list)

    def rows(self, names: Sequence[str], classes: Sequence[str]) -> list[dict]:
        """One JSON-ready dict per image."""
        out = []
        for i, name in enumerate(names):
            out.append(
                {
                    "image": name,
                    "method": self.method,
                    "eps": self.eps,
                    "success": bool(self.success[i]),
                    "iterations": int(self.iterations[i]),
                    "l2": float(self.l2[i]),
                    "linf": float(self.linf[i]),
                    "seconds": round(self.seconds, 4),
                    "original": classes[int(self.original[i])],
                    "target": None if self.target is None else classes[int(self.target[i])],
                    "prediction": classes[int(self.pred[i])],
                    "probability": float(self.prob[i]),
                    "goal_probability": float(self.goal_prob[i]),
                    "goal_score": float(self.goal_score[i]),
                    "note": self.notes[i],
                }
            )
        return out


Step = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def _iterate(
    method: str,
    model: ExplainModel,
    x: torch.Tensor,
    target: torch.Tensor | None,
    make_step: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], Step],
    max_iter: int,
    eps: float | None = None,
) -> AttackResult:
    """The loop every attack shares: check each image's goal, then step the ones not there yet.

    ``make_step(x0, reference, goal)`` returns ``step(xa, logits, idx)`` -> new points for the
    active images ``idx`` (``xa`` requires grad, ``logits = net(xa)``); ``reference`` is the
    clean prediction (untargeted) and ``goal`` the target (targeted) or None.
    """
    start = time.perf_counter()
    net, device = model.net, model.device
    x = x.detach().to(device)
    original = model.predict(x)[0]
    goal = None if target is None else target.to(device).expand(len(x)).clone()
    n = len(x)
    x_adv, done = x.clone(), torch.zeros(n, dtype=torch.bool, device=device)
    iterations = torch.full((n,), max_iter, dtype=torch.long, device=device)
    step = make_step(x, original, goal)
    for it in range(max_iter + 1):
        idx = (~done).nonzero().squeeze(1)
        if len(idx) == 0:
            break
        xa = x_adv[idx].requires_grad_(True)
        with torch.enable_grad():
            logits = net(xa)
        pred = logits.argmax(1)
        hit = pred == goal[idx] if goal is not None else pred != original[idx]
        done[idx[hit]], iterations[idx[hit]] = True, it
        if it == max_iter or hit.all():
            break
        new = step(xa, logits, idx).detach()
        x_adv[idx[~hit]] = new[~hit].clamp(0, 1)
    with torch.no_grad():
        logits = net(x_adv)
    probs = logits.softmax(1)
    prob, pred = probs.max(1)
    ref = (goal if goal is not None else original).view(-1, 1)
    success = pred == goal if goal is not None else pred != original
    delta = (x_adv - x).flatten(1)
    notes = ["" for _ in range(n)]
    if goal is not None:
        notes = [ALREADY if bool(o == t) else "" for o, t in zip(original, goal, strict=True)]
    notes = [
        nt or ("" if s else f"failed within {max_iter} iterations")
        for nt, s in zip(notes, success, strict=True)
    ]
    cpu = lambda t: t.detach().cpu()  # noqa: E731
    return AttackResult(
        method,
        cpu(x_adv),
        cpu(original),
        None if goal is None else cpu(goal),
        cpu(pred),
        cpu(prob),
        cpu(probs.gather(1, ref)[:, 0]),
        cpu(logits.gather(1, ref)[:, 0]),
        cpu(success),
        cpu(iterations),
        cpu(delta.norm(dim=1)),
        cpu(delta.abs().amax(1)),
        (time.perf_counter() - start) / n,
        eps,
        notes,
    )


def _grad(out: torch.Tensor, xa: torch.Tensor, retain: bool = False) -> torch.Tensor:
    (g,) = torch.autograd.grad(out, xa, retain_graph=retain)
    return g


def _unit_l2(g: torch.Tensor) -> torch.Tensor:
    return g / g.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, 1, 1, 1)


def loss_gradient(
    logits: torch.Tensor, xa: torch.Tensor, labels: torch.Tensor, targeted: bool
) -> torch.Tensor:
    """The direction that moves towards the goal: ∇L(y) (untargeted) or −∇L(t) (targeted)."""
    g = _grad(F.cross_entropy(logits, labels, reduction="sum"), xa)
    return -g if targeted else g


def fgsm_perturbation(
    model: ExplainModel, x: torch.Tensor, labels: torch.Tensor, eps: float, targeted: bool = False
) -> torch.Tensor:
    """FGSM's δ = ±ε · sign(∇_x L) *before* clipping: every pixel moves by exactly ε (or 0)."""
    xa = x.detach().to(model.device).requires_grad_(True)
    with torch.enable_grad():
        logits = model.net(xa)
        return eps * loss_gradient(logits, xa, labels.to(model.device), targeted).sign()


def naive(
    model: ExplainModel, x: torch.Tensor, target: torch.Tensor, lr: float = 0.5, max_iter: int = 100
) -> AttackResult:
    """Fooling image: steps of L2 length ``lr`` up the target's score until argmax = target."""
    if target is None:
        raise ConfigError("the naive fooling attack needs a target class")

    def make_step(x0, ref, goal):
        def step(xa, logits, idx):
            g = _grad(logits.gather(1, goal[idx].view(-1, 1)).sum(), xa)
            return xa + lr * _unit_l2(g)

        return step

    return _iterate("naive", model, x, target, make_step, max_iter)


def pgd(
    model: ExplainModel,
    x: torch.Tensor,
    eps: float,
    target: torch.Tensor | None = None,
    norm: str = "linf",
    steps: int = 20,
    alpha: float | None = None,
) -> AttackResult:
    """Projected gradient descent on the cross-entropy inside the ``norm`` ball of radius ``eps``."""
    if norm not in ("linf", "l2"):
        raise UnknownNameError("norm", norm, ["linf", "l2"])
    if eps <= 0 or steps < 1:
        raise ConfigError(f"PGD needs eps > 0 and steps >= 1 (got eps={eps}, steps={steps})")
    alpha = 2.5 * eps / steps if alpha is None else alpha

    def make_step(x0, ref, goal):
        def step(xa, logits, idx):
            labels = goal[idx] if goal is not None else ref[idx]
            g = loss_gradient(logits, xa, labels, goal is not None)
            moved = xa + alpha * (g.sign() if norm == "linf" else _unit_l2(g))
            return x0[idx] + project(moved - x0[idx], eps, norm)

        return step

    name = "fgsm" if steps == 1 and alpha == eps and norm == "linf" else f"pgd-{norm}"
    return _iterate(name, model, x, target, make_step, steps, eps)


def project(delta: torch.Tensor, eps: float, norm: str) -> torch.Tensor:
    """Nearest point of the ``norm`` ball of radius ``eps`` (per image)."""
    if norm == "linf":
        return delta.clamp(-eps, eps)
    scale = (eps / delta.flatten(1).norm(dim=1).clamp_min(1e-12)).clamp(max=1.0)
    return delta * scale.view(-1, 1, 1, 1)


def fgsm(
    model: ExplainModel, x: torch.Tensor, eps: float, target: torch.Tensor | None = None
) -> AttackResult:
    """One signed-gradient step of size ``eps`` (= PGD with one step, α = ε, L∞)."""
    return pgd(model, x, eps, target, norm="linf", steps=1, alpha=eps)


def deepfool(
    model: ExplainModel,
    x: torch.Tensor,
    target: torch.Tensor | None = None,
    candidates: int = 10,
    overshoot: float = 0.02,
    max_iter: int = 50,
) -> AttackResult:
    """Batched DeepFool (L2): iterated steps to the nearest linearised class boundary."""

    def make_step(x0, ref, goal):
        r_total = torch.zeros_like(x0)
        with torch.no_grad():
            top = model.net(x0).topk(min(candidates + 1, len(model.classes)), dim=1).indices
        others = [row[row != r][:candidates] for row, r in zip(top, ref, strict=True)]
        cands = goal.view(-1, 1) if goal is not None else torch.stack(others)

        def step(xa, logits, idx):
            current = logits.argmax(1) if goal is not None else ref[idx]
            g_ref = _grad(logits.gather(1, current.view(-1, 1)).sum(), xa, retain=True)
            best_dist = torch.full((len(idx),), float("inf"), device=xa.device)
            best_r = torch.zeros_like(xa)
            for j in range(cands.shape[1]):
                k = cands[idx, j]
                f = (logits.gather(1, k.view(-1, 1)) - logits.gather(1, current.view(-1, 1)))[:, 0].detach()
                w = _grad(logits.gather(1, k.view(-1, 1)).sum(), xa, retain=True) - g_ref
                wn = w.flatten(1).norm(dim=1).clamp_min(1e-12)
                dist = f.abs() / wn
                better = (dist < best_dist) & (k != current)
                r = ((f.abs() + 1e-4) / wn**2).view(-1, 1, 1, 1) * w
                best_dist = torch.where(better, dist, best_dist)
                best_r = torch.where(better.view(-1, 1, 1, 1), r, best_r)
            r_total[idx] += best_r
            return x0[idx] + (1 + overshoot) * r_total[idx]

        return step

    return _iterate("deepfool", model, x, target, make_step, max_iter)


@dataclass(frozen=True)
class AttackSpec:
    """What the runner needs to know about an attack besides its function."""

    run: Callable[..., AttackResult]  # (model, x, target, eps, **options) -> AttackResult
    norm: str  # the norm its ε is measured in: "linf" or "l2"
    minimal: bool  # a minimum-perturbation attack (no ε): run once, success at ε when ‖δ‖ ≤ ε
    default_eps: float | None = None  # the budget when none is given (ε attacks)
    options: tuple[str, ...] = ()  # the settings the command line passes through (max_iter)
    needs_target: bool = False


ATTACKS: Registry[AttackSpec] = Registry("attack")
ATTACKS.register("naive", AttackSpec(
    lambda model, x, target, eps, **o: naive(model, x, target, **o), "l2", True,
    options=("max_iter",), needs_target=True))
ATTACKS.register("fgsm", AttackSpec(
    lambda model, x, target, eps, **o: fgsm(model, x, eps, target), "linf", False, 2 / 255))
ATTACKS.register("pgd", AttackSpec(
    lambda model, x, target, eps, **o: pgd(model, x, eps, target, norm="linf", **o), "linf", False, 2 / 255))
ATTACKS.register("pgd-l2", AttackSpec(
    lambda model, x, target, eps, **o: pgd(model, x, eps, target, norm="l2", **o), "l2", False, 0.5))
ATTACKS.register("deepfool", AttackSpec(
    lambda model, x, target, eps, **o: deepfool(model, x, target, **o), "l2", True, options=("max_iter",)))


def run_attack(
    model: ExplainModel,
    x: torch.Tensor,
    method: str,
    target: torch.Tensor | None = None,
    eps: float | None = None,
    **options,
) -> AttackResult:
    """Dispatch by name (see :data:`ATTACKS`): ``naive``, ``fgsm``, ``pgd`` (L∞), ``pgd-l2`` or
    ``deepfool``; ``eps`` defaults to the attack's own budget."""
    spec = ATTACKS[method]
    return spec.run(model, x, target, spec.default_eps if eps is None else eps, **options)


def success_curve(
    model: ExplainModel,
    x: torch.Tensor,
    method: str,
    epsilons: Sequence[float],
    target: torch.Tensor | None = None,
    **options,
) -> list[dict]:
    """Success rate (and mean norms of the successful perturbations) for each ε, in one call.

    ε is measured in the attack's own norm (``ATTACKS[method].norm``: L∞ for FGSM and PGD, L2 for
    the rest).
    """
    spec = ATTACKS[method]
    if spec.minimal:
        res = run_attack(model, x, method, target, **options)
        runs = [(eps, res, (res.linf if spec.norm == "linf" else res.l2) <= eps + 1e-9) for eps in epsilons]
    else:
        runs = []
        for eps in epsilons:
            res = run_attack(model, x, method, target, eps, **options)
            runs.append((eps, res, torch.ones_like(res.success)))
    curve = []
    for eps, res, within in runs:
        ok = res.success & within
        curve.append(
            {
                "eps": float(eps),
                "success_rate": float(ok.float().mean()),
                "mean_l2": float(res.l2[ok].mean()) if ok.any() else None,
                "mean_linf": float(res.linf[ok].mean()) if ok.any() else None,
            }
        )
    return curve
