"""``dlapps ssl``: learn features without labels, then judge every encoder the same way.

Every (method, seed) cell builds the same encoder (:class:`dlapps.ssl.base.Encoder`), trains it
with the method's rule on the pretraining set's images for ``epochs`` passes through the one
engine, then freezes it and measures it (:mod:`dlapps.ssl.evaluate`): a linear probe with 1%,
10%, 100% of the labels, k-NN, k-means / fuzzy c-means against the true classes, and
fine-tuning on 1% of the labels. After every epoch a cheap monitor runs: k-NN accuracy on
``epoch_eval`` test images, the pretext task's own accuracy (from the training log), and for the
clustering methods NMI / ARI / ACC of their clusters (DeepCluster's assignment of the
pretraining set, also against its previous assignment; DAC's argmax on the test images). A run
directory::

    runs/ssl-20261130-101500/
      config.json  results.json  report.html  figures/*.png
      simclr-seed0/    one cell: checkpoint.pt, metrics.jsonl, TensorBoard events, encoder.pt
                       (the trained encoder: load_encoder), final.json (written last: a cell
                       with it is done), tsne.pt (first seed)

Running the same command again with the same ``--out`` continues a killed run: finished cells
are kept, an interrupted one continues from its last epoch and ends with the numbers an
uninterrupted run gives. Nothing is selected with test labels: every number is the last
epoch's, every setting fixed beforehand.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import torch

from dlapps.config import check_run_dir, config_dict, save_config
from dlapps.data import Domain, load_domain
from dlapps.data.subsets import balanced_subset
from dlapps.engine import Labelled, Trainer, resolve_device, seed_everything
from dlapps.engine.batches import IndexedBatches, batched, eval_mode, fixed_sample
from dlapps.engine.device import environment
from dlapps.engine.launchers import get_launcher
from dlapps.engine.parallel import run_cells
from dlapps.engine.runlog import read_metrics
from dlapps.engine.schedules import lr_schedule
from dlapps.errors import ConfigError, DataError
from dlapps.io import atomic_torch_save, atomic_write_json, safe_torch_load
from dlapps.runs import stat, write_results
from dlapps.ssl.base import Encoder, PretrainInfo, SslMethod
from dlapps.ssl.config import SslConfig, label_count
from dlapps.ssl.evaluate import cluster_features, finetune, knn_accuracy, linear_probe
from dlapps.ssl.methods import METHODS
from dlapps.ssl.metrics import clustering_scores

CONFIG = "config.json"
FINAL = "final.json"
ENCODER_FILE = "encoder.pt"
KNN_TRAIN = 5000  # pretraining images that the per-epoch k-NN monitor votes with

#: published linear-probe numbers (CIFAR-10, ResNet-18): what a long GPU run reaches
PUBLISHED = {
    "source": "solo-learn (da Costa et al., JMLR 2022), ResNet-18, CIFAR-10, 1,000 epochs, linear Acc@1",
    "cifar10_linear_acc": {"simclr": 0.9074, "moco": 0.9294, "deepcluster": 0.8885},
    "notes": "MoCo is MoCo v2+, DeepCluster is DeepCluster v2; lightly's k-NN (200 epochs, batch "
             "128): MoCo 0.83, SimCLR 0.78",
}


@dataclass
class SslData:
    """The run's data: the pretraining set (a fixed sample of the training split) and the test
    split, shaped for the encoder."""

    domain: Domain
    pretrain: torch.Tensor  # indices into the training split

    @property
    def classes(self) -> list[str]:
        return self.domain.classes

    @property
    def x(self) -> torch.Tensor:
        return self.domain.train_x[self.pretrain]

    @property
    def y(self) -> torch.Tensor:
        return self.domain.train_y[self.pretrain]


def load_data(config: SslConfig) -> SslData:
    """Load, shape and check the data (and every label amount and method setting against it)."""
    domain = load_domain(config.data)
    size = config.image_size or domain.shape[1]
    domain = domain.shaped(size, config.channels or domain.shape[0])
    if len(domain.train_y) == 0 or len(domain.test_y) == 0:
        raise DataError(f"{config.data} needs training and test images")
    n = len(domain.train_y) if config.pretrain_images in (0, None) else config.pretrain_images
    if n > len(domain.train_y):
        raise ConfigError(f"--pretrain-images {n} is more than the {len(domain.train_y)} training "
                          f"images of {config.data}; give at most that, or 0 for all")
    pretrain = fixed_sample(len(domain.train_y), n, 0).sort().values
    classes = len(domain.classes)
    if config.batch_size > n:
        raise ConfigError(f"--batch-size {config.batch_size} is larger than the pretraining set ({n})")
    for spec in [*config.probe_labels, *config.finetune_labels]:
        if label_count(spec, n) < classes:
            raise ConfigError(f"{spec} of {n} pretraining images is fewer than one label per class "
                              f"({classes} classes): give more")
    config.check_methods(size)
    return SslData(domain, pretrain)


def cell_name(method: str, seed: int) -> str:
    return f"{method}-seed{seed}"


def epoch_means(run_dir: Path, key: str) -> dict[int, float]:
    """Per epoch, the mean of a logged step quantity (e.g. ``pretext_acc``) over its log records."""
    sums: dict[int, list[float]] = {}
    for rec in read_metrics(run_dir):
        if rec.get("kind") == "step" and key in rec:
            sums.setdefault(rec["epoch"], []).append(rec[key])
    return {e: float(np.mean(v)) for e, v in sorted(sums.items())}


def build_method(config: SslConfig, data: SslData, name: str, seed: int) -> SslMethod:
    """A fresh encoder (seeded) and the method ``name`` around it."""
    cls = METHODS[name]
    c, s = data.domain.shape[0], data.domain.shape[1]
    seed_everything(seed)
    info = PretrainInfo(len(data.pretrain), c, s, len(data.classes),
                        labels=data.y if cls.uses_labels else None)
    return cls(Encoder(c, config.width), info, config)


def monitor(method: SslMethod, data: SslData, config: SslConfig, seed: int, device: torch.device) -> dict:
    """The per-epoch numbers (see the module docstring)."""
    d = data.domain
    pick = fixed_sample(len(d.test_y), config.epoch_eval, seed)
    vote = fixed_sample(len(data.pretrain), KNN_TRAIN, seed + 1)
    with eval_mode(method):
        test_f = method.features(d.test_x[pick], device)
        train_f = method.features(data.x[vote], device)
        record = {"knn_acc": knn_accuracy(train_f, data.y[vote], test_f, d.test_y[pick],
                                          config.knn_k, config.knn_temperature)}
        if hasattr(method, "cluster_ids"):
            ids = batched_ids(method, d.test_x[pick], device)
            record.update({f"head_{k}": v for k, v in clustering_scores(ids, d.test_y[pick].numpy()).items()})
    assignments = getattr(method, "assignments", None)
    if assignments is not None and int(assignments.min()) >= 0:
        y = data.y.numpy()
        record.update({f"assign_{k}": v for k, v in clustering_scores(assignments.cpu().numpy(), y).items()})
        previous = getattr(method, "previous", None)
        if previous is not None and int(previous.min()) >= 0:
            from sklearn.metrics import normalized_mutual_info_score

            record["nmi_previous"] = float(normalized_mutual_info_score(previous.cpu().numpy(),
                                                                        assignments.cpu().numpy()))
    return record


def batched_ids(method: SslMethod, images: torch.Tensor, device: torch.device) -> np.ndarray:
    return batched(lambda x: method.cluster_ids(x).float(), images, device).long().numpy()


def pretrain(method: SslMethod, config: SslConfig, data: SslData, seed: int, cell_dir: Path,
             device: torch.device, progress: bool) -> list[dict]:
    """Train the method on the pretraining set (continuing its checkpoint); the history."""
    refresh = getattr(method, "refresh", None)
    optimizer = torch.optim.Adam(method.parameters(), lr=config.lr, weight_decay=config.weight_decay)

    def refresh_now(epoch: int) -> None:
        with eval_mode(method):
            feats = method.features(data.x, device)
        refresh(feats, epoch)
        for p in getattr(method, "refreshed_parameters", list)():
            optimizer.state.pop(p, None)  # a re-initialised head starts without old moments

    if refresh is not None and not (cell_dir / "checkpoint.pt").is_file():
        refresh_now(0)

    def epoch_end(epoch: int, m) -> None:
        if refresh is not None and epoch < config.epochs:
            refresh_now(epoch)

    batches = IndexedBatches(data.x, config.batch_size, seed, getattr(method, "sample_weights", None))
    trainer = Trainer(
        method, batches, optimizer, lr_schedule(method.lr_schedule or config.lr_schedule, config.lr),
        config.epochs, cell_dir,
        evaluate=lambda m: monitor(m, data, config, seed, device), epoch_end=epoch_end,
        device=device, amp=config.amp, fingerprint=config.training_fingerprint(method.name, seed),
        log_every=config.log_every, progress=progress, desc=cell_name(method.name, seed))
    history = trainer.fit()
    pretext = epoch_means(cell_dir, "pretext_acc")
    for record in history:
        record["pretext_acc"] = pretext.get(record["epoch"])
    return history


def judge(method: SslMethod, config: SslConfig, data: SslData, seed: int, device: torch.device) -> dict:
    """Probe, k-NN, clustering and fine-tuning of the trained method's encoder."""
    d = data.domain
    with eval_mode(method):
        train_f = method.features(data.x, device)
        test_f = method.features(d.test_x, device)
    n = len(data.pretrain)
    counts = {s: label_count(s, n) for s in config.probe_labels}
    probe = {}
    for spec, count in counts.items():
        idx = labelled_subset(data.y, count, seed)
        probe[spec] = linear_probe(train_f[idx], data.y[idx], test_f, d.test_y, config.probe_c, seed)
    out = {"probe": probe, "probe_counts": counts,
           "knn_acc": knn_accuracy(train_f, data.y, test_f, d.test_y, config.knn_k, config.knn_temperature),
           "feature_dim": int(train_f.shape[1]), **cluster_features(test_f, d.test_y, seed)}
    if hasattr(method, "cluster_ids"):
        with eval_mode(method):
            out["head"] = clustering_scores(batched_ids(method, d.test_x, device), d.test_y.numpy())
    out["finetune"] = {}
    if method.finetunes:
        test = Labelled(d.test_x, d.test_y)
        for spec in config.finetune_labels:
            idx = labelled_subset(data.y, label_count(spec, n), seed)
            out["finetune"][spec] = finetune(method.encoder, Labelled(data.x[idx], data.y[idx]), test,
                                             len(data.classes), config.finetune_steps, config.finetune_lr,
                                             seed, device, config.amp)
    out["test_features"] = test_f
    return out


def labelled_subset(y: torch.Tensor, n: int, seed: int) -> torch.Tensor:
    """``n`` labelled rows drawn class-balanced with ``seed``; every row when ``n`` is all of them
    (100% keeps the classes' own proportions)."""
    return torch.arange(len(y)) if n >= len(y) else balanced_subset(y, n, seed)


def train_cell(config: SslConfig, data: SslData, method_name: str, seed: int, cell_dir: Path,
               device: torch.device, progress: bool = True) -> dict:
    """Train one cell to the end (resuming from its checkpoint) and judge its encoder."""
    method = build_method(config, data, method_name, seed)
    cell_dir.mkdir(parents=True, exist_ok=True)
    method.to(device)
    method.setup(data.x, device)
    history = pretrain(method, config, data, seed, cell_dir, device, progress) if method.trains else []
    started = time.perf_counter()
    judged = judge(method, config, data, seed, device)
    judge_seconds = time.perf_counter() - started
    test_f = judged.pop("test_features")
    if method.finetunes:  # an encoder of pixels (pixels, tl-vae's frozen one) is not the result
        atomic_torch_save({"state_dict": method.encoder.state_dict(), "channels": method.encoder.channels,
                           "width": method.encoder.width, "method": method_name, "classes": data.classes},
                          cell_dir / ENCODER_FILE)
    if config.tsne and seed == config.seeds[0]:
        from dlapps.report.embedding import tsne_2d

        pick = fixed_sample(len(data.domain.test_y), config.tsne_points, 0)
        atomic_torch_save({"xy": torch.from_numpy(tsne_2d(test_f[pick].numpy(), seed)),
                           "y": data.domain.test_y[pick]}, cell_dir / "tsne.pt")
    last = history[-1] if history else {}
    kept = (method.encoder.parameters() if method.finetunes
            else (p for p in method.parameters() if p.requires_grad))
    result = {"method": method_name, "family": method.family, "seed": seed, **judged,
              "history": history, "train_seconds": last.get("seconds", 0.0),
              "judge_seconds": round(judge_seconds, 2),
              "seconds": round(judge_seconds + last.get("seconds", 0.0), 2),
              "epochs": last.get("epoch", 0), "steps": last.get("step", 0),
              "parameters": sum(p.numel() for p in kept)}
    atomic_write_json(cell_dir / FINAL, result)
    return result


def load_encoder(path: Path | str) -> Encoder:
    """The trained encoder of a cell (``encoder.pt``), in eval mode: images in [0, 1] → features."""
    state = safe_torch_load(Path(path), "ssl encoder")
    encoder = Encoder(state["channels"], state["width"])
    encoder.load_state_dict(state["state_dict"])
    return encoder.eval()


def summarize(config: SslConfig, runs: list[dict]) -> dict:
    """Per method: mean ± std over seeds of every judged number; gains over random init."""
    rows: dict[str, dict] = {}
    for name in config.methods:
        cells = [r for r in runs if r["method"] == name]
        row = {"family": cells[0]["family"], "n_seeds": len(cells),
               "probe": {s: stat([c["probe"][s] for c in cells]) for s in config.probe_labels},
               "knn_acc": stat([c["knn_acc"] for c in cells]),
               "finetune": {s: stat([c["finetune"][s] for c in cells if s in c["finetune"]])
                            for s in config.finetune_labels},
               "seconds": stat([c["seconds"] for c in cells])}
        for algo in ("kmeans", "fcm", "head"):
            if algo in cells[0]:
                row[algo] = {m: stat([c[algo][m] for c in cells]) for m in ("nmi", "ari", "acc")}
        rows[name] = row
    if "random" in rows:
        floor = rows["random"]
        for row in rows.values():
            row["probe_gain_over_random"] = {s: row["probe"][s]["mean"] - floor["probe"][s]["mean"]
                                             for s in config.probe_labels}
            row["finetune_gain_over_scratch"] = {
                s: row["finetune"][s]["mean"] - floor["finetune"][s]["mean"]
                for s in config.finetune_labels if row["finetune"][s] and floor["finetune"][s]}
    return {"methods": rows}


def run_ssl(config: SslConfig, out: Path | None = None, progress: bool = True, report: bool = True,
            workers: int | None = 1, launcher=None) -> dict:
    """Run (or continue) a self-supervised experiment; returns the content of ``results.json``."""
    config = config.validate()
    run_dir = Path(out) if out else Path("runs") / f"ssl-{datetime.now():%Y%m%d-%H%M%S}"
    resuming = check_run_dir(config, run_dir)  # the folder continues only its own run
    device = resolve_device(config.device)
    data = load_data(config)  # loads and checks the data before anything is written
    run_dir.mkdir(parents=True, exist_ok=True)
    if not resuming:
        save_config(config, run_dir / CONFIG)
    started = time.perf_counter()
    cells = [(m, s) for s in config.seeds for m in config.methods]
    runs, workers = run_cells(
        train_cell, cells, lambda c: run_dir / cell_name(*c) / FINAL,
        lambda c, bar: (config, data, *c, run_dir / cell_name(*c), device, bar),
        workers if device.type == "cpu" else 1, progress, get_launcher(launcher).within(run_dir))
    d = data.domain
    results = {
        "data": {"name": config.data, "train": len(d.train_y), "test": len(d.test_y),
                 "pretrain": len(data.pretrain), "classes": d.classes, "shape": list(d.shape), **d.info},
        "runs": runs,
        "summary": summarize(config, runs),
        "published": PUBLISHED,
        "environment": {**environment(), "device": str(device), "cell_workers": workers},
        "wall_seconds": round(time.perf_counter() - started, 1),
    }
    results = write_results(run_dir, "ssl", config_dict(config), results)
    if report:
        from dlapps.ssl.report import render

        render(run_dir)
    results["run_dir"] = str(run_dir)
    return results
