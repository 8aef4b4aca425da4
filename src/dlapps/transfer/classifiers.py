"""The classifiers compared on a target task, from cheapest to most expensive.

On frozen features (computed once, cached):

* ``svm``: StandardScaler -> optional PCA -> LinearSVC (squared hinge, L2). C is chosen by
  stratified k-fold cross-validation **on the training split only** (:func:`choose_C` accepts
  only a :class:`Split` whose role is ``"train"``); the test split is touched once, by the final
  model.
* ``probe``: a linear softmax layer on standardised features, trained in torch (full-batch
  AdamW, weight decay) - logistic regression, the usual "linear probe".
* ``fc``: a new fully connected layer as the network's own head would be retrained on a frozen
  backbone: dropout on the raw features, mini-batch SGD with momentum (the course's "new FC
  head, frozen backbone").

On the images, through the whole network (:func:`train_network`):

* ``finetune``: the pretrained network with a fresh head; every layer trains, the backbone with a
  smaller learning rate (``lr * backbone_lr_factor``).
* ``scratch``: the same architecture from random weights, every layer at ``lr``: what training
  the big network on the small dataset directly gives.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from dlapps.errors import ConfigError, DataError

FEATURE_CLASSIFIERS = ("svm", "probe", "fc")
NETWORK_CLASSIFIERS = ("finetune", "scratch")
CLASSIFIERS = FEATURE_CLASSIFIERS + NETWORK_CLASSIFIERS
DEFAULT_CS = (1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0)


@dataclass
class Split:
    """Rows of one split: features or images ``x``, labels ``y``, and which split it is."""

    x: torch.Tensor
    y: torch.Tensor
    role: str  # "train" or "test"

    def __post_init__(self) -> None:
        if len(self.x) != len(self.y):
            raise DataError(f"{self.role} split has {len(self.x)} rows but {len(self.y)} labels")


def check_classes(y: torch.Tensor, what: str = "training set") -> int:
    """Number of classes; a clear error when fewer than 2 are present."""
    present = torch.unique(y)
    if len(present) < 2:
        raise DataError(f"the {what} has {len(present)} class; a classifier needs at least 2")
    return int(y.max()) + 1


def _svm(C: float, pca: int | None, seed: int):
    from sklearn.decomposition import PCA
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import LinearSVC

    steps = [StandardScaler()]
    if pca:
        steps.append(PCA(n_components=pca, random_state=seed))
    steps.append(LinearSVC(C=C, dual="auto", max_iter=1000, random_state=seed))
    return make_pipeline(*steps)


def choose_C(train: Split, Cs: Sequence[float] = DEFAULT_CS, folds: int = 3, pca: int | None = None,
             seed: int = 0) -> tuple[float, list[dict]]:
    """The C with the best mean k-fold accuracy on ``train``, and the whole CV curve.

    Only a training split is accepted: choosing C on test rows would report an optimistic number.
    """
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.model_selection import StratifiedKFold, cross_val_score

    if train.role != "train":
        raise ConfigError(f"C is chosen on the training split only, got the {train.role} split")
    check_classes(train.y)
    x, y = train.x.numpy(), train.y.numpy()
    folds = max(2, min(folds, int(np.bincount(y).min()) if np.bincount(y).min() else 2))
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    curve = []
    for C in Cs:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            scores = cross_val_score(_svm(C, pca, seed), x, y, cv=cv)
        curve.append({"C": float(C), "cv_acc": float(scores.mean()), "cv_std": float(scores.std())})
    best = max(curve, key=lambda r: (r["cv_acc"], -r["C"]))  # ties -> the smaller C
    return best["C"], curve


def svm_classifier(train: Split, test: Split, Cs: Sequence[float] = DEFAULT_CS, folds: int = 3,
                   pca: int | None = None, seed: int = 0, test_curve: bool = False) -> dict:
    """Fit the SVM with C chosen on ``train`` by CV; predict ``test`` once.

    ``test_curve=True`` also reports test accuracy at every C, for the C-sweep figure only
    (computed after C is chosen; it never feeds back into the choice).
    """
    import warnings

    from sklearn.exceptions import ConvergenceWarning

    C, curve = choose_C(train, Cs, folds, pca, seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = _svm(C, pca, seed).fit(train.x.numpy(), train.y.numpy())
        pred = torch.from_numpy(model.predict(test.x.numpy()))
        if test_curve:
            for row in curve:
                fit = _svm(row["C"], pca, seed).fit(train.x.numpy(), train.y.numpy())
                row["test_acc"] = float((fit.predict(test.x.numpy()) == test.y.numpy()).mean())
    return {"pred": pred, "C": C, "cv_curve": curve, "pca": pca}


def train_linear(train: Split, test: Split, *, standardize: bool, dropout: float, optimizer: str,
                 epochs: int, lr: float, weight_decay: float, batch_size: int | None, seed: int) -> dict:
    """A single linear layer on features (the ``probe`` and ``fc`` classifiers)."""
    n_classes = check_classes(train.y)
    x, xt = train.x.float(), test.x.float()
    if standardize:  # statistics of the training split only
        mean, std = x.mean(0), x.std(0).clamp_min(1e-6)
        x, xt = (x - mean) / std, (xt - mean) / std
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    head = nn.Sequential(nn.Dropout(dropout), nn.Linear(x.shape[1], n_classes))
    opt = (torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=weight_decay) if optimizer == "adamw"
           else torch.optim.SGD(head.parameters(), lr=lr, momentum=0.9, weight_decay=weight_decay))
    bs = batch_size or len(x)
    head.train()
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=gen)
        for start in range(0, len(x), bs):
            idx = order[start:start + bs]
            loss = F.cross_entropy(head(x[idx]), train.y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    head.eval()
    with torch.no_grad():
        return {"pred": head(xt).argmax(1), "final_loss": float(loss.detach())}


PROBE = dict(standardize=True, dropout=0.0, optimizer="adamw", epochs=200, lr=1e-2, weight_decay=1e-2,
             batch_size=None)
FC_HEAD = dict(standardize=False, dropout=0.5, optimizer="sgd", epochs=30, lr=1e-2, weight_decay=5e-4,
               batch_size=32)


def train_network(net: nn.Module, head: str, train: Split, test: Split,
                  prepare: Callable[[torch.Tensor], torch.Tensor], *, epochs: int, lr: float,
                  backbone_lr_factor: float, batch_size: int, seed: int, progress: bool = True,
                  desc: str = "train") -> dict:
    """Train every layer of ``net`` on images; the head at ``lr``, the rest at ``lr * factor``.

    ``prepare`` maps a uint8 batch to the network's normalised input. AdamW with a cosine
    learning-rate decay over ``epochs``; the network is in train mode (dropout, batch-norm
    statistics) while training and in eval mode for the test predictions.
    """
    check_classes(train.y)
    if epochs < 1:
        raise ConfigError(f"epochs must be at least 1, got {epochs}")
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    head_params = list(net.get_submodule(head).parameters())
    head_ids = {id(p) for p in head_params}
    body = [p for p in net.parameters() if id(p) not in head_ids]
    opt = torch.optim.AdamW([{"params": body, "lr": lr * backbone_lr_factor}, {"params": head_params}],
                            lr=lr, weight_decay=1e-4)
    steps = epochs * math.ceil(len(train.x) / batch_size)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * s / steps)))
    bar = tqdm(total=steps, desc=desc, unit="step", disable=not progress, leave=False)
    losses = []
    for _ in range(epochs):
        net.train()
        order = torch.randperm(len(train.x), generator=gen)
        total = 0.0
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            if len(idx) < 2:  # batch norm cannot train on one image
                continue
            loss = F.cross_entropy(_logits(net(prepare(train.x[idx]))), train.y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(idx)
            bar.update(1)
        losses.append(total / len(order))
    bar.close()
    return {"pred": predict_network(net, test.x, prepare, batch_size * 2), "epoch_loss": losses}


@torch.no_grad()
def predict_network(net: nn.Module, images: torch.Tensor, prepare: Callable[[torch.Tensor], torch.Tensor],
                    batch_size: int = 128) -> torch.Tensor:
    net.eval()
    return torch.cat([_logits(net(prepare(images[s:s + batch_size]))).argmax(1)
                      for s in range(0, len(images), batch_size)])


def _logits(out: torch.Tensor) -> torch.Tensor:
    return out.flatten(1)  # SqueezeNet's head ends in (N, classes, 1, 1) before its flatten


def timed(fn: Callable[[], dict]) -> dict:
    """Run ``fn`` and add its wall time as ``seconds``."""
    t0 = time.perf_counter()
    out = fn()
    out["seconds"] = time.perf_counter() - t0
    return out
