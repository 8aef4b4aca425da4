"""Transfer learning experiments: the public functions behind ``dlapps transfer``.

:func:`run_transfer` answers the course's question "should I use pretrained features on my
small dataset, and why not train the big network directly?": it draws ``per_class`` labelled
training images per class (one draw per seed), extracts (cached) features at one tap, and compares
the classifiers of :mod:`dlapps.transfer.classifiers` on the same fixed test images.

:func:`run_compare` is the grid runner: the SVM on every backbone x tap (C chosen by CV on the
training split), recording CV and test accuracy along the C grid.

:func:`first_conv_activations` shows what the first convolution of a backbone responds to.

A run directory holds ``config.json``, one folder per cell (``finetune-seed0/``: the engine's
checkpoint and log for a network, and ``cell.json`` once the cell is done), ``results.json``,
``figures/`` and ``report.html``. Running again into the same directory continues it: finished
cells are read back, a network resumes from its last epoch. The cells of a run are independent: they
run in this process, in ``workers`` processes of this machine, or as Slurm jobs or Ray tasks
(``launcher``, :mod:`dlapps.engine.launchers`), with the same numbers wherever they ran.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dlapps.config import check_run_dir, save_config
from dlapps.data import load_domain
from dlapps.data.domains import IMAGEFOLDER, Domain
from dlapps.data.features import cached_features
from dlapps.engine.device import environment, resolve_device
from dlapps.engine.launchers import Launcher, get_launcher
from dlapps.engine.parallel import run_cells
from dlapps.errors import ConfigError, DataError, UnknownNameError
from dlapps.io import atomic_write_json
from dlapps.models.pretrained import Backbone, parameter_table
from dlapps.runs import write_results
from dlapps.transfer.classifiers import CLASSIFIERS, Cell, Split, check_classes, prepared_backbone, timed
from dlapps.transfer.config import CompareConfig, TransferConfig

CELL = "cell.json"
KIND = "transfer"


# --- data ----------------------------------------------------------------------------------------


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


def splits(domain: Domain, per_class: int, test_per_class: int, seed: int) -> tuple[Split, Split]:
    """The seed's labelled training draw and the fixed test draw (seed 0 for every run)."""
    if domain.train_y.dim() != 1 or len(domain.train_y) == 0:
        raise DataError(f"{domain.name} has no training images")
    check_classes(domain.train_y, f"training split of {domain.name}")
    tr = stratified_subset(domain.train_y, per_class, seed)
    te = stratified_subset(domain.test_y, test_per_class, 0)
    return (Split(domain.train_x[tr], domain.train_y[tr], "train"),
            Split(domain.test_x[te], domain.test_y[te], "test"))


class _Features:
    """Cached features of splits at a tap (each split computed once here), timed into ``stages``."""

    def __init__(self, backbone: Backbone, dataset: str, batch: int, progress: bool, device: torch.device,
                 stages: dict[str, float]) -> None:
        self.backbone, self.dataset, self.batch, self.progress = backbone, dataset, batch, progress
        self.device, self.stages = device, stages
        self._memo: dict[tuple[str, int], tuple[Split, Split]] = {}

    def __call__(self, split: Split, layer: str) -> Split:
        key = (layer, id(split))
        if key not in self._memo:
            timing: dict[str, float] = {}
            feats, _ = cached_features(self.backbone, split.x, layer, self.dataset, self.batch, self.progress,
                                       timing, self.device)
            for part in ("data", "network"):
                stage = f"features: {part}"
                self.stages[stage] = self.stages.get(stage, 0.0) + timing.get(part, 0.0)
            self._memo[key] = (split, Split(feats, split.y, split.role))  # keeps split alive: ids stay unique
        return self._memo[key][1]


# --- cells ---------------------------------------------------------------------------------------


def run_cell(cell: Cell, cell_file: Path | None = None) -> dict:
    """Train and score one classifier on one seed's draw (in this process or a worker's); the
    result, test predictions included, is written to ``cell_file`` when given."""
    r = timed(lambda: CLASSIFIERS[cell.name].fit(cell))
    pred = r.pop("pred")
    result = {"test_acc": float((pred == cell.test.y).float().mean()), "pred": pred.tolist(), **r}
    if cell_file is not None:
        atomic_write_json(cell_file, result)
    return result


class _Here:
    """A value a cell gets only where it runs in this process: a pickled copy (a worker's, a Slurm
    job's, a Ray task's) holds None, so the backbone is not shipped but loaded there by name."""

    def __init__(self, value: Any) -> None:
        self.value = value

    def __reduce__(self) -> tuple:
        return _Here, (None,)


def _run_here_or_there(cell: Cell, backbone: _Here) -> dict:
    """:func:`run_cell` on ``cell`` with ``backbone``, writing ``cell.json`` into its folder if it has one."""
    cell_file = None if cell.run_dir is None else cell.run_dir / CELL
    return run_cell(replace(cell, backbone=backbone.value), cell_file)


def _run_cells(out: Path | None, folders: dict[tuple, str], cell: Callable[[tuple, Path | None, bool], Cell],
               device: torch.device, workers: int | None, progress: bool,
               launcher: Launcher) -> dict[tuple, dict]:
    """Every cell's result by its key: read back from ``out/<folder>/cell.json`` where an earlier run
    finished it (under any launcher), else run through ``launcher`` (local: ``workers`` processes on
    a CPU, one on a GPU). ``cell(key, cell_dir, here)`` builds a cell only when it is to run (features
    are extracted then, here); ``here``: it runs alone in this process and may draw its own bar."""
    dirs = {key: None if out is None else out / folder for key, folder in folders.items()}

    def job(key: tuple, here: bool) -> tuple[Cell, _Here]:
        c = cell(key, dirs[key], here)
        return replace(c, backbone=None), _Here(c.backbone)

    results, _ = run_cells(_run_here_or_there, list(dirs),
                           lambda key: None if dirs[key] is None else dirs[key] / CELL, job,
                           workers if device.type == "cpu" else 1, progress, launcher)
    return dict(zip(dirs, results, strict=True))


def _prepare_run_dir(out: Path | None, cfg: TransferConfig | CompareConfig) -> Path | None:
    """Make ``out`` and save ``cfg`` there; a directory of an earlier run continues only when its
    settings are the same (the device may differ)."""
    if out is None:
        return None
    out = Path(out)
    check_run_dir(cfg, out)
    out.mkdir(parents=True, exist_ok=True)
    save_config(cfg, out / "config.json")
    return out


def _stat(values: Sequence[float]) -> dict:
    a = np.asarray(values, dtype=float)
    return {"mean": float(a.mean()), "std": float(a.std(ddof=1)) if len(a) > 1 else 0.0, "n": len(a)}


def _finish(out: Path | None, config: dict, results: dict) -> dict:
    """Stamp and write results.json, render the report; the stamped results."""
    if out is None:
        return {"kind": KIND, "config": config, "environment": environment(), **results}
    from dlapps.transfer import report

    results = write_results(out, KIND, config, results)
    report.render(out)
    return results


# --- the classifiers on one tap ------------------------------------------------------------------


def run_transfer(config: TransferConfig | None = None, out: Path | None = None, progress: bool = True,
                 data: Domain | None = None, workers: int | None = 1,
                 launcher: Launcher | str | None = None) -> dict:
    """Run the classifiers of ``config`` and write results.json, figures and report.html to ``out``
    (continuing the run already there); the results.

    ``data`` may be given as an already-loaded :class:`Domain` (notebooks, tests; the config then
    names it, with a named dataset's defaults). ``workers``
    cells train at once in separate processes (None: one per core; always 1 on a GPU);
    ``launcher`` sends the cells to a Slurm or Ray cluster instead (:mod:`dlapps.engine.launchers`).
    """
    launcher = get_launcher(launcher)
    cfg = config or TransferConfig()
    cfg = (replace(cfg, data=data.name) if data is not None else cfg).resolved()
    device = resolve_device(cfg.device)
    stages: dict[str, float] = {}
    t0 = time.perf_counter()
    backbone = prepared_backbone(cfg.backbone, cfg.image_size)
    layer = cfg.layer or backbone.default_tap
    backbone.tap_node(layer)  # an unknown layer fails before any work
    stages["load backbone"] = time.perf_counter() - t0
    out = _prepare_run_dir(out, cfg)
    launcher = launcher.within(out) if out else launcher
    t0 = time.perf_counter()
    domain = load_images(data if data is not None else cfg.data, backbone)
    stages["load data"] = time.perf_counter() - t0
    n_classes = len(domain.classes)
    features = _Features(backbone, domain.name, cfg.feature_batch, progress, device, stages)
    draws = {seed: splits(domain, cfg.per_class, cfg.test_per_class, seed) for seed in cfg.seeds}
    train, test = draws[cfg.seeds[0]]  # the same test images for every seed: one object, one extraction

    def cell(key: tuple[str, int], cell_dir: Path | None, here: bool) -> Cell:
        name, seed = key
        tr, te = draws[seed][0], test
        if CLASSIFIERS[name].on_features:
            tr, te = features(tr, layer), features(te, layer)
        return Cell(name, seed, tr, te, n_classes, cfg, cell_dir, device, here, backbone, domain.classes)

    folders = {(name, seed): f"{name}-seed{seed}" for seed in cfg.seeds for name in cfg.classifiers}
    done = _run_cells(out, folders, cell, device, workers, progress, launcher)

    per_seed: dict[str, list[dict]] = {name: [] for name in cfg.classifiers}
    confusion, c_sweep = {}, None
    for seed in cfg.seeds:
        for name in cfg.classifiers:
            r = done[(name, seed)]
            stages[name] = stages.get(name, 0.0) + r["seconds"]
            kept = {k: v for k, v in r.items() if k not in ("pred", "cv_curve")}
            per_seed[name].append({"seed": seed, **kept})
            if seed == cfg.seeds[0]:
                confusion[name] = _confusion(test.y, torch.tensor(r["pred"]), n_classes)
                c_sweep = r.get("cv_curve", c_sweep)
    summary = {name: {"test_acc": _stat([r["test_acc"] for r in runs])["mean"],
                      "test_acc_std": _stat([r["test_acc"] for r in runs])["std"],
                      "seconds": _stat([r["seconds"] for r in runs])["mean"], "per_seed": runs}
               for name, runs in per_seed.items()}
    results = {
        "mode": "classifiers",
        "data": {"name": domain.name, "classes": domain.classes, "train_images": len(train.y),
                 "test_images": len(test.y), "native_shape": list(domain.shape)},
        "backbone": {"name": backbone.name, "weights": backbone.weights_id, "layer": layer,
                     "node": backbone.tap_node(layer), "input_size": backbone.input_size,
                     "resize": backbone.resize, "parameters": parameter_table(backbone.net)},
        "test_acc": {name: s["test_acc"] for name, s in summary.items()},
        "classifiers": summary,
        "confusion": confusion,
        "c_sweep": c_sweep,
        "stage_seconds": stages,
    }
    return _finish(out, cfg.to_dict(), results)


def _confusion(y: torch.Tensor, pred: torch.Tensor, n: int) -> list[list[int]]:
    m = torch.zeros(n, n, dtype=torch.int64)
    m.index_put_((y, pred.to(torch.int64)), torch.ones_like(y), accumulate=True)
    return m.tolist()


# --- the grid: backbones x taps ------------------------------------------------------------------


def run_compare(config: CompareConfig | None = None, out: Path | None = None, progress: bool = True,
                data: Domain | None = None, workers: int | None = 1,
                launcher: Launcher | str | None = None) -> dict:
    """SVM accuracy for every backbone x tap of ``config`` (a tap a backbone lacks is skipped and
    listed), continuing the grid already in ``out``.

    C is chosen by CV on the training split; the test accuracy along the C grid is recorded for the
    C-sweep figure. Features are extracted here, backbone by backbone; the SVM cells of a backbone
    run ``workers`` at a time (None: one per core), or through ``launcher`` as in :func:`run_transfer`.
    """
    launcher = get_launcher(launcher)
    cfg = config or CompareConfig()
    cfg = (replace(cfg, data=data.name) if data is not None else cfg).resolved()
    device = resolve_device(cfg.device)
    out = _prepare_run_dir(out, cfg)
    launcher = launcher.within(out) if out else launcher
    cells, skipped, stages, loaded = [], [], {}, {}
    domain = None
    for name in cfg.backbones:
        t0 = time.perf_counter()
        backbone = prepared_backbone(name, cfg.image_size)
        stages["load backbone"] = stages.get("load backbone", 0.0) + time.perf_counter() - t0
        source = data if data is not None else cfg.data
        key = backbone.resize if isinstance(source, str) and source.startswith(IMAGEFOLDER) else 0
        if key not in loaded:
            t0 = time.perf_counter()
            loaded[key] = load_images(source, backbone)
            stages["load data"] = stages.get("load data", 0.0) + time.perf_counter() - t0
        domain = loaded[key]
        features = _Features(backbone, domain.name, cfg.feature_batch, progress, device, stages)
        draws = {seed: splits(domain, cfg.per_class, cfg.test_per_class, seed) for seed in cfg.seeds}
        test = draws[cfg.seeds[0]][1]  # the same images for every seed: one object, one extraction
        layers = [la for la in cfg.layers or [backbone.default_tap] if _has_tap(backbone, la, skipped)]
        folders = {(layer, seed): f"{name}-{layer}-seed{seed}" for layer in layers for seed in cfg.seeds}
        cell = partial(_svm_cell, features, draws, test, len(domain.classes), cfg, device)
        done = _run_cells(out, folders, cell, device, workers, progress, launcher)
        for layer in layers:
            runs = [{"seed": seed, "test_acc": done[(layer, seed)]["test_acc"], "C": done[(layer, seed)]["C"],
                     "cv_curve": done[(layer, seed)]["cv_curve"], "seconds": done[(layer, seed)]["seconds"]}
                    for seed in cfg.seeds]
            stages["svm"] = stages.get("svm", 0.0) + sum(r["seconds"] for r in runs)
            accs = _stat([r["test_acc"] for r in runs])
            cells.append({"backbone": name, "layer": layer, "weights": backbone.weights_id,
                          "test_acc": accs["mean"], "test_acc_std": accs["std"], "runs": runs})
    if not cells:
        raise ConfigError(f"no backbone has any of the layers {list(cfg.layers or [])}: {skipped}")
    results = {"mode": "compare", "cells": cells, "skipped": skipped,
               "data": {"name": domain.name, "classes": domain.classes}, "stage_seconds": stages}
    return _finish(out, cfg.to_dict(), results)


def _svm_cell(features: _Features, draws: dict[int, tuple[Split, Split]], test: Split, n_classes: int,
              cfg: CompareConfig, device: torch.device, key: tuple[str, int], cell_dir: Path | None,
              here: bool) -> Cell:
    """The SVM cell of ``key`` = (layer, seed): that tap's features of the seed's draw and of ``test``."""
    layer, seed = key
    return Cell("svm", seed, features(draws[seed][0], layer), features(test, layer), n_classes, cfg.svm(seed),
                cell_dir, device, False)


def _has_tap(backbone: Backbone, layer: str, skipped: list[dict]) -> bool:
    try:
        backbone.tap_node(layer)
    except UnknownNameError:
        skipped.append({"backbone": backbone.name, "layer": layer, "taps": sorted(backbone.taps)})
        return False
    return True


# --- what the first convolution sees -------------------------------------------------------------


@torch.no_grad()
def first_conv_activations(image: Path | str, backbone_name: str = "efficientnet_lite0",
                           out: Path | None = None, image_size: int | None = None) -> dict:
    """The first convolution's filters and their responses to one image (plus the top-5 classes)."""
    from dlapps.data.sources import read_image
    from dlapps.models.pretrained import imagenet_classes

    path = Path(image).expanduser()
    if not path.is_file():
        raise DataError(f"image {path} does not exist")
    backbone = prepared_backbone(backbone_name, image_size)
    x = backbone.preprocess([read_image(path)])
    maps = backbone.first_conv(backbone.normalize(x))[0]
    probs = backbone.pixel_model()(x).softmax(1)[0]
    names = imagenet_classes()
    top = [{"class": names[i], "p": float(probs[i])} for i in probs.topk(5).indices]
    results = {"mode": "activations", "image": str(path), "backbone": backbone.name,
               "weights": backbone.weights_id, "first_conv": list(backbone.first_conv.weight.shape),
               "input_size": backbone.input_size, "top5": top}
    config = {"image": str(path), "backbone": backbone_name, "image_size": image_size}
    if out is not None:
        from dlapps.transfer import report

        out = Path(out)
        report.activation_figures(out, results, x[0], maps, backbone.first_conv.weight)
    return _finish(None if out is None else out, config, results)
