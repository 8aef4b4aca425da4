"""Figures and pages of transfer runs: the classifiers on one tap, the backbone x tap comparison,
and first-layer activation maps, built from ``results.json`` with the shared report shell.

:func:`render` writes a run's own ``report.html``; :func:`section` is its part of a combined
``dlapps report`` page. Figures of the classifiers and of the comparison are drawn from
``results.json`` alone; the activation maps are drawn when the run computes them.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

import numpy as np
import torch

from dlapps.report import (
    COLORS,
    embed_png,
    grid_image,
    html_table,
    markdown_table,
    pyplot,
    save_figure,
    write_page,
)
from dlapps.runs import load_results

FIGURES = "figures"


def _labels() -> dict[str, str]:
    from dlapps.transfer.classifiers import CLASSIFIERS

    return {name: c.label for name, c in CLASSIFIERS.items()}


LABELS = _labels()  # classifier -> what it is


def title(results: dict) -> str:
    mode = results.get("mode", "classifiers")
    cfg = results.get("config") or {}
    what = ", ".join(str(v) for v in (cfg.get("data"), cfg.get("backbone")) if v)
    name = "dlapps transfer" if mode == "classifiers" else f"dlapps transfer {mode}"
    return f"{name}: {what}" if what else name


def _pct(mean: float, std: float | None = None) -> str:
    return f"{100 * mean:.2f}%" + (f" ± {100 * std:.2f}" if std else "")


def accuracy_rows(results: dict) -> list[list[str]]:
    """Rows ``[classifier, what it is, test accuracy, seconds]`` (mean ± std over seeds)."""
    return [[name, LABELS.get(name, name), _pct(s["test_acc"], s["test_acc_std"]), f"{s['seconds']:.1f}"]
            for name, s in results["classifiers"].items()]


ACCURACY_COLUMNS = ["classifier", "what", "test accuracy (mean ± std)", "seconds / seed"]


def summary_markdown(results: dict) -> str:
    """The table a command prints: one row per classifier, or per backbone x tap."""
    if results.get("mode") == "compare":
        return markdown_table(COMPARE_COLUMNS, compare_rows(results))
    return markdown_table(ACCURACY_COLUMNS, accuracy_rows(results))


COMPARE_COLUMNS = ["backbone", "tap", "weights", "test accuracy", "C chosen by CV"]


def compare_rows(results: dict) -> list[list[str]]:
    return [[c["backbone"], c["layer"], c["weights"], _pct(c["test_acc"], c["test_acc_std"]),
             ", ".join(f"{r['C']:g}" for r in c["runs"])] for c in results["cells"]]


# --- figures -------------------------------------------------------------------------------------


def _bars(path: Path, labels: list[str], means: list[float], stds: list[float], title: str) -> Path:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(max(5, 1.1 * len(labels)), 3.6))
    ax.bar(range(len(labels)), [100 * m for m in means], yerr=[100 * s for s in stds], capsize=4,
           color=COLORS[0])
    for i, m in enumerate(means):
        ax.text(i, 100 * m + 1, f"{100 * m:.1f}", ha="center", fontsize=8)
    ax.set_xticks(range(len(labels)), labels, rotation=20, ha="right")
    ax.set_ylabel("test accuracy (%)")
    ax.set_ylim(0, 105)
    ax.set_title(title, fontsize=9)
    return save_figure(fig, path, dpi=100)


def _c_sweep(path: Path, curves: dict[str, list[dict]], title: str) -> Path:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for i, (label, curve) in enumerate(curves.items()):
        cs = [r["C"] for r in curve]
        color = COLORS[i % len(COLORS)]
        ax.errorbar(cs, [100 * r["cv_acc"] for r in curve], yerr=[100 * r["cv_std"] for r in curve],
                    marker="o", color=color, label=f"{label}: CV on train")
        if all("test_acc" in r for r in curve):
            ax.plot(cs, [100 * r["test_acc"] for r in curve], "--", marker="x", color=color,
                    label=f"{label}: test (not used to choose C)")
    ax.set_xscale("log")
    ax.set_xlabel("C")
    ax.set_ylabel("accuracy (%)")
    ax.set_title(title)
    ax.legend(fontsize=7)
    return save_figure(fig, path, dpi=100)


def _confusion(path: Path, matrix: list[list[int]], classes: list[str], title: str) -> Path:
    plt = pyplot()
    m = np.asarray(matrix)
    n = len(classes)
    fig, ax = plt.subplots(figsize=(0.45 * n + 2.5, 0.45 * n + 2))
    ax.imshow(m, cmap="Blues")
    for i in range(n):
        for j in range(n):
            if m[i, j]:
                ax.text(j, i, m[i, j], ha="center", va="center", fontsize=7,
                        color="white" if m[i, j] > m.max() / 2 else "black")
    ax.set_xticks(range(n), classes, rotation=60, ha="right", fontsize=7)
    ax.set_yticks(range(n), classes, fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    return save_figure(fig, path, dpi=100)


def _stages(path: Path, stages: dict[str, float]) -> Path:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 0.35 * len(stages) + 1))
    ax.barh(list(stages), list(stages.values()), color=COLORS[1])
    ax.invert_yaxis()
    ax.set_xlabel("seconds (all seeds)")
    return save_figure(fig, path, dpi=100)


def _describe(results: dict) -> str:
    bb, data, cfg = results["backbone"], results["data"], results["config"]
    return (f"{bb['name']} ({bb['weights']}) at {bb['input_size']}x{bb['input_size']}, tap {bb['layer']} "
            f"on {data['name']}: {data['train_images']} training / {data['test_images']} test images, "
            f"seeds {cfg['seeds']}")


def draw_figures(run_dir: Path, results: dict) -> list[Path]:
    """The PNGs of a classifiers or compare run, from its results (activations: none to draw)."""
    figs = Path(run_dir) / FIGURES
    mode = results.get("mode", "classifiers")
    drawn: list[Path] = []
    if mode == "classifiers":
        cls = results["classifiers"]
        drawn.append(_bars(figs / "accuracy.png", list(cls), [s["test_acc"] for s in cls.values()],
                           [s["test_acc_std"] for s in cls.values()], _describe(results)))
        if results.get("c_sweep"):
            drawn.append(_c_sweep(figs / "c_sweep.png", {results["backbone"]["layer"]: results["c_sweep"]},
                                  "LinearSVC"))
        for name, matrix in results["confusion"].items():
            drawn.append(_confusion(figs / f"confusion_{name}.png", matrix, results["data"]["classes"],
                                    LABELS.get(name, name)))
        drawn.append(_stages(figs / "stages.png", results["stage_seconds"]))
    elif mode == "compare":
        cells = results["cells"]
        drawn.append(_bars(figs / "compare.png", [f"{c['backbone']}/{c['layer']}" for c in cells],
                           [c["test_acc"] for c in cells], [c["test_acc_std"] for c in cells],
                           results["data"]["name"]))
        drawn.append(_c_sweep(figs / "c_sweep.png", {f"{c['backbone']}/{c['layer']}": c["runs"][0]["cv_curve"]
                                                    for c in cells}, "LinearSVC"))
    return drawn


def _tiles(t: torch.Tensor) -> np.ndarray:
    """(K, C, H, W) -> one grid image, every tile scaled to [0, 255] on its own."""
    t = t.detach().float()
    lo = t.flatten(1).min(1).values.view(-1, 1, 1, 1)
    hi = t.flatten(1).max(1).values.view(-1, 1, 1, 1)
    x = ((t - lo) / (hi - lo).clamp_min(1e-8) * 255).round().to(torch.uint8).numpy()
    return grid_image(x, rows=int(np.ceil(len(x) / 8)))


def activation_figures(run_dir: Path, results: dict, image: torch.Tensor, maps: torch.Tensor,
                       weight: torch.Tensor) -> list[Path]:
    """Input, first-layer filters and their activation maps as PNGs in ``run_dir/figures``."""
    plt = pyplot()
    figs = Path(run_dir) / FIGURES
    drawn = []
    for name, arr, cmap in [("input", image.permute(1, 2, 0).numpy(), None),
                            ("filters", _tiles(weight[:, :3] if weight.shape[1] >= 3 else weight), None),
                            ("activations", _tiles(maps.unsqueeze(1)), "viridis")]:
        fig, ax = plt.subplots(figsize=(8, 8) if name != "input" else (3, 3))
        ax.imshow(arr, cmap=cmap)
        ax.axis("off")
        ax.set_title(f"{results['backbone']} first convolution: {name}" if name != "input" else "input")
        drawn.append(save_figure(fig, figs / f"{name}.png", dpi=100))
    return drawn


# --- pages ---------------------------------------------------------------------------------------


def _img(run_dir: Path, name: str, alt: str) -> str:
    path = Path(run_dir) / FIGURES / name
    return embed_png(path, alt) if path.is_file() else ""


def section(run_dir: Path, results: dict) -> str:
    """This run's tables and figures as an HTML fragment (figures missing from ``run_dir/figures``
    are drawn first)."""
    run_dir = Path(run_dir)
    mode = results.get("mode", "classifiers")
    if mode != "activations" and not (run_dir / FIGURES).is_dir():
        draw_figures(run_dir, results)
    parts: list[str] = []
    if mode == "classifiers":
        bb = results["backbone"]
        parts += [f"<h3>Accuracy</h3><p>{html.escape(_describe(results))}</p>",
                  html_table(ACCURACY_COLUMNS, accuracy_rows(results)),
                  _img(run_dir, "accuracy.png", "accuracy")]
        if results.get("c_sweep"):
            parts += ["<h3>C sweep (SVM)</h3>", _img(run_dir, "c_sweep.png", "C sweep")]
        for name in results["confusion"]:
            parts += [f"<h3>Confusion matrix: {html.escape(name)}</h3>",
                      _img(run_dir, f"confusion_{name}.png", name)]
        stages = results["stage_seconds"]
        parts += ["<h3>Time per stage</h3>",
                  html_table(["stage", "seconds"], [[k, f"{v:.2f}"] for k, v in stages.items()]),
                  _img(run_dir, "stages.png", "stages"),
                  "<h3>Parameters of the backbone</h3>",
                  html_table(["part", "parameters"], [[k, f"{v:,}"] for k, v in bb["parameters"].items()])]
    elif mode == "compare":
        parts += ["<h3>SVM accuracy per backbone and tap</h3>",
                  html_table(COMPARE_COLUMNS, compare_rows(results)),
                  _img(run_dir, "compare.png", "bars"), "<h3>C sweep (first seed)</h3>",
                  _img(run_dir, "c_sweep.png", "C sweep")]
        if results["skipped"]:
            parts += ["<h3>Skipped</h3>", html_table(["backbone", "tap", "its taps"],
                                                     [[s["backbone"], s["layer"], ", ".join(s["taps"])]
                                                      for s in results["skipped"]])]
    else:
        top = [[t["class"], f"{t['p']:.3f}"] for t in results["top5"]]
        parts += ["<h3>Top-5 ImageNet classes</h3>", html_table(["class", "probability"], top)]
        for name in ("input", "filters", "activations"):
            parts += [f"<h3>{name}</h3>", _img(run_dir, f"{name}.png", name)]
    return "".join(parts)


def render(run_dir: Path) -> Path:
    """``run_dir/report.html`` from its results.json (figures redrawn)."""
    run_dir = Path(run_dir)
    results = load_results(run_dir, "transfer")
    draw_figures(run_dir, results)
    name = title(results)
    body = (f"<h1>{html.escape(name)}</h1>" + section(run_dir, results)
            + f"<h2>Configuration</h2><pre>{html.escape(json.dumps(results.get('config'), indent=1))}</pre>"
            + f"<p class=muted>{html.escape(json.dumps(results.get('environment', {})))}</p>")
    return write_page(run_dir / "report.html", name, body)
