"""2-D embeddings of feature vectors for the reports' scatter figures."""

from __future__ import annotations

import numpy as np


def tsne_2d(x: np.ndarray, seed: int = 0) -> np.ndarray:
    """t-SNE of the rows of ``x`` to 2-D (PCA to 50 dimensions first when wider; perplexity 30,
    or less for few rows; PCA initialisation; seeded)."""
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE

    x = np.asarray(x, dtype=np.float32)
    if x.shape[1] > 50:
        x = PCA(50, random_state=seed).fit_transform(x)
    perplexity = min(30.0, (len(x) - 1) / 3)
    return TSNE(2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(x)
