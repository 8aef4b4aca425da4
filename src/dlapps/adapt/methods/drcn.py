r"""DRCN: deep reconstruction-classification networks (Ghifary et al., ECCV 2016).

One encoder G_f is shared by two pathways: the label predictor G_y on labelled source images,
and a convolutional decoder G_r that reconstructs *target* images from their features::

    min  λ L_c + (1 − λ) L_r,
    L_c = E_{(x,y)~S} CE(G_y(G_f(x)), y),    L_r = E_{x~T} ‖G_r(G_f(x)) − x‖²  (pixels in [0, 1],
                                              the squared norm summed over the image's pixels)

Learning to reconstruct the target shapes G_f to the target's structure, while the label
pathway keeps it discriminative. As in the paper's algorithm, the two objectives alternate: odd
steps take a classification update on a source batch (λ L_c), even steps a reconstruction
update on a target batch ((1 − λ) L_r); λ = 0.7 (option ``lambda``). The step counter is a
buffer, so a resumed run alternates as an uninterrupted one. The decoder mirrors the encoder:
fc → (64, s/4, s/4) → two 4×4 stride-2 transposed convolutions → sigmoid, s the image size.
Logged ``cls_loss`` / ``rec_loss`` hold each loss's latest value (they alternate).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from dlapps.adapt.methods.base import Method, accuracy


def build_decoder(feature_dim: int, channels: int, size: int) -> nn.Sequential:
    """features (feature_dim) -> images (channels, size, size) in [0, 1]."""
    s = -(-size // 4)
    layers: list[nn.Module] = [
        nn.Linear(feature_dim, 64 * s * s), nn.ReLU(inplace=True), nn.Unflatten(1, (64, s, s)),
        nn.ConvTranspose2d(64, 32, 4, 2, 1), nn.ReLU(inplace=True),
        nn.ConvTranspose2d(32, channels, 4, 2, 1), nn.Sigmoid(),
    ]
    if 4 * s != size:
        layers.append(nn.Upsample(size=(size, size), mode="bilinear", align_corners=False))
    return nn.Sequential(*layers)


def reconstruction_loss(reconstruction: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """‖x̂ − x‖² summed over an image's pixels, averaged over the batch. (The per-pixel mean is
    the same minimiser but ~C·H·W times smaller: under SGD at the classifier's rate the decoder
    then does not learn — on MNIST-M it stayed at the mean image's error for 12 epochs.)"""
    return (reconstruction - x).pow(2).flatten(1).sum(1).mean()


class DRCN(Method):
    name = "drcn"
    description = "shared encoder: classify source, reconstruct target (reconstruction-based)"
    uses_target_images = True
    options = {"lambda": 0.7}

    def __init__(self, net, config):
        size = config.resolved_image_size() if hasattr(config, "resolved_image_size") else 28
        super().__init__(net, config)
        self.decoder = build_decoder(net.feature_dim, net.normalize.mean.shape[1], size)
        self.lam = float(self.option("lambda"))
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))
        self.last = {"cls_loss": 0.0, "rec_loss": 0.0, "train_acc": 0.0}

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.net.embed(x))

    def forward(self, xs, ys, xt, yt, progress):
        self.steps += 1
        if int(self.steps) % 2:
            logits = self.net(xs)
            loss = self.lam * F.cross_entropy(logits, ys)
            self.last.update(cls_loss=loss.detach() / self.lam, train_acc=accuracy(logits, ys))
        else:
            loss = (1 - self.lam) * reconstruction_loss(self.reconstruct(xt), xt)
            self.last.update(rec_loss=loss.detach() / (1 - self.lam))
        return {"loss": loss, **self.last}
