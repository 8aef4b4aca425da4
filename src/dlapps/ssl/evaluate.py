"""What an encoder's features are worth: the same four judges for every method.

* **Linear probe** — the encoder frozen; a multinomial logistic regression (scikit-learn, L-BFGS,
  C = ``probe_c`` fixed — never tuned on test labels) on standardised features of a
  class-balanced labelled subset of the pretraining set (1%, 10%, 100% ...); test accuracy.
* **k-NN** — cosine similarity between L2-normalised test and pretraining features; the k
  nearest vote with weights exp(s/τ) (Wu et al. 2018; solo-learn's and lightly's k-NN monitor);
  every pretraining label is used.
* **Clustering** — k-means (k = the number of classes) and fuzzy c-means on the L2-normalised
  test features, scored against the true classes with NMI, ARI and clustering accuracy (the
  Hungarian matching of clusters to classes).
* **Fine-tuning with few labels** — the encoder and a fresh linear head trained end to end
  (Adam, ``finetune_steps`` steps of 64 labelled images, 2-px random shifts) by the project's
  one engine; test accuracy. From the ``random`` baseline's encoder this is training from
  scratch on the same labels.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from dlapps.data.augment import random_translate
from dlapps.engine import Labelled, PairedBatches, Trainer
from dlapps.engine.batches import batched
from dlapps.engine.schedules import lr_schedule
from dlapps.ssl.metrics import clustering_scores, fuzzifier, fuzzy_cmeans, kmeans


def linear_probe(train_f: torch.Tensor, train_y: torch.Tensor, test_f: torch.Tensor,
                 test_y: torch.Tensor, c: float = 1.0, seed: int = 0, iters: int = 200) -> float:
    """Test accuracy of a multinomial logistic regression on frozen features, standardised on the
    training rows. The objective is scikit-learn's ``LogisticRegression(C=c)``:
    ½‖W‖² + C·Σᵢ CE(W fᵢ + b, yᵢ) (the bias not penalised), minimised by full-batch L-BFGS in
    torch (strong-Wolfe line search, at most ``iters`` iterations: scikit-learn stops at 100 by
    default) — tests/test_ssl.py checks the two agree."""
    torch.manual_seed(seed)
    mean, std = train_f.mean(0), train_f.std(0, unbiased=False).clamp_min(1e-8)
    x, xt = ((train_f - mean) / std).float(), ((test_f - mean) / std).float()
    classes = int(max(train_y.max(), test_y.max())) + 1
    w = torch.zeros(x.shape[1], classes, dtype=torch.float32, requires_grad=True)
    b = torch.zeros(classes, dtype=torch.float32, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], lr=1, max_iter=iters, tolerance_grad=1e-5, tolerance_change=1e-9,
                            history_size=20, line_search_fn="strong_wolfe")
    n = len(train_y)

    def closure():
        opt.zero_grad()
        # divided by C·n: the same minimiser, a loss of order one for the line search
        loss = F.cross_entropy(x @ w + b, train_y, reduction="mean") + (w * w).sum() / (2 * c * n)
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        return float(((xt @ w + b).argmax(1) == test_y).double().mean())


def knn_accuracy(train_f: torch.Tensor, train_y: torch.Tensor, test_f: torch.Tensor,
                 test_y: torch.Tensor, k: int = 20, temperature: float = 0.07) -> float:
    """Weighted k-NN accuracy with cosine similarity (see the module docstring)."""
    train = F.normalize(train_f.float(), dim=1)
    classes = int(max(train_y.max(), test_y.max())) + 1
    k = min(k, len(train))
    correct = 0
    for chunk, y in zip(F.normalize(test_f.float(), dim=1).split(1000), test_y.split(1000), strict=True):
        sims, where = (chunk @ train.T).topk(k, dim=1)
        votes = torch.zeros(len(chunk), classes).scatter_add_(1, train_y[where], (sims / temperature).exp())
        correct += int((votes.argmax(1) == y).sum())
    return correct / len(test_y)


def cluster_features(features: torch.Tensor, labels: torch.Tensor, seed: int) -> dict:
    """k-means and fuzzy c-means (k = number of classes; the fuzzifier m of Schwämmle & Jensen
    for the features' size, since m = 2 blurs every membership to 1/k in many dimensions) on
    L2-normalised features, scored."""
    x = F.normalize(features.float(), dim=1).numpy().astype(np.float32)
    k = int(labels.max()) + 1
    y = labels.numpy()
    m = fuzzifier(*x.shape)
    _, fcm_ids = fuzzy_cmeans(x, k, seed, m=m)
    return {"kmeans": clustering_scores(kmeans(x, k, seed), y),
            "fcm": {**clustering_scores(fcm_ids, y), "m": m}}


class FineTune(nn.Module):
    """The encoder and a fresh linear head. ``model(x)`` gives logits; the engine's automatic
    mode calls ``model(x, y, None, None, progress)`` and gets the loss of shifted copies."""

    def __init__(self, encoder: nn.Module, num_classes: int, shift: int = 2) -> None:
        super().__init__()
        self.encoder, self.shift = encoder, shift
        self.head = nn.Linear(encoder.dim, num_classes)

    def forward(self, x, y=None, _xt=None, _yt=None, progress: float = 0.0):
        if y is None:
            return self.head(self.encoder(x))
        logits = self.head(self.encoder(random_translate(x, self.shift)))
        return {"loss": F.cross_entropy(logits, y), "acc": (logits.argmax(1) == y).float().mean()}


def finetune(encoder: nn.Module, labelled: Labelled, test: Labelled, num_classes: int, steps: int,
             lr: float, seed: int, device: torch.device, amp: bool = True) -> float:
    """Fine-tune ``encoder`` (a copy is trained; the argument is left as it was) with a new head
    on ``labelled`` for about ``steps`` Adam steps (whole epochs); test accuracy."""
    import copy

    from dlapps.engine import seed_everything

    seed_everything(seed)
    model = FineTune(copy.deepcopy(encoder), num_classes)
    batch = min(64, len(labelled.y))
    batches = PairedBatches(labelled, None, batch, seed)
    epochs = max(1, math.ceil(steps / batches.steps_per_epoch))
    trainer = Trainer(model, batches, torch.optim.Adam(model.parameters(), lr=lr),
                      lr_schedule("cosine", lr), epochs, None, device=device, amp=amp, progress=False,
                      tensorboard=False)
    trainer.fit()
    model.eval()
    pred = batched(model, test.x, device).argmax(1)
    return float((pred == test.y).float().mean())
