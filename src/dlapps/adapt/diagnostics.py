"""What a trained domain adaptation model is measured by.

* **Accuracy** of the label predictor on the source and target *test* splits.
* **Domain accuracy**: how well the method's own domain classifier tells source from target test
  images (≈ 50 % means the features fooled it; only for methods that train one).
* **Proxy A-distance** (Ben-David et al.; the JMLR DANN paper's protocol): train a linear SVM to
  separate source from target features on half of the test images, measure its error ε on the
  other half, d_A = 2 (1 − 2ε). Near 2: the domains are separable; near 0: indistinguishable.
  The SVM's C is picked by cross-validation on the training half only.
* **Ideal joint error** λ* (the third term of Ben-David et al.'s bound, ε_T(h) ≤ ε_S(h) +
  ½ d_HΔH + λ*, with λ* = min_h ε_S(h) + ε_T(h)): a linear classifier trained on the *labelled*
  features of both domains, its error on each domain's test split; measured as Chen et al. (ICML
  2019, "Transferability vs. discriminability") do. Alignment that lowers d_A but raises λ* has
  traded the features' class structure for invariance. It reads target labels: a diagnostic of a
  finished run, never a selection criterion.
* **t-SNE** of G_f's features on a fixed sample of both domains, for the report's figure.
"""

from __future__ import annotations

import numpy as np
import torch

from dlapps.engine.batches import batched
from dlapps.report.embedding import tsne_2d


def domain_accuracy(method, xs: torch.Tensor, xt: torch.Tensor, device: torch.device) -> float | None:
    """Accuracy of the method's domain classifier on source (label 0) and target (label 1)."""
    if not method.trains_discriminator:
        return None
    ls = batched(method.domain_logits, xs, device)
    lt = batched(method.domain_logits, xt, device)
    return float(torch.cat([ls <= 0, lt > 0]).float().mean())


def proxy_a_distance(fs: np.ndarray, ft: np.ndarray, seed: int = 0) -> float:
    """2 (1 − 2ε), ε the held-out error of a linear SVM separating ``fs`` from ``ft``."""
    from sklearn.model_selection import GridSearchCV, train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import LinearSVC

    n = min(len(fs), len(ft))
    x = np.concatenate([fs[:n], ft[:n]]).astype(np.float64)
    d = np.concatenate([np.zeros(n), np.ones(n)])
    x_tr, x_te, d_tr, d_te = train_test_split(x, d, test_size=0.5, random_state=seed, stratify=d)
    svm = make_pipeline(StandardScaler(), LinearSVC(dual="auto", max_iter=5000, random_state=seed))
    search = GridSearchCV(svm, {"linearsvc__C": [1e-3, 1e-2, 1e-1, 1.0]}, cv=3)
    search.fit(x_tr, d_tr)
    error = 1.0 - search.score(x_te, d_te)
    return float(2.0 * (1.0 - 2.0 * error))


def joint_error(fs: np.ndarray, ys: np.ndarray, ft: np.ndarray, yt: np.ndarray,
                fs_test: np.ndarray, ys_test: np.ndarray, ft_test: np.ndarray, yt_test: np.ndarray,
                seed: int = 0) -> dict[str, float]:
    """λ* estimated on features: a logistic regression fitted to source *and target* training
    features with their labels (equally many from each domain), its errors on the two test splits.
    Returns ``{"source": ε_S, "target": ε_T, "joint": ε_S + ε_T}`` (0 ≤ joint ≤ 2)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    n = min(len(fs), len(ft))
    if n == 0 or len(fs_test) == 0 or len(ft_test) == 0:
        raise ValueError("joint_error needs training and test features from both domains")
    rng = np.random.default_rng(seed)
    i_s, i_t = rng.permutation(len(fs))[:n], rng.permutation(len(ft))[:n]
    x = np.concatenate([fs[i_s], ft[i_t]]).astype(np.float64)
    y = np.concatenate([ys[i_s], yt[i_t]])
    clf = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=2000))
    clf.fit(x, y)
    e_s = 1.0 - clf.score(fs_test.astype(np.float64), ys_test)
    e_t = 1.0 - clf.score(ft_test.astype(np.float64), yt_test)
    return {"source": float(e_s), "target": float(e_t), "joint": float(e_s + e_t)}


def tsne_embedding(fs: np.ndarray, ft: np.ndarray, seed: int = 0) -> np.ndarray:
    """2-D t-SNE of source and target features together (rows: source first, then target)."""
    return tsne_2d(np.concatenate([fs, ft]), seed)
