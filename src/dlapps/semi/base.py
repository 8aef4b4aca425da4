"""What a semi-supervised method is.

A method is an ``nn.Module`` that owns the classifier and turns one step's batches into losses::

    losses = method(xl, yl, xu, None, progress)   # dict; losses["loss"] is what the engine minimises

``xl, yl`` are a batch of the labelled images and their labels, ``xu`` a batch of unlabelled
images (their labels never reach a method: the engine's batches hand None in their place, and
the experiment keeps no labels for the unlabelled set in memory while training), ``progress`` is
t ∈ [0, 1]. Other entries of the dict are logged. Adding a method is one file with a subclass
and one line in :mod:`dlapps.semi.methods`.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn


class SemiMethod(nn.Module):
    """Base class: a training rule over a classifier ``net`` with ``net(x)`` → logits and
    ``net.embed(x)`` → features, for images in [0, 1]."""

    name: ClassVar[str] = "method"
    description: ClassVar[str] = ""
    #: trains on every training label (the ceiling); the unlabelled batch is then unused
    uses_all_labels: ClassVar[bool] = False
    #: settings a user may give in ``config.method_options[name]``, with their defaults
    options: ClassVar[dict[str, Any]] = {}

    def __init__(self, net: nn.Module, config) -> None:
        super().__init__()
        self.net = net
        self.config = config

    def option(self, key: str):
        """``config.method_options[name][key]`` when given, else the declared default."""
        given = getattr(self.config, "method_options", None) or {}
        return given.get(self.name, {}).get(key, self.options[key])

    def forward(self, xl, yl, xu, yu, progress: float) -> dict[str, torch.Tensor | float]:
        raise NotImplementedError

    def supervised_loss(self, xl: torch.Tensor, yl: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(cross-entropy on the labelled batch, its accuracy)."""
        logits = self.net(xl)
        return F.cross_entropy(logits, yl), (logits.argmax(1) == yl).float().mean()

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits of the deployed network."""
        return self.net(x)

    @torch.no_grad()
    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """The deployed network's features (for t-SNE)."""
        return self.net.embed(x)
