"""Labelled subsets drawn class-balanced: the few labels of semi-supervised learning and of a
self-supervised encoder's linear probe and fine-tuning."""

from __future__ import annotations

import torch

from dlapps.errors import ConfigError


def balanced_subset(y: torch.Tensor, n: int, seed: int, missing: int | None = None) -> torch.Tensor:
    """Indices of ``n`` labelled images drawn class-balanced with ``seed``: n // k per class over
    the k classes that get labels (all but ``missing``), the remainder one more each to the
    first classes; sorted."""
    classes = [c for c in range(int(y.max()) + 1) if c != missing]
    generator = torch.Generator().manual_seed(10_007 + seed)
    base, extra = divmod(n, len(classes))
    chosen = []
    for i, c in enumerate(classes):
        where = (y == c).nonzero().squeeze(1)
        k = base + (i < extra)
        if k > len(where):
            raise ConfigError(f"--labels {n} asks for {k} labels of class {c}, which has only "
                              f"{len(where)} training images")
        chosen.append(where[torch.randperm(len(where), generator=generator)[:k]])
    return torch.cat(chosen).sort().values
