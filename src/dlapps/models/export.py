"""A trained classifier as one self-describing file, readable by any area.

A run that trains a classifier writes ``model.pt``: how to rebuild the network (a builder
registered here by name and its keyword arguments), its weights, the class names and the input
it expects. Any area loads it back without knowing which area trained it — ``dlapps distill
--teacher RUN_DIR`` takes the teacher of a semi-supervised, transfer or distillation run this
way::

    save_classifier(run_dir / "model.pt", net, "digits", {"arch": "mnist", ...}, classes,
                    size=28, channels=1, kind="semi")
    net, info = load_classifier(run_dir / "model.pt")   # eval mode; info["classes"], ...

Every registered network maps float images in [0, 1], (N, C, H, W), to class logits (any
normalisation is inside the network).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from torch import nn

from dlapps.errors import DataError
from dlapps.io import atomic_torch_save, safe_torch_load
from dlapps.registry import Registry

FORMAT = "dlapps-classifier/1"
MODEL_FILE = "model.pt"

#: builder name -> callable(**kwargs) -> nn.Module (images in [0, 1] -> logits)
BUILDERS: Registry[Callable[..., nn.Module]] = Registry("network builder")


def _digits(**kwargs: Any) -> nn.Module:
    from dlapps.models.digits import build_digits_net

    return build_digits_net(**kwargs)


def _pretrained(name: str, num_classes: int, image_size: int) -> nn.Module:
    """A backbone with a new ``num_classes`` head behind its own preprocessing (resize, crop,
    grey → RGB, normalisation) at ``image_size``: a fine-tuned network of ``dlapps transfer``."""
    from dlapps.models.pretrained import Prepare, load_backbone, with_new_head

    backbone = load_backbone(name, pretrained=False).at_size(image_size)  # weights: from the file
    return nn.Sequential(Prepare(backbone), with_new_head(backbone, num_classes))


BUILDERS.register("digits", _digits)
BUILDERS.register("pretrained", _pretrained)


def save_classifier(path: Path, net: nn.Module, builder: str, kwargs: dict[str, Any],
                    classes: list[str], *, size: int, channels: int, kind: str = "") -> Path:
    """Write ``net`` (built by ``BUILDERS[builder](**kwargs)``) atomically to ``path``."""
    BUILDERS[builder]  # an unknown builder fails here, not when someone loads the file
    return atomic_torch_save({
        "format": FORMAT, "builder": builder, "kwargs": kwargs,
        "state_dict": {k: v.detach().cpu() for k, v in net.state_dict().items()},
        "classes": list(classes), "size": size, "channels": channels, "kind": kind,
    }, path)


def find_model_file(path: Path) -> Path:
    """``path`` itself when it is a file, else ``path/model.pt`` (a finished run's classifier)."""
    path = Path(path)
    if path.is_dir():
        path = path / MODEL_FILE
        if not path.is_file():
            cells = sorted(p.parent.name for p in path.parent.glob(f"*/{MODEL_FILE}"))
            if cells:
                raise DataError(f"{path.parent} holds one classifier per cell; give one of its cells: "
                                f"{', '.join(cells[:8])}{' ...' if len(cells) > 8 else ''}")
            raise DataError(f"{path.parent} holds no {MODEL_FILE}: it is not a finished run of an "
                            "area that trains a classifier (semi, distill, transfer's networks)")
    elif not path.is_file():
        raise DataError(f"no such run directory or model file: {path}")
    return path


def load_classifier(path: Path) -> tuple[nn.Module, dict[str, Any]]:
    """The network saved at ``path`` (a file or a run directory), in eval mode, and its
    description: ``classes``, ``size``, ``channels``, ``kind``, ``builder``, ``kwargs``."""
    import dlapps.models.nets  # noqa: F401  (registers the builder "net")

    path = find_model_file(path)
    saved = safe_torch_load(path, "model file")
    if not isinstance(saved, dict) or saved.get("format") != FORMAT:
        raise DataError(f"{path} is not a dlapps classifier file ({FORMAT})")
    net = BUILDERS[saved["builder"]](**saved["kwargs"])
    try:
        net.load_state_dict(saved["state_dict"])
    except RuntimeError as e:
        raise DataError(f"{path}: the weights do not fit the network they name ({e})") from None
    info = {k: saved[k] for k in ("classes", "size", "channels", "kind", "builder", "kwargs")}
    return net.eval(), info
