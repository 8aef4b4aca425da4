"""The networks of the DANN papers (Ganin & Lempitsky 2015; Ganin et al., JMLR 2016).

Each network is three separate modules, as in the paper's figure 1: a feature extractor G_f, a
label predictor G_y and a domain classifier G_d (which sees G_f's output through a gradient
reversal layer that the method, not the network, inserts). Inputs are images in [0, 1]; the
network subtracts the training mean itself (the papers' only preprocessing), so attacks and
visualisations can work in pixel space.

* ``mnist`` (JMLR fig. 4a): conv5x5-32, ReLU, maxpool 2 -> conv5x5-48, ReLU, maxpool 2 -> 768
  features for 28x28; label: fc100, ReLU, fc100, ReLU, fc10; domain: fc100, ReLU, fc1.
* ``svhn`` (JMLR fig. 4b): conv5x5-64, pool 3/2 -> conv5x5-64, pool 3/2 -> conv5x5-128 ->
  label: fc3072, fc2048, fc10; domain: fc1024, fc1024, fc1; dropout 0.5 on the fully connected
  layers.

Weights are initialised as in the Caffe and TensorFlow code of the papers' era: Glorot (Xavier)
uniform, zero biases. PyTorch's default (Kaiming-uniform with a = √5) starts these ReLU stacks
so small that SGD at μ0 = 0.01 idles for most of an epoch (measured: train-on-target at 0.10
after one epoch on mnistm5k, against 0.63 with Glorot).

Options beyond the papers (off in the ``paper`` preset): batch normalisation after every
convolution and hidden layer, and the domain classifier's width.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class Normalize(nn.Module):
    """Subtract a per-channel mean and divide by a std (buffers, saved with the model).

    ``instance=True`` standardises each image on its own instead, per channel,
    x ← (x − mean_hw(x)) / (std_hw(x) + 10⁻⁵) (Shu et al. 2018's instance-normalised input): an
    image's brightness and contrast — what MNIST-M's photo backgrounds change most — no longer
    reach the network."""

    def __init__(self, mean: Sequence[float], std: Sequence[float] | None = None, instance: bool = False):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        std = [1.0] * len(mean) if std is None else std
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))
        self.instance = instance

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.instance:
            return (x - x.mean((2, 3), keepdim=True)) / (x.std((2, 3), keepdim=True) + 1e-5)
        return (x - self.mean) / self.std


class DomainAdaptationNet(nn.Module):
    """G_f, G_y and G_d as three modules; ``forward`` gives class logits for images in [0, 1]."""

    def __init__(self, normalize: Normalize, features: nn.Module, classifier: nn.Module,
                 discriminator: nn.Module, feature_dim: int, arch: str):
        super().__init__()
        self.normalize = normalize
        self.features = features
        self.classifier = classifier
        self.discriminator = discriminator
        self.feature_dim = feature_dim
        self.arch = arch

    #: the rate of :meth:`pretrained_parameters` relative to the schedule's
    backbone_lr_mult: float = 1.0

    def pretrained_parameters(self) -> list[nn.Parameter]:
        """Parameters that start from pretrained weights (none in the digit networks)."""
        return []

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """G_f: the flat feature vector the label and domain heads share."""
        return self.features(self.normalize(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.embed(x))


def _mlp(sizes: Sequence[int], batchnorm: bool, dropout: float) -> nn.Sequential:
    """Linear layers of the given sizes, ReLU (+BN, +dropout) between them, none after the last."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            if batchnorm:
                layers.append(nn.BatchNorm1d(b))
            layers.append(nn.ReLU(inplace=True))
            if dropout:
                layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers)


def _conv(cin: int, cout: int, batchnorm: bool, pool: nn.Module | None, padding: int) -> list[nn.Module]:
    """conv5x5 (+BN), ReLU (+pool), run as conv (+BN) (+pool), ReLU: the same function and gradients,
    since ReLU is monotone (max_w relu(x_w) = relu(max_w x_w)), with the ReLU on 4x fewer values."""
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, 5, padding=padding)]
    if batchnorm:
        layers.append(nn.BatchNorm2d(cout))
    if pool is not None:
        layers.append(pool)
    layers.append(nn.ReLU(inplace=True))
    return layers


ARCHS = {"mnist": 28, "svhn": 32}  # name -> the input size the paper used


def build_digits_net(
    arch: str = "mnist",
    in_channels: int = 3,
    image_size: int | None = None,
    num_classes: int = 10,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    batchnorm: bool = False,
    dropout: float | None = None,
    domain_hidden: Sequence[int] | None = None,
    instance_norm: bool = False,
) -> DomainAdaptationNet:
    """Build the paper's ``mnist`` or ``svhn`` network for ``in_channels`` x ``image_size``² inputs."""
    if arch not in ARCHS:
        from dlapps.errors import UnknownNameError

        raise UnknownNameError("architecture", arch, ARCHS)
    image_size = image_size or ARCHS[arch]
    if arch == "mnist":
        features = nn.Sequential(
            *_conv(in_channels, 32, batchnorm, nn.MaxPool2d(2, 2), padding=0),
            *_conv(32, 48, batchnorm, nn.MaxPool2d(2, 2), padding=0), nn.Flatten(),
        )
        label_hidden, default_domain, default_dropout = [100, 100], [100], 0.0
    else:
        features = nn.Sequential(
            *_conv(in_channels, 64, batchnorm, nn.MaxPool2d(3, 2, padding=1), padding=2),
            *_conv(64, 64, batchnorm, nn.MaxPool2d(3, 2, padding=1), padding=2),
            *_conv(64, 128, batchnorm, None, padding=2), nn.Flatten(),
        )
        label_hidden, default_domain, default_dropout = [3072, 2048], [1024, 1024], 0.5
    with torch.no_grad():
        feature_dim = features(torch.zeros(2, in_channels, image_size, image_size)).shape[1]
    dropout = default_dropout if dropout is None else dropout
    domain_hidden = list(default_domain if domain_hidden is None else domain_hidden)
    classifier = _mlp([feature_dim, *label_hidden, num_classes], batchnorm, dropout)
    discriminator = _mlp([feature_dim, *domain_hidden, 1], batchnorm, dropout)
    normalize = Normalize(mean if mean is not None else [0.5] * in_channels, std, instance=instance_norm)
    net = DomainAdaptationNet(normalize, features, classifier, discriminator, feature_dim, arch)
    for m in net.modules():
        if isinstance(m, nn.Conv2d | nn.Linear):
            nn.init.xavier_uniform_(m.weight)
            nn.init.zeros_(m.bias)
    return net
