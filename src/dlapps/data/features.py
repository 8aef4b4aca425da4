"""Batched feature extraction from a pretrained backbone, cached on disk.

Images go through the backbone's own preprocessing (short-side resize, centre crop, grey -> RGB,
normalisation) one batch at a time, then through a torchvision/timm feature extractor for the
requested tap, in ``eval()`` mode under ``no_grad``. Activations are flattened to (N, D) float32.

The cache (:mod:`dlapps.data.cache`) is keyed by everything the features depend on: backbone,
weights id, tap and its graph node, input size, resize, mean/std, the dataset name and split, and a
SHA-256 of the image bytes. A second run that changes only a classifier setting (C, PCA, ...)
reuses the file; changing any of those keys builds a new one; a corrupt file is rebuilt.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import torch
from tqdm.auto import tqdm

from dlapps.data.cache import cached, tensors_digest
from dlapps.models.pretrained import Backbone

FEATURES_VERSION = 1


def images_digest(images: torch.Tensor) -> str:
    """SHA-256 of an image tensor's dtype, shape and bytes (the dataset part of the cache key)."""
    return tensors_digest({"images": images})


@torch.no_grad()
def extract(backbone: Backbone, images: torch.Tensor, layers: Sequence[str], batch_size: int = 64,
            progress: bool = True, timing: dict[str, float] | None = None,
            device: torch.device | None = None) -> dict[str, torch.Tensor]:
    """Features of ``images`` (N,C,H,W, any dtype :meth:`Backbone.preprocess` takes) at ``layers``,
    computed on ``device`` (default CPU) in float32 and returned on the CPU.

    ``timing`` (if given) accumulates seconds spent on preprocessing (``"data"``) and in the
    network (``"network"``): the data-loading vs network share.
    """
    device = device or torch.device("cpu")
    extractor = backbone.feature_extractor(layers).to(device)  # shares the backbone's weights
    backbone.net.eval()
    mean = torch.tensor(backbone.mean, device=device).view(1, 3, 1, 1)
    std = torch.tensor(backbone.std, device=device).view(1, 3, 1, 1)
    timing = timing if timing is not None else {}
    out: dict[str, list[torch.Tensor]] = {layer: [] for layer in layers}
    bar = tqdm(total=len(images), desc=f"{backbone.name} features", unit="img", disable=not progress,
               leave=False)
    try:
        for start in range(0, len(images), batch_size):
            t0 = time.perf_counter()
            x = (backbone.preprocess(images[start:start + batch_size].to(device)) - mean) / std
            t1 = time.perf_counter()
            acts = extractor(x)
            for layer in layers:
                out[layer].append(acts[layer].flatten(1).float().cpu())
            t2 = time.perf_counter()
            timing["data"] = timing.get("data", 0.0) + t1 - t0
            timing["network"] = timing.get("network", 0.0) + t2 - t1
            bar.update(len(x))
    finally:
        bar.close()
        backbone.net.to("cpu")
    dims = {layer: 0 for layer in layers}
    return {layer: torch.cat(v) if v else torch.zeros(0, dims[layer]) for layer, v in out.items()}


def feature_key(backbone: Backbone, layer: str, dataset: str, images: torch.Tensor) -> dict:
    """Everything the features of ``images`` at ``layer`` depend on."""
    return {"version": FEATURES_VERSION, "backbone": backbone.name, "weights": backbone.weights_id,
            "layer": layer, "node": backbone.tap_node(layer), "input_size": backbone.input_size,
            "resize": backbone.resize, "mean": list(backbone.mean), "std": list(backbone.std),
            "dataset": dataset, "images": images_digest(images)}


def cached_features(backbone: Backbone, images: torch.Tensor, layer: str, dataset: str,
                    batch_size: int = 64, progress: bool = True, timing: dict[str, float] | None = None,
                    device: torch.device | None = None) -> tuple[torch.Tensor, bool]:
    """``(features, from_cache)``: the (N, D) features, read from the cache when present (the
    device they were computed on is not part of the key).

    ``timing`` gets ``data``/``network`` seconds only when the features are computed.
    """
    built = []

    def build() -> dict[str, torch.Tensor]:
        built.append(True)
        return {"features": extract(backbone, images, [layer], batch_size, progress, timing, device)[layer]}

    feats = cached("transfer-features", feature_key(backbone, layer, dataset, images), build)["features"]
    return feats, not built
