"""What a self-supervised method is, and the encoder every method trains.

**The encoder** (:class:`Encoder`) maps float images in [0, 1], (N, C, H, W), of any side ≥ 8 to
a feature vector (N, D): it normalises its input ((x − 0.5) / 0.5), runs three stages of
[conv3×3 → BN → ReLU] with ``width``, 2·``width`` and 4·``width`` channels, max-pooling 2×2
between them (28 → 14 → 7), and averages over space (global average pooling, as a ResNet
does), so the same weights read a whole 28×28 image, a 9×9 jigsaw tile or a relative-position
patch. ``encoder.dim`` is D = 4·``width`` (128 by default). It is the only part that is kept:
every method's heads, decoders and projection MLPs are thrown away, and the encoder's features
are judged by the same linear probe, k-NN and few-label fine-tuning (:mod:`dlapps.ssl.evaluate`).

**A method** is an ``nn.Module`` that owns the encoder and turns one step's batch into losses::

    losses = method(x, idx, progress)   # dict; losses["loss"] is what the engine minimises

``x`` is a batch of pretraining images (float in [0, 1], (B, C, H, W)); ``idx`` their indices
in the pretraining set (DeepCluster looks up its pseudo-labels with them; the supervised
ceiling its labels); ``progress`` is t ∈ [0, 1]. Other entries of the dict are logged; a method
with a pretext task of its own logs its accuracy as ``"pretext_acc"`` (the lecture's point:
that number is not the goal — the report draws it beside the probe's). Labels reach a method
only when it declares ``uses_labels`` (the supervised ceiling): the experiment hands the others
the images alone. Adding a method is one file with a subclass and one line in
:mod:`dlapps.ssl.methods`.

Optional hooks, for the clustering methods:

* ``refresh(features, epoch)`` — called by the experiment before training (epoch 0, unless a
  checkpoint is being continued) and after every epoch but the last, with the encoder's features
  of the whole pretraining set (N, D) (``method.embed`` over every image, in eval mode):
  DeepCluster clusters them into new pseudo-labels here. Whatever it changes must live in
  buffers, so that a checkpoint holds it and a resumed run continues with it.
* ``sample_weights()`` — per-image sampling weights (N,) for the next epoch's batches, or None
  for uniform (DeepCluster samples uniformly over clusters).
* ``cluster_ids(x)`` — a cluster index per image, for methods that cluster by themselves (DAC's
  argmax); the experiment scores it with NMI / ARI / ACC against the true classes every epoch.
* ``setup(images, device)`` — called before training and before evaluation (also when a run
  is continued), with the whole pretraining set as uint8 (N, C, H, W): a method that trains on
  something other than pixels (the transfer-learning + VAE recipe trains on pretrained features)
  prepares it here, in plain attributes (not buffers: it is recomputed, never checkpointed).
* ``features(images, device)`` — the judged features of uint8 images (default: ``embed`` in
  batches); a method whose features are not ``encoder(x)`` overrides it.
* ``assignments`` — a buffer (N,) of the current cluster of each pretraining image (DeepCluster);
  the experiment scores it every epoch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from dlapps.errors import ConfigError
from dlapps.models.digits import Normalize

#: the smallest image side the encoder reads (two 2×2 poolings leave 2×2)
MIN_SIDE = 8


def check_whole(method: str, key: str, value: Any, minimum: int, maximum: int | None = None,
                unit: str = "", hint: str = "") -> None:
    """One clear ConfigError line unless the option ``method.key`` is a whole number (an int, not
    a bool) from ``minimum`` (to ``maximum``); ``unit`` names what it counts, ``hint`` follows."""
    if (isinstance(value, bool) or not isinstance(value, int) or value < minimum
            or (maximum is not None and value > maximum)):
        bound = f"from {minimum} to {maximum}" if maximum is not None else f"≥ {minimum}"
        raise ConfigError(f"{method}.{key} must be a whole number{unit} {bound}, got {value!r}{hint}")


class Encoder(nn.Module):
    """Images (N, C, H, W) in [0, 1], side ≥ 8 → features (N, 4·width); see the module docstring."""

    def __init__(self, channels: int = 1, width: int = 32) -> None:
        super().__init__()
        self.channels, self.width, self.dim = channels, width, 4 * width
        self.normalize = Normalize([0.5] * channels, [0.5] * channels)
        layers: list[nn.Module] = []
        c = channels
        for i, w in enumerate((width, 2 * width, 4 * width)):
            layers += [nn.Conv2d(c, w, 3, padding=1, bias=False), nn.BatchNorm2d(w)]
            # pool before ReLU: the same function (ReLU is monotone) with the ReLU on 4x fewer values
            layers += [nn.MaxPool2d(2), nn.ReLU(inplace=True)] if i < 2 else [nn.ReLU(inplace=True)]
            c = w
        self.body = nn.Sequential(*layers)
        # channels-last convolutions: ~1.5x the images/s of training and inference on a CPU
        self.to(memory_format=torch.channels_last)

    def feature_map(self, x: torch.Tensor) -> torch.Tensor:
        """The last stage's map (N, 4·width, H/4, W/4), before pooling (a decoder may read it)."""
        if x.shape[-1] < MIN_SIDE or x.shape[-2] < MIN_SIDE:
            raise ValueError(f"the encoder reads images of side {MIN_SIDE} or more, got {tuple(x.shape)}")
        return self.body(self.normalize(x).contiguous(memory_format=torch.channels_last))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.feature_map(x).mean(dim=(2, 3))


@dataclass
class PretrainInfo:
    """What a method may know about its pretraining set when it is built."""

    n_images: int  # size of the pretraining set (idx runs over 0..n_images−1)
    channels: int
    size: int  # image side
    num_classes: int  # the true number of classes (clustering methods may use it as k)
    labels: torch.Tensor | None = None  # (N,) — handed only to a method with ``uses_labels``


class SslMethod(nn.Module):
    """Base class: a training rule over ``self.encoder``."""

    name: ClassVar[str] = "method"
    description: ClassVar[str] = ""
    #: "baseline", "pretext", "contrastive" or "clustering" (groups the report's table)
    family: ClassVar[str] = "pretext"
    #: False for the random-init baseline: no training at all
    trains: ClassVar[bool] = True
    #: True for the supervised ceiling: ``info.labels`` is handed to the constructor
    uses_labels: ClassVar[bool] = False
    #: False where fine-tuning the encoder on few labels does not apply (raw pixels, a frozen
    #: pretrained network): the fine-tuning column shows "n/a"
    finetunes: ClassVar[bool] = True
    #: the learning-rate schedule this method trains with, when not the run's (DeepCluster's
    #: constant rate: its head is re-initialised after every clustering)
    lr_schedule: ClassVar[str | None] = None
    #: settings a user may give in ``config.method_options[name]``, with their defaults
    options: ClassVar[dict[str, Any]] = {}

    def __init__(self, encoder: Encoder, info: PretrainInfo, config) -> None:
        super().__init__()
        self.encoder = encoder
        self.info = info
        self.config = config

    @classmethod
    def check(cls, options: dict[str, Any], size: int) -> None:
        """Refuse settings this method cannot run with, before anything is written: raise
        :class:`dlapps.errors.ConfigError` with one clear line. ``options`` are the declared
        defaults updated by the user's; ``size`` the image side (a jigsaw grid needs room)."""

    def option(self, key: str):
        """``config.method_options[name][key]`` when given, else the declared default."""
        given = getattr(self.config, "method_options", None) or {}
        return given.get(self.name, {}).get(key, self.options[key])

    def forward(self, x: torch.Tensor, idx: torch.Tensor, progress: float) -> dict[str, Any]:
        raise NotImplementedError

    def setup(self, images: torch.Tensor, device: torch.device) -> None:
        """Prepare what training needs beyond the batches (nothing by default)."""

    @torch.no_grad()
    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """The features that are judged: the encoder's output, for a float batch in [0, 1]."""
        return self.encoder(x)

    @torch.no_grad()
    def features(self, images: torch.Tensor, device: torch.device) -> torch.Tensor:
        """The judged features (N, D) of uint8 images (N, C, H, W), on the CPU."""
        from dlapps.engine.batches import batched

        return batched(self.embed, images, device)
