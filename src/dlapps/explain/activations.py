"""Activation maps: what the filters of a layer respond to in one image.

``--layer first`` is the network's first convolution (its first 16 filters are the course's
figure: edge, colour and blob detectors); any other value is a dotted module path inside the
pixel-space model (e.g. ``net.features.3``; ``dlapps explain activations IMAGE --layer NAME``
with a name that is not a layer answers with the list of the convolutions). The output is
recorded by a forward hook that lives only inside the call.
"""

from __future__ import annotations

import torch
from torch import nn

from dlapps.errors import UnknownNameError
from dlapps.explain.models import ExplainModel, record_output


def find_layer(model: ExplainModel, layer: str) -> nn.Module:
    """``"first"`` -> the first convolution; otherwise the module at that dotted path."""
    if layer == "first":
        return model.first_conv
    names = dict(model.net.named_modules())
    if layer not in names:
        spatial = [n for n, m in names.items() if isinstance(m, nn.Conv2d)]
        raise UnknownNameError("layer", layer, ["first", *spatial])
    return names[layer]


def conv_layer_names(model: ExplainModel) -> list[str]:
    return [n for n, m in model.net.named_modules() if isinstance(m, nn.Conv2d)]


def activation_maps(
    model: ExplainModel, x: torch.Tensor, layer: str = "first", count: int = 16
) -> torch.Tensor:
    """The first ``count`` channels of ``layer``'s output for each image: (N, count, h, w)."""
    module = find_layer(model, layer)
    with record_output(module) as store, torch.no_grad():
        model.net(x.to(model.device))
    acts = store.get("activations")
    if acts is None or acts.ndim != 4:
        raise UnknownNameError("layer with spatial output", layer, ["first", *conv_layer_names(model)])
    return acts[:, :count].cpu()
