r"""The floor and the ceiling of every semi-supervised table.

* ``supervised`` — the labelled images only: L = (1/n) Σ_m CE(y_m, f(x_m)). The unlabelled
  images are never used; what every other method gains is measured against this.
* ``full`` — every training image with its label (the labelled set *and* the unlabelled set's
  hidden labels): the same loss on all of them. The ceiling a semi-supervised method could reach
  with this network and budget; it is the only method that reads the unlabelled set's labels.
"""

from __future__ import annotations

from dlapps.semi.base import SemiMethod


class Supervised(SemiMethod):
    name = "supervised"
    description = "labelled images only (the floor)"

    def forward(self, xl, yl, xu, yu, progress):
        loss, acc = self.supervised_loss(xl, yl)
        return {"loss": loss, "labelled_acc": acc}


class Full(Supervised):
    name = "full"
    description = "every training label (the ceiling)"
    uses_all_labels = True
