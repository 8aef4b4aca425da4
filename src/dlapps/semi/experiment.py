"""``dlapps semi``: train every (method, labels, seed) cell on few labels and measure it.

The lecture's protocol (Lee 2013): ``labels`` training images drawn class-balanced with the
seed are the labelled set, the rest of the training images the unlabelled set (their labels are
removed before training: the methods get the images only), the test split measures. A run
directory::

    runs/semi-20261130-101500/
      config.json  results.json  report.html  figures/*.png
      pseudo-label-n1000-seed0/     one cell: checkpoint.pt, metrics.jsonl, TensorBoard events,
                                    model.pt (the trained classifier), final.json (written last:
                                    a cell with it is done), tsne.pt (snapshots over training)

Cells run one after another (or ``workers`` at a time); running the same command again with the
same ``--out`` continues a killed run: finished cells are kept, an interrupted one continues from
its last epoch and ends with the numbers an uninterrupted run gives. Reported numbers are those
of the last epoch: nothing is selected with test labels.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from dlapps.config import check_run_dir, config_dict, save_config
from dlapps.data import Domain, load_domain
from dlapps.data.subsets import balanced_subset
from dlapps.engine import Labelled, PairedBatches, Trainer, resolve_device, seed_everything
from dlapps.engine.batches import batched, eval_mode, fixed_sample
from dlapps.engine.device import environment
from dlapps.engine.launchers import get_launcher
from dlapps.engine.parallel import run_cells
from dlapps.engine.schedules import lr_schedule
from dlapps.errors import ConfigError, DataError
from dlapps.io import atomic_torch_save, atomic_write_json, safe_torch_load
from dlapps.models.export import MODEL_FILE, save_classifier
from dlapps.runs import stat, write_results
from dlapps.semi.config import SemiConfig
from dlapps.semi.methods import METHODS

CONFIG = "config.json"
FINAL = "final.json"
TSNE_LABELLED_PER_CLASS = 10

#: the lecture's numbers (MNIST, 1,000 class-balanced labels, 59,000 unlabelled, 10,000 test;
#: an MLP with dropout, 170 epochs, α_f = 3): test accuracy, and the failure cases
LECTURE = {
    "protocol": "full MNIST: 1,000 labels + 59,000 unlabelled, 10,000 test, 170 epochs, α_f = 3",
    "supervised": {"labels": 1000, "test_acc": 0.9557, "test_loss": 0.233},
    "pseudo-label": {"labels": 1000, "test_acc": 0.9846, "test_loss": 0.075, "epoch": 168},
    "failures": [
        {"case": "1 label per class (10 labels)", "labels": 10, "pseudo-label": 0.1135},
        {"case": "2 labels per class (20 labels), 95 epochs", "labels": 20, "pseudo-label": 0.4332},
        {"case": "class 7 has no labels (1,000 labels)", "labels": 1000, "missing_class": 7,
         "supervised": 0.856, "pseudo-label": 0.8798, "note": "class 7 is never learned"},
    ],
}


@dataclass
class SemiData:
    """The run's data, shaped for the network."""

    domain: Domain
    missing: int | None  # the class index that gets no labels

    @property
    def classes(self) -> list[str]:
        return self.domain.classes


def resolve_missing(missing: int | str | None, classes: list[str]) -> int | None:
    """The class index that ``--missing-class`` names (an index or a class name)."""
    if missing is None:
        return None
    if isinstance(missing, str) and missing in classes:
        return classes.index(missing)
    text = str(missing).strip()
    index = int(text) if text.isdigit() else -1
    if not 0 <= index < len(classes):
        raise ConfigError(f"--missing-class {missing!r} is not a class of the data; give an index "
                          f"0..{len(classes) - 1} or a name: {', '.join(classes)}")
    return index


def load_data(config: SemiConfig) -> SemiData:
    domain = load_domain(config.data)
    size = config.image_size or domain.shape[1]
    domain = domain.shaped(size, config.channels or domain.shape[0])
    if len(domain.train_y) == 0 or len(domain.test_y) == 0:
        raise DataError(f"{config.data} needs training and test images")
    missing = resolve_missing(config.missing_class, domain.classes)
    present = len(domain.classes) - (missing is not None)
    for n in config.labels:
        if n < present:
            raise ConfigError(f"--labels {n} is fewer than the {present} classes that get labels: "
                              f"give at least one label per class")
        if n >= len(domain.train_y):
            raise ConfigError(f"--labels {n} leaves no unlabelled images: {config.data} has "
                              f"{len(domain.train_y)} training images")
        balanced_subset(domain.train_y, n, 0, missing)  # enough images in every class?
    return SemiData(domain, missing)


@dataclass
class Split:
    """The labelled set (images and labels), the unlabelled images, and the labels hidden from
    the methods (kept for the ``full`` ceiling and for diagnostics measured after training)."""

    indices: torch.Tensor  # of the labelled images among the training images
    labelled: Labelled
    unlabelled_x: torch.Tensor
    hidden_y: torch.Tensor

    def everything(self) -> Labelled:
        """Every training image with its label (the ``full`` ceiling only)."""
        return Labelled(torch.cat([self.labelled.x, self.unlabelled_x]),
                        torch.cat([self.labelled.y, self.hidden_y]))


def make_split(data: SemiData, labels: int, seed: int) -> Split:
    """``labels`` class-balanced labelled images (seeded) and the rest as unlabelled."""
    d = data.domain
    chosen = balanced_subset(d.train_y, labels, seed, data.missing)
    is_labelled = torch.zeros(len(d.train_y), dtype=torch.bool)
    is_labelled[chosen] = True
    return Split(chosen, Labelled(d.train_x[chosen], d.train_y[chosen]), d.train_x[~is_labelled],
                 d.train_y[~is_labelled])


def cell_name(method: str, labels: int, seed: int) -> str:
    return f"{method}-n{labels}-seed{seed}"


def network_spec(config: SemiConfig, data: SemiData) -> dict:
    """The builder arguments of the run's classifier (the digit network of the DANN papers:
    conv32-conv48, fc100-fc100; :func:`dlapps.models.export.load_classifier` rebuilds it)."""
    c, s = data.domain.shape[0], data.domain.shape[1]
    mean = (data.domain.train_x.float().mean(dim=(0, 2, 3)) / 255.0).tolist()
    return {"arch": "mnist", "in_channels": c, "image_size": s, "num_classes": len(data.classes),
            "mean": mean, "dropout": config.dropout}


def tsne_epochs(config: SemiConfig) -> list[int]:
    """The epochs at which the features are snapshotted: first, evenly between, last."""
    k = min(config.tsne_epochs, config.epochs)
    return sorted({round(1 + i * (config.epochs - 1) / max(k - 1, 1)) for i in range(k)})


def tsne_cell(config: SemiConfig, method: str, labels: int, seed: int) -> bool:
    """t-SNE snapshots for one cell per run: the first seed and label count, and pseudo-label
    (the lecture's figure) or else the first method."""
    pick = "pseudo-label" if "pseudo-label" in config.methods else config.methods[0]
    return config.tsne and method == pick and labels == config.labels[0] and seed == config.seeds[0]


def train_cell(config: SemiConfig, data: SemiData, method_name: str, labels: int, seed: int,
               cell_dir: Path, device: torch.device, progress: bool = True) -> dict:
    """Train one cell to the end (resuming from its checkpoint) and measure it."""
    from dlapps.models import build_digits_net

    d = data.domain
    split = make_split(data, labels, seed)
    method_cls = METHODS[method_name]
    labelled = split.everything() if method_cls.uses_all_labels else split.labelled
    unlabelled_x, hidden_y = split.unlabelled_x, split.hidden_y
    # the unlabelled set's labels are not handed on: a constant stands in their place
    unlabelled = Labelled(unlabelled_x, torch.full_like(hidden_y, -1))
    spec = network_spec(config, data)
    seed_everything(seed)
    method = method_cls(build_digits_net(**spec), config)
    # with fewer labels than a batch, every labelled image is in every step's batch
    batches = PairedBatches(labelled, unlabelled, min(config.batch_size, len(labelled.y)), seed,
                            target_batch_size=config.unlabelled_batch, drive="target")

    def evaluate(m) -> dict:
        logits = batched(m.predict, d.test_x, device)
        pseudo = batched(m.predict, unlabelled_x, device).argmax(1)
        return {"test_acc": float((logits.argmax(1) == d.test_y).float().mean()),
                "test_loss": float(F.cross_entropy(logits, d.test_y)),
                # a diagnostic only, measured with the hidden labels after the epoch's training
                "pseudo_acc": float((pseudo == hidden_y).float().mean())}

    snapshots = tsne_epochs(config) if tsne_cell(config, method_name, labels, seed) else []
    pick_l = torch.cat([torch.nonzero(split.labelled.y == c).squeeze(1)[:TSNE_LABELLED_PER_CLASS]
                        for c in range(len(data.classes))])
    pick_u = fixed_sample(len(hidden_y), config.tsne_points, seed)

    def epoch_end(epoch: int, m) -> None:
        if epoch in snapshots:
            with eval_mode(m):
                feats_l = batched(m.embed, split.labelled.x[pick_l], device)
                feats_u = batched(m.embed, unlabelled_x[pick_u], device)
                pseudo = batched(m.predict, unlabelled_x[pick_u], device).argmax(1)
            atomic_torch_save({"epoch": epoch, "labelled": feats_l, "unlabelled": feats_u,
                               "pseudo": pseudo}, cell_dir / f"features-epoch{epoch}.pt")

    trainer = Trainer(
        method, batches, torch.optim.SGD(method.parameters(), lr=config.lr, momentum=config.momentum,
                                         weight_decay=config.weight_decay, nesterov=True),
        lr_schedule(config.lr_schedule, config.lr), config.epochs, cell_dir, evaluate=evaluate,
        epoch_end=epoch_end, device=device, amp=config.amp, channels_last=config.channels_last,
        fingerprint=config.training_fingerprint(method_name, labels, seed),
        log_every=config.log_every, progress=progress, desc=cell_name(method_name, labels, seed),
    )
    history = trainer.fit()
    method.eval()
    logits = batched(method.predict, d.test_x, device)
    pred = logits.argmax(1)
    per_class = [float((pred[d.test_y == c] == c).float().mean()) if (d.test_y == c).any() else None
                 for c in range(len(data.classes))]
    last = history[-1]
    save_classifier(cell_dir / MODEL_FILE, method.net, "digits", spec, data.classes, size=d.shape[1],
                    channels=d.shape[0], kind="semi")
    if snapshots:
        write_tsne(cell_dir, snapshots, split.labelled.y[pick_l], hidden_y[pick_u], seed)
    result = {"method": method_name, "labels": labels, "seed": seed, "test_acc": last["test_acc"],
              "test_loss": last["test_loss"], "pseudo_acc": last["pseudo_acc"],
              "per_class_acc": per_class, "seconds": last["seconds"], "epochs": last["epoch"],
              "steps": last["step"], "labelled": len(labelled.y), "unlabelled": len(hidden_y),
              "labelled_per_class": torch.bincount(labelled.y, minlength=len(data.classes)).tolist(),
              "labelled_indices_sha256": _digest(split.indices)}
    atomic_write_json(cell_dir / FINAL, result)
    return result


def _digest(indices: torch.Tensor) -> str:
    import hashlib

    return hashlib.sha256(json.dumps(indices.tolist()).encode()).hexdigest()[:16]


def write_tsne(cell_dir: Path, epochs: list[int], labelled_y: torch.Tensor, true_y: torch.Tensor,
               seed: int) -> None:
    """t-SNE of each snapshot's features (labelled and unlabelled points together) → tsne.pt."""
    from dlapps.report.embedding import tsne_2d

    panels = []
    for epoch in epochs:
        snap = safe_torch_load(cell_dir / f"features-epoch{epoch}.pt", "feature snapshot")
        xy = tsne_2d(torch.cat([snap["labelled"], snap["unlabelled"]]).numpy(), seed)
        panels.append({"epoch": epoch, "xy": torch.from_numpy(xy), "n_labelled": len(labelled_y),
                       "labelled_y": labelled_y, "true_y": true_y, "pseudo_y": snap["pseudo"]})
    atomic_torch_save(panels, cell_dir / "tsne.pt")


def summarize(config: SemiConfig, runs: list[dict]) -> dict:
    """Per (labels, method): mean ± std over seeds; the gain over supervised."""
    table: dict[str, dict] = {}
    for n in config.labels:
        rows: dict[str, dict] = {}
        for name in config.methods:
            cells = [r for r in runs if r["method"] == name and r["labels"] == n]
            per_class = np.array([c["per_class_acc"] for c in cells], dtype=float)
            rows[name] = {"n_seeds": len(cells),
                          **{k: stat([c[k] for c in cells]) for k in
                             ("test_acc", "test_loss", "pseudo_acc", "seconds")},
                          "per_class_acc": np.nanmean(per_class, axis=0).tolist()}
        if "supervised" in rows:
            floor = rows["supervised"]["test_acc"]["mean"]
            for row in rows.values():
                row["gain_over_supervised"] = row["test_acc"]["mean"] - floor
        table[str(n)] = rows
    return {"by_labels": table}


def run_semi(config: SemiConfig, out: Path | None = None, progress: bool = True, report: bool = True,
             workers: int | None = 1, launcher=None) -> dict:
    """Run (or continue) a semi-supervised experiment; returns the content of ``results.json``."""
    config = config.validate()
    run_dir = Path(out) if out else Path("runs") / f"semi-{datetime.now():%Y%m%d-%H%M%S}"
    resuming = check_run_dir(config, run_dir)  # the folder continues only its own run
    device = resolve_device(config.device)
    data = load_data(config)  # loads and checks the data before anything is written
    run_dir.mkdir(parents=True, exist_ok=True)
    if not resuming:
        save_config(config, run_dir / CONFIG)
    started = time.perf_counter()
    cells = [(m, n, s) for n in config.labels for m in config.methods for s in config.seeds]
    runs, workers = run_cells(
        train_cell, cells, lambda c: run_dir / cell_name(*c) / FINAL,
        lambda c, bar: (config, data, *c, run_dir / cell_name(*c), device, bar),
        workers if device.type == "cpu" else 1, progress, get_launcher(launcher).within(run_dir))
    d = data.domain
    results = {
        "data": {"name": config.data, "train": len(d.train_y), "test": len(d.test_y),
                 "classes": d.classes, "shape": list(d.shape), **d.info,
                 "missing_class": data.missing,
                 "labelled_subsets": {f"n{n}-seed{s}": balanced_subset(d.train_y, n, s, data.missing).tolist()
                                      for n in config.labels for s in config.seeds}},
        "runs": runs,
        "summary": summarize(config, runs),
        "lecture": LECTURE,
        "environment": {**environment(), "device": str(device), "cell_workers": workers},
        "wall_seconds": round(time.perf_counter() - started, 1),
    }
    results = write_results(run_dir, "semi", config_dict(config), results)
    if report:
        from dlapps.semi.report import render

        render(run_dir)
    results["run_dir"] = str(run_dir)
    return results
