"""The explain commands as Python functions: each writes figures, ``results.json`` and
``report.html`` into ``out`` and returns the results dict (what ``results.json`` holds).

    run_saliency(["chelsea"], "efficientnet_lite0", out="runs/sal")
    run_fool(["coffee"], target="quail", methods=["naive", "fgsm", "pgd", "deepfool"])
    run_classvis(["tarantula"], settings=ClassVisSettings(iters=100))
    run_sweep("tarantula")
    run_activations(["chelsea"], layer="first")
    run_all()            # `dlapps explain`: everything on the bundled photos, offline

``model`` is a backbone name, a dlapps checkpoint path or an :class:`ExplainModel`.
"""

from __future__ import annotations

import html
import json
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import torch

from dlapps.errors import ConfigError
from dlapps.explain import attacks, figures
from dlapps.explain.classvis import ClassVisSettings, class_visualization, sweep
from dlapps.explain.inputs import DEFAULT_PHOTOS, load_images, resolve_class
from dlapps.explain.models import ExplainModel, load_model
from dlapps.explain.saliency import BASELINES, METHODS, saliency
from dlapps.io import atomic_write_bytes, atomic_write_json

Model = str | ExplainModel
OFFLINE_MODEL = "efficientnet_lite0"
# the classes of the bundled photos that are in ImageNet (for "true class" in the figures)
KNOWN_LABELS = {"chelsea": "tabby", "coffee": "espresso"}


def _model(model: Model, image_size: int | None = None, device: str = "cpu") -> ExplainModel:
    return model if isinstance(model, ExplainModel) else load_model(model, device, image_size)


def _batch(model: ExplainModel, images: Sequence[str]) -> tuple[list[str], torch.Tensor]:
    named = load_images(images)
    return [im.name for im in named], model.preprocess([im.pixels for im in named]).to(model.device)


def _out(out: Path | None, area: str) -> Path:
    from dlapps.cli_support import default_run_dir

    out = Path(out) if out is not None else default_run_dir(area)
    out.mkdir(parents=True, exist_ok=True)
    return out


def _environment(model: ExplainModel) -> dict:
    from dlapps.engine.device import environment

    return {"model": model.name, "weights": model.weights, "image_size": model.input_size,
            "device": str(model.device), **environment()}


def _table(rows: Sequence[dict], columns: Sequence[str]) -> str:
    def cell(v):
        return f"{v:.4g}" if isinstance(v, float) else html.escape("" if v is None else str(v))

    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{cell(r.get(c))}</td>" for c in columns) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _finish(
    out: Path, title: str, results: dict, sections: Sequence[tuple[str, str]], figs: dict[str, Path]
) -> dict:
    """results.json + report.html (tables, then the embedded figures, then the settings)."""
    from dlapps.report.html import embed_png, page

    results["out"] = str(out)
    results["figures"] = {k: str(p.relative_to(out)) for k, p in figs.items()}
    atomic_write_json(out / "results.json", results)
    body = (
        f"<h1>{html.escape(title)}</h1><p class=muted>{html.escape(json.dumps(results['environment']))}</p>"
    )
    body += "".join(f"<h2>{html.escape(h)}</h2>{content}" for h, content in sections)
    body += "".join(f"<h2>{html.escape(k)}</h2>{embed_png(p, k)}" for k, p in figs.items())
    atomic_write_bytes(out / "report.html", page(title, body))
    return results


def _targets(model: ExplainModel, spec: str | None, n: int) -> torch.Tensor | None:
    return None if spec is None else torch.full((n,), resolve_class(spec, model.classes), device=model.device)


# --- saliency ----------------------------------------------------------------------------------


def run_saliency(
    images: Sequence[str],
    model: Model = OFFLINE_MODEL,
    methods: Sequence[str] = ("vanilla",),
    target: str | None = None,
    true_labels: Sequence[str] | None = None,
    out: Path | None = None,
    image_size: int | None = None,
    rise_steps: int = 24,
    patch: int = 1,
    device: str = "cpu",
    deletion_to: str = "mean",
) -> dict:
    """Saliency maps of the predicted (or ``target``) class, with RISE deletion/insertion AUCs.

    The AUCs of two random-map baselines (i.i.d. and smooth noise) are reported beside each
    method's. RISE perturbs single pixels (``patch=1``, the default) or tiles (see
    :mod:`dlapps.explain.metrics`).
    """
    from dlapps.explain.metrics import deletion_substrate, rise_curves

    for m in methods:
        if m not in METHODS:
            from dlapps.errors import UnknownNameError

            raise UnknownNameError("saliency method", m, METHODS)
    out, model = _out(out, "explain-saliency"), _model(model, image_size, device)
    substrate = deletion_substrate(model, deletion_to).flatten().tolist()  # refuses unknown names early
    names, x = _batch(model, images)
    pred, prob = model.predict(x)
    cls = _targets(model, target, len(x))
    cls = pred if cls is None else cls
    truth = list(true_labels) if true_labels else [KNOWN_LABELS.get(n) for n in names]
    if len(truth) != len(names):
        raise ConfigError(f"{len(truth)} true labels for {len(names)} images")
    with torch.no_grad():
        probs = model.net(x).softmax(1)
    maps, rows, timing = {}, [], {}
    for m in [*methods, *BASELINES]:
        start = time.perf_counter()
        maps[m] = BASELINES[m](model, x, cls) if m in BASELINES else saliency(model, x, cls, m)
        timing[m] = (time.perf_counter() - start) / len(x)
    scores = {m: rise_curves(model, x, maps[m], cls, rise_steps, patch, substrate=deletion_to) for m in maps}
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
        for m in maps:
            row[f"{m}_deletion_auc"] = float(scores[m]["deletion_auc"][i])
            row[f"{m}_insertion_auc"] = float(scores[m]["insertion_auc"][i])
        rows.append(row)
    titles = [
        f"{r['image']}: {r['predicted']} ({r['probability']:.2f})"
        + (f"\ntrue {r['true']} ({r['true_probability']:.2f})" if r["true"] else "")
        for r in rows
    ]
    figs = {
        "saliency": figures.saliency_figure(
            x, {m: maps[m] for m in methods}, titles, out / "figures" / "saliency.png"
        )
    }
    xs = [k / rise_steps for k in range(rise_steps + 1)]
    for curve in ("deletion", "insertion"):
        series = {m: (xs, scores[m][curve].mean(0).tolist()) for m in maps}
        figs[f"{curve} curve"] = figures.curves(
            series,
            out / "figures" / f"{curve}.png",
            f"fraction of pixels {'deleted' if curve == 'deletion' else 'inserted'}",
            "probability of the explained class (mean)",
        )
    summary = {
        m: {
            "deletion_auc": float(scores[m]["deletion_auc"].mean()),
            "insertion_auc": float(scores[m]["insertion_auc"].mean()),
            "seconds_per_map": timing[m],
        }
        for m in maps
    }
    results = {
        "command": "saliency",
        "environment": _environment(model),
        "methods": list(methods),
        "rise_steps": rise_steps,
        "rise_patch": patch,
        "rise_deletion_to": {"name": deletion_to, "pixel_value": substrate},
        "images": rows,
        "summary": summary,
    }
    summary_rows = [{"method": m, **v} for m, v in summary.items()]
    return _finish(
        out,
        f"Saliency: {model.name}",
        results,
        [
            (
                "Faithfulness (RISE; deletion: lower is better, insertion: higher is better)",
                _table(summary_rows, ["method", "deletion_auc", "insertion_auc", "seconds_per_map"]),
            ),
            ("Per image", _table(rows, ["image", "predicted", "probability", "true", "true_probability"])),
        ],
        figs,
    )


# --- adversarial examples ----------------------------------------------------------------------


def run_fool(
    images: Sequence[str],
    model: Model = OFFLINE_MODEL,
    target: str | None = None,
    methods: Sequence[str] = ("naive",),
    eps: float | None = None,
    epsilons: Sequence[float] = (),
    l2_epsilons: Sequence[float] = (),
    out: Path | None = None,
    image_size: int | None = None,
    max_iter: int = 100,
    device: str = "cpu",
) -> dict:
    """Attack each image with each method; with ``epsilons`` (L∞: FGSM, PGD) and ``l2_epsilons``
    (L2: PGD-L2, DeepFool, naive), also the success rate against ε of each attack in its norm."""
    out, model = _out(out, "explain-fool"), _model(model, image_size, device)
    names, x = _batch(model, images)
    goal = _targets(model, target, len(x))
    rows, figs, curves = [], {}, {}
    for method in methods:
        options = {"max_iter": max_iter} if method in ("naive", "deepfool") else {}
        if method == "naive" and goal is None:
            raise ConfigError("the naive fooling attack needs --target (a class name or index)")
        res = attacks.run_attack(model, x, method, goal, eps, **options)
        rows += res.rows(names, model.classes)
        titles = [
            f"{n}: {model.classes[int(o)]} → {model.classes[int(p)]} ({pr:.2f})"
            for n, o, p, pr in zip(names, res.original, res.pred, res.prob, strict=True)
        ]
        figs[f"{method} examples"] = figures.fooling_figure(
            x.cpu(), res.x_adv, titles, out / "figures" / f"fool-{method}.png"
        )
        grid = epsilons if attacks.NORM[method] == "linf" else l2_epsilons
        if grid:
            points = attacks.success_curve(model, x, method, grid, goal, **options)
            curves[method] = {"norm": attacks.NORM[method], "points": points}
    for norm in ("linf", "l2"):
        series = {
            m: ([p["eps"] for p in c["points"]], [p["success_rate"] for p in c["points"]])
            for m, c in curves.items()
            if c["norm"] == norm
        }
        if series:
            figs[f"success vs eps ({norm})"] = figures.curves(
                series, out / "figures" / f"success-vs-eps-{norm}.png", f"ε ({norm} norm)", "success rate"
            )
    results = {
        "command": "fool",
        "environment": _environment(model),
        "target": target,
        "methods": list(methods),
        "eps": eps,
        "images": rows,
        "success_curves": curves,
    }
    sections = [
        (
            "Per image",
            _table(
                rows,
                [
                    "image",
                    "method",
                    "success",
                    "iterations",
                    "l2",
                    "linf",
                    "seconds",
                    "original",
                    "target",
                    "prediction",
                    "probability",
                    "note",
                ],
            ),
        )
    ]
    for m, c in curves.items():
        sections.append(
            (
                f"{m}: success rate vs ε ({c['norm']})",
                _table(c["points"], ["eps", "success_rate", "mean_l2", "mean_linf"]),
            )
        )
    return _finish(out, f"Adversarial examples: {model.name}", results, sections, figs)


# --- class visualisation -----------------------------------------------------------------------


def _init_image(model: ExplainModel, init: str | None) -> torch.Tensor | None:
    return None if init is None else _batch(model, [init])[1][0]


def run_classvis(
    targets: Sequence[str],
    model: Model = OFFLINE_MODEL,
    settings: ClassVisSettings | None = None,
    init: str | None = None,
    out: Path | None = None,
    image_size: int | None = None,
    snapshots: int = 4,
    device: str = "cpu",
    progress: bool = True,
) -> dict:
    """Class model visualisation for each target; snapshots and the probability over iterations."""
    out, model = _out(out, "explain-classvis"), _model(model, image_size, device)
    s = (settings or ClassVisSettings()).validate()
    start_image = _init_image(model, init)
    marks = sorted({round(k * s.iters / snapshots) for k in range(snapshots)})
    rows, figs, series = [], {}, {}
    for spec in targets:
        t = resolve_class(spec, model.classes)
        start = time.perf_counter()
        res = class_visualization(model, t, s, start_image, marks, progress)
        name = model.classes[t]
        rows.append(
            {
                "target": name,
                "index": t,
                "probability": res.probabilities[-1],
                "score": res.scores[-1],
                "seconds": time.perf_counter() - start,
                "probability_over_iterations": res.probabilities,
            }
        )
        snaps = sorted(res.snapshots.items())
        figs[f"{name}"] = figures.image_grid(
            [im for _, im in snaps],
            [f"iter {k} p={res.probabilities[k]:.2f}" for k, _ in snaps],
            out / "figures" / f"classvis-{t}.png",
        )
        series[name] = (list(range(len(res.probabilities))), res.probabilities)
    figs["target probability"] = figures.curves(
        series, out / "figures" / "classvis-probability.png", "iteration", "target probability"
    )
    results = {
        "command": "classvis",
        "environment": _environment(model),
        "settings": asdict(s),
        "init": init,
        "targets": rows,
    }
    return _finish(
        out,
        f"Class visualisation: {model.name}",
        results,
        [
            (
                "Target probability reached",
                _table(rows, ["target", "index", "probability", "score", "seconds"]),
            )
        ],
        figs,
    )


def run_sweep(
    target: str,
    model: Model = OFFLINE_MODEL,
    settings: ClassVisSettings | None = None,
    grid: dict[str, Sequence[float]] | None = None,
    iter_points: Sequence[int] = (25, 50, 100, 200),
    init: str | None = None,
    out: Path | None = None,
    image_size: int | None = None,
    device: str = "cpu",
    progress: bool = True,
) -> dict:
    """The course's parameter study as one grid figure: rows iters, lr, l2, blur_every."""
    out, model = _out(out, "explain-sweep"), _model(model, image_size, device)
    t = resolve_class(target, model.classes)
    rows = sweep(model, t, settings, grid, iter_points, _init_image(model, init), progress)
    cells = {
        name: [(f"{v:g} (p={r.probabilities[-1]:.2f})", r.image) for v, r in row]
        for name, row in rows.items()
    }
    fig = figures.labelled_grid(
        cells,
        out / "figures" / "sweep.png",
        f"{model.classes[t]}: one parameter varied at a time around {asdict(settings or ClassVisSettings())}",
    )
    table = [
        {"parameter": name, "value": v, "probability": r.probabilities[-1]}
        for name, row in rows.items()
        for v, r in row
    ]
    results = {
        "command": "sweep",
        "environment": _environment(model),
        "target": model.classes[t],
        "settings": asdict(settings or ClassVisSettings()),
        "grid": table,
    }
    return _finish(
        out,
        f"Class visualisation sweep: {model.classes[t]}",
        results,
        [("Target probability reached", _table(table, ["parameter", "value", "probability"]))],
        {"sweep": fig},
    )


# --- activations -------------------------------------------------------------------------------


def run_activations(
    images: Sequence[str],
    model: Model = OFFLINE_MODEL,
    layer: str = "first",
    count: int = 16,
    out: Path | None = None,
    image_size: int | None = None,
    device: str = "cpu",
) -> dict:
    """The first ``count`` activation maps of ``layer`` for each image."""
    from dlapps.explain.activations import activation_maps

    out, model = _out(out, "explain-activations"), _model(model, image_size, device)
    names, x = _batch(model, images)
    acts = activation_maps(model, x, layer, count)
    figs, rows = {}, []
    for i, name in enumerate(names):
        tiles = [x[i].cpu(), *acts[i]]
        labels = [name, *[f"filter {k}" for k in range(len(acts[i]))]]
        figs[f"{name}: {layer}"] = figures.image_grid(tiles, labels, out / "figures" / f"activations-{i}.png")
        rows.append(
            {
                "image": name,
                "layer": layer,
                "channels": int(acts.shape[1]),
                "size": list(acts.shape[2:]),
                "mean_activation": acts[i].mean(dim=(1, 2)).tolist(),
            }
        )
    results = {"command": "activations", "environment": _environment(model), "images": rows}
    return _finish(out, f"Activations: {model.name} {layer}", results, [], figs)


# --- everything, offline -----------------------------------------------------------------------

DEFAULT_SIZE = 160


def run_all(
    out: Path | None = None,
    model: Model = OFFLINE_MODEL,
    photos: Sequence[str] = DEFAULT_PHOTOS[:4],
    image_size: int = DEFAULT_SIZE,
    classvis_targets: Sequence[str] = ("tarantula", "goldfish"),
    classvis_iters: int = 60,
    max_iter: int = 100,
    device: str = "cpu",
    progress: bool = True,
) -> dict:
    """``dlapps explain``: each command once on the bundled photos, one report linking them.

    Sized to a few minutes on 2 CPU cores: images at ``image_size`` pixels, SmoothGrad/IG with 16
    samples, attacks with their default budgets, class visualisation ``classvis_iters`` iterations.
    """
    out = _out(out, "explain")
    start = time.perf_counter()
    model = _model(model, image_size, device)
    parts = {
        "saliency": lambda: run_saliency(
            photos, model, ("vanilla", "smoothgrad", "ig", "gradcam"), out=out / "saliency"
        ),
        "fool": lambda: run_fool(
            photos,
            model,
            "goldfish",
            ("naive", "fgsm", "pgd", "deepfool"),
            epsilons=[e / 255 for e in (0.25, 0.5, 1, 2, 4)],
            l2_epsilons=(0.25, 0.5, 1.0, 2.0),
            out=out / "fool",
            max_iter=max_iter,
        ),
        "classvis": lambda: run_classvis(
            classvis_targets,
            model,
            ClassVisSettings(iters=classvis_iters),
            out=out / "classvis",
            progress=progress,
        ),
        "activations": lambda: run_activations(photos[:2], model, out=out / "activations"),
    }
    done = {}
    for name, fn in parts.items():
        t0 = time.perf_counter()
        fn()
        done[name] = {"dir": name, "seconds": round(time.perf_counter() - t0, 2)}
    results = {
        "command": "all",
        "environment": _environment(model),
        "photos": list(photos),
        "parts": done,
        "wall_seconds": round(time.perf_counter() - start, 1),
    }
    links = "".join(f'<li><a href="{n}/report.html">{n}</a> ({d["seconds"]} s)</li>' for n, d in done.items())
    return _finish(
        out,
        f"dlapps explain: {model.name} on the bundled photos",
        results,
        [("Parts", f"<ul>{links}</ul>")],
        {},
    )
