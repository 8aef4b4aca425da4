r"""DeepCluster (Caron, Bojanowski, Joulin & Douze, ECCV 2018).

Alternate clustering the encoder's features and learning to predict the clusters::

    every epoch:   z_i = L2(whiten(PCA_d(f_θ(x_i))))            (all N pretraining images)
                   y_i = argmin_c ‖z_i − μ_c‖²                   (k-means, k clusters)
                   g ← a freshly initialised linear classifier (D → k)
    every step:    L = (1/B) Σ_b CE(y_{i_b}, g(f_θ(aug(x_b)))),   i_b drawn with p(i) ∝ 1/|cluster(i)|

**Clustering** (:meth:`DeepCluster.refresh`, called by the experiment before training and after
every epoch but the last): the features are reduced by PCA to ``pca_dim`` dimensions, whitened
and L2-normalised (:func:`~dlapps.ssl.metrics.pca_whiten_l2`; the paper: 256 of AlexNet's 4096;
here 32 of the encoder's 128 by default, the same quarter-or-less, which keeps k-means cheap
and stops whitening from blowing up the many near-dead directions of a fresh encoder), then
clustered by k-means (:func:`~dlapps.ssl.metrics.kmeans_fit`, one k-means++ run of at most 20
Lloyd iterations, as the paper's Faiss k-means) with a seed drawn from torch's global RNG, so
a seeded run and a resumed one redo the same clustering.

**k** (option ``clusters``; 0, the default, means 3 × the true number of classes): the paper
finds over-clustering best (k = 10,000 on ImageNet's 1,000 classes). Its 10× ratio (k = 100)
was measured here too (Fashion-MNIST, 10,000 images, 5 epochs, seed 0): the network learnt to
predict only 27% of the pseudo-labels between two clusterings and the NMI with the classes
stayed flat at 0.43; k = 30 gave 0.46 → 0.51 and a better probe, so 3× is the default for
runs this short. The labels themselves are never read; only their number.

**Empty clusters** (:func:`fill_empty_clusters`): the paper reassigns an empty cluster by taking
a random non-empty cluster j (Faiss: with probability ∝ |j| − 1), giving the empty one j's
centroid plus a small random perturbation δ (and j its centroid minus δ) and splitting j's points
between the two by nearness — which is the side of the hyperplane through μ_j normal to δ.
scikit-learn's k-means already relocates centres that empty *during* its iterations, so this
seldom acts; it runs after k-means on whatever is still empty (e.g. with many duplicate
features). If every point of j falls on one side (duplicates), j is split at the median of the
projections instead, so each reassignment fills its cluster.

**Trivial solutions** (the paper's §3.3): besides the empty clusters, images are sampled
uniformly over the clusters — :meth:`DeepCluster.sample_weights` gives image i the weight
1/|cluster(i)| (every cluster's weights sum to 1), which the experiment's sampler uses for the
next epoch — so a huge cluster does not dominate the loss.

**The classifier** is re-initialised after each clustering (cluster ids mean nothing from one
clustering to the next) in place (``reset_parameters``), so the optimizer, built once over
``method.parameters()``, still holds it. Its optimizer state (Adam's moments, SGD's momentum) is
stale after a reset, and a method cannot clear it: the experiment does, after ``refresh``,
``optimizer.state.pop(p, None)`` for every ``p`` in :meth:`DeepCluster.refreshed_parameters`
(Adam and SGD restart a parameter's state lazily when it is missing). The learning rate is
constant (``lr_schedule = "constant"``), as in the paper: a decaying rate leaves the last
clusterings' fresh heads untrained (measured: 3% pseudo-label accuracy in the last epoch of a
cosine schedule).

Training reads the pseudo-label of each image by its index (``assignments[idx]``); images are
augmented by random shifts of up to ``shift`` × side pixels (2 on 28; the paper trains on random
crops and flips, no flips for digits); the features that are clustered are the un-augmented
``embed`` of the experiment. ``pretext_acc`` is the accuracy on the pseudo-labels.
Buffers (checkpointed): ``assignments`` (N,) the current cluster of each image (−1 before the
first clustering), ``previous`` (N,) the clustering before it (NMI(t−1, t) measures how much the
clusters still move: the paper's Fig. 2b), ``counts`` (k,) cluster sizes.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.metrics import normalized_mutual_info_score
from torch import nn

from dlapps.data.augment import random_translate
from dlapps.errors import ConfigError
from dlapps.ssl import metrics
from dlapps.ssl.base import Encoder, PretrainInfo, SslMethod

#: the paper's over-clustering ratio (k = 10,000 for ImageNet's 1,000 classes)
OVERCLUSTER = 3


def whole(v: Any) -> bool:
    """True for a whole number given as int or integral float (not a bool, not a string)."""
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and int(v) == v


def fill_empty_clusters(features, ids, centres, rng: np.random.Generator,
                        scale: float = 1e-3) -> tuple[np.ndarray, np.ndarray]:
    """Refill every empty cluster by splitting a non-empty one (see the module docstring).

    ``features`` (N, D), ``ids`` (N,) in 0..k−1, ``centres`` (k, D); returns new (ids, centres)
    with no empty cluster (requires N ≥ k). ``rng`` chooses the split clusters (∝ size − 1) and
    the perturbations δ (norm ``scale`` × ‖μ_j‖)."""
    x = np.asarray(features, dtype=np.float64)
    ids = np.asarray(ids, dtype=np.int64).copy()
    centres = np.asarray(centres, dtype=np.float64).copy()
    k = len(centres)
    if len(x) < k:
        raise ValueError(f"cannot fill {k} clusters with {len(x)} points")
    counts = np.bincount(ids, minlength=k)
    for e in np.flatnonzero(counts == 0):
        p = np.maximum(counts - 1, 0).astype(np.float64)
        j = int(rng.choice(k, p=p / p.sum()))
        members = np.flatnonzero(ids == j)
        delta = rng.standard_normal(x.shape[1])
        delta *= scale * max(float(np.linalg.norm(centres[j])), 1e-6) / max(np.linalg.norm(delta), 1e-12)
        # nearer to μ_j + δ than to μ_j − δ  ⇔  (x − μ_j)·δ > 0
        proj = (x[members] - centres[j]) @ delta
        to_new = proj > 0
        if to_new.all() or not to_new.any():
            to_new = np.zeros(len(members), dtype=bool)
            to_new[np.argsort(proj, kind="stable")[len(members) // 2:]] = True
        ids[members[to_new]] = e
        centres[e], centres[j] = x[members[to_new]].mean(0), x[members[~to_new]].mean(0)
        counts[e], counts[j] = int(to_new.sum()), int((~to_new).sum())
    return ids, centres.astype(np.float32)


class DeepCluster(SslMethod):
    name = "deepcluster"
    description = "predict k-means clusters of its own features, re-clustered every epoch (Caron et al. 2018)"
    family = "clustering"
    lr_schedule = "constant"
    options = {"clusters": 0, "pca_dim": 32, "kmeans_iters": metrics.KMEANS_ITERS, "shift": 0.0625}

    @classmethod
    def check(cls, options: dict[str, Any], size: int) -> None:
        k, d, it, shift = (options[key] for key in ("clusters", "pca_dim", "kmeans_iters", "shift"))
        if not whole(k) or k < 0 or k == 1:
            raise ConfigError(f"deepcluster.clusters must be 0 (= {OVERCLUSTER} × classes) or a whole "
                              f"number ≥ 2, got {k}")
        if not whole(d) or d < 1:
            raise ConfigError(f"deepcluster.pca_dim must be a whole number ≥ 1, got {d}")
        if not whole(it) or it < 1:
            raise ConfigError(f"deepcluster.kmeans_iters must be a whole number ≥ 1, got {it}")
        if isinstance(shift, bool) or not isinstance(shift, (int, float)) or not 0 <= shift < 0.5:
            raise ConfigError(f"deepcluster.shift must be a fraction of the side in [0, 0.5), got {shift}")

    def __init__(self, encoder: Encoder, info: PretrainInfo, config) -> None:
        super().__init__(encoder, info, config)
        self.k = int(self.option("clusters")) or OVERCLUSTER * info.num_classes
        if self.k > info.n_images:
            raise ConfigError(f"deepcluster.clusters ({self.k}) exceeds the {info.n_images} pretraining "
                              "images; give fewer clusters")
        self.pca_dim = min(int(self.option("pca_dim")), encoder.dim)
        self.kmeans_iters = int(self.option("kmeans_iters"))
        self.max_shift = round(float(self.option("shift")) * info.size)
        self.head = nn.Linear(encoder.dim, self.k)
        n = info.n_images
        self.register_buffer("assignments", torch.full((n,), -1, dtype=torch.long))
        self.register_buffer("previous", torch.full((n,), -1, dtype=torch.long))
        self.register_buffer("counts", torch.zeros(self.k, dtype=torch.long))
        self._ready = False

    @property
    def clustered(self) -> bool:
        """True once a clustering has been made (by :meth:`refresh`, or loaded from a checkpoint)."""
        return bool(self.assignments.min() >= 0)

    def refreshed_parameters(self) -> list[nn.Parameter]:
        """The parameters :meth:`refresh` re-initialises (whose optimizer state is then stale)."""
        return list(self.head.parameters())

    @torch.no_grad()
    def refresh(self, features: torch.Tensor, epoch: int) -> dict[str, float]:
        """Cluster ``features`` (N, D) into new pseudo-labels and re-initialise the classifier.

        Returns statistics worth logging: ``nmi_previous`` (NMI between this clustering and the
        one before; NaN the first time), ``empty_filled`` (clusters k-means left empty),
        ``largest_cluster`` (its share of the images)."""
        x = features.detach().float().cpu().numpy()
        if x.shape[0] != self.info.n_images:
            raise ValueError(f"refresh needs the features of all {self.info.n_images} pretraining images, "
                             f"got {x.shape[0]}")
        seed = int(torch.randint(0, 2**31 - 1, (1,)).item())
        z = metrics.pca_whiten_l2(x, self.pca_dim)
        ids, centres = metrics.kmeans_fit(z, self.k, seed, max_iter=self.kmeans_iters)
        empty = int(self.k - len(np.unique(ids)))
        if empty:
            ids, centres = fill_empty_clusters(z, ids, centres, np.random.default_rng(seed))
        old = self.assignments.cpu().numpy().copy()
        new = torch.from_numpy(ids)
        counts = torch.bincount(new, minlength=self.k)
        self.previous.copy_(self.assignments)
        self.assignments.copy_(new)
        self.counts.copy_(counts)
        self.head.reset_parameters()
        self._ready = True
        nmi = float(normalized_mutual_info_score(old, ids)) if old.min() >= 0 else math.nan
        return {"nmi_previous": nmi, "empty_filled": float(empty),
                "largest_cluster": float(counts.max()) / len(ids)}

    def sample_weights(self) -> torch.Tensor | None:
        """1/|cluster(i)| per image (N,) float64 on the CPU (uniform over clusters); None before
        the first clustering."""
        if not self.clustered:
            return None
        a = self.assignments.cpu()
        return 1.0 / self.counts.cpu().double()[a]

    def forward(self, x: torch.Tensor, idx: torch.Tensor, progress: float) -> dict[str, Any]:
        if not self._ready:
            if not self.clustered:
                raise RuntimeError("deepcluster: refresh(features) must run before training "
                                   "(there are no pseudo-labels yet)")
            self._ready = True
        y = self.assignments[idx.to(self.assignments.device)]
        logits = self.head(self.encoder(random_translate(x, self.max_shift)))
        loss = F.cross_entropy(logits, y)
        return {"loss": loss, "pretext_acc": (logits.argmax(1) == y).float().mean()}
