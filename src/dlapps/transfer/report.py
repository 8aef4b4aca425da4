"""Figures and report.html for transfer runs, studies and first-layer activation maps."""

from __future__ import annotations

import html
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from dlapps.io import atomic_write_bytes  # noqa: E402
from dlapps.report.figures import grid_image  # noqa: E402
from dlapps.report.html import embed_png, page  # noqa: E402

LABELS = {"svm": "features + linear SVM", "probe": "features + linear probe (torch)",
          "fc": "new FC head, frozen backbone", "finetune": "fine-tuned, all layers",
          "scratch": "same network from scratch"}


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return path


def _table(header: list[str], rows: list[list]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _pct(mean: float, std: float | None = None) -> str:
    return f"{100 * mean:.2f}%" + (f" ± {100 * std:.2f}" if std else "")


def accuracy_rows(results: dict) -> list[list[str]]:
    """Rows ``[classifier, what it is, test accuracy, seconds]`` (mean ± std over seeds)."""
    return [[name, LABELS[name], _pct(s["test_acc"], s["test_acc_std"]), f"{s['seconds']:.1f}"]
            for name, s in results["classifiers"].items()]


def markdown_table(results: dict) -> str:
    rows = ["| classifier | what | test accuracy (mean ± std) | seconds / seed |", "|---|---|---:|---:|"]
    rows += ["| " + " | ".join(r) + " |" for r in accuracy_rows(results)]
    return "\n".join(rows)


def _bars(path: Path, labels: list[str], means: list[float], stds: list[float], title: str) -> Path:
    fig, ax = plt.subplots(figsize=(max(5, 1.1 * len(labels)), 3.6))
    ax.bar(range(len(labels)), [100 * m for m in means], yerr=[100 * s for s in stds], capsize=4,
           color="#4c72b0")
    for i, m in enumerate(means):
        ax.text(i, 100 * m + 1, f"{100 * m:.1f}", ha="center", fontsize=8)
    ax.set_xticks(range(len(labels)), labels, rotation=20, ha="right")
    ax.set_ylabel("test accuracy (%)")
    ax.set_ylim(0, 105)
    ax.set_title(title)
    return _save(fig, path)


def _c_sweep(path: Path, curves: dict[str, list[dict]], title: str) -> Path:
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for i, (label, curve) in enumerate(curves.items()):
        cs = [r["C"] for r in curve]
        color = f"C{i}"
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
    return _save(fig, path)


def _confusion(path: Path, matrix: list[list[int]], classes: list[str], title: str) -> Path:
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
    return _save(fig, path)


def _stages(path: Path, stages: dict[str, float]) -> Path:
    fig, ax = plt.subplots(figsize=(6, 0.35 * len(stages) + 1))
    ax.barh(list(stages), list(stages.values()), color="#dd8452")
    ax.invert_yaxis()
    ax.set_xlabel("seconds (all seeds)")
    return _save(fig, path)


def _write(out: Path, title: str, sections: list[tuple[str, str]], results: dict) -> Path:
    body = f"<h1>{html.escape(title)}</h1>" + "".join(
        f"<h2>{html.escape(h)}</h2>{content}" for h, content in sections)
    env = results.get("environment", {})
    body += (f"<p class=muted>{html.escape(json.dumps(env))}</p>"
             f"<h2>Configuration</h2><pre>{html.escape(json.dumps(results.get('config'), indent=1))}</pre>")
    return atomic_write_bytes(Path(out) / "report.html", page(title, body))


def transfer_report(out: Path, results: dict) -> Path:
    """report.html of :func:`~dlapps.transfer.study.run_transfer` with its figures."""
    figs = Path(out) / "figures"
    cls, bb, data = results["classifiers"], results["backbone"], results["data"]
    cfg = results["config"]
    what = (f"{bb['name']} ({bb['weights']}) at {bb['input_size']}x{bb['input_size']}, tap {bb['layer']} "
            f"on {data['name']}: {data['train_images']} training / {data['test_images']} test images, "
            f"seeds {cfg['seeds']}")
    sections = [("Accuracy", f"<p>{html.escape(what)}</p>"
                 + _table(["classifier", "what", "test accuracy", "seconds / seed"], accuracy_rows(results))
                 + embed_png(_bars(figs / "accuracy.png", list(cls), [s["test_acc"] for s in cls.values()],
                                   [s["test_acc_std"] for s in cls.values()], what), "accuracy"))]
    if results.get("c_sweep"):
        sections.append(("C sweep (SVM)", embed_png(_c_sweep(figs / "c_sweep.png", {bb["layer"]:
                                                             results["c_sweep"]}, "LinearSVC"), "C sweep")))
    for name, matrix in results["confusion"].items():
        sections.append((f"Confusion matrix: {name}", embed_png(
            _confusion(figs / f"confusion_{name}.png", matrix, data["classes"], LABELS[name]), name)))
    stages = results["stages_s"]
    stage_rows = [[k, f"{v:.2f}"] for k, v in stages.items()]
    sections.append(("Time per stage", _table(["stage", "seconds"], stage_rows)
                     + embed_png(_stages(figs / "stages.png", stages), "stages")))
    params = bb["parameters"]
    sections.append(("Parameters of the backbone", _table(["part", "parameters"],
                                                          [[k, f"{v:,}"] for k, v in params.items()])))
    return _write(out, "dlapps transfer", sections, results)


def study_report(out: Path, results: dict) -> Path:
    """report.html of :func:`~dlapps.transfer.study.run_study`: bars and C sweeps per cell."""
    figs = Path(out) / "figures"
    cells = results["cells"]
    labels = [f"{c['backbone']}/{c['layer']}" for c in cells]
    rows = [[c["backbone"], c["layer"], c["weights"], _pct(c["test_acc"], c["test_acc_std"]),
             ", ".join(f"{r['C']:g}" for r in c["runs"])] for c in cells]
    curves = {f"{c['backbone']}/{c['layer']}": c["runs"][0]["cv_curve"] for c in cells}
    sections = [("SVM accuracy per backbone and tap",
                 _table(["backbone", "tap", "weights", "test accuracy", "C chosen by CV"], rows)
                 + embed_png(_bars(figs / "study.png", labels, [c["test_acc"] for c in cells],
                                   [c["test_acc_std"] for c in cells], results["data"]["name"]), "bars")),
                ("C sweep (first seed)", embed_png(_c_sweep(figs / "c_sweep.png", curves, "LinearSVC"),
                                                   "C sweep"))]
    if results["skipped"]:
        sections.append(("Skipped", _table(["backbone", "tap", "its taps"],
                                           [[s["backbone"], s["layer"], ", ".join(s["taps"])]
                                            for s in results["skipped"]])))
    return _write(out, "dlapps transfer study", sections, results)


def _tiles(t: torch.Tensor) -> np.ndarray:
    """(K, C, H, W) -> one grid image, every tile scaled to [0, 1] on its own."""
    t = t.detach().float()
    lo = t.flatten(1).min(1).values.view(-1, 1, 1, 1)
    hi = t.flatten(1).max(1).values.view(-1, 1, 1, 1)
    x = ((t - lo) / (hi - lo).clamp_min(1e-8)).numpy()
    return grid_image(x, rows=int(np.ceil(len(x) / 8)))


def activations_report(out: Path, results: dict, image: torch.Tensor, maps: torch.Tensor,
                       weight: torch.Tensor) -> Path:
    """Input, first-layer filters and their activation maps as PNGs and report.html."""
    figs = Path(out) / "figures"
    shown = []
    for name, arr, cmap in [("input", image.permute(1, 2, 0).numpy(), None),
                            ("filters", _tiles(weight[:, :3] if weight.shape[1] >= 3 else weight), None),
                            ("activations", _tiles(maps.unsqueeze(1)), "viridis")]:
        fig, ax = plt.subplots(figsize=(8, 8) if name != "input" else (3, 3))
        ax.imshow(arr, cmap=cmap)
        ax.axis("off")
        ax.set_title(f"{results['backbone']} first convolution: {name}" if name != "input" else "input")
        shown.append((name, embed_png(_save(fig, figs / f"{name}.png"), name)))
    top = _table(["class", "probability"], [[t["class"], f"{t['p']:.3f}"] for t in results["top5"]])
    return _write(out, "dlapps transfer activations", [("Top-5 ImageNet classes", top), *shown], results)
