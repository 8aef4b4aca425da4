"""Matplotlib figures of a run, written as PNGs under ``RUN_DIR/figures``."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from dlapps.engine.runlog import read_metrics  # noqa: E402
from dlapps.io import safe_torch_load  # noqa: E402

COLORS = plt.rcParams["axes.prop_cycle"].by_key()["color"]


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def _epoch_series(run_dir: Path, cell: str, key: str) -> tuple[np.ndarray, np.ndarray]:
    recs = [r for r in read_metrics(run_dir / cell) if r["kind"] == "epoch" and r.get(key) is not None]
    return np.array([r["epoch"] for r in recs]), np.array([r[key] for r in recs], dtype=float)


def accuracy_curves(run_dir: Path, results: dict) -> Path:
    """Source (dashed) and target (solid) test accuracy per epoch; band = min-max over seeds."""
    cfg = results["config"]
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for i, method in enumerate(cfg["methods"]):
        for key, style in (("target_acc", "-"), ("source_acc", "--")):
            series = [_epoch_series(run_dir, f"{method}-seed{s}", key) for s in cfg["seeds"]]
            series = [s for s in series if len(s[0])]
            if not series:
                continue
            n = min(len(s[0]) for s in series)
            ys = np.stack([s[1][:n] for s in series])
            x = series[0][0][:n]
            label = f"{method} ({'target' if key == 'target_acc' else 'source'})"
            ax.plot(x, ys.mean(0), style, color=COLORS[i % len(COLORS)], label=label)
            if len(ys) > 1:
                ax.fill_between(x, ys.min(0), ys.max(0), color=COLORS[i % len(COLORS)], alpha=0.15)
    ax.set(xlabel="epoch", ylabel="test accuracy", ylim=(0, 1.02),
           title=f"{cfg['source']} → {cfg['target']}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, ncol=2)
    return _save(fig, run_dir / "figures" / "accuracy.png")


def training_curves(run_dir: Path, results: dict) -> Path:
    """Losses, λ_p, learning rate and domain accuracy over training (first seed of each method)."""
    cfg = results["config"]
    panels = [("loss", "total loss"), ("cls_loss", "label loss L_y"), ("domain_loss", "domain loss L_d"),
              ("train_domain_acc", "domain classifier acc (train batches)"),
              ("lambda", "λ_p"), ("lr", "learning rate")]
    fig, axes = plt.subplots(2, 3, figsize=(12, 6.5))
    for i, method in enumerate(cfg["methods"]):
        recs = [r for r in read_metrics(run_dir / f"{method}-seed{cfg['seeds'][0]}") if r["kind"] == "step"]
        for ax, (key, title) in zip(axes.flat, panels, strict=True):
            pts = [(r["step"], r[key]) for r in recs if r.get(key) is not None]
            if pts:
                x, y = zip(*pts, strict=True)
                ax.plot(x, y, color=COLORS[i % len(COLORS)], label=method, lw=1)
            ax.set_title(title, fontsize=10)
            ax.grid(alpha=0.3)
    for ax in axes[1]:
        ax.set_xlabel("step")
    axes[0, 0].legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, run_dir / "figures" / "training.png")


def tsne_figure(run_dir: Path, results: dict) -> Path | None:
    """t-SNE of G_f features per method: coloured by domain (left) and by class (right)."""
    cfg = results["config"]
    cells = [(m, run_dir / f"{m}-seed{cfg['seeds'][0]}" / "tsne.pt") for m in cfg["methods"]]
    cells = [(m, p) for m, p in cells if p.is_file()]
    if not cells:
        return None
    fig, axes = plt.subplots(len(cells), 2, figsize=(9, 4.2 * len(cells)), squeeze=False)
    for row, (method, path) in zip(axes, cells, strict=True):
        t = safe_torch_load(path, "t-SNE file")
        xy, ns = t["xy"].numpy(), int(t["n_source"])
        labels = np.concatenate([t["source_y"].numpy(), t["target_y"].numpy()])
        row[0].scatter(*xy[:ns].T, s=4, c="tab:blue", label=f"source ({cfg['source']})")
        row[0].scatter(*xy[ns:].T, s=4, c="tab:red", label=f"target ({cfg['target']})")
        row[0].legend(markerscale=3, fontsize=8)
        row[1].scatter(*xy[:ns].T, s=4, c=labels[:ns], cmap="tab10", vmin=0, vmax=9, marker="o")
        row[1].scatter(*xy[ns:].T, s=6, c=labels[ns:], cmap="tab10", vmin=0, vmax=9, marker="x")
        row[0].set_title(f"{method}: by domain")
        row[1].set_title(f"{method}: by class (o source, x target)")
        for ax in row:
            ax.set_xticks([])
            ax.set_yticks([])
    fig.tight_layout()
    return _save(fig, run_dir / "figures" / "tsne.png")


def target_bars(run_dir: Path, results: dict) -> Path:
    """Target accuracy per method, mean ± std over seeds, the paper's values as markers."""
    summary = results["summary"]
    names = list(summary["methods"])
    means = [summary["methods"][m]["target_acc"]["mean"] for m in names]
    stds = [summary["methods"][m]["target_acc"]["std"] for m in names]
    fig, ax = plt.subplots(figsize=(1.3 * len(names) + 2, 3.8))
    ax.bar(names, means, yerr=stds, color=[COLORS[i % len(COLORS)] for i in range(len(names))],
           capsize=4, alpha=0.85, label="dlapps")
    paper = summary.get("paper") or {}
    pts = [(i, paper[m]["icml2015"]) for i, m in enumerate(names) if m in paper]
    if pts:
        ax.scatter(*zip(*pts, strict=True), marker="_", s=900, c="k", zorder=3, label="paper (ICML 2015)")
    for i, m in enumerate(means):
        ax.text(i, m + 0.02, f"{m:.3f}", ha="center", fontsize=9)
    ax.set(ylabel="target test accuracy", ylim=(0, 1.08))
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, run_dir / "figures" / "target_accuracy.png")


def all_figures(run_dir: Path, results: dict) -> dict[str, Path]:
    figs = {"target accuracy": target_bars(run_dir, results),
            "accuracy over training": accuracy_curves(run_dir, results),
            "training dynamics": training_curves(run_dir, results)}
    tsne = tsne_figure(run_dir, results)
    if tsne is not None:
        figs["t-SNE of features"] = tsne
    return figs


def compare_bars(out: Path, results: dict) -> Path:
    """Target accuracy per method (bars, mean ± std over seeds), grouped by pair; the paper's
    values as black ticks where it has them."""
    methods, pairs = results["methods"], results["pairs"]
    width = 0.8 / max(1, len(methods))
    fig, ax = plt.subplots(figsize=(2.2 * len(pairs) + 3, 4.2))
    for i, method in enumerate(methods):
        for j, pair in enumerate(pairs):
            stat = results["grid"][pair]["methods"].get(method, {}).get("target_acc")
            if not stat:
                continue
            x = j - 0.4 + width * (i + 0.5)
            ax.bar(x, stat["mean"], width, yerr=stat["std"], capsize=2, color=COLORS[i % len(COLORS)],
                   label=method if j == 0 else None)
            paper = (results["grid"][pair].get("paper") or {}).get(method)
            if paper:
                ax.plot([x - width / 2, x + width / 2], [paper[0]] * 2, "k-", lw=2)
    ax.set_xticks(range(len(pairs)), [p.replace(":", " → ") for p in pairs])
    ax.set(ylabel="target test accuracy", ylim=(0, 1.05),
           title="target accuracy (mean ± std over seeds; black: paper)")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, ncol=min(4, len(methods)), loc="upper center", bbox_to_anchor=(0.5, -0.1))
    return _save(fig, Path(out) / "figures" / "compare.png")


def grid_image(x: np.ndarray, rows: int) -> np.ndarray:
    """Tile uint8 images (N,C,H,W) into one HxWxC image with ``rows`` rows."""
    n, c, h, w = x.shape
    cols = -(-n // rows)
    pad = np.zeros((rows * cols - n, c, h, w), dtype=x.dtype)
    tiles = np.concatenate([x, pad]).reshape(rows, cols, c, h, w)
    img = tiles.transpose(0, 3, 1, 4, 2).reshape(rows * h, cols * w, c)
    return img[..., 0] if c == 1 else img


def collect(records: list[dict], key: str) -> dict[int, list[float]]:
    out: dict[int, list[float]] = defaultdict(list)
    for r in records:
        if r.get(key) is not None:
            out[r["step"]].append(r[key])
    return out
