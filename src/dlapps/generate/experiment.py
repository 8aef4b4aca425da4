"""Generative-model experiments: named models (or GAN variants) x seeds, each trained, measured
and drawn; resumable. ``dlapps generate`` (:func:`run_models`), ``dlapps gan`` and its ``train`` /
``compare`` all run :func:`run_variants`.

A run directory looks like::

    runs/generate-20261130-101500/
      results.json          kind "generate": per model, metrics mean ± std over seeds, the
                            real-vs-real floor, the judge's test accuracy, configs, environment
      config.json           the base config (the first model's; ``--config`` of ``dlapps gan`` reads it)
      report.html           table + curves + sample grids of every model (self-contained)
      figures/              curves.png, samples.png, interpolations.png (one panel per model),
                            spectrum.png (when a DDPM is among them)
      cddpm-seed0/          one cell (trained by the engine's Trainer, see gan.model_trainer):
                            config.json, checkpoint.pt, metrics.jsonl, TensorBoard events, figures/
                            (epochs/*.png, epochs.gif, samples.png, curves.png, class_grid.png,
                            interpolation*.png, confusion.png; reconstruction.png for a VAE,
                            trajectory.png for a DDPM), results.json (written last: a cell with it
                            is done), report.html

Running the same command again with the same ``--out`` resumes: finished cells are kept and an
interrupted one continues from its last epoch checkpoint.
"""

from __future__ import annotations

import json
import math
import shutil
import statistics
import time
from dataclasses import fields, replace
from pathlib import Path

import torch

from dlapps.config import config_dict, save_config
from dlapps.engine.batches import to_float
from dlapps.engine.launchers import get_launcher
from dlapps.engine.parallel import resolve_workers, run_parallel
from dlapps.errors import ConfigError
from dlapps.generate import models, report
from dlapps.generate.config import DdpmConfig, GanConfig, VaeConfig
from dlapps.generate.data import GanData, load_gan_data, to_signed
from dlapps.generate.gan import CONFIG, save_png
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
from dlapps.generate.models import AnyConfig, family, model_name
from dlapps.generate.sampling import class_grid, interpolate
from dlapps.runs import RESULTS, write_results

KIND = "generate"
METRIC_KEYS = ("fid", "kid", "is", "label_acc", "params", "train_seconds", "seconds_per_epoch",
               "sample_seconds_per_1000", "elbo", "iwae")
DEFAULT_N_SAMPLES = 5000
# The embedded default's budget (`dlapps gan`): both GANs, one process each, in < 5 min on 2 cores.
# What limits it is the cDCGAN's label accuracy, which grows with the number of updates, not with
# the batch (measured, seed 0: ~0.58 after 500 updates, ~0.90 after 2,750, ~0.93 after 3,250, at
# batch 16 or 32 alike), while a CPU step costs about the same per image. So batch 16 instead of
# the paper's 128: 250 updates per epoch on the 4,000 images, 3,500 in 14 epochs.
DEFAULT_EPOCHS = 14
DEFAULT_BATCH = 16


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _grid(images: torch.Tensor, columns: int = 10):
    from dlapps.report import grid_image

    return grid_image(images.numpy(), rows=-(-len(images) // columns))


def cell_figures(cell: Path, module: torch.nn.Module, g: torch.nn.Module, config: AnyConfig, result: dict,
                 data: GanData) -> None:
    """Curves, the final grid, the GIF, interpolations, class grid and confusion of one cell; the
    VAE's reconstructions, DDPM's denoising trajectory x_T → x_0."""
    fig_dir = cell / "figures"
    last = sorted((fig_dir / "epochs").glob("epoch_*.png"))[-1]
    shutil.copyfile(last, fig_dir / "samples.png")
    report.training_curves({cell.name: cell}, fig_dir / "curves.png")
    report.epochs_gif(cell, fig_dir / "epochs.gif")
    seed = config.seed
    for spherical in (False, True):
        name = "interpolation_slerp" if spherical else "interpolation"
        save_png(_grid(interpolate(g, 8, 10, spherical, seed=seed)), fig_dir / f"{name}.png")
    if g.n_classes:
        save_png(_grid(class_grid(g, seed=seed)), fig_dir / "class_grid.png")
    if "confusion" in result:
        report.confusion_figure(result["confusion"], data.classes, fig_dir / "confusion.png",
                                f"label acc {result['label_acc']:.3f}")
    kind = family(config)
    if kind == "vae":
        from dlapps.generate.vae import reconstruction_grid

        y = data.test_y[:10] if g.n_classes else None
        grid = reconstruction_grid(module, to_float(data.test_x[:10]), y, seed=seed)
        save_png(_grid(grid), fig_dir / "reconstruction.png")
    elif kind == "ddpm":
        save_png(_grid(module.trajectory(8, seed=seed), columns=module.trajectory_frames),
                 fig_dir / "trajectory.png")


def vae_scores(module: torch.nn.Module, config: VaeConfig, data: GanData) -> dict:
    """The test ELBO and the IWAE bound (k = ``config.iwae_k``), nats per binarised test image,
    both on the first ``config.eval_images`` test images."""
    from dlapps.generate.vae import iwae_bound, test_elbo

    x = to_float(data.test_x[:config.eval_images])
    y = data.test_y[:config.eval_images] if module.n_classes else None
    return {"elbo": test_elbo(module, x, y, seed=config.seed),
            "iwae": iwae_bound(module, x, y, k=config.iwae_k, seed=config.seed), "iwae_k": config.iwae_k,
            "eval_images": len(x)}


def train_cell(config: AnyConfig, data: GanData, cell: Path, judge: Judge | None,
               n_samples: int = DEFAULT_N_SAMPLES, progress: bool = True,
               inception_weights: Path | None = None, real: Embedded | None = None,
               device: torch.device | None = None) -> dict:
    """Train one model (resuming), measure it, draw it; returns (and writes) its ``results.json``."""
    done = _read_json(cell / RESULTS)
    if done and done.get("fingerprint") == config.fingerprint() and done.get("epochs") == config.epochs \
            and done.get("n_samples") in (None, n_samples):
        if not (cell / "report.html").is_file():  # killed between results.json and the page
            report.render(cell)
        return done
    trainer = models.trainer(config, data, cell, progress=progress, device=device)
    history = trainer.fit()
    module = trainer.module.cpu().eval()  # the weights of the last checkpoint (fit loads it when done)
    g = models.sampler(module)
    seconds = history[-1]["seconds"]
    result = {"name": cell.name, "title": f"dlapps generate: {cell.name}", "model": model_name(config),
              "fingerprint": config.fingerprint(), "epochs": config.epochs, "steps": history[-1]["step"],
              "train_seconds": seconds, "seconds_per_epoch": seconds / len(history),
              "params": models.trained_parameters(module), "n_samples": None}
    if judge is not None:
        began = time.perf_counter()
        fake, labels = generate(g, n_samples, config.seed, g.n_classes)
        result["sample_seconds_per_1000"] = 1000 * (time.perf_counter() - began) / n_samples
        result.update(quality(judge, data.x if real is None else real, fake, labels, seed=config.seed))
        if inception_weights is not None:
            result["fid_inception_v3"] = inception_fid(data.x, fake, inception_weights)
    if family(config) == "vae":
        result.update(vae_scores(module, config, data))
    cell_figures(cell, module, g, config, result, data)
    result = write_results(cell, KIND, config_dict(config), result)  # last: a cell with it is done
    report.render(cell)
    return result


def _stats(values: list[float]) -> dict:
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0}


def summarize(cells: list[dict]) -> dict:
    """Mean ± std over seeds of every metric the cells have."""
    return {k: _stats([c[k] for c in cells]) for k in METRIC_KEYS
            if all(isinstance(c.get(k), float | int) and math.isfinite(c[k]) for c in cells)}


def run_variants(variants: dict[str, AnyConfig], seeds: list[int], out: Path, *,
                 n_samples: int = DEFAULT_N_SAMPLES, progress: bool = True,
                 inception_weights: Path | None = None, title: str = "dlapps gan",
                 extra: dict | None = None, workers: int | None = None,
                 device: torch.device | None = None, base: AnyConfig | None = None,
                 launcher=None) -> dict:
    """Train every (variant, seed) cell into ``out`` and write results.json + report.html.

    The cells train in ``workers`` processes at once (``None``: one per CPU core, see
    :mod:`dlapps.engine.parallel`; one on a GPU); each resumes from its own checkpoint.
    ``base`` (default: the first variant) is the run's ``config.json``."""
    if not variants or not seeds:
        raise ConfigError("need at least one variant and one seed")
    began = time.perf_counter()
    out = Path(out)
    first = next(iter(variants.values()))
    for cfg in variants.values():
        cfg.validate()
        if (cfg.data, cfg.size, cfg.channels) != (first.data, first.size, first.channels):
            raise ConfigError("all variants of one run must train on the same data, size and channels")
    base = replace(base or first, seed=seeds[0]).validate()
    data = load_gan_data(first.data, first.size, first.channels)
    judge = get_judge(data) if data.labelled else None
    real = embed(judge, data.x) if judge is not None else None  # once, for every cell
    floor = real_floor(judge, data, real) if judge is not None else None
    keys = [(name, s) for name in variants for s in seeds]
    keys.sort(key=lambda k: family(variants[k[0]]) != "ddpm")  # the longest cells first: fewer idle cores
    if workers is None and device is not None and device.type == "cuda":
        workers = 1  # one GPU: the cells take turns on it
    workers = resolve_workers(workers, len(keys))
    jobs = [(replace(variants[name], seed=s), data, out / f"{name}-seed{s}", judge, n_samples,
             progress and workers == 1, inception_weights, real, device) for name, s in keys]
    done = dict(zip(keys, run_parallel(train_cell, jobs, workers, title, progress,
                                       get_launcher(launcher).within(out),
                                       [f"{n}-seed{s}" for n, s in keys]), strict=True))
    summary: dict[str, dict] = {}
    for name, cfg in variants.items():
        cells = [done[name, s] for s in seeds]
        per_seed = {c["name"]: {k: c.get(k) for k in (*METRIC_KEYS, "kid_std")} for c in cells}
        summary[name] = {**summarize(cells), "seeds": per_seed, "config": config_dict(cfg)}
    results = {"title": title, "variants": summary, "seeds": seeds, "n_samples": n_samples if judge else None,
               "floor": floor, "data": {"name": data.name, "train": len(data.x), "test": len(data.test_x),
                                        "shape": list(data.x.shape[1:])},
               "judge": None if judge is None else {"test_acc": judge.test_acc, "epochs": judge.epochs},
               "workers": workers, "wall_seconds": round(time.perf_counter() - began, 1), **(extra or {})}
    if len(variants) == 1:  # the keys a single run is read by
        results.update({k: v["mean"] for k, v in next(iter(summary.values())).items() if k in METRIC_KEYS})
    firsts = {name: out / f"{name}-seed{seeds[0]}" for name in variants}
    report.training_curves(firsts, out / "figures" / "curves.png")
    grids = {name: cell / "figures" / "samples.png" for name, cell in firsts.items()}
    report.panels(grids, out / "figures" / "samples.png")
    if len(variants) > 1:
        slerps = {name: cell / "figures" / "interpolation_slerp.png" for name, cell in firsts.items()}
        report.panels(slerps, out / "figures" / "interpolations.png")
    if any(family(cfg) == "ddpm" for cfg in variants.values()):
        report.spectrum_figure(to_signed(data.test_x[:256]).double(), out / "figures" / "spectrum.png")
    save_config(base, out / CONFIG)
    results = write_results(out, KIND, config_dict(base), results)
    report.render(out)
    return results


def default_variants(epochs: int = DEFAULT_EPOCHS, data: str = "mnist5k", base: GanConfig | None = None,
                     **overrides) -> dict[str, GanConfig]:
    """The embedded default: DCGAN and cDCGAN, docs/PAPERS.md §5 hyper-parameters at batch 16 (or
    ``base``'s settings, e.g. from ``--config``)."""
    base = base or GanConfig(data=data, epochs=epochs, batch_size=DEFAULT_BATCH, **overrides)
    return {"dcgan": replace(base, conditional=False, d_conditional=True),
            "cdcgan": replace(base, conditional=True, d_conditional=True)}


def default_config() -> GanConfig:
    """The base of the embedded default (``dlapps gan``): GanConfig at 14 epochs, batch 16."""
    return GanConfig(epochs=DEFAULT_EPOCHS, batch_size=DEFAULT_BATCH)


def run_default(out: Path, seeds: list[int] | None = None, *, base: GanConfig | None = None,
                n_samples: int = DEFAULT_N_SAMPLES, progress: bool = True, workers: int | None = None,
                device: torch.device | None = None) -> dict:
    """``dlapps gan``: DCGAN and cDCGAN on ``base``'s data (default mnist5k, 14 epochs, batch 16)."""
    base = base or default_config()
    return run_variants(default_variants(base=base), seeds or [base.seed], out, n_samples=n_samples,
                        progress=progress, title=f"dlapps gan: DCGAN and cDCGAN on {base.data}",
                        workers=workers, device=device, base=base)


# `dlapps generate` with no arguments: every model on mnist5k as parallel cells in < 5 min on 2
# cores (bench/generate_bench.py measures what these budgets reach).
DEFAULT_MODELS = ("dcgan", "cdcgan", "vae", "cvae", "ddpm", "cddpm")
GENERATE_SAMPLES = 1000
GENERATE_BASES: dict[str, AnyConfig] = {
    "gan": GanConfig(epochs=4, batch_size=16),
    "vae": VaeConfig(epochs=10, eval_images=500),
    "ddpm": DdpmConfig(epochs=3, sample_steps=25),
}


def model_configs(names: list[str], data: str = "mnist5k", size: int = 32, channels: int = 1,
                  options: dict[str, dict] | None = None) -> dict[str, AnyConfig]:
    """One config per model name at the default budget on ``data``, then ``options``
    (``{"ddpm": {"epochs": 40}}``: settings of one model, as ``--option ddpm.epochs=40``)."""
    options = dict(options or {})
    for name in options:
        if name not in names:
            raise ConfigError(f"--option for {name!r}, which is not among the models ({', '.join(names)})")
    out: dict[str, AnyConfig] = {}
    for name in names:
        base = replace(GENERATE_BASES[models.family_of(name)], data=data, size=size, channels=channels)
        given = options.get(name, {})
        valid = {f.name for f in fields(base)} - {"model", "conditional", "data", "size", "channels"}
        unknown = sorted(set(given) - valid)
        if unknown:
            raise ConfigError(f"unknown setting{'s' * (len(unknown) > 1)} {', '.join(unknown)} for model "
                              f"{name!r}; its settings: {', '.join(sorted(valid))}")
        out[name] = models.configure(name, replace(base, **given))
    return out


def run_models(out: Path, names: list[str] | None = None, seeds: list[int] | None = None, *,
               data: str = "mnist5k", size: int = 32, channels: int = 1,
               options: dict[str, dict] | None = None, n_samples: int = GENERATE_SAMPLES,
               progress: bool = True, workers: int | None = None, launcher=None,
               device: torch.device | None = None) -> dict:
    """``dlapps generate``: GANs, VAEs and DDPMs trained on the same data, measured in one table."""
    names = models.parse_models(list(names or DEFAULT_MODELS))
    configs = model_configs(names, data, size, channels, options)
    return run_variants(configs, seeds or [0], out, n_samples=n_samples, progress=progress,
                        title=f"dlapps generate: {', '.join(names)} on {data}",
                        extra={"models": names}, workers=workers, device=device, launcher=launcher)


def run_train(config: GanConfig, out: Path, seeds: list[int] | None = None, *,
              n_samples: int = DEFAULT_N_SAMPLES, inception_weights: Path | None = None,
              progress: bool = True, workers: int | None = None, device: torch.device | None = None) -> dict:
    """``dlapps gan train``: one GAN per seed (default: the config's seed), measured and drawn."""
    name = model_name(config)
    return run_variants({name: config}, seeds or [config.seed], out, n_samples=n_samples,
                        progress=progress, inception_weights=inception_weights,
                        title=f"dlapps gan train: {name} on {config.data}", workers=workers, device=device)


def find_cell(run_dir: Path) -> Path:
    """``run_dir`` itself when it is one trained cell, else its first cell (sorted by name)."""
    run_dir = Path(run_dir)
    if (run_dir / "checkpoint.pt").is_file():
        return run_dir
    found = sorted(p.parent for p in run_dir.glob("*/checkpoint.pt"))
    if not found:
        raise ConfigError(f"{run_dir} holds no trained model (no checkpoint.pt in it or its sub-folders)")
    return found[0]


def inspect_run(run_dir: Path, out: Path, what: str = "sample", *, cls: int | None = None,
                spherical: bool = False, n: int = 100, seed: int = 0) -> dict:
    """Draw from a trained generator: ``sample`` (n images, optionally one class), ``interpolate``
    (8 rows z₁ → z₂, linear or ``spherical``) or ``grid`` (class x shared z); writes
    ``out/<what>.png``, ``results.json`` and ``report.html``."""
    from dlapps.generate.sampling import check_class, sample

    cell = find_cell(run_dir)
    module, config, state = models.load_cell(cell)
    g = models.sampler(module)
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
    result = {"title": f"dlapps generate {what}: {cell}", "run": str(cell), "what": what, "class": cls,
              "class_name": classes[cls] if cls is not None else None,
              "spherical": spherical if what == "interpolate" else None, "seed": seed,
              "images": len(images), "figure": png.name, "epochs_trained": state["epoch"]}
    result = write_results(out, KIND, config_dict(config), result)
    report.render(out)
    return result
