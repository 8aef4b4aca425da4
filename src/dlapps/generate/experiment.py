"""GAN experiments: named variants x seeds, each trained, measured and drawn; resumable.

A run directory looks like::

    runs/gan-20261123-101500/
      results.json          per variant: metrics mean ± std over seeds, the real-vs-real floor,
                            the judge's test accuracy, environment
      report.html           table + curves + sample grids of every variant (self-contained)
      figures/              curves.png, samples.png (one panel per variant)
      cdcgan-seed0/         one cell: config.json, checkpoint.pt, metrics.jsonl, TensorBoard
                            events, figures/ (epochs/*.png, epochs.gif, samples.png, curves.png,
                            class_grid.png, interpolation*.png, confusion.png), results.json
                            (written last: a cell with it is done), report.html

Running the same command again with the same ``--out`` resumes: finished cells are kept and an
interrupted one continues from its last epoch checkpoint.
"""

from __future__ import annotations

import math
import shutil
import statistics
import time
from dataclasses import asdict, replace
from pathlib import Path

from dlapps.engine.device import environment
from dlapps.engine.parallel import resolve_workers, run_parallel
from dlapps.errors import ConfigError
from dlapps.generate import figures
from dlapps.generate.data import GanData, load_gan_data
from dlapps.generate.metrics import (
    Embedded,
    Judge,
    embed,
    generate,
    get_judge,
    inception_fid,
    quality,
    real_floor,
)
from dlapps.generate.sampling import class_grid, interpolate
from dlapps.generate.train import GanConfig, GanTrainer, save_png
from dlapps.io import atomic_write_json

RESULTS = "results.json"
METRIC_KEYS = ("fid", "kid", "is", "label_acc", "sec_per_epoch")
DEFAULT_N_SAMPLES = 5000
# The embedded default's budget (`dlapps gan`): both GANs, one process each, in < 5 min on 2 cores.
# What limits it is the cDCGAN's label accuracy, which grows with the number of updates, not with
# the batch (measured, seed 0: ~0.58 after 500 updates, ~0.90 after 2,750, ~0.93 after 3,250, at
# batch 16 or 32 alike), while a CPU step costs about the same per image. So batch 16 instead of
# the paper's 128: 250 updates per epoch on the 4,000 images, 3,500 in 14 epochs.
DEFAULT_EPOCHS = 14
DEFAULT_BATCH = 16


def _read_json(path: Path) -> dict | None:
    import json

    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _grid(images, columns: int = 10):
    from dlapps.report.figures import grid_image

    return grid_image(images.numpy(), rows=-(-len(images) // columns))


def cell_figures(cell: Path, trainer: GanTrainer, result: dict, classes: list[str]) -> dict[str, Path]:
    """Curves, the final grid, the GIF, interpolations, class grid and confusion of one cell."""
    fig_dir = cell / "figures"
    g, seed = trainer.g, trainer.config.seed
    last = sorted((fig_dir / "epochs").glob("epoch_*.png"))[-1]
    out = {"samples (fixed noise, last epoch)": shutil.copyfile(last, fig_dir / "samples.png"),
           "training curves": figures.training_curves({cell.name: cell}, fig_dir / "curves.png")}
    figures.epochs_gif(cell, fig_dir / "epochs.gif")
    for spherical in (False, True):
        name = "interpolation_slerp" if spherical else "interpolation"
        out[name.replace("_", " ")] = save_png(_grid(interpolate(g, 8, 10, spherical, seed=seed)),
                                               fig_dir / f"{name}.png")
    if g.n_classes:
        out["class x shared z"] = save_png(_grid(class_grid(g, seed=seed)), fig_dir / "class_grid.png")
    if "confusion" in result:
        out["confusion of G(z, y)"] = figures.confusion_figure(
            result["confusion"], classes, fig_dir / "confusion.png",
            f"label acc {result['label_acc']:.3f}")
    return out


def train_cell(config: GanConfig, data: GanData, cell: Path, judge: Judge | None,
               n_samples: int = DEFAULT_N_SAMPLES, progress: bool = True,
               inception_weights: Path | None = None, real: Embedded | None = None) -> dict:
    """Train one GAN (resuming), measure it, draw it; returns (and writes) its ``results.json``."""
    done = _read_json(cell / RESULTS)
    if done and done.get("fingerprint") == config.fingerprint() and done.get("epochs") == config.epochs \
            and done.get("n_samples") in (None, n_samples):
        return done
    trainer = GanTrainer(config, data, cell, progress=progress)
    history = trainer.fit()
    result = {"name": cell.name, "config": asdict(config), "fingerprint": config.fingerprint(),
              "epochs": config.epochs, "steps": history[-1]["step"],
              "sec_per_epoch": history[-1]["seconds"] / len(history), "n_samples": None}
    if judge is not None:
        fake, labels = generate(trainer.g, n_samples, config.seed, trainer.n_classes)
        result.update(quality(judge, data.x if real is None else real, fake, labels, seed=config.seed))
        if inception_weights is not None:
            result["fid_inception_v3"] = inception_fid(data.x, fake, inception_weights)
    figs = cell_figures(cell, trainer, result, data.classes)
    figures.write_report(cell, f"dlapps gan: {cell.name}", f"{config.data}, {config.epochs} epochs",
                         {cell.name: result}, figs, result)
    atomic_write_json(cell / RESULTS, result)
    return result


def _stats(values: list[float]) -> dict:
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0}


def summarize(cells: list[dict]) -> dict:
    """Mean ± std over seeds of every metric the cells have."""
    return {k: _stats([c[k] for c in cells]) for k in METRIC_KEYS
            if all(isinstance(c.get(k), float | int) and math.isfinite(c[k]) for c in cells)}


def run_variants(variants: dict[str, GanConfig], seeds: list[int], out: Path, *,
                 n_samples: int = DEFAULT_N_SAMPLES, progress: bool = True,
                 inception_weights: Path | None = None, title: str = "dlapps gan",
                 extra: dict | None = None, workers: int | None = None) -> dict:
    """Train every (variant, seed) cell into ``out`` and write results.json + report.html.

    The cells train in ``workers`` processes at once (``None``: one per CPU core, see
    :mod:`dlapps.engine.parallel`); each resumes from its own checkpoint."""
    if not variants or not seeds:
        raise ConfigError("need at least one variant and one seed")
    began = time.perf_counter()
    out = Path(out)
    base = next(iter(variants.values()))
    for cfg in variants.values():
        cfg.validate()
    data = load_gan_data(base.data, base.size, base.channels)
    judge = get_judge(data) if data.labelled else None
    real = embed(judge, data.x) if judge is not None else None  # once, for every cell
    floor = real_floor(judge, data, real) if judge is not None else None
    table: dict[str, dict] = {}
    summary: dict[str, dict] = {}
    for cfg in variants.values():
        if (cfg.data, cfg.size, cfg.channels) != (base.data, base.size, base.channels):
            raise ConfigError("all variants of one run must train on the same data, size and channels")
    keys = [(name, s) for name in variants for s in seeds]
    workers = resolve_workers(workers, len(keys))
    jobs = [(replace(variants[name], seed=s), data, out / f"{name}-seed{s}", judge, n_samples,
             progress and workers == 1, inception_weights, real) for name, s in keys]
    done = dict(zip(keys, run_parallel(train_cell, jobs, workers, title, progress), strict=True))
    for name, cfg in variants.items():
        cells = [done[name, s] for s in seeds]
        stats = summarize(cells)
        summary[name] = {**stats, "seeds": {c["name"]: {k: c.get(k) for k in (*METRIC_KEYS, "kid_std")}
                                            for c in cells}, "config": asdict(cfg)}
        table[name] = {k: v for k, v in stats.items()}
    if floor is not None:
        table["real vs real (floor)"] = floor
    results = {"variants": summary, "seeds": seeds, "n_samples": n_samples if judge else None,
               "floor": floor, "data": {"name": data.name, "train": len(data.x), "test": len(data.test_x),
                                        "shape": list(data.x.shape[1:])},
               "judge": None if judge is None else {"test_acc": judge.test_acc, "epochs": judge.epochs},
               "environment": environment(), "workers": workers,
               "wall_seconds": round(time.perf_counter() - began, 1),
               **(extra or {})}
    if len(variants) == 1:  # the keys a single run is read by
        results.update({k: v["mean"] for k, v in next(iter(summary.values())).items() if k in METRIC_KEYS})
    first = {name: out / f"{name}-seed{seeds[0]}" for name in variants}
    grids = {n: c / "figures" / "samples.png" for n, c in first.items()}
    figs = {"training curves (first seed)": figures.training_curves(first, out / "figures" / "curves.png"),
            "samples (first seed, fixed noise)": figures.panels(grids, out / "figures" / "samples.png")}
    note = (f"{data.name} {tuple(data.x.shape[1:])}, seeds {seeds}, n = {n_samples} generated samples "
            f"vs {len(data.x)} real; judge test accuracy "
            f"{'–' if judge is None else f'{judge.test_acc:.4f}'}; floor = {len(data.test_x)} held-out "
            "real images vs the training images")
    atomic_write_json(out / RESULTS, results)
    figures.write_report(out, title, note, table, figs, results)
    return results


def default_variants(epochs: int = DEFAULT_EPOCHS, data: str = "mnist5k",
                     **overrides) -> dict[str, GanConfig]:
    """The embedded default: DCGAN and cDCGAN, PAPERS.md §5 hyper-parameters at batch 16."""
    base = GanConfig(data=data, epochs=epochs, batch_size=DEFAULT_BATCH, **overrides)
    return {"dcgan": base, "cdcgan": replace(base, conditional=True)}


def find_cell(run_dir: Path) -> Path:
    """``run_dir`` itself when it is one trained cell, else its first cell (sorted by name)."""
    run_dir = Path(run_dir)
    if (run_dir / "checkpoint.pt").is_file():
        return run_dir
    found = sorted(p.parent for p in run_dir.glob("*/checkpoint.pt"))
    if not found:
        raise ConfigError(f"{run_dir} holds no trained GAN (no checkpoint.pt in it or its sub-folders)")
    return found[0]


def inspect_run(run_dir: Path, out: Path, what: str = "sample", *, cls: int | None = None,
                spherical: bool = False, n: int = 100, seed: int = 0) -> dict:
    """Draw from a trained generator: ``sample`` (n images, optionally one class), ``interpolate``
    (8 rows z₁ → z₂, linear or ``spherical``) or ``grid`` (class x shared z); writes
    ``out/<what>.png``, ``results.json`` and ``report.html``."""
    from dlapps.generate.sampling import check_class, sample
    from dlapps.generate.train import load_generator

    cell = find_cell(run_dir)
    g, _, config, state = load_generator(cell)
    classes = load_gan_data(config.data, config.size, config.channels).classes if g.n_classes else []
    check_class(g, cls, classes)
    if what == "sample":
        images, name = sample(g, n, cls, seed), "samples"
    elif what == "interpolate":
        images = interpolate(g, 8, 10, spherical, cls, seed)
        name = "interpolation_slerp" if spherical else "interpolation"
    elif what == "grid":
        images, name = class_grid(g, seed=seed), "class_grid"
    else:
        raise ConfigError(f"unknown drawing {what!r}: sample, interpolate or grid")
    out = Path(out)
    png = save_png(_grid(images), out / f"{name}.png")
    result = {"run": str(cell), "what": what, "class": cls,
              "class_name": classes[cls] if cls is not None else None,
              "spherical": spherical if what == "interpolate" else None, "seed": seed,
              "images": len(images), "figure": png.name, "epochs_trained": state["epoch"],
              "config": asdict(config)}
    atomic_write_json(out / RESULTS, result)
    figures.write_report(out, f"dlapps gan {what}: {cell}", f"{len(images)} images, seed {seed}", {},
                         {name: png}, result)
    return result
