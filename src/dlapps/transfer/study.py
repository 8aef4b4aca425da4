"""Transfer-learning runs: one backbone and tap with several classifiers, and the layer/backbone study.

:func:`run_transfer` answers "how good are pretrained features on my small dataset, and why not
train the big network directly?": it draws ``per_class`` labelled training images per class (one
draw per seed), extracts (cached) features at one tap, and compares the classifiers of
:mod:`dlapps.transfer.classifiers` on the same fixed test images.

:func:`run_study` sweeps backbones x taps with the SVM (C chosen by CV on the training split) and
records CV and test accuracy along the C grid.

:func:`first_conv_activations` shows what the first convolution of a backbone responds to.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from dlapps.data import load_domain
from dlapps.data.domains import IMAGEFOLDER, Domain
from dlapps.errors import ConfigError, DataError, UnknownNameError
from dlapps.io import atomic_write_json
from dlapps.models.pretrained import Backbone, load_backbone, parameter_table, with_new_head
from dlapps.transfer import classifiers as C
from dlapps.transfer.features import cached_features

OFFLINE_IMAGE_SIZE = 64  # EfficientNet-Lite0 input of the offline default (28x28 digits upsampled)


@dataclass
class TransferConfig:
    """What :func:`run_transfer` computes. ``None`` fields take the defaults of :meth:`resolved`."""

    data: str | None = None  # None: Fashion-MNIST when installed, else mnist5k (offline default)
    backbone: str = "efficientnet_lite0"
    layer: str | None = None  # None: the backbone's default tap
    classifiers: list[str] = field(default_factory=lambda: list(C.CLASSIFIERS))
    per_class: int | None = None  # labelled training images per class; 0 = all
    test_per_class: int | None = None  # test images per class; 0 = all
    seeds: list[int] = field(default_factory=lambda: [0])
    image_size: int | None = None  # None: the backbone's own (OFFLINE_IMAGE_SIZE offline)
    Cs: list[float] = field(default_factory=lambda: list(C.DEFAULT_CS))
    folds: int = 3
    pca: int | None = None
    test_curve: bool = False  # also score every C on test (C-sweep figure only; costs one fit per C)
    epochs: int | None = None  # fine-tune / scratch epochs; None: 4 offline, 10 otherwise
    lr: float = 1e-3
    backbone_lr_factor: float = 0.1
    batch_size: int = 32
    feature_batch: int = 64

    def resolved(self) -> TransferConfig:
        """Defaults filled in and values checked (the offline default when ``data`` is None)."""
        offline = self.data is None
        cfg = TransferConfig(**{**asdict(self)})
        if offline:
            from dlapps.data import sources

            cfg.data = "fashion" if sources.debian_fashion() is not None else "mnist5k"
        cfg.per_class = (100 if offline else 0) if self.per_class is None else self.per_class
        cfg.test_per_class = (100 if offline else 0) if self.test_per_class is None else self.test_per_class
        if cfg.epochs is None:
            cfg.epochs = 4 if offline else 10
        if cfg.image_size is None and offline:
            cfg.image_size = OFFLINE_IMAGE_SIZE
        unknown = [c for c in cfg.classifiers if c not in C.CLASSIFIERS]
        if unknown:
            raise UnknownNameError("classifier", unknown[0], C.CLASSIFIERS)
        if not cfg.classifiers or not cfg.seeds:
            raise ConfigError("give at least one classifier and one seed")
        if cfg.per_class < 0 or cfg.test_per_class < 0 or cfg.epochs < 1 or cfg.folds < 2:
            raise ConfigError("per-class counts must be >= 0, epochs >= 1 and folds >= 2")
        if any(c <= 0 for c in cfg.Cs):
            raise ConfigError(f"C values must be positive, got {cfg.Cs}")
        return cfg


def load_images(data: str | Domain, backbone: Backbone) -> Domain:
    """A domain at its native size (image folders: squares of the backbone's resize side)."""
    if isinstance(data, Domain):
        return data
    if data.startswith(IMAGEFOLDER):
        return load_domain(data, size=backbone.resize, channels=3)
    return load_domain(data)


def stratified_subset(y: torch.Tensor, per_class: int, seed: int) -> torch.Tensor:
    """Sorted indices of up to ``per_class`` random rows of every class (all rows when 0)."""
    if per_class == 0:
        return torch.arange(len(y))
    rng = np.random.default_rng(seed)
    labels = y.numpy()
    picks = [rng.permutation(np.flatnonzero(labels == c))[:per_class] for c in np.unique(labels)]
    return torch.from_numpy(np.sort(np.concatenate(picks)))


def prepared_backbone(name: str, image_size: int | None, pretrained: bool = True) -> Backbone:
    b = load_backbone(name, pretrained)
    return b.at_size(image_size) if image_size else b


def splits(domain: Domain, per_class: int, test_per_class: int, seed: int) -> tuple[C.Split, C.Split]:
    """The seed's labelled training draw and the fixed test draw (seed 0 for every run)."""
    if domain.train_y.dim() != 1 or len(domain.train_y) == 0:
        raise DataError(f"{domain.name} has no training images")
    C.check_classes(domain.train_y, f"training split of {domain.name}")
    tr = stratified_subset(domain.train_y, per_class, seed)
    te = stratified_subset(domain.test_y, test_per_class, 0)
    return (C.Split(domain.train_x[tr], domain.train_y[tr], "train"),
            C.Split(domain.test_x[te], domain.test_y[te], "test"))


def _features(backbone: Backbone, layer: str, dataset: str, split: C.Split, cfg: TransferConfig,
              stages: dict[str, float], progress: bool) -> C.Split:
    timing: dict[str, float] = {}
    feats, _ = cached_features(backbone, split.x, layer, dataset, cfg.feature_batch, progress, timing)
    stages["features: data"] = stages.get("features: data", 0.0) + timing.get("data", 0.0)
    stages["features: network"] = stages.get("features: network", 0.0) + timing.get("network", 0.0)
    return C.Split(feats, split.y, split.role)


def _classify(name: str, backbone: Backbone, layer: str, domain: Domain, train: C.Split, test: C.Split,
              cfg: TransferConfig, seed: int, stages: dict[str, float], progress: bool) -> dict:
    """One classifier on one seed's draw -> {"pred", "seconds", extras}."""
    n_classes = len(domain.classes)
    if name in C.FEATURE_CLASSIFIERS:
        ftrain = _features(backbone, layer, domain.name, train, cfg, stages, progress)
        ftest = _features(backbone, layer, domain.name, test, cfg, stages, progress)
        if name == "svm":
            return C.timed(lambda: C.svm_classifier(ftrain, ftest, cfg.Cs, cfg.folds, cfg.pca, seed,
                                                    test_curve=cfg.test_curve and seed == cfg.seeds[0]))
        preset = C.PROBE if name == "probe" else C.FC_HEAD
        return C.timed(lambda: C.train_linear(ftrain, ftest, seed=seed, **preset))
    if name == "finetune":
        source = backbone
    else:
        torch.manual_seed(seed)
        source = prepared_backbone(backbone.name, backbone.input_size, pretrained=False)
    net = with_new_head(source, n_classes)
    factor = cfg.backbone_lr_factor if name == "finetune" else 1.0

    def prepare(x: torch.Tensor) -> torch.Tensor:
        return source.normalize(source.preprocess(x))

    return C.timed(lambda: C.train_network(net, source.head, train, test, prepare, epochs=cfg.epochs,
                                           lr=cfg.lr, backbone_lr_factor=factor,
                                           batch_size=cfg.batch_size, seed=seed, progress=progress,
                                           desc=f"{name} seed {seed}"))


def _stat(values: Sequence[float]) -> dict:
    a = np.asarray(values, dtype=float)
    return {"mean": float(a.mean()), "std": float(a.std(ddof=1)) if len(a) > 1 else 0.0, "n": len(a)}


def run_transfer(config: TransferConfig | None = None, out: Path | None = None,
                 progress: bool = True, data: Domain | None = None) -> dict:
    """Run the classifiers of ``config`` and write results.json, figures and report.html to ``out``.

    ``data`` may be given as an already-loaded :class:`Domain` (notebooks, tests).
    """
    from dlapps.engine.device import environment
    from dlapps.transfer import report

    cfg = (config or TransferConfig()).resolved()
    stages: dict[str, float] = {}
    t0 = time.perf_counter()
    backbone = prepared_backbone(cfg.backbone, cfg.image_size)
    layer = cfg.layer or backbone.default_tap
    backbone.tap_node(layer)  # an unknown layer fails before any work
    stages["load backbone"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    domain = load_images(data if data is not None else cfg.data, backbone)
    stages["load data"] = time.perf_counter() - t0
    per_seed: dict[str, list[dict]] = {name: [] for name in cfg.classifiers}
    confusion, c_sweep = {}, None
    for seed in cfg.seeds:
        train, test = splits(domain, cfg.per_class, cfg.test_per_class, seed)
        for name in cfg.classifiers:
            r = _classify(name, backbone, layer, domain, train, test, cfg, seed, stages, progress)
            stages[name] = stages.get(name, 0.0) + r["seconds"]
            acc = float((r["pred"] == test.y).float().mean())
            keep = {k: v for k, v in r.items() if k not in ("pred", "cv_curve")}
            per_seed[name].append({"seed": seed, "test_acc": acc, **keep})
            if seed == cfg.seeds[0]:
                confusion[name] = _confusion(test.y, r["pred"], len(domain.classes))
                c_sweep = r.get("cv_curve", c_sweep)
    summary = {name: {"test_acc": _stat([r["test_acc"] for r in runs])["mean"],
                      "test_acc_std": _stat([r["test_acc"] for r in runs])["std"],
                      "seconds": _stat([r["seconds"] for r in runs])["mean"], "per_seed": runs}
               for name, runs in per_seed.items()}
    results = {
        "kind": "transfer",
        "config": asdict(cfg),
        "data": {"name": domain.name, "classes": domain.classes, "train_images": len(train.y),
                 "test_images": len(test.y), "native_shape": list(domain.shape)},
        "backbone": {"name": backbone.name, "weights": backbone.weights_id, "layer": layer,
                     "node": backbone.tap_node(layer), "input_size": backbone.input_size,
                     "resize": backbone.resize, "parameters": parameter_table(backbone.net)},
        "test_acc": {name: s["test_acc"] for name, s in summary.items()},
        "classifiers": summary,
        "confusion": confusion,
        "c_sweep": c_sweep,
        "stages_s": stages,
        "environment": environment(),
    }
    if out is not None:
        out = Path(out)
        atomic_write_json(out / "results.json", results)
        report.transfer_report(out, results)
    return results


def _confusion(y: torch.Tensor, pred: torch.Tensor, n: int) -> list[list[int]]:
    m = torch.zeros(n, n, dtype=torch.int64)
    m.index_put_((y, pred), torch.ones_like(y), accumulate=True)
    return m.tolist()


def run_study(data: str | Domain, backbones: Sequence[str], layers: Sequence[str] | None = None,
              config: TransferConfig | None = None, out: Path | None = None, progress: bool = True) -> dict:
    """SVM accuracy for every backbone x tap (a tap a backbone lacks is skipped and listed).

    ``layers=None`` uses each backbone's default tap. C is chosen by CV on the training split; the
    test accuracy along the C grid is recorded for the C-sweep figure.
    """
    from dlapps.engine.device import environment
    from dlapps.transfer import report

    base = TransferConfig(**{**asdict(config or TransferConfig()), "data": "given",
                             "classifiers": ["svm"], "test_curve": True}).resolved()
    cells, skipped, stages, loaded = [], [], {}, {}
    for name in backbones:
        backbone = prepared_backbone(name, base.image_size)
        key = backbone.resize if isinstance(data, str) and data.startswith(IMAGEFOLDER) else 0
        if key not in loaded:
            loaded[key] = load_images(data, backbone)
        domain = loaded[key]
        for layer in layers or [backbone.default_tap]:
            try:
                backbone.tap_node(layer)
            except UnknownNameError:
                skipped.append({"backbone": name, "layer": layer, "taps": sorted(backbone.taps)})
                continue
            runs = []
            for seed in base.seeds:
                train, test = splits(domain, base.per_class, base.test_per_class, seed)
                r = _classify("svm", backbone, layer, domain, train, test,
                              TransferConfig(**{**asdict(base), "seeds": [seed]}), seed, stages, progress)
                runs.append({"seed": seed, "test_acc": float((r["pred"] == test.y).float().mean()),
                             "C": r["C"], "cv_curve": r["cv_curve"], "seconds": r["seconds"]})
            accs = _stat([r["test_acc"] for r in runs])
            cells.append({"backbone": name, "layer": layer, "weights": backbone.weights_id,
                          "test_acc": accs["mean"], "test_acc_std": accs["std"], "runs": runs})
    if not cells:
        raise ConfigError(f"no backbone has any of the layers {list(layers or [])}: {skipped}")
    results = {"kind": "transfer-study", "config": asdict(base), "cells": cells, "skipped": skipped,
               "data": {"name": domain.name, "classes": domain.classes}, "stages_s": stages,
               "environment": environment()}
    if out is not None:
        out = Path(out)
        atomic_write_json(out / "results.json", results)
        report.study_report(out, results)
    return results


@torch.no_grad()
def first_conv_activations(image: Path | str, backbone_name: str = "efficientnet_lite0",
                           out: Path | None = None, image_size: int | None = None) -> dict:
    """The first convolution's filters and their responses to one image (plus the top-5 classes)."""
    from dlapps.data.sources import read_image
    from dlapps.models.pretrained import imagenet_classes
    from dlapps.transfer import report

    path = Path(image).expanduser()
    if not path.is_file():
        raise DataError(f"image {path} does not exist")
    backbone = prepared_backbone(backbone_name, image_size)
    x = backbone.preprocess([read_image(path)])
    maps = backbone.first_conv(backbone.normalize(x))[0]
    probs = backbone.pixel_model()(x).softmax(1)[0]
    names = imagenet_classes()
    top = [{"class": names[i], "p": float(probs[i])} for i in probs.topk(5).indices]
    results = {"kind": "transfer-activations", "image": str(path), "backbone": backbone.name,
               "weights": backbone.weights_id, "first_conv": list(backbone.first_conv.weight.shape),
               "input_size": backbone.input_size, "top5": top}
    if out is not None:
        out = Path(out)
        atomic_write_json(out / "results.json", results)
        report.activations_report(out, results, x[0], maps, backbone.first_conv.weight)
    return results
