r"""Clustering scores and clustering tools (numpy / scikit-learn / scipy), shared by every method.

**Scores** of a clustering ``pred`` against the true classes ``true`` (N,):

* NMI — normalised mutual information I(pred; true) / mean(H(pred), H(true)) (arithmetic mean,
  scikit-learn's default), 1 for a clustering that names the classes up to renaming.
* ARI — adjusted Rand index: the fraction of agreeing pairs, corrected for chance (0 for a random
  clustering, 1 for a perfect one, negative possible).
* ACC — clustering accuracy: the best one-to-one matching of clusters to classes (the Hungarian
  algorithm on the contingency matrix C, C[c, y] = #{i : pred_i = c, true_i = y}),
  ACC = max_σ Σ_c C[c, σ(c)] / N. When there are more clusters than classes (DeepCluster's
  over-clustering) each class still takes one cluster at most — many-to-one is *not* allowed —
  and the images of the unmatched clusters count as wrong, so over-clustering is penalised
  (NMI is the fairer score there); with fewer clusters than classes the unmatched classes are wrong.

**Tools**

* :func:`kmeans` / :func:`kmeans_fit` — scikit-learn's Lloyd k-means, k-means++ seeding, one
  run (``n_init=1``) of at most 20 iterations by default: DeepCluster's setting (its Faiss
  k-means ran 20 iterations, one redo). Measured on 20,000 × 128 float32 (10 overlapping
  Gaussian blobs) on 2 cores shared with other jobs (so the spread is wide): one run of at most 20
  iterations took 0.5–1.6 s for k = 10 and 0.7–8.5 s for k = 100 (1.6–3.8 s when allowed to
  converge, 31 iterations); ``n_init=3`` took 3–34 s for k = 100, and Elkan's variant was no
  faster (2–20 s). On the 32 PCA dimensions DeepCluster actually clusters, k = 100 took
  0.2–0.5 s; a whole :meth:`~dlapps.ssl.deepcluster.DeepCluster.refresh` of 20,000 images 1.5–2 s.
* :func:`pca_whiten_l2` — DeepCluster's preprocessing: PCA to ``dim`` components, each divided
  by its standard deviation (whitening), then every row scaled to unit L2 norm. Computed from
  the eigendecomposition of the D × D covariance, then ``/ sqrt(variance + ε)``: scikit-learn's
  ``PCA(whiten=True)`` up to each axis's sign and the guard ε, which keeps a component of zero
  variance (a dead ReLU channel of a fresh encoder) finite. (scikit-learn's full SVD of the
  N × D matrix took 3.8 s on 20,000 × 128 on the shared 2 cores; the covariance route 0.1 s.)
* :func:`fuzzy_cmeans` — fuzzy c-means (Bezdek 1981), by hand: with fuzzifier m > 1, alternate

      c_j  = Σ_i u_ij^m x_i / Σ_i u_ij^m
      u_ij = 1 / Σ_l (‖x_i − c_j‖ / ‖x_i − c_l‖)^(2/(m−1))

  until the memberships move less than ``tol``. The membership update is a softmax over j of
  −log‖x_i − c_j‖² / (m − 1), computed in log space so that m → 1⁺ (exponents of hundreds) does
  not overflow; as m → 1⁺ it tends to k-means's hard assignment. A point on a centre
  (distance 0) belongs to that centre alone (shared equally among coinciding centres).
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment
from sklearn.cluster import KMeans, kmeans_plusplus
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

#: DeepCluster's k-means budget (Faiss: 20 iterations, one redo)
KMEANS_ITERS = 20


def _labels(a, name: str) -> np.ndarray:
    a = np.asarray(a)
    if a.ndim != 1:
        raise ValueError(f"{name} must be one label per item (1-d), got shape {a.shape}")
    return a


def _pair(pred, true) -> tuple[np.ndarray, np.ndarray]:
    pred, true = _labels(pred, "pred"), _labels(true, "true")
    if len(pred) != len(true) or not len(pred):
        raise ValueError(f"pred and true must be non-empty and of one length, "
                         f"got {len(pred)} and {len(true)}")
    return pred, true


def contingency(pred, true) -> np.ndarray:
    """C[c, y] = number of items in cluster c (rows, sorted ids) of class y (columns, sorted)."""
    pred, true = _pair(pred, true)
    _, p = np.unique(pred, return_inverse=True)
    _, t = np.unique(true, return_inverse=True)
    c = np.zeros((p.max() + 1, t.max() + 1), dtype=np.int64)
    np.add.at(c, (p, t), 1)
    return c


def cluster_acc(pred, true) -> float:
    """Clustering accuracy under the best one-to-one cluster → class matching (Hungarian).

    Each cluster is matched to at most one class and each class to at most one cluster
    (scipy's ``linear_sum_assignment`` on the rectangular contingency matrix): many-to-one is
    not allowed, so when there are more clusters than classes the images of the unmatched
    clusters count as wrong (and with fewer clusters, those of the unmatched classes)."""
    c = contingency(pred, true)
    rows, cols = linear_sum_assignment(c, maximize=True)
    return float(c[rows, cols].sum() / c.sum())


def clustering_scores(pred, true) -> dict[str, float]:
    """{"nmi", "ari", "acc"} of cluster ids ``pred`` against classes ``true`` (see the module)."""
    pred, true = _pair(pred, true)
    return {"nmi": float(normalized_mutual_info_score(true, pred)),
            "ari": float(adjusted_rand_score(true, pred)),
            "acc": cluster_acc(pred, true)}


def _features(features) -> np.ndarray:
    x = np.asarray(features)
    if x.ndim != 2 or not len(x):
        raise ValueError(f"features must be a non-empty (N, D) array, got shape {x.shape}")
    return x


def kmeans_fit(features, k: int, seed: int, n_init: int = 1,
               max_iter: int = KMEANS_ITERS) -> tuple[np.ndarray, np.ndarray]:
    """k-means (Lloyd, k-means++ seeding) → (ids (N,) int64, centres (k, D) float32)."""
    x = _features(features).astype(np.float32, copy=False)
    if not 1 <= k <= len(x):
        raise ValueError(f"k-means needs 1 ≤ k ≤ N, got k={k} for N={len(x)}")
    km = KMeans(n_clusters=k, n_init=n_init, max_iter=max_iter, algorithm="lloyd",
                random_state=int(seed) % 2**32).fit(x)
    return km.labels_.astype(np.int64), km.cluster_centers_.astype(np.float32)


def kmeans(features, k: int, seed: int, n_init: int = 1, max_iter: int = KMEANS_ITERS) -> np.ndarray:
    """Cluster ids (N,) int64 of k-means on ``features`` (N, D); see :func:`kmeans_fit`."""
    return kmeans_fit(features, k, seed, n_init=n_init, max_iter=max_iter)[0]


def pca_whiten_l2(features, dim: int, eps: float = 1e-8) -> np.ndarray:
    """PCA to ``min(dim, D, N)`` components, whitened (unit variance each), rows L2-normalised:
    (N, D) → (N, dim) float32. ``eps`` (relative to the largest variance) guards dead directions."""
    x = _features(features).astype(np.float64)
    n = min(int(dim), x.shape[1], x.shape[0])
    if n < 1:
        raise ValueError(f"pca_whiten_l2 needs dim ≥ 1, got {dim}")
    xc = x - x.mean(0)
    var, vec = np.linalg.eigh(xc.T @ xc / max(len(x) - 1, 1))  # ascending eigenvalues
    var, vec = np.clip(var[::-1][:n], 0.0, None), vec[:, ::-1][:, :n]
    z = xc @ vec / np.sqrt(var + eps * max(float(var.max()), 1e-30))
    z /= np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-12)
    return z.astype(np.float32)


def _sq_dist(x: np.ndarray, c: np.ndarray) -> np.ndarray:
    d = (x * x).sum(1)[:, None] - 2.0 * x @ c.T + (c * c).sum(1)[None, :]
    return np.maximum(d, 0.0)


def _memberships(d2: np.ndarray, m: float) -> np.ndarray:
    """u_ij = 1 / Σ_l (d_ij / d_il)^(2/(m−1)) from squared distances, stably (see the module)."""
    scale = max(float(d2.max()), 1e-300)
    zero = d2 <= 1e-12 * scale
    logits = -np.log(np.maximum(d2, 1e-300)) / (m - 1.0)
    logits -= logits.max(1, keepdims=True)
    u = np.exp(logits)
    u /= u.sum(1, keepdims=True)
    on_centre = zero.any(1)
    if on_centre.any():
        z = zero[on_centre].astype(np.float64)
        u[on_centre] = z / z.sum(1, keepdims=True)
    return u


def fuzzy_cmeans(features, k: int, seed: int, m: float = 2.0, iters: int = 300, tol: float = 1e-6,
                 init: str = "kmeans++") -> tuple[np.ndarray, np.ndarray]:
    """Fuzzy c-means (Bezdek) → (memberships (N, k), rows summing to 1; ids = argmax (N,)).

    ``init``: "kmeans++" (centres seeded by k-means++ with ``seed``, then memberships from them)
    or "random" (memberships drawn uniformly and normalised, with ``seed``). Stops after
    ``iters`` rounds or when no membership moves by more than ``tol``."""
    x = _features(features).astype(np.float64)
    if not 1 <= k <= len(x):
        raise ValueError(f"fuzzy c-means needs 1 ≤ k ≤ N, got k={k} for N={len(x)}")
    if not m > 1.0:
        raise ValueError(f"fuzzy c-means needs the fuzzifier m > 1, got {m}")
    rng = np.random.default_rng(seed)
    if init == "kmeans++":
        centres, _ = kmeans_plusplus(x, k, random_state=int(rng.integers(2**31)))
        u = _memberships(_sq_dist(x, centres), m)
    elif init == "random":
        u = rng.random((len(x), k)) + 1e-12
        u /= u.sum(1, keepdims=True)
    else:
        raise ValueError(f"fuzzy c-means init must be 'kmeans++' or 'random', got {init!r}")
    for _ in range(iters):
        w = u**m
        centres = (w.T @ x) / np.maximum(w.sum(0), 1e-300)[:, None]
        new = _memberships(_sq_dist(x, centres), m)
        moved = float(np.abs(new - u).max())
        u = new
        if moved < tol:
            break
    return u, u.argmax(1)


def fuzzifier(n: int, d: int) -> float:
    """The fuzzifier m for ``n`` points in ``d`` dimensions (Schwämmle & Jensen, Bioinformatics
    2010, eq. 5: m = 1 + (1418/N + 22.05)·D⁻² + (12.33/N + 0.243)·D^(−0.0406·ln N − 0.1134)).
    The textbook m = 2 makes every membership ≈ 1/k once the dimension is more than a handful
    (distances concentrate), so fuzzy c-means stops separating anything; this m shrinks towards 1
    (k-means) as D grows: 1.15 for D = 16, 1.02 for D = 128, 1.01 for D = 784 at N = 10,000."""
    n, d = max(int(n), 2), max(int(d), 1)
    return float(1 + (1418 / n + 22.05) * d**-2.0
                 + (12.33 / n + 0.243) * d ** (-0.0406 * np.log(n) - 0.1134))
