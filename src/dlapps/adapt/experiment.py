"""``dlapps adapt``: train every (method, seed) cell on a source → target pair and measure it.

A run directory looks like::

    runs/adapt-20261123-101500/
      config.json            the AdaptConfig (what --resume reads back)
      results.json           final metrics per method and seed + the summary table's numbers
      report.html            self-contained report (figures embedded)
      figures/*.png
      dann-seed0/            one cell: metrics.jsonl, TensorBoard events, checkpoint.pt,
                             final.json (written last: a cell with it is done), tsne.pt

Cells run one after another (or ``workers`` at a time, in separate processes); a killed run
continues with ``--resume RUN_DIR``: finished cells are skipped and an interrupted one continues
from its last epoch checkpoint, ending with the numbers an uninterrupted run gives. Reported
numbers are those of the *last* epoch: no checkpoint is picked with target labels.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

import torch

from dlapps.adapt.config import AdaptConfig
from dlapps.adapt.diagnostics import domain_accuracy, proxy_a_distance, tsne_embedding
from dlapps.adapt.health import cell_warnings, effective_classes, method_warnings
from dlapps.adapt.methods import get_method
from dlapps.adapt.methods.base import make_optimizer
from dlapps.adapt.paper import gap_closed, paper_numbers
from dlapps.adapt.reverse import reverse_validation
from dlapps.adapt.selection import criteria, expected_calibration_error, pick
from dlapps.config import config_dict, load_config, save_config
from dlapps.data import Domain, load_domain
from dlapps.engine import Labelled, PairedBatches, Trainer, resolve_device, seed_everything
from dlapps.engine import distributed as ddp
from dlapps.engine.batches import batched, fixed_sample
from dlapps.engine.device import environment
from dlapps.engine.launchers import Launcher, Local, get_launcher
from dlapps.engine.parallel import run_cells
from dlapps.engine.schedules import lr_schedule
from dlapps.errors import ConfigError, DataError, NonFiniteLossError
from dlapps.io import atomic_torch_save, atomic_write_json
from dlapps.runs import stat, write_results

FINAL = "final.json"
SELECTION_SAMPLES = 1000  # training images per domain the label-free criteria look at
CONFIG = "config.json"


@dataclass
class Pair:
    """The source and target domains of a run, shaped for the network."""

    source: Domain
    target: Domain
    mean: list[float]  # per-channel pixel mean over both training sets (the papers' preprocessing)


def load_pair(config: AdaptConfig) -> Pair:
    size = config.resolved_image_size()
    source = load_domain(config.source, size, 3, photos=config.photos)
    target = load_domain(config.target, size, 3, photos=config.photos)
    if source.classes != target.classes:
        only_s = sorted(set(source.classes) - set(target.classes))
        only_t = sorted(set(target.classes) - set(source.classes))
        raise DataError(
            f"source {config.source} and target {config.target} have different classes "
            f"(only in source: {only_s or 'none'}; only in target: {only_t or 'none'})"
        )
    if config.train_limit is not None:
        source, target = limit_train(source, config.train_limit), limit_train(target, config.train_limit)
    pixels = torch.cat([source.train_x, target.train_x])
    mean = (pixels.float().mean(dim=(0, 2, 3)) / 255.0).tolist()
    return Pair(source, target, mean)


def limit_train(domain: Domain, n: int) -> Domain:
    """The domain with a fixed, class-stratified subset of ``n`` training images (all if fewer)."""
    if len(domain.train_y) <= n:
        return domain
    perm = torch.randperm(len(domain.train_y), generator=torch.Generator().manual_seed(0))
    y = domain.train_y[perm]
    rank = torch.zeros(len(y))
    for c in y.unique():
        where = (y == c).nonzero().squeeze(1)
        rank[where] = torch.arange(len(where)) / len(where)  # position within its class
    keep = perm[torch.sort(rank, stable=True).indices[:n]].sort().values
    return replace(domain, train_x=domain.train_x[keep], train_y=domain.train_y[keep])


def cell_name(method: str, seed: int) -> str:
    return f"{method}-seed{seed}"


def build_method(config: AdaptConfig, pair: Pair, method: str, seed: int):
    """The method ``method`` over the run's network, initialised from ``seed``: the papers' digit
    network, or new heads on a pretrained backbone (``config.backbone``)."""
    from dlapps.models import build_digits_net
    from dlapps.models.adaptation import build_backbone_net

    seed_everything(seed)
    if config.backbone is not None:
        net = build_backbone_net(config.backbone, len(pair.source.classes), config.resolved_image_size())
        return get_method(method)(net, config)
    net = build_digits_net(config.resolved_arch(), 3, config.resolved_image_size(),
                           len(pair.source.classes), pair.mean, batchnorm=config.batchnorm,
                           dropout=config.dropout, domain_hidden=config.domain_hidden,
                           instance_norm=config.input_norm == "instance")
    return get_method(method)(net, config)


def train_cell(config: AdaptConfig, pair: Pair, method_name: str, seed: int, cell_dir: Path,
               device: torch.device, dist: ddp.Dist, progress: bool = True) -> dict:
    """Train one (method, seed) cell to the end (resuming if it has a checkpoint) and measure it."""
    method = build_method(config, pair, method_name, seed)
    s, t = pair.source, pair.target
    s_train = s.train_x[fixed_sample(len(s.train_y), SELECTION_SAMPLES)]
    t_train = t.train_x[fixed_sample(len(t.train_y), SELECTION_SAMPLES)]  # unlabelled
    batches = PairedBatches(
        Labelled(s.train_x, s.train_y) if method.uses_source else None,
        Labelled(t.train_x, t.train_y) if method.uses_target_images else None,
        config.batch_size, seed, dist.rank, dist.world,
        target_labels=method.uses_target_labels,
    )

    def evaluate(m) -> dict:
        logits_s, logits_t = batched(m.predict, s.test_x, device), batched(m.predict, t.test_x, device)
        logits_t_train = batched(m.predict, t_train, device)  # unlabelled
        record = {"source_acc": float((logits_s.argmax(1) == s.test_y).float().mean()),
                  "target_acc": float((logits_t.argmax(1) == t.test_y).float().mean()),
                  "domain_acc": domain_accuracy(m, s.test_x, t.test_x, device),
                  "target_classes": effective_classes(logits_t_train)}
        epoch = len(trainer.history) + 1
        m.open_gate(record["source_acc"], epoch / config.epochs)  # held-out source: no target label
        record["gate"] = m.gate_open()
        if config.selection:
            reverse = None
            if config.reverse_every and (epoch % config.reverse_every == 0 or epoch == config.epochs):
                reverse = reverse_validation(
                    config, lambda: build_method(config, pair, "source", seed).net, t_train,
                    logits_t_train.argmax(1), s_train, s.test_x, s.test_y, seed, device=device)
            record["target_ece"] = expected_calibration_error(logits_t.softmax(1), t.test_y)
            record.update(criteria(batched(m.embed, s_train, device), batched(m.embed, t_train, device),
                                   logits_t_train, batched(m.embed, s.test_x, device), logits_s, s.test_y,
                                   reverse=reverse))
        return record

    trainer = Trainer(
        method, batches, make_optimizer(config, method),
        lr_schedule(config.lr_schedule, config.lr, config.lr_alpha, config.lr_beta),
        config.epochs, cell_dir, evaluate=evaluate, device=device, amp=config.amp, cpu_amp=config.cpu_bf16,
        channels_last=config.channels_last, dist=dist,
        fingerprint=config.training_fingerprint(method_name, seed), log_every=config.log_every,
        progress=progress, desc=cell_name(method_name, seed),
    )
    try:
        history = trainer.fit()
    except NonFiniteLossError as exc:  # recorded, so the other cells of a run or grid go on
        result = diverged_cell(method_name, seed, exc)
        if dist.main:
            atomic_write_json(cell_dir / FINAL, result)
        return result
    method.eval()
    last = history[-1]
    result = {"method": method_name, "seed": seed, "source_acc": last["source_acc"],
              "target_acc": last["target_acc"], "domain_acc": last["domain_acc"],
              "a_distance": None, "seconds": last["seconds"], "epochs": last["epoch"],
              "steps": last["step"]}
    if config.selection:
        result["ece"] = last.get("target_ece")
        result["selection"] = pick(history)
    result["warnings"] = cell_warnings(history, result.get("selection"), len(s.classes))
    if config.warmup_acc:  # the epoch after which the alignment terms started (None: never)
        result["gate_epoch"] = next((r["epoch"] for r in history if r.get("gate")), None)
    if (config.a_distance or config.tsne) and dist.main:  # other ranks hold the same model
        fs = batched(method.embed, s.test_x, device).numpy()
        ft = batched(method.embed, t.test_x, device).numpy()
        if config.a_distance:
            result["a_distance"] = proxy_a_distance(fs, ft, seed)
        if config.tsne and seed == config.seeds[0]:
            i_s = fixed_sample(len(fs), config.tsne_points)
            i_t = fixed_sample(len(ft), config.tsne_points)
            xy = tsne_embedding(fs[i_s.numpy()], ft[i_t.numpy()])
            atomic_torch_save({"xy": torch.from_numpy(xy), "n_source": len(i_s),
                               "source_y": s.test_y[i_s], "target_y": t.test_y[i_t]},
                              cell_dir / "tsne.pt")
    if dist.main:
        atomic_write_json(cell_dir / FINAL, result)
    return result


def diverged_cell(method: str, seed: int, exc: NonFiniteLossError) -> dict:
    """A cell whose loss became NaN or infinite: no numbers, one warning naming the step. Its
    last good checkpoint is kept; a rerun of the same configuration diverges again, so the
    record is final (another learning rate is another configuration)."""
    return {"method": method, "seed": seed, "source_acc": None, "target_acc": None, "domain_acc": None,
            "a_distance": None, "seconds": None, "epochs": exc.epoch, "steps": exc.step,
            "diverged": str(exc), "warnings": [f"diverged: {exc}"]}


def summarize_selection(cells: list[dict]) -> dict | None:
    """Per selection rule (each criterion, last, oracle): target accuracy (and ECE) over seeds."""
    picks = [c["selection"] for c in cells if c.get("selection")]
    if not picks:
        return None
    rules = [r for r in picks[0] if all(r in p for p in picks)]
    out = {r: {"target_acc": stat([p[r]["target_acc"] for p in picks]),
               "ece": stat([p[r]["ece"] for p in picks if p[r].get("ece") is not None]),
               "gap_to_oracle": stat([p["oracle"]["target_acc"] - p[r]["target_acc"] for p in picks])}
           for r in rules}
    out["oracle"]["oracle"] = True
    return out


def summarize(config: AdaptConfig, runs: list[dict]) -> dict:
    """Mean ± std over seeds per method, the gap closed and the paper's numbers."""
    per_method: dict[str, dict] = {}
    for name in config.methods:
        cells = [r for r in runs if r["method"] == name]
        row: dict = {"n_seeds": len(cells)}
        for key in ("source_acc", "target_acc", "domain_acc", "a_distance", "seconds", "ece"):
            row[key] = stat([r[key] for r in cells if r.get(key) is not None])
        row["selection"] = summarize_selection(cells)
        row["warnings"] = method_warnings(cells)
        row["diverged"] = sum(1 for r in cells if r.get("diverged"))
        per_method[name] = row
    summary: dict = {"methods": per_method, "gap_closed": {}}
    if "source" in per_method and "target" in per_method and all(
            per_method[m]["target_acc"] for m in ("source", "target")):
        lo, hi = per_method["source"]["target_acc"]["mean"], per_method["target"]["target_acc"]["mean"]
        for name, row in per_method.items():
            if name not in ("source", "target") and row["target_acc"]:
                summary["gap_closed"][name] = gap_closed(lo, row["target_acc"]["mean"], hi)
    paper = paper_numbers(config.source, config.target)
    if paper:
        summary["paper"] = {m: {"icml2015": v[0], "jmlr2016": v[1]} for m, v in paper.items()}
        summary["paper"]["gap_closed_dann"] = gap_closed(paper["source"][0], paper["dann"][0],
                                                         paper["target"][0])
    return summary


def prepare_run_dir(config: AdaptConfig, out: Path | None, resume: Path | None) -> tuple[AdaptConfig, Path]:
    """The run directory and its configuration: a new one, or the one being resumed."""
    if resume is not None:
        run_dir = Path(resume)
        if not (run_dir / CONFIG).is_file():
            raise ConfigError(f"cannot resume {run_dir}: it holds no {CONFIG}")
        saved = load_config(AdaptConfig, run_dir / CONFIG)
        saved.device = config.device  # where to run may change; what to compute may not
        return saved.validate(), run_dir
    run_dir = Path(out) if out else Path("runs") / f"adapt-{datetime.now():%Y%m%d-%H%M%S}"
    if (run_dir / CONFIG).exists():
        raise ConfigError(f"{run_dir} already holds a run; continue it with --resume {run_dir} "
                          "or choose another --out")
    return config.validate(), run_dir


def run_adapt(config: AdaptConfig, out: Path | None = None, resume: Path | None = None,
              progress: bool = True, report: bool = True, workers: int | None = 1,
              launcher: Launcher | str | None = None) -> dict:
    """Run (or resume) an adaptation experiment; returns the content of ``results.json``.

    ``workers`` > 1 (``None``: one per core) trains that many CPU cells at once, one process each
    (:mod:`dlapps.engine.parallel`); ``launcher`` sends the cells to a Slurm or Ray cluster instead
    (:mod:`dlapps.engine.launchers`). A cell's numbers do not depend on where it ran."""
    launcher = get_launcher(launcher)
    config, run_dir = prepare_run_dir(config, out, resume)
    device = resolve_device(config.device, ddp.from_env().local_rank)
    if ddp.from_env().world > 1 and not isinstance(launcher, Local):
        raise ConfigError("under torchrun every process is one part of a single run: use the local launcher")
    dist = ddp.setup(device)
    pair = load_pair(config)  # loads (and validates) the data before anything is written
    if dist.main:
        run_dir.mkdir(parents=True, exist_ok=True)
        if resume is None:
            save_config(config, run_dir / CONFIG)
    started = time.perf_counter()
    cells = [(method, seed) for method in config.methods for seed in config.seeds]
    # separate processes only for separate CPU cells; DDP and CUDA runs train cells in turn
    runs, workers = run_cells(
        train_cell, cells, lambda c: run_dir / cell_name(*c) / FINAL,
        lambda c, bar: (config, pair, *c, run_dir / cell_name(*c), device, dist, bar),
        workers if dist.world == 1 and device.type == "cpu" else 1, progress, launcher.within(run_dir))
    results = {
        "command": "run",
        "data": {"source": {"name": config.source, "train": len(pair.source.train_y),
                            "test": len(pair.source.test_y), **pair.source.info},
                 "target": {"name": config.target, "train": len(pair.target.train_y),
                            "test": len(pair.target.test_y), **pair.target.info}},
        "runs": runs,
        "summary": summarize(config, runs),
        "environment": {**environment(), "device": str(device), "processes": dist.world,
                        "cell_workers": workers},
        "wall_seconds": round(time.perf_counter() - started, 1),
    }
    if dist.main:
        results = write_results(run_dir, "adapt", config_dict(config), results)
        if report:
            from dlapps.adapt.report import render

            render(run_dir)
    ddp.barrier(dist)
    ddp.teardown(dist)
    results["run_dir"] = str(run_dir)
    return results
