"""Domain adaptation networks on a pretrained ImageNet backbone (the way TLlib is mostly used).

The methods of :mod:`dlapps.adapt.methods` see a :class:`~dlapps.models.DomainAdaptationNet`:
G_f (``features``), G_y (``classifier``) and G_d (``discriminator``). On a backbone these are::

    G_f = bottleneck ∘ backbone      backbone: the ImageNet network with its classification layer
                                     removed (pooled pre-logit features, e.g. 1280 for
                                     EfficientNet-Lite0); bottleneck: Linear → BatchNorm → ReLU
                                     (256 by default, as TLlib's ``ImageClassifier``)
    G_y = Linear(256, classes)       a new head
    G_d = 256 → 1024 → 1024 → 1      ReLU + dropout 0.5 (DANN's discriminator in TLlib)

Inputs are images in [0, 1] normalised with the backbone's own statistics inside the network.
The pretrained layers train at a tenth of the rate of the new ones (``backbone_lr_mult``, the
usual fine-tuning rule; :meth:`dlapps.adapt.methods.base.Method.param_groups` applies it).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from dlapps.models.digits import DomainAdaptationNet, Normalize
from dlapps.models.pretrained import load_backbone, replace_head

BACKBONE_LR_MULT = 0.1


class BackboneFeatures(nn.Module):
    """backbone (pooled, flattened features) → bottleneck."""

    def __init__(self, body: nn.Module, body_dim: int, bottleneck: int) -> None:
        super().__init__()
        self.body = body
        self.bottleneck = nn.Sequential(nn.Linear(body_dim, bottleneck), nn.BatchNorm1d(bottleneck),
                                        nn.ReLU(inplace=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bottleneck(self.body(x).flatten(1))


class BackboneNet(DomainAdaptationNet):
    """A :class:`DomainAdaptationNet` whose G_f starts with a pretrained backbone."""

    backbone_lr_mult = BACKBONE_LR_MULT

    def pretrained_parameters(self) -> list[nn.Parameter]:
        return list(self.features.body.parameters())


def build_backbone_net(name: str, num_classes: int, image_size: int, *, bottleneck: int = 256,
                       domain_hidden: Sequence[int] = (1024, 1024), dropout: float = 0.5,
                       pretrained: bool = True) -> DomainAdaptationNet:
    """G_f, G_y, G_d on the named backbone (``dlapps transfer`` lists them) for ``image_size``²
    RGB inputs in [0, 1]. The backbone's parameters train at ``net.backbone_lr_mult`` times the
    rate."""
    backbone = load_backbone(name, pretrained)
    body = replace_head(backbone.net, backbone.head, lambda _: nn.Identity())  # pooled features
    with torch.no_grad():
        body_dim = body.eval()(torch.zeros(1, 3, image_size, image_size)).flatten(1).shape[1]
    body.train()
    features = BackboneFeatures(body, body_dim, bottleneck)
    classifier = nn.Sequential(nn.Linear(bottleneck, num_classes))
    layers: list[nn.Module] = []
    sizes = [bottleneck, *domain_hidden]
    for a, b in zip(sizes[:-1], sizes[1:], strict=True):
        layers += [nn.Linear(a, b), nn.ReLU(inplace=True), nn.Dropout(dropout)]
    discriminator = nn.Sequential(*layers, nn.Linear(sizes[-1], 1))
    net = BackboneNet(Normalize(backbone.mean, backbone.std), features, classifier, discriminator,
                      bottleneck, name)
    net.backbone_info = {"backbone": name, "weights": backbone.weights_id, "feature_dim": body_dim}
    return net
