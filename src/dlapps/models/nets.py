"""Named image classifiers of any size and channel count: the teachers and students of
``dlapps distill`` (and any area that wants a plain classifier by name).

Every network maps float images in [0, 1], (N, C, H, W), to class logits; it normalises its input
itself ((x − 0.5) / 0.5 per channel), ends in one ``nn.Linear`` (``net.head``) and exposes
``net.features(x)``, the vector that head reads (the penultimate layer). Sizes for 28×28 grey
images and 10 classes:

* ``cnn`` (the default teacher, ~325k parameters): [conv3×3 → BN → ReLU → maxpool 2] with 16, 32
  and 64 channels (28 → 14 → 7 → 3), flatten 64·3·3 = 576 → fc 512 → BN → ReLU → dropout 0.3 →
  fc 10. Features: 512. About 2.3M multiply-adds per image: cheap enough to run beside every
  student step on a CPU.
* ``cnn-wide`` (~390k): 32, 64, 128 channels, fc 256 (four times the multiply-adds).
* ``cnn-small`` (~25k): 8, 16, 32 channels, fc 64, no dropout.
* ``mlp`` (the default student, ~102k): flatten 784 → fc 128 → ReLU → fc 10 (Hinton et al. 2015's
  kind of student, narrower). Features: 128. No convolution: ~100x the teacher's images/s.
* ``mlp-tiny`` (~25k): 784 → 32 → 10. ``mlp-wide`` (~0.2M): 784 → 256 → 10.

:func:`build_net` is registered in :data:`dlapps.models.export.BUILDERS` as ``"net"`` when this
module is imported, so ``save_classifier(path, net, "net", net.spec, classes, ...)`` writes a
``model.pt`` that ``load_classifier`` rebuilds (import this module first).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from dlapps.models.digits import Normalize
from dlapps.models.export import BUILDERS
from dlapps.registry import Registry

BUILDER = "net"


class Classifier(nn.Module):
    """``normalize`` → ``body`` (images → feature vector) → ``head`` (one nn.Linear → logits)."""

    def __init__(self, channels: int, body: nn.Module, head: nn.Linear) -> None:
        super().__init__()
        self.normalize = Normalize([0.5] * channels, [0.5] * channels)
        self.body = body
        self.head = head
        self.spec: dict[str, Any] = {}

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The penultimate vector (what ``head`` reads)."""
        return self.body(self.normalize(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def _cnn(widths: Sequence[int], hidden: int, dropout: float) -> Callable[[int, int, int], Classifier]:
    def build(channels: int, size: int, num_classes: int) -> Classifier:
        layers: list[nn.Module] = []
        c, s = channels, size
        for w in widths:
            # pool before ReLU: the same function (ReLU is monotone) with the ReLU on 4x fewer values
            layers += [nn.Conv2d(c, w, 3, padding=1), nn.BatchNorm2d(w), nn.MaxPool2d(2),
                       nn.ReLU(inplace=True)]  # (N, w, s // 2, s // 2)
            c, s = w, s // 2
        layers += [nn.Flatten(), nn.Linear(c * s * s, hidden), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True),
                   nn.Dropout(dropout)]
        return Classifier(channels, nn.Sequential(*layers), nn.Linear(hidden, num_classes))

    return build


def _mlp(hidden: int) -> Callable[[int, int, int], Classifier]:
    def build(channels: int, size: int, num_classes: int) -> Classifier:
        body = nn.Sequential(nn.Flatten(), nn.Linear(channels * size * size, hidden), nn.ReLU(inplace=True))
        return Classifier(channels, body, nn.Linear(hidden, num_classes))

    return build


#: network name -> build(channels, size, num_classes)
NETS: Registry[Callable[[int, int, int], Classifier]] = Registry("network")
NETS.register("cnn", _cnn((16, 32, 64), 512, 0.3))
NETS.register("cnn-wide", _cnn((32, 64, 128), 256, 0.3))
NETS.register("cnn-small", _cnn((8, 16, 32), 64, 0.0))
NETS.register("mlp", _mlp(128))
NETS.register("mlp-tiny", _mlp(32))
NETS.register("mlp-wide", _mlp(256))


def build_net(name: str, channels: int = 1, size: int = 28, num_classes: int = 10) -> Classifier:
    """The network ``name`` for (channels, size, size) images and ``num_classes`` classes; its
    ``spec`` holds these arguments (what ``save_classifier`` needs to rebuild it)."""
    if size < 8:
        from dlapps.errors import ConfigError

        raise ConfigError(f"images must be at least 8x8 pixels for the named networks, got {size}")
    net = NETS[name](channels, size, num_classes)
    net.spec = {"name": name, "channels": channels, "size": size, "num_classes": num_classes}
    return net


def count_parameters(net: nn.Module) -> int:
    """Number of parameters (trainable or not; buffers excluded)."""
    return sum(p.numel() for p in net.parameters())


if BUILDER not in BUILDERS:
    BUILDERS.register(BUILDER, build_net)
