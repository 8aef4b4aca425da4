"""The figures and the page of an explain run, from the shared :mod:`dlapps.report` shell.

Figures are PNGs written while a command runs (images are tensors (3,H,W) in [0,1]; maps (H,W)
are shown scaled to their own maximum); :func:`render` writes ``report.html`` from
``results.json`` and those PNGs, and :func:`section` is the same content as a fragment for a page
over runs of several kinds.
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dlapps.report import embed_png, html_table, pyplot, save_figure, write_page

plt = pyplot()
DPI = 100


def _rgb(x: torch.Tensor) -> np.ndarray:
    return x.detach().cpu().clamp(0, 1).permute(1, 2, 0).numpy()


def _unit(m: torch.Tensor) -> np.ndarray:
    m = m.detach().cpu().float()
    return (m / m.max().clamp_min(1e-12)).numpy()


def _panel_grid(rows: int, cols: int, size: float = 2.2):
    fig, axes = plt.subplots(rows, cols, figsize=(size * cols, size * rows + 0.3), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    return fig, axes


def saliency_figure(
    images: torch.Tensor, maps: dict[str, torch.Tensor], titles: Sequence[str], path: Path
) -> Path:
    """One row per image: the image, then for each method its map and the map over the image."""
    fig, axes = _panel_grid(len(images), 1 + 2 * len(maps))
    for i, img in enumerate(images):
        axes[i, 0].imshow(_rgb(img))
        axes[i, 0].set_title(titles[i], fontsize=7)
        for j, (name, m) in enumerate(maps.items()):
            axes[i, 1 + 2 * j].imshow(_unit(m[i]), cmap="hot")
            axes[i, 1 + 2 * j].set_title(name, fontsize=8)
            axes[i, 2 + 2 * j].imshow(_rgb(img))
            axes[i, 2 + 2 * j].imshow(_unit(m[i]), cmap="jet", alpha=0.45)
            axes[i, 2 + 2 * j].set_title(f"{name} overlay", fontsize=8)
    return save_figure(fig, path, dpi=DPI)


def fooling_figure(
    original: torch.Tensor,
    adversarial: torch.Tensor,
    titles: Sequence[str],
    path: Path,
    magnify: float = 10.0,
) -> Path:
    """Per image: original, modified, difference (mid-grey = 0) and difference × ``magnify``."""
    fig, axes = _panel_grid(len(original), 4)
    for i, (x, xa) in enumerate(zip(original, adversarial, strict=True)):
        d = xa - x
        panels = [
            (x, titles[i]),
            (xa, "modified"),
            (0.5 + d / (2 * d.abs().max().clamp_min(1e-12)), "difference (scaled to range)"),
            (0.5 + magnify * d, f"difference × {magnify:g}"),
        ]
        for j, (im, title) in enumerate(panels):
            axes[i, j].imshow(_rgb(im))
            axes[i, j].set_title(title, fontsize=7)
    return save_figure(fig, path, dpi=DPI)


def image_grid(images: Sequence[torch.Tensor], titles: Sequence[str], path: Path, cols: int = 6) -> Path:
    """Images (3,H,W) or single-channel maps (H,W) in a grid with a title each."""
    rows = max(1, -(-len(images) // cols))
    fig, axes = _panel_grid(rows, min(cols, len(images)))
    for ax, im, title in zip(axes.flat, images, titles, strict=False):
        if im.ndim == 2:
            ax.imshow(im.detach().cpu().numpy(), cmap="viridis")
        else:
            ax.imshow(_rgb(im))
        ax.set_title(title, fontsize=7)
    return save_figure(fig, path, dpi=DPI)


def labelled_grid(rows: dict[str, Sequence[tuple[str, torch.Tensor]]], path: Path, title: str = "") -> Path:
    """A grid with one labelled row per key (the class-visualisation settings compared)."""
    cols = max(len(r) for r in rows.values())
    fig, axes = _panel_grid(len(rows), cols)
    for i, (name, cells) in enumerate(rows.items()):
        for j, (label, im) in enumerate(cells):
            axes[i, j].imshow(_rgb(im))
            axes[i, j].set_title(f"{name} = {label}", fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    return save_figure(fig, path, dpi=DPI)


def curves(
    series: dict[str, tuple[Sequence[float], Sequence[float]]],
    path: Path,
    xlabel: str,
    ylabel: str,
    title: str = "",
    ylim: tuple[float, float] | None = (0, 1.02),
) -> Path:
    """Line plot of named (x, y) series."""
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for name, (xs, ys) in series.items():
        ax.plot(xs, ys, marker="." if len(xs) < 30 else None, label=name)
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
    if ylim:
        ax.set_ylim(*ylim)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return save_figure(fig, path, dpi=DPI)


def sanity_curves(result, path: Path) -> Path:
    """Mean Spearman ρ and SSIM of each method's maps to the trained network's, per step of a
    sanity check (:class:`~dlapps.explain.sanity.SanityResult`); flagged methods dashed."""
    flags = result.flagged()
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
    steps = range(len(result.steps))
    for ax, metric, label in ((axes[0], "spearman", "Spearman rank correlation"), (axes[1], "ssim", "SSIM")):
        for m in result.spearman:
            ax.plot(steps, result.mean(metric, m), marker=".", linestyle="--" if flags[m] else "-",
                    label=f"{m} (flagged)" if flags[m] else m)
        if metric == "spearman":
            ax.axhline(result.flag_at, color="grey", linewidth=0.8, linestyle=":")
        ax.set_xticks(list(steps), result.steps, rotation=60, ha="right", fontsize=7)
        ax.set(ylabel=f"{label} to the trained maps (mean)", ylim=(-1.05, 1.05))
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path, dpi=DPI)


def sanity_maps(image: torch.Tensor, result, path: Path, image_index: int = 0) -> Path:
    """One row per method: the image, then its map at each step of a sanity check."""
    fig, axes = _panel_grid(len(result.maps), 1 + len(result.steps), size=1.6)
    for i, (m, maps) in enumerate(result.maps.items()):
        axes[i, 0].imshow(_rgb(image))
        axes[i, 0].set_title(m, fontsize=8)
        for j, step in enumerate(result.steps):
            axes[i, 1 + j].imshow(_unit(maps[j][image_index].abs()), cmap="hot")
            axes[i, 1 + j].set_title(step, fontsize=6)
    return save_figure(fig, path, dpi=DPI)


# --- the page ----------------------------------------------------------------------------------


def _cell(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else "" if value is None else str(value)


def _table(rows: Sequence[dict], columns: Sequence[str]) -> str:
    return html_table(columns, [[_cell(r.get(c)) for c in columns] for r in rows])


def title(results: dict) -> str:
    """The heading of a run: what was done, to which network."""
    model = results.get("environment", {}).get("model", "")
    command = results.get("command")
    if command == "saliency":
        return f"Saliency: {model}"
    if command == "sanity":
        return f"Sanity checks: {model}"
    if command == "fool":
        return f"Adversarial examples: {model}"
    if command == "classvis":
        return f"Class visualisation: {model}"
    if command == "compare":
        return f"Class visualisation comparison: {results.get('target')}"
    if command == "activations":
        return f"Activations: {model} {results.get('config', {}).get('layer', '')}".rstrip()
    if command == "all":
        return f"dlapps explain: {model} on the bundled photos"
    return f"dlapps explain {command}: {model}"


def tables(results: dict) -> list[tuple[str, str]]:
    """(heading, HTML) of each table of a run, by its command."""
    command = results.get("command")
    if command == "saliency":
        summary = [{"method": m, **v} for m, v in results["summary"].items()]
        metrics = [k for k in ("deletion_auc", "insertion_auc", "faithfulness_correlation", "max_sensitivity")
                   if k in summary[0]]
        ig = results.get("integrated_gradients")
        out = [
            ("Faithfulness (RISE deletion: lower is better, insertion: higher; faithfulness correlation: "
             "higher; max-sensitivity: lower, and 0 for a map that ignores the input)",
             _table(summary, ["method", *metrics, "seconds_per_map"])),
            ("Per image", _table(results["images"], [
                "image", "predicted", "probability", "true", "true_probability",
                *(["ig_steps", "ig_gap", "ig_converged"] if ig else [])])),
        ]
        if ig:
            out.insert(0, (f"Integrated Gradients' completeness ({ig['baseline']} baseline)",
                           f"<p>{html.escape(ig['note'])}. Gap = |Σ attributions − (S_y(x) − S_y(x̄))| / "
                           f"|S_y(x) − S_y(x̄)|, per image in the table below.</p>"))
        return out
    if command == "sanity":
        out = []
        for check in results["checks"].values():
            flagged = ", ".join(check["flagged"]) or "none"
            rows = [{"method": m, **v} for m, v in check["summary"].items()]
            out.append((f"{check['name']}: similarity to the trained network's maps at the last step "
                        f"({check['steps'][-1]}); flagged: {flagged}",
                        _table(rows, ["method", "spearman", "ssim", "flagged"])))
            out.append((f"{check['name']}: every step", _table(check["table"], ["step", "random", "method",
                                                                                 "spearman", "ssim"])))
        return out
    if command == "fool":
        columns = ["image", "method", "success", "iterations", "l2", "linf", "seconds", "original", "target",
                   "prediction", "probability", "note"]
        out = [("Per image", _table(results["images"], columns))]
        for m, c in results["success_curves"].items():
            out.append((f"{m}: success rate vs ε ({c['norm']})",
                        _table(c["points"], ["eps", "success_rate", "mean_l2", "mean_linf"])))
        return out
    if command == "classvis":
        return [("Target probability reached",
                 _table(results["targets"], ["target", "index", "seed", "probability", "score", "seconds"]))]
    if command == "compare":
        return [("Target probability reached",
                 _table(results["grid"], ["seed", "parameter", "value", "probability"]))]
    if command == "all":
        links = "".join(f'<li><a href="{html.escape(n)}/report.html">{html.escape(n)}</a> '
                        f'({d["seconds"]} s)</li>' for n, d in results["parts"].items())
        return [("Parts", f"<ul>{links}</ul>")]
    return []


def _body(run_dir: Path, results: dict, level: int, heading: bool = True) -> str:
    """Heading (h``level``, unless ``heading`` is False), the environment, the tables and the
    figures (h``level+1``)."""
    h, sub = f"h{level}", f"h{level + 1}"
    body = (f"<{h}>{html.escape(title(results))}</{h}>" if heading else "")
    body += f"<p class=muted>{html.escape(json.dumps(results.get('environment', {})))}</p>"
    body += "".join(f"<{sub}>{html.escape(head)}</{sub}>{content}" for head, content in tables(results))
    for name, rel in results.get("figures", {}).items():
        path = Path(run_dir) / rel
        if path.is_file():
            body += f"<{sub}>{html.escape(name)}</{sub}>{embed_png(path, name)}"
    return body


def section(run_dir: Path, results: dict) -> str:
    """The run as an HTML fragment (h3 headings, tables, embedded figures) for a page over several
    runs, which heads it with :func:`title`."""
    return _body(Path(run_dir), results, 2, heading=False)


def render(run_dir: Path) -> Path:
    """``run_dir/report.html`` from its ``results.json`` and figures."""
    from dlapps.runs import load_results

    run_dir = Path(run_dir)
    results = load_results(run_dir, "explain")
    return write_page(run_dir / "report.html", title(results), _body(run_dir, results, 1))
