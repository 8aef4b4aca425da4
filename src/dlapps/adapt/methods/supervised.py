"""The two reference points of every domain adaptation table.

* ``source`` — source only: cross-entropy on labelled source images, nothing else. The lower
  bound an adaptation method has to beat on the target.
* ``target`` — train on target: cross-entropy on *labelled target* images (the only method that
  receives target labels). The ceiling; the paper's "train on target" row.
"""

from __future__ import annotations

import torch.nn.functional as F

from dlapps.adapt.methods.base import Method, accuracy


class SourceOnly(Method):
    name = "source"
    description = "source only: supervised on labelled source (the lower bound)"

    def forward(self, xs, ys, xt, yt, progress):
        logits = self.net(xs)
        loss = F.cross_entropy(logits, ys)
        return {"loss": loss, "cls_loss": loss, "train_acc": accuracy(logits, ys)}


class TargetOracle(Method):
    name = "target"
    description = "train on target: supervised on labelled target (the ceiling)"
    uses_source = False
    uses_target_images = True
    uses_target_labels = True

    def forward(self, xs, ys, xt, yt, progress):
        logits = self.net(xt)
        loss = F.cross_entropy(logits, yt)
        return {"loss": loss, "cls_loss": loss, "train_acc": accuracy(logits, yt)}
