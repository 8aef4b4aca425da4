"""What a trained domain adaptation model is measured by.

* **Accuracy** of the label predictor on the source and target *test* splits.
* **Domain accuracy**: how well the method's own domain classifier tells source from target test
  images (≈ 50 % means the features fooled it; only for methods that train one).
* **Proxy A-distance** (Ben-David et al.; the JMLR DANN paper's protocol): train a linear SVM to
  separate source from target features on half of the test images, measure its error ε on the
  other half, d_A = 2 (1 − 2ε). Near 2: the domains are separable; near 0: indistinguishable.
  The SVM's C is picked by cross-validation on the training half only.
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


def tsne_embedding(fs: np.ndarray, ft: np.ndarray, seed: int = 0) -> np.ndarray:
    """2-D t-SNE of source and target features together (rows: source first, then target)."""
    return tsne_2d(np.concatenate([fs, ft]), seed)
