"""Warnings a user reads before trusting a domain adaptation number.

A run on a new pair can end worse than doing nothing, and its table alone does not say so. Each
cell's history is checked for the failure signatures below; none reads a target label (the
target's *predicted* classes are counted on its unlabelled training images, the source's
accuracy is measured on its labelled test split):

* **source stuck** — the source test accuracy at the last epoch is under 1.5 / C (C classes):
  the labelled task itself was never learned, so no target number can be trusted.
* **domain classifier at chance from the start** — its accuracy is ≤ 55 % at the first epoch and
  never above 60 %: the domain term had nothing to push against (features collapsed, or it never
  engaged).
* **domain classifier at 100 % at the end** — ≥ 99 % at the last epoch: the features were not
  aligned at all.
* **collapse** — the predicted classes on the target have an effective number
  exp(H(mean_j onehot(argmax f(x_j)))) under C / 2 at the last epoch.
* **selection disagrees** — most label-free criteria (entropy, IM, SND, DEV, reverse validation)
  prefer an epoch in the first three quarters of training: by their account the model got worse
  after it, and the last epoch, which the table reports, is not what they would have chosen
  (picks among the last epochs are noise, not a warning).

:func:`cell_warnings` gives one line per signature found; :func:`method_warnings` merges a
method's cells into lines that say on how many seeds each appeared.
"""

from __future__ import annotations

from collections import Counter

import torch

#: the label-free criteria whose picks are compared with the last epoch
LABEL_FREE = ("entropy", "im", "snd", "dev", "reverse")


def effective_classes(logits: torch.Tensor) -> float:
    """exp of the entropy of the predicted-class histogram: C when every class is predicted
    equally often, 1 when every prediction is the same class."""
    return perplexity(torch.bincount(logits.argmax(1), minlength=logits.shape[1]).float())


def perplexity(counts: torch.Tensor) -> float:
    """exp H of the distribution ``counts`` (normalised): K for K equal classes, 1 for one."""
    share = counts.float() / counts.float().sum()
    share = share[share > 0]
    return float(torch.exp(-(share * share.log()).sum()))


def cell_warnings(history: list[dict], selection: dict | None, classes: int) -> list[str]:
    """The failure signatures of one cell (see the module docstring), one line each."""
    out: list[str] = []
    last = history[-1]
    if last["source_acc"] < 1.5 / classes:
        out.append(f"source stuck: source test accuracy {last['source_acc']:.2f} is at chance — "
                   "the labelled task was never learned")
    domain = [r["domain_acc"] for r in history if r.get("domain_acc") is not None]
    if domain and domain[0] <= 0.55 and max(domain) <= 0.60:
        out.append(f"domain classifier at chance: from the first epoch on (at most {max(domain):.2f})")
    if domain and domain[-1] >= 0.99:
        out.append(f"domains not aligned: the domain classifier is at {domain[-1]:.0%} at the end")
    k = last.get("target_classes")
    if k is not None and k < classes / 2:
        out.append(f"collapse: target predictions spread over {k:.1f} effective classes of {classes}")
    if selection:
        picks = {c: selection[c]["epoch"] for c in LABEL_FREE if c in selection}
        earlier = [c for c, e in picks.items() if e <= 0.75 * last["epoch"]]
        if picks and len(earlier) > len(picks) / 2:
            epochs = Counter(picks[c] for c in earlier).most_common(1)[0][0]
            out.append(f"selection disagrees: {len(earlier)} of {len(picks)} label-free criteria "
                       f"prefer an early epoch to the last (most often epoch {epochs} of {last['epoch']})")
    return out


def method_warnings(cells: list[dict]) -> list[str]:
    """The warnings of a method's cells, each kind once, with the seeds it appeared on."""
    seen: dict[str, list[int]] = {}
    for cell in cells:
        for line in cell.get("warnings") or []:
            seen.setdefault(line.split(":")[0], []).append(cell["seed"])
    return [f"{kind} (seed{'s' * (len(s) > 1)} {', '.join(map(str, s))} of {len(cells)})"
            for kind, s in seen.items()]
