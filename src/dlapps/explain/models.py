"""The networks the explain methods look into, behind one small interface.

Every method in :mod:`dlapps.explain` works on an :class:`ExplainModel`: a module ``net`` that
takes a batch of RGB images in [0, 1] pixel space, (N, 3, S, S), and returns class logits. The
model's own normalisation lives *inside* ``net`` (an ImageNet backbone's
:meth:`~dlapps.models.pretrained.Backbone.pixel_model`, or the digits nets' ``Normalize``), so a
gradient is a gradient with respect to pixels, and an attack steps and clips in [0, 1].

Where a model comes from (:func:`load_model`):

* an ImageNet backbone by name (``efficientnet_lite0`` offline; ``squeezenet1_1``, ``vgg16``, ...
  download their torchvision weights once);
* a checkpoint dlapps trained: ``RUN_DIR/<method>-seed<k>`` (or its ``checkpoint.pt``) of
  ``dlapps adapt`` — the digits network is rebuilt from the run's ``config.json``;
* any module a notebook user has: :meth:`ExplainModel.wrap`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from dlapps.errors import CheckpointError, UnknownNameError
from dlapps.registry import Registry

# The layer Grad-CAM reads for each backbone (a dotted module path inside Backbone.net): the last
# spatial feature maps before global pooling, after their non-linearity. Other models: see
# :func:`last_spatial_layer`.
GRADCAM_LAYERS: Registry[str] = Registry("Grad-CAM layer")
GRADCAM_LAYERS.register("squeezenet1_1", "features")
GRADCAM_LAYERS.register("vgg16", "features.29")
GRADCAM_LAYERS.register("alexnet", "features.11")
GRADCAM_LAYERS.register("resnet18", "layer4")
GRADCAM_LAYERS.register("efficientnet_lite0", "bn2")


@dataclass
class ExplainModel:
    """A classifier in pixel space plus what the figures and methods need to know about it."""

    name: str
    net: nn.Module  # [0,1] RGB (N,3,S,S) -> logits (N,K); eval mode
    classes: list[str]
    input_size: int
    first_conv: nn.Conv2d
    cam_layer: nn.Module  # the feature maps Grad-CAM weighs
    preprocess: Callable[[Sequence[np.ndarray]], torch.Tensor] = field(repr=False, default=None)
    weights: str = ""
    # what the network was trained on, (images in [0,1] (N,3,S,S), labels), when dlapps can retrain
    # it cheaply (the digits networks): the data-randomisation sanity check needs it
    training_data: Callable[[], tuple[torch.Tensor, torch.Tensor]] | None = field(repr=False, default=None)

    def __post_init__(self) -> None:
        self.net.eval()
        for p in self.net.parameters():  # methods differentiate w.r.t. the input only
            p.requires_grad_(False)
        if self.preprocess is None:
            self.preprocess = lambda images: fit_images(images, self.input_size)

    @classmethod
    def wrap(
        cls,
        net: nn.Module,
        classes: Sequence[str],
        input_size: int,
        name: str = "model",
        cam_layer: nn.Module | None = None,
        training_data: Callable[[], tuple[torch.Tensor, torch.Tensor]] | None = None,
    ) -> ExplainModel:
        """Any pixel-space classifier (a notebook's own module, a tiny test model); with
        ``training_data`` (a function returning its training images and labels) it can be retrained
        for the data-randomisation sanity check."""
        convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
        if not convs:
            raise ValueError(f"{name} has no Conv2d layer; the explain methods need a CNN")
        layer = cam_layer or last_spatial_layer(net, input_size)
        return cls(name, net, list(classes), input_size, convs[0], layer, training_data=training_data)

    def to(self, device: torch.device | str) -> ExplainModel:
        self.net.to(device)
        return self

    @property
    def device(self) -> torch.device:
        return next(self.net.parameters()).device

    def predict(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(predicted class, its softmax probability) for each image of the batch."""
        with torch.no_grad():
            p = self.net(x.to(self.device)).softmax(1)
        prob, cls = p.max(1)
        return cls, prob


@contextmanager
def record_output(layer: nn.Module) -> Iterator[dict[str, torch.Tensor]]:
    """Record ``layer``'s output as ``store["activations"]`` inside the block; the hook is removed
    on exit, also on an exception (a leaked hook would keep every batch's activations alive).

    The network continues with a copy, so a later in-place op (``ReLU(inplace=True)``) cannot
    change the recorded tensor, and gradients still flow back to it.
    """
    store: dict[str, torch.Tensor] = {}

    def hook(_module, _inputs, output):
        store["activations"] = output
        return output.clone()

    handle = layer.register_forward_hook(hook)
    try:
        yield store
    finally:
        handle.remove()


def last_spatial_layer(net: nn.Module, input_size: int) -> nn.Module:
    """The last leaf module whose output is a feature map larger than 1x1 (found by a probe pass);
    failing that, the last with any 4-D output."""
    seen: list[tuple[nn.Module, int]] = []
    leaves = [m for m in net.modules() if not list(m.children())]
    hooks = [
        m.register_forward_hook(
            lambda m, _i, o: seen.append((m, o.shape[-1])) if torch.is_tensor(o) and o.ndim == 4 else None
        )
        for m in leaves
    ]
    try:
        with torch.no_grad():
            p = next(net.parameters())
            net(torch.zeros(1, 3, input_size, input_size, device=p.device, dtype=p.dtype))
    finally:
        for h in hooks:
            h.remove()
    if not seen:
        raise ValueError("the network produces no spatial feature map to explain")
    spatial = [m for m, width in seen if width > 1]
    return spatial[-1] if spatial else seen[-1][0]


def fit_images(images: Sequence[np.ndarray] | torch.Tensor, size: int) -> torch.Tensor:
    """Images of any size and mode -> float [0,1] (N,3,size,size): the backbones' own
    :func:`~dlapps.models.pretrained.fit_square` with the short side resized to ``size``."""
    from dlapps.models.pretrained import fit_square

    return fit_square(images, size)


def load_model(spec: str, device: str | torch.device = "cpu", image_size: int | None = None) -> ExplainModel:
    """A backbone name (see ``backbone_names()``) or a dlapps checkpoint path -> ExplainModel.

    ``image_size`` feeds a backbone smaller (or larger) crops than its native 224 (checkpoints keep
    the size they were trained at).
    """
    path = Path(spec).expanduser()
    if path.exists() or "/" in spec or spec.endswith(".pt"):
        return load_checkpoint_model(path).to(device)
    from dlapps.models import pretrained

    if spec not in pretrained.backbone_names():
        raise UnknownNameError("model", spec, [*pretrained.backbone_names(), "RUN_DIR/CELL"])
    bb = pretrained.load_backbone(spec)  # DownloadError names the weight file when offline
    return from_backbone(bb.at_size(image_size) if image_size else bb).to(device)


def from_backbone(bb) -> ExplainModel:
    """An ImageNet :class:`~dlapps.models.pretrained.Backbone` as an ExplainModel."""
    from dlapps.models.pretrained import imagenet_classes

    net = bb.pixel_model()
    cam = bb.net.get_submodule(GRADCAM_LAYERS[bb.name]) if bb.name in GRADCAM_LAYERS else None
    return ExplainModel(
        bb.name,
        net,
        imagenet_classes(),
        bb.input_size,
        bb.first_conv,
        cam or last_spatial_layer(net, bb.input_size),
        bb.preprocess,
        bb.weights_id,
    )


def load_checkpoint_model(path: Path) -> ExplainModel:
    """A digits network trained by ``dlapps adapt``: ``RUN/<cell>``, ``RUN/<cell>/checkpoint.pt``."""
    from dlapps.adapt.config import AdaptConfig
    from dlapps.config import load_config
    from dlapps.data.domains import DIGIT_CLASSES, FASHION_CLASSES
    from dlapps.engine.checkpoint import load_checkpoint
    from dlapps.models import build_digits_net

    cell = path.parent if path.suffix == ".pt" else path
    if not (cell / "checkpoint.pt").is_file():
        cells = sorted(p.name for p in cell.glob("*/checkpoint.pt")) if cell.is_dir() else []
        hint = f"; cells there: {', '.join(c.split('/')[0] for c in cells)}" if cells else ""
        raise CheckpointError(f"no dlapps checkpoint at {path} (give RUN_DIR/<method>-seed<k>{hint})")
    config_file = cell.parent / "config.json"
    if not config_file.is_file():
        raise CheckpointError(f"{cell} is not inside a dlapps adapt run: {config_file} is missing")
    config = load_config(AdaptConfig, config_file)  # refuses another kind's config.json
    state = load_checkpoint(cell)["module"]
    weights = {k.removeprefix("net."): v for k, v in state.items() if k.startswith("net.")}
    head = [k for k in weights if k.startswith("classifier.") and k.endswith(".weight")]
    if not head:
        raise CheckpointError(f"{cell / 'checkpoint.pt'} holds no digits network (no classifier weights)")
    n_classes = weights[sorted(head, key=lambda k: int(k.split(".")[1]))[-1]].shape[0]
    size = config.resolved_image_size()
    net = build_digits_net(
        config.resolved_arch(),
        3,
        size,
        n_classes,
        batchnorm=config.batchnorm,
        dropout=config.dropout,
        domain_hidden=config.domain_hidden,
    )
    try:
        net.load_state_dict(weights)
    except RuntimeError as exc:
        raise CheckpointError(f"{cell / 'checkpoint.pt'} does not fit its config.json: {exc}") from exc
    known = FASHION_CLASSES if config.source.startswith("fashion") else DIGIT_CLASSES
    classes = known if len(known) == n_classes else [f"class {i}" for i in range(n_classes)]

    def training_data() -> tuple[torch.Tensor, torch.Tensor]:
        """The run's source domain, the labelled data its networks were trained on."""
        from dlapps.data import load_domain

        domain = load_domain(config.source, size, 3)
        return domain.train_x.float() / 255, domain.train_y

    return ExplainModel.wrap(net, classes, size, name=f"{cell.parent.name}/{cell.name}",
                             training_data=training_data)
