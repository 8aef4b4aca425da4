r"""MCC: minimum class confusion (Jin, Wang, Long & Wang, ECCV 2020).

A non-adversarial loss on the target predictions alone: a batch's predictions should not confuse
classes with one another. With Ŷ = softmax(G_y(G_f(x)) / T) over a target batch of n rows and K
classes, the class confusion C = Ŷ^⊤ diag(w) Ŷ counts, for every pair of classes (j, k), how
strongly the batch predicts both at once; certain predictions weigh more,
w_i = n (1 + e^{−H(ŷ_i)}) / Σ_j (1 + e^{−H(ŷ_j)}) (no gradient), and each row of C is normalised
so that frequent classes do not dominate (C̃_jk = C_jk / Σ_k' C_jk')::

    L = CE_s + μ · (1/K) Σ_{j≠k} C̃_jk

(:func:`~dlapps.adapt.losses.class_confusion`). Temperature rescaling (T > 1) softens the
over-confident predictions of a network trained on the source. Source and target go through the
network as one batch (shared batch-norm statistics).

Options (``method_options["mcc"]``): ``weight`` μ = 1, ``temperature`` T = 2.5 (the paper's and
TLlib's).
"""

from __future__ import annotations

from dlapps.adapt.losses import class_confusion
from dlapps.adapt.methods.base import Method, accuracy
from dlapps.adapt.methods.vada import NON_NEGATIVE, number_option


class MCC(Method):
    name = "mcc"
    description = "minimum class confusion on the target predictions (non-adversarial)"
    uses_target_images = True
    options = {"weight": 1.0, "temperature": 2.5}

    def __init__(self, net, config):
        super().__init__(net, config)
        self.weight = number_option(self, "weight", NON_NEGATIVE)
        self.temperature = number_option(self, "temperature")

    def forward(self, xs, ys, xt, yt, progress):
        outs, cls_loss = self.source_and_target(xs, ys, xt)
        n, logits = len(xs), outs["logits"]
        confusion = class_confusion(logits[n:], self.temperature)
        weight = self.weight if self.gate_open() else 0.0
        return {"loss": cls_loss + weight * confusion, "cls_loss": cls_loss, "confusion_loss": confusion,
                "train_acc": accuracy(logits[:n], ys)}
