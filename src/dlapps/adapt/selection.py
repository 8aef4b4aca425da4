r"""Choosing a checkpoint without target labels, and calibration under shift.

At the end of every epoch the engine's ``evaluate`` records, besides the test accuracies, the
label-free criteria below, computed from the *training* images of the target (unlabelled) and
labelled *held-out source* images (the source test split), and the expected calibration error on
the target. After training, :func:`pick` reports the target accuracy of the epoch each criterion
chooses, next to the last epoch and the oracle (the best epoch by target test labels — which a
real user cannot compute, marked ``"oracle": true``). Epochs without a criterion's value (one
not computed every epoch) are skipped.

Criteria (the arrow says which way is better):

* ``entropy`` ↓ — mean prediction entropy on the target, (1/n) Σ_j H(p(x_j)).
* ``im`` ↑ — information maximisation, H(mean_j p(x_j)) − mean_j H(p(x_j)): confident *and*
  diverse predictions (Gomes et al. 2010; SHOT).
* ``snd`` ↑ — soft neighbourhood density (Saito et al., ICCV 2021). With p̂_j = p(x_j)/‖p(x_j)‖₂
  the normalised target predictions, S_jk = p̂_j·p̂_k (S_jj = −∞: no point is its own
  neighbour) and Q_j = softmax_k(S_jk/τ), τ = 0.05,
  SND = (1/n) Σ_j H(Q_j) = −(1/n) Σ_j Σ_k Q_jk log Q_jk.
  High when every prediction has many near neighbours (dense, well-separated clusters of
  predictions); identical predictions everywhere reach the maximum log(n − 1), so a model that
  collapsed onto one class scores high too. O(n²) on n predictions: negligible.
* ``dev`` ↓ — deep embedded validation (You et al., ICML 2019): a logistic domain classifier on
  the features gives importance weights w(x) = (n_s/n_t) p(T|x)/p(S|x) on held-out source; the
  risk is the weighted source loss with a control variate,
  R = mean(w ℓ) + η mean(w) − η,  η = −Cov(w ℓ, w)/Var(w).
* ``reverse`` ↑ — reverse validation (Zhong et al. 2010; Ganin et al. 2016) as the papers define
  it: a *reverse* DANN trained from scratch on the target with the model's pseudo-labels (the
  source images its unlabelled target), tested on labelled held-out source
  (:mod:`dlapps.adapt.reverse`). It costs a training of its own (by default about 1.2 epochs
  of the default experiment), so the caller computes it when it chooses and hands the score to
  :func:`criteria`; epochs without it are skipped by :func:`pick`.
* ``reverse-linear`` ↑ — a cheap stand-in for ``reverse``: the reverse classifier is a softmax
  regression on the model's own (frozen) features, fitted on the pseudo-labelled target. It
  retrains no network, but the features it reuses were shaped by the model being judged, so it
  asks less of the pseudo-labels than the real thing.

``ece`` (Guo et al. 2017): Σ_b |B_b|/n · |acc(B_b) − conf(B_b)| over 15 equal-width confidence
bins, on the target test split.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from dlapps.adapt.losses import entropy
from dlapps.errors import ConfigError

# criterion -> (history key, +1 if larger is better else -1)
CRITERIA: dict[str, tuple[str, int]] = {
    "entropy": ("sel_entropy", -1),
    "im": ("sel_im", +1),
    "snd": ("sel_snd", +1),
    "dev": ("sel_dev", -1),
    "reverse": ("sel_reverse", +1),
    "reverse-linear": ("sel_reverse_linear", +1),
}


def expected_calibration_error(probs: torch.Tensor, labels: torch.Tensor, bins: int = 15) -> float:
    confidence, predicted = probs.max(1)
    correct = (predicted == labels).float()
    edges = torch.linspace(0, 1, bins + 1)
    total = 0.0
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        inside = (confidence > lo) & (confidence <= hi)
        if inside.any():
            total += inside.float().mean() * (correct[inside].mean() - confidence[inside].mean()).abs()
    return float(total)


def information_maximization(probs: torch.Tensor) -> float:
    """H(mean p) − mean H(p)."""
    return float(entropy(probs.mean(0, keepdim=True))[0] - entropy(probs).mean())


def fit_linear(x: torch.Tensor, y: torch.Tensor, classes: int, l2: float = 1e-2,
               steps: int = 100) -> Callable[[torch.Tensor], torch.Tensor]:
    """Softmax regression on standardised ``x`` (L-BFGS); returns ``x -> logits``."""
    x = x.float()
    mu, sd = x.mean(0), x.std(0) + 1e-6
    z = (x - mu) / sd
    w = torch.zeros(x.shape[1], classes, requires_grad=True)
    b = torch.zeros(classes, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], lr=1.0, max_iter=steps, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(z @ w + b, y) + l2 * w.pow(2).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    w, b = w.detach(), b.detach()
    return lambda q: ((q.float() - mu) / sd) @ w + b


def dev_risk(fs_train: torch.Tensor, ft_train: torch.Tensor, fs_val: torch.Tensor,
             val_losses: torch.Tensor) -> float:
    """Deep embedded validation risk of a model (lower is better)."""
    x = torch.cat([fs_train, ft_train])
    d = torch.cat([torch.zeros(len(fs_train)), torch.ones(len(ft_train))]).long()
    domain = fit_linear(x, d, 2)
    p = domain(fs_val).softmax(1)
    w = (len(fs_train) / len(ft_train)) * p[:, 1] / p[:, 0].clamp_min(1e-6)
    weighted = w * val_losses
    var = w.var()
    eta = -((weighted - weighted.mean()) * (w - w.mean())).mean() / var if var > 1e-12 else 0.0
    return float(weighted.mean() + eta * w.mean() - eta)


def snd(probs: torch.Tensor, temperature: float = 0.05) -> float:
    """SND of predictions ``probs`` (n × C, n ≥ 2): mean entropy of the rows of
    softmax(P̂ P̂ᵀ / τ) with the diagonal left out (higher is better)."""
    if len(probs) < 2:
        raise ConfigError(f"soft neighbourhood density needs at least 2 predictions, got {len(probs)}")
    unit = F.normalize(probs.float(), dim=1)
    similarity = (unit @ unit.T).fill_diagonal_(float("-inf"))
    return float(entropy((similarity / temperature).softmax(1)).mean())


def reverse_validation_linear(ft: torch.Tensor, pseudo: torch.Tensor, fs_val: torch.Tensor,
                              ys_val: torch.Tensor, classes: int) -> float:
    """Accuracy on held-out source of a softmax regression trained on pseudo-labelled target
    features (the stand-in for :func:`dlapps.adapt.reverse.reverse_validation`)."""
    reverse = fit_linear(ft, pseudo, classes)
    return float((reverse(fs_val).argmax(1) == ys_val).float().mean())


def criteria(fs_train: torch.Tensor, ft_train: torch.Tensor, logits_t_train: torch.Tensor,
             fs_val: torch.Tensor, logits_s_val: torch.Tensor, ys_val: torch.Tensor,
             reverse: float | None = None) -> dict[str, float]:
    """The criteria of one model from its features and logits (rows: samples); ``sel_reverse``
    only when the caller computed ``reverse`` (:func:`dlapps.adapt.reverse.reverse_validation`)."""
    classes = logits_t_train.shape[1]
    probs_t = logits_t_train.float().softmax(1)
    losses = F.cross_entropy(logits_s_val.float(), ys_val, reduction="none")
    return {
        "sel_entropy": float(entropy(probs_t).mean()),
        "sel_im": information_maximization(probs_t),
        "sel_snd": snd(probs_t),
        "sel_dev": dev_risk(fs_train, ft_train, fs_val, losses),
        "sel_reverse_linear": reverse_validation_linear(ft_train, probs_t.argmax(1), fs_val, ys_val,
                                                        classes),
        **({} if reverse is None else {"sel_reverse": reverse}),
    }


def pick(history: list[dict], key: str = "target_acc") -> dict[str, dict]:
    """Per criterion, the epoch it picks and that epoch's target accuracy; plus ``last`` and the
    ``oracle`` (best by target labels). Epochs lacking a criterion's value are skipped."""
    def entry(record: dict, **extra) -> dict:
        return {"epoch": record["epoch"], "target_acc": record[key], "ece": record.get("target_ece"),
                **extra}

    out = {"last": entry(history[-1])}
    for name, (field, sign) in CRITERIA.items():
        scored = [r for r in history if r.get(field) is not None]
        if scored:
            out[name] = entry(max(scored, key=lambda r, f=field, s=sign: s * r[f]))
    out["oracle"] = entry(max(history, key=lambda r: r[key]), oracle=True)
    return out
