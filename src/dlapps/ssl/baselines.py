"""The baselines every table shows: what the features are worth without self-supervision.

* ``random`` — the encoder as initialised (PyTorch's default He-uniform convolutions, BN at
  identity), never trained. A floor that is not zero: random convolutions with a pooled
  read-out already separate some classes, so a method must beat it to have learned anything.
  Fine-tuning it on few labels *is* training from scratch, the baseline of the fine-tuning
  column.
* ``pixels`` — the raw pixels, flattened (C·H·W values in [0, 1]): the probe and k-means on
  the input itself (the issue's "k-means on raw pixels"). No encoder: no fine-tuning.
* ``supervised`` — the same encoder trained with every label of the pretraining set
  (cross-entropy through a linear head, thrown away like every other head): the ceiling.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from dlapps.ssl.base import SslMethod


class RandomInit(SslMethod):
    name = "random"
    description = "the encoder at its random initialisation (the floor; fine-tuned = from scratch)"
    family = "baseline"
    trains = False


class Pixels(SslMethod):
    name = "pixels"
    description = "raw pixels as features (no encoder)"
    family = "baseline"
    trains = False
    finetunes = False

    @torch.no_grad()
    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1)


class Supervised(SslMethod):
    name = "supervised"
    description = "the encoder trained on every label of the pretraining set (the ceiling)"
    family = "baseline"
    uses_labels = True

    def __init__(self, encoder, info, config) -> None:
        super().__init__(encoder, info, config)
        if info.labels is None:
            raise ValueError("the supervised ceiling needs the pretraining set's labels")
        self.register_buffer("labels", info.labels.clone(), persistent=False)
        self.head = nn.Linear(encoder.dim, info.num_classes)

    def forward(self, x: torch.Tensor, idx: torch.Tensor, progress: float) -> dict:
        y = self.labels.to(idx.device)[idx]
        logits = self.head(self.encoder(x))
        return {"loss": F.cross_entropy(logits, y),
                "pretext_acc": (logits.argmax(1) == y).float().mean()}
