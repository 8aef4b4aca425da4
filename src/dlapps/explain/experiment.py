"""The explain commands as Python functions: each writes ``config.json``, figures,
``results.json`` and ``report.html`` into ``out`` and returns the results (what ``results.json``
holds: ``kind = "explain"``, the sub-command in ``command``).

    run_saliency(images=["chelsea"], out="runs/sal")
    run_sanity(images=["chelsea"], methods=["vanilla", "gradcam", "edge"])
    run_fool(images=["coffee"], target="quail", methods=["naive", "fgsm", "pgd", "deepfool"])
    run_classvis(targets=["tarantula"], iters=100)
    run_compare(target="tarantula")
    run_activations(images=["chelsea"], layer="first")
    run_all()            # `dlapps explain`: everything on the bundled photos, offline

Each takes its config (:mod:`dlapps.explain.config`) and/or the config's fields as keywords;
``model=`` hands in an :class:`ExplainModel` already loaded (a notebook's own network) instead of
``config.model``'s name.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any, TypeVar

import torch

from dlapps.config import config_dict, save_config
from dlapps.errors import ConfigError
from dlapps.explain import attacks, report
from dlapps.explain.classvis import class_visualization, compare
from dlapps.explain.config import (
    ActivationsConfig,
    AllConfig,
    ClassVisConfig,
    CompareConfig,
    ExplainConfig,
    FoolConfig,
    MethodsConfig,
    SaliencyConfig,
    SanityConfig,
)
from dlapps.explain.inputs import load_images, resolve_class
from dlapps.explain.models import ExplainModel, load_model
from dlapps.explain.saliency import BASELINES, IGResult, attribute, saliency
from dlapps.runs import write_results

C = TypeVar("C", bound=ExplainConfig)
# the classes of the bundled photos that are in ImageNet (for "true class" in the figures)
KNOWN_LABELS = {"chelsea": "tabby", "coffee": "espresso"}


def _prepare(cls: type[C], config: C | None, settings: dict[str, Any], out: Path | None,
             model: ExplainModel | None) -> tuple[C, Path, ExplainModel]:
    """The validated config (``config`` or ``cls()``, ``settings`` replacing its fields), the run
    directory (with ``config.json``) and the network, loaded on the config's device."""
    from dlapps.cli_support import default_run_dir
    from dlapps.engine.device import resolve_device

    config = replace(config if config is not None else cls(), **settings).validate()
    if model is None:
        model = load_model(config.model, resolve_device(config.device), config.image_size)
    else:
        config = replace(config, model=model.name)
    area = "explain" if config.command == "all" else f"explain-{config.command}"
    out = Path(out) if out is not None else default_run_dir(area)
    out.mkdir(parents=True, exist_ok=True)
    save_config(config, out / "config.json")
    return config, out, model


def _batch(model: ExplainModel, images: Sequence[str]) -> tuple[list[str], torch.Tensor]:
    named = load_images(images)
    return [im.name for im in named], model.preprocess([im.pixels for im in named]).to(model.device)


def _environment(model: ExplainModel) -> dict:
    from dlapps.engine.device import environment

    return {"model": model.name, "weights": model.weights, "image_size": model.input_size,
            "device": str(model.device), **environment()}


def _finish(out: Path, config: ExplainConfig, model: ExplainModel, figs: dict[str, Path],
            **results: Any) -> dict:
    """results.json (through :func:`dlapps.runs.write_results`: the command, the environment,
    ``results``, the run directory and the figures) and report.html."""
    results = {"command": config.command, "environment": _environment(model), **results, "out": str(out),
               "figures": {k: str(p.relative_to(out)) for k, p in figs.items()}}
    results = write_results(out, "explain", config_dict(config), results)
    report.render(out)
    return results


def _targets(model: ExplainModel, spec: str | None, n: int) -> torch.Tensor | None:
    return None if spec is None else torch.full((n,), resolve_class(spec, model.classes), device=model.device)


def _tag(name: str, seed: int, seeds: Sequence[int]) -> str:
    """A figure's name: the seed is named only when there are several."""
    return name if len(seeds) == 1 else f"{name} seed {seed}"


# --- saliency ----------------------------------------------------------------------------------


def _maps(model: ExplainModel, x: torch.Tensor, cls: torch.Tensor, c: MethodsConfig,
          ) -> tuple[dict[str, torch.Tensor], dict[str, float], IGResult | None]:
    """Each method's normalised maps, its seconds per map, and IG's result (completeness) when
    ``ig`` is among the methods."""
    from dlapps.explain.saliency import METHODS, integrated_gradients, normalise, reduce

    options, maps, timing, ig = c.method_options(), {}, {}, None
    for m in c.methods:
        start = time.perf_counter()
        if m == "ig":
            ig = integrated_gradients(model, x, cls, **{k: options[k] for k in METHODS["ig"].options
                                                         if k in options})
            attributions = ig.attributions
        else:
            attributions = attribute(model, x, cls, m, **options)
        maps[m] = normalise(reduce(attributions, c.reduction or METHODS[m].reduction))
        timing[m] = (time.perf_counter() - start) / len(x)
    return maps, timing, ig


def _explainer(model: ExplainModel, method: str, c: MethodsConfig, ig: IGResult | None):
    """(x, target) -> normalised maps of ``method`` as run on the clean images — IG at the steps it
    took there (a perturbed image is not refined again); a random map is redrawn at each call."""
    if method in BASELINES:
        draws = itertools.count(1)
        return lambda z, t: BASELINES[method](model, z, t, seed=next(draws))
    options = c.method_options()
    if method == "ig" and ig is not None:
        options.update(tolerance=None, steps=int(ig.steps.max()))
    return lambda z, t: saliency(model, z, t, method, c.reduction, **options)


def run_saliency(config: SaliencyConfig | None = None, out: Path | None = None, *,
                 model: ExplainModel | None = None, progress: bool = True, **settings: Any) -> dict:
    """Saliency maps of the predicted (or ``target``) class, Integrated Gradients' completeness
    gap per image, and the maps' faithfulness: RISE deletion/insertion AUCs, faithfulness
    correlation and max-sensitivity, with two random maps (i.i.d. and smooth noise) beside.

    RISE perturbs single pixels (``patch=1``, the default) or tiles (see
    :mod:`dlapps.explain.metrics`).
    """
    from dlapps.explain import metrics
    from dlapps.explain.saliency import steps_note

    c, out, model = _prepare(SaliencyConfig, config, settings, out, model)
    substrate = metrics.deletion_substrate(model, c.deletion_to).flatten().tolist()
    names, x = _batch(model, c.images)
    pred, prob = model.predict(x)
    cls = _targets(model, c.target, len(x))
    cls = pred if cls is None else cls
    truth = list(c.true_labels) if c.true_labels else [KNOWN_LABELS.get(n) for n in names]
    if len(truth) != len(names):
        raise ConfigError(f"{len(truth)} true labels for {len(names)} images")
    with torch.no_grad():
        probs = model.net(x).softmax(1)
    maps, timing, ig = _maps(model, x, cls, c)
    for b, fn in BASELINES.items():
        maps[b], timing[b] = fn(model, x, cls), 0.0
    scores = {m: metrics.rise_curves(model, x, maps[m], cls, c.rise_steps, c.patch, substrate=c.deletion_to)
              for m in maps}
    for m in maps:
        scores[m]["faithfulness_correlation"] = metrics.faithfulness_correlation(
            model, x, maps[m], cls, c.faithfulness_runs, c.faithfulness_subset)
        if c.sensitivity_samples:
            scores[m]["max_sensitivity"] = metrics.max_sensitivity(
                x, cls, _explainer(model, m, c, ig), c.sensitivity_samples, c.sensitivity_radius)
    metrics = ["deletion_auc", "insertion_auc", "faithfulness_correlation",
               *(["max_sensitivity"] if c.sensitivity_samples else [])]
    rows = []
    for i, name in enumerate(names):
        true_idx = resolve_class(truth[i], model.classes) if truth[i] else None
        row = {
            "image": name,
            "predicted": model.classes[int(pred[i])],
            "probability": float(prob[i]),
            "explained": model.classes[int(cls[i])],
            "true": None if true_idx is None else model.classes[true_idx],
            "true_probability": None if true_idx is None else float(probs[i, true_idx]),
        }
        if ig is not None:
            row.update({f"ig_{k}": v for k, v in ig.per_image()[i].items()})
        row.update({f"{m}_{k}": float(scores[m][k][i]) for m in maps for k in metrics})
        rows.append(row)
    titles = [
        f"{r['image']}: {r['predicted']} ({r['probability']:.2f})"
        + (f"\ntrue {r['true']} ({r['true_probability']:.2f})" if r["true"] else "")
        for r in rows
    ]
    figs = {"saliency": report.saliency_figure(x, {m: maps[m] for m in c.methods}, titles,
                                               out / "figures" / "saliency.png")}
    xs = [k / c.rise_steps for k in range(c.rise_steps + 1)]
    for curve in ("deletion", "insertion"):
        series = {m: (xs, scores[m][curve].mean(0).tolist()) for m in maps}
        figs[f"{curve} curve"] = report.curves(
            series,
            out / "figures" / f"{curve}.png",
            f"fraction of pixels {'deleted' if curve == 'deletion' else 'inserted'}",
            "probability of the explained class (mean)",
        )
    summary = {m: {**{k: float(scores[m][k].float().nanmean()) for k in metrics},
                   "seconds_per_map": timing[m]} for m in maps}
    ig_report = None if ig is None else {
        "baseline": ig.baseline, "tolerance": ig.tolerance, "seconds": ig.seconds, "note": steps_note(ig),
        "converged": bool(ig.converged.all())}
    return _finish(out, c, model, figs, methods=list(c.methods), rise_steps=c.rise_steps, rise_patch=c.patch,
                   rise_deletion_to={"name": c.deletion_to, "pixel_value": substrate}, images=rows,
                   summary=summary, integrated_gradients=ig_report)


# --- sanity checks -----------------------------------------------------------------------------


def run_sanity(config: SanityConfig | None = None, out: Path | None = None, *,
               model: ExplainModel | None = None, progress: bool = True, **settings: Any) -> dict:
    """Adebayo et al.'s sanity checks of each method (see :mod:`dlapps.explain.sanity`): the
    similarity of its maps to the trained network's as the layers are randomised from the top
    (``model``) and after retraining on permuted labels (``data``); methods whose maps stay
    similar are flagged."""
    from dlapps.explain import sanity

    c, out, model = _prepare(SanityConfig, config, settings, out, model)
    if "data" in c.checks:
        sanity.check_retrainable(model)
    names, x = _batch(model, c.images)
    cls = _targets(model, c.target, len(x))
    cls = model.predict(x)[0] if cls is None else cls
    options = c.method_options()
    explain = {m: (lambda mdl, z, t, m=m: saliency(mdl, z, t, m, c.reduction, **options)) for m in c.methods}
    checks, figs = {}, {}
    for check in c.checks:
        start = time.perf_counter()
        if check == "model":
            res = sanity.cascading_randomisation(model, x, cls, explain, c.max_layers, c.seed, c.flag_at)
        else:
            res = sanity.data_randomisation(model, x, cls, explain, c.epochs, c.train_images, c.seed,
                                            c.flag_at)
        checks[check] = {"name": sanity.CHECKS[check], "steps": res.steps, "info": res.info,
                         "summary": res.summary(), "table": res.table(),
                         "flagged": [m for m, f in res.flagged().items() if f],
                         "seconds": round(time.perf_counter() - start, 2)}
        figs[f"{check}: similarity"] = report.sanity_curves(res, out / "figures" / f"sanity-{check}.png")
        figs[f"{check}: maps of {names[0]}"] = report.sanity_maps(
            x[0].cpu(), res, out / "figures" / f"sanity-{check}-maps.png")
    return _finish(out, c, model, figs, methods=list(c.methods), images=names,
                   explained=[model.classes[int(t)] for t in cls], checks=checks)


# --- adversarial examples ----------------------------------------------------------------------


def run_fool(config: FoolConfig | None = None, out: Path | None = None, *,
             model: ExplainModel | None = None, progress: bool = True, **settings: Any) -> dict:
    """Attack each image with each method; with ``epsilons`` (L∞: FGSM, PGD) and ``l2_epsilons``
    (L2: PGD-L2, DeepFool, naive), also the success rate against ε of each attack in its norm."""
    c, out, model = _prepare(FoolConfig, config, settings, out, model)
    names, x = _batch(model, c.images)
    goal = _targets(model, c.target, len(x))
    rows, figs, curves = [], {}, {}
    for method in c.methods:
        spec = attacks.ATTACKS[method]
        options = {name: getattr(c, name) for name in spec.options}
        res = attacks.run_attack(model, x, method, goal, c.eps, **options)
        rows += res.rows(names, model.classes)
        titles = [
            f"{n}: {model.classes[int(o)]} → {model.classes[int(p)]} ({pr:.2f})"
            for n, o, p, pr in zip(names, res.original, res.pred, res.prob, strict=True)
        ]
        figs[f"{method} examples"] = report.fooling_figure(
            x.cpu(), res.x_adv, titles, out / "figures" / f"fool-{method}.png"
        )
        grid = c.epsilons if spec.norm == "linf" else c.l2_epsilons
        if grid:
            points = attacks.success_curve(model, x, method, grid, goal, **options)
            curves[method] = {"norm": spec.norm, "points": points}
    for norm in ("linf", "l2"):
        series = {
            m: ([p["eps"] for p in cu["points"]], [p["success_rate"] for p in cu["points"]])
            for m, cu in curves.items()
            if cu["norm"] == norm
        }
        if series:
            figs[f"success vs eps ({norm})"] = report.curves(
                series, out / "figures" / f"success-vs-eps-{norm}.png", f"ε ({norm} norm)", "success rate"
            )
    return _finish(out, c, model, figs, target=c.target, methods=list(c.methods), eps=c.eps, images=rows,
                   success_curves=curves)


# --- class visualisation -----------------------------------------------------------------------


def _init_image(model: ExplainModel, init: str | None) -> torch.Tensor | None:
    return None if init is None else _batch(model, [init])[1][0]


def _settings_without_seed(settings) -> dict:
    d = asdict(settings)
    d.pop("seed")
    return d


def run_classvis(config: ClassVisConfig | None = None, out: Path | None = None, *,
                 model: ExplainModel | None = None, progress: bool = True, **settings: Any) -> dict:
    """Class model visualisation for each target and seed; snapshots and the probability over
    iterations."""
    c, out, model = _prepare(ClassVisConfig, config, settings, out, model)
    start_image = _init_image(model, c.init)
    marks = sorted({round(k * c.iters / c.snapshots) for k in range(c.snapshots)})
    rows, figs, series = [], {}, {}
    for spec in c.targets:
        t = resolve_class(spec, model.classes)
        name = model.classes[t]
        for seed in c.seeds:
            start = time.perf_counter()
            res = class_visualization(model, t, c.settings(seed), start_image, marks, progress)
            rows.append(
                {
                    "target": name,
                    "index": t,
                    "seed": seed,
                    "probability": res.probabilities[-1],
                    "score": res.scores[-1],
                    "seconds": time.perf_counter() - start,
                    "probability_over_iterations": res.probabilities,
                }
            )
            snaps = sorted(res.snapshots.items())
            suffix = "" if len(c.seeds) == 1 else f"-seed{seed}"
            figs[_tag(name, seed, c.seeds)] = report.image_grid(
                [im for _, im in snaps],
                [f"iter {k} p={res.probabilities[k]:.2f}" for k, _ in snaps],
                out / "figures" / f"classvis-{t}{suffix}.png",
            )
            series[_tag(name, seed, c.seeds)] = (list(range(len(res.probabilities))), res.probabilities)
    figs["target probability"] = report.curves(
        series, out / "figures" / "classvis-probability.png", "iteration", "target probability"
    )
    return _finish(out, c, model, figs, settings=_settings_without_seed(c.settings(c.seeds[0])),
                   seeds=list(c.seeds), init=c.init, targets=rows)


def run_compare(config: CompareConfig | None = None, out: Path | None = None, *,
                model: ExplainModel | None = None, progress: bool = True, **settings: Any) -> dict:
    """The course's parameter study as one grid figure per seed: rows iters, lr, l2, blur_every."""
    c, out, model = _prepare(CompareConfig, config, settings, out, model)
    t = resolve_class(c.target, model.classes)
    init = _init_image(model, c.init)
    table, figs = [], {}
    for seed in c.seeds:
        base = c.base(seed)
        rows = compare(model, t, base, c.grid(), c.iters, init, progress)
        cells = {
            name: [(f"{v:g} (p={r.probabilities[-1]:.2f})", r.image) for v, r in row]
            for name, row in rows.items()
        }
        suffix = "" if len(c.seeds) == 1 else f"-seed{seed}"
        figs[_tag("compare", seed, c.seeds)] = report.labelled_grid(
            cells,
            out / "figures" / f"compare{suffix}.png",
            f"{model.classes[t]}: one parameter varied at a time around {asdict(base)}",
        )
        table += [
            {"seed": seed, "parameter": name, "value": v, "probability": r.probabilities[-1]}
            for name, row in rows.items()
            for v, r in row
        ]
    return _finish(out, c, model, figs, target=model.classes[t],
                   settings=_settings_without_seed(c.base(c.seeds[0])), seeds=list(c.seeds), grid=table)


# --- activations -------------------------------------------------------------------------------


def run_activations(config: ActivationsConfig | None = None, out: Path | None = None, *,
                    model: ExplainModel | None = None, progress: bool = True, **settings: Any) -> dict:
    """The first ``count`` activation maps of ``layer`` for each image."""
    from dlapps.explain.activations import activation_maps

    c, out, model = _prepare(ActivationsConfig, config, settings, out, model)
    names, x = _batch(model, c.images)
    acts = activation_maps(model, x, c.layer, c.count)
    figs, rows = {}, []
    for i, name in enumerate(names):
        tiles = [x[i].cpu(), *acts[i]]
        labels = [name, *[f"filter {k}" for k in range(len(acts[i]))]]
        path = out / "figures" / f"activations-{i}.png"
        figs[f"{name}: {c.layer}"] = report.image_grid(tiles, labels, path)
        rows.append(
            {
                "image": name,
                "layer": c.layer,
                "channels": int(acts.shape[1]),
                "size": list(acts.shape[2:]),
                "mean_activation": acts[i].mean(dim=(1, 2)).tolist(),
            }
        )
    return _finish(out, c, model, figs, images=rows)


# --- everything, offline -----------------------------------------------------------------------


def run_all(config: AllConfig | None = None, out: Path | None = None, *,
            model: ExplainModel | None = None, progress: bool = True, **settings: Any) -> dict:
    """``dlapps explain``: each command once on the bundled photos, one report linking them.

    Sized to a few minutes on 2 CPU cores: images at ``image_size`` pixels, SmoothGrad with 16
    samples, IG refined to a 5% completeness gap, max-sensitivity from ``sensitivity_samples``
    perturbations, attacks with their default budgets, class visualisation ``classvis_iters``
    iterations.
    """
    start = time.perf_counter()
    c, out, model = _prepare(AllConfig, config, settings, out, model)
    common = {"model": c.model, "image_size": c.image_size, "device": c.device}
    methods = ["vanilla", "smoothgrad", "ig", "gradcam"]
    parts = {
        "saliency": lambda: run_saliency(
            SaliencyConfig(images=list(c.photos), methods=methods, sensitivity_samples=c.sensitivity_samples,
                           **common), out / "saliency", model=model),
        "fool": lambda: run_fool(
            FoolConfig(images=list(c.photos), target="goldfish", methods=["naive", "fgsm", "pgd", "deepfool"],
                       epsilons=[e / 255 for e in (0.25, 0.5, 1, 2, 4)], l2_epsilons=[0.25, 0.5, 1.0, 2.0],
                       max_iter=c.max_iter, **common),
            out / "fool", model=model),
        "classvis": lambda: run_classvis(
            ClassVisConfig(targets=list(c.classvis_targets), iters=c.classvis_iters, **common),
            out / "classvis", model=model, progress=progress),
        "activations": lambda: run_activations(
            ActivationsConfig(images=list(c.photos[:2]), **common), out / "activations", model=model),
    }
    done = {}
    for name, fn in parts.items():
        t0 = time.perf_counter()
        fn()
        done[name] = {"dir": name, "seconds": round(time.perf_counter() - t0, 2)}
    return _finish(out, c, model, {}, photos=list(c.photos), parts=done,
                   wall_seconds=round(time.perf_counter() - start, 1))
