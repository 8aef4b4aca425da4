"""Figures and the report of a GAN run: training curves, sample grids, the GIF over epochs, the
confusion matrix of a conditional G, the quality table, and ``report.html``.

Three kinds of run directory hold a ``results.json`` of kind ``generate``: a grid of variants x
seeds (``variants`` in it), one trained cell, and a drawing from a trained G (``what`` in it).
:func:`render` writes the page of any of them from its results.json and the PNGs beside it;
:func:`section` gives the same content as a fragment for a page over several runs.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

import numpy as np

from dlapps.engine.runlog import read_metrics
from dlapps.report import embed_png, html_table, markdown_table, pyplot, save_figure, write_page
from dlapps.runs import load_results

# What each family logs per step, drawn one panel per key (a GAN's four; the others' loss).
CURVES = {"gan": (("loss_d", "loss(D)"), ("loss_g", "loss(G)"), ("d_x", "D(x)"), ("d_g_z", "D(G(z))")),
          "vae": (("loss", "VAE: rec + β·KL (nats)"), ("kl", "VAE: KL (nats)")),
          "ddpm": (("loss", "DDPM: ‖ε − ε_θ(x_t, t)‖²"),)}
PROBABILITIES = ("d_x", "d_g_z")
METRIC_COLUMNS = (("fid", "FID ↓"), ("kid", "KID ↓"), ("is", "IS ↑"), ("label_acc", "label acc ↑"),
                  ("elbo", "test ELBO ↑"), ("iwae", "IWAE ↑"), ("params", "params"),
                  ("train_seconds", "train s"), ("seconds_per_epoch", "s/epoch"),
                  ("sample_seconds_per_1000", "s / 1000 samples"))
# The figures a run directory may hold, with their captions, in the order the page shows them.
GRID_FIGURES = (("figures/curves.png", "training curves (first seed)"),
                ("figures/samples.png", "samples (first seed, fixed noise)"),
                ("figures/interpolations.png", "interpolation, slerp in z (DDPM: in x_T, DDIM)"),
                ("figures/spectrum.png", "DDPM: the power spectrum of x_t against t, both schedules"))
CELL_FIGURES = (("figures/samples.png", "samples (fixed noise, last epoch)"),
                ("figures/curves.png", "training curves"),
                ("figures/interpolation.png", "interpolation"),
                ("figures/interpolation_slerp.png", "interpolation slerp"),
                ("figures/class_grid.png", "class x shared z"),
                ("figures/confusion.png", "confusion of G(z, y)"),
                ("figures/reconstruction.png", "VAE: binarised test images (top), reconstructions (bottom)"),
                ("figures/trajectory.png", "DDPM: denoising trajectory x_T → x_0 (one row per sample)"))
DPI = 100


def _family(records: list[dict]) -> str:
    keys = records[0] if records else {}
    return "gan" if "loss_d" in keys else "vae" if "kl" in keys else "ddpm"


def training_curves(cells: dict[str, Path], path: Path) -> Path:
    """Per iteration, one panel per logged quantity (a GAN's loss(D), loss(G), D(x), D(G(z)); a
    VAE's loss and KL; DDPM's loss), one line per cell (label -> cell dir)."""
    logs = {label: [r for r in read_metrics(cell) if r["kind"] == "step"] for label, cell in cells.items()}
    panels = list(dict.fromkeys((_family(recs), key, title) for recs in logs.values()
                                for key, title in CURVES[_family(recs)]))
    columns = min(4, len(panels))
    rows = -(-len(panels) // columns)
    fig, axes = pyplot().subplots(rows, columns, figsize=(4 * columns, 3.4 * rows), squeeze=False)
    for ax in axes.flat[len(panels):]:
        ax.axis("off")
    for ax, (kind, key, title) in zip(axes.flat, panels, strict=False):
        for label, recs in logs.items():
            if _family(recs) == kind:
                ax.plot([r["step"] for r in recs], [r[key] for r in recs], lw=0.8, label=label)
        ax.set(title=title, xlabel="iteration")
        ax.grid(alpha=0.3)
        if key in PROBABILITIES:
            ax.set_ylim(-0.02, 1.02)
        elif kind != "gan":
            ax.set_yscale("log")
        if len(ax.lines) > 1:
            ax.legend(fontsize=7)
    fig.tight_layout()
    return save_figure(fig, path, dpi=DPI)


def spectrum_figure(x0, path: Path, timesteps: int = 1000, ts=(0, 50, 100, 200, 400, 700, 999)) -> Path:
    """The lecture's Fourier view of the forward process: the radially averaged power spectrum of
    x_t = √ᾱ_t x_0 + √(1 − ᾱ_t) ε for several t, under the linear and the cosine schedule, and
    ᾱ_t of both. Natural images' power falls with frequency while the noise's is flat, so the
    noise drowns the high frequencies (detail) first and the low ones (content) last; the cosine
    schedule destroys both more slowly early on."""
    import torch
    from matplotlib.ticker import NullFormatter

    from dlapps.generate.ddpm import NoiseSchedule, betas, power_spectrum, q_sample

    schedules = {name: NoiseSchedule(betas(name, timesteps)) for name in ("linear", "cosine")}
    fig, axes = pyplot().subplots(1, 3, figsize=(14, 3.8))
    colours = pyplot().cm.viridis(np.linspace(0, 1, len(ts)))
    gen = torch.Generator().manual_seed(0)
    eps = torch.randn(x0.shape, generator=gen, dtype=x0.dtype)
    for ax, (name, schedule) in zip(axes[:2], schedules.items(), strict=True):
        for t, colour in zip(ts, colours, strict=True):
            xt = q_sample(x0, torch.full((len(x0),), t), eps, schedule)
            freqs, power = power_spectrum(xt)
            ax.loglog(freqs, power, color=colour, label=f"t = {t}")
        freqs, power = power_spectrum(eps)
        ax.loglog(freqs, power, "k--", lw=0.8, label="ε alone")
        ax.set(title=f"{name} schedule: power of x_t", xlabel="spatial frequency (cycles/pixel)")
        ax.xaxis.set_minor_formatter(NullFormatter())  # log-axis minor labels collide
        ax.grid(alpha=0.3, which="both")
    axes[0].legend(fontsize=7)
    for name, schedule in schedules.items():
        axes[2].plot(schedule.alpha_bars.numpy(), label=name)
    axes[2].set(title="ᾱ_t (signal kept)", xlabel="t")
    axes[2].legend()
    axes[2].grid(alpha=0.3)
    fig.tight_layout()
    return save_figure(fig, path, dpi=DPI)


def epochs_gif(cell: Path, path: Path, ms: int = 400) -> Path | None:
    """The per-epoch fixed-noise grids as one animated GIF."""
    from PIL import Image

    frames = [Image.open(p) for p in sorted((cell / "figures" / "epochs").glob("epoch_*.png"))]
    if not frames:
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.gif")
    frames[0].save(tmp, save_all=True, append_images=frames[1:], duration=ms, loop=0)
    tmp.replace(path)
    return path


def confusion_figure(confusion: list[list[int]], classes: list[str], path: Path, title: str) -> Path:
    """Rows = class asked of G, columns = class the judge reads back (row-normalised)."""
    m = np.array(confusion, dtype=float)
    m = m / np.maximum(m.sum(1, keepdims=True), 1)
    fig, ax = pyplot().subplots(figsize=(4.6, 4.2))
    ax.imshow(m, cmap="Blues", vmin=0, vmax=1)
    for i, j in np.ndindex(m.shape):
        ax.text(j, i, f"{m[i, j]:.2f}".lstrip("0"), ha="center", va="center", fontsize=6,
                color="white" if m[i, j] > 0.5 else "black")
    ticks = range(len(classes))
    ax.set_xticks(ticks, classes, fontsize=7, rotation=90)
    ax.set_yticks(ticks, classes, fontsize=7)
    ax.set(xlabel="class read back by the judge", ylabel="class y given to G", title=title)
    return save_figure(fig, path, dpi=DPI)


def panels(images: dict[str, Path], path: Path, columns: int = 4) -> Path:
    """Several saved grids side by side with their titles (one per variant)."""
    from PIL import Image

    rows = -(-len(images) // columns)
    fig, axes = pyplot().subplots(rows, columns, figsize=(3.2 * columns, 3.4 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, (title, p) in zip(axes.flat, images.items(), strict=False):
        ax.imshow(np.asarray(Image.open(p)), cmap="gray")
        ax.set_title(title, fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path, dpi=DPI)


PUBLISHED_DDPM = ("Published, for scale: Ho et al. (NeurIPS 2020), DDPM on CIFAR-10 (35.7 M "
                  "parameters, 800k steps at batch 128 on TPUs): FID 3.17, IS 9.46 with Inception-v3 on "
                  "50,000 samples. The FID here is the judge classifier's on this run's data and sample "
                  "count: there is no canonical MNIST FID, so only rows of one table compare.")


def fmt(value, key: str = "") -> str:
    if key == "params" and value is not None:  # the same on every seed
        return f"{(value['mean'] if isinstance(value, dict) else value) / 1e6:.2f} M"
    if isinstance(value, dict):  # mean ± std over seeds
        return f"{value['mean']:.4g} ± {value['std']:.2g}"
    return "–" if value is None else f"{value:.4g}" if isinstance(value, float) else str(value)


# Burda et al. (2016), Table 1: a VAE with one stochastic layer on dynamically binarised full MNIST.
PUBLISHED_VAE = ("Published, for scale: Burda et al. (ICLR 2016), VAE with one stochastic layer on "
                 "dynamically binarised full MNIST (28x28), test log-likelihood bound k = 1 (the ELBO) "
                 "−86.76, k = 50 −84.78 nats. This run's nats are per image of its own data and size "
                 "(e.g. 32x32 resized digits: 1,024 pixels, not 784), so they are not directly comparable.")


def quality_rows(results: dict) -> dict[str, dict]:
    """The rows of the quality table: one per variant (or the cell itself), then the floor."""
    if "variants" in results:
        rows = dict(results["variants"])
    elif "what" in results:
        rows = {}
    else:
        rows = {results.get("name", "run"): results}
    if results.get("floor"):
        rows["real vs real (floor)"] = results["floor"]
    return rows


def metrics_table(rows: dict[str, dict], markdown: bool = False) -> str:
    """One row per run/cell, the metrics as columns (HTML, or Markdown with ``markdown``)."""
    cols = [(k, t) for k, t in METRIC_COLUMNS if any(k in r for r in rows.values())]
    body = [[name, *(fmt(r.get(k), k) for k, _ in cols)] for name, r in rows.items()]
    columns = ["run", *(t for _, t in cols)]
    return markdown_table(columns, body) + "\n" if markdown else html_table(columns, body, "quality")


def _note(results: dict) -> str:
    if "what" in results:
        return f"{results['images']} images, seed {results['seed']}, from {results['run']}"
    if "variants" not in results:
        cfg = results.get("config", {})
        return f"{cfg.get('data')}, {results.get('epochs')} epochs"
    data, judge = results["data"], results.get("judge")
    acc = "–" if judge is None else f"{judge['test_acc']:.4f}"
    return (f"{data['name']} {tuple(data['shape'])}, seeds {results['seeds']}, n = {results['n_samples']} "
            f"generated samples vs {data['train']} real; judge test accuracy {acc}; floor = "
            f"{data['test']} held-out real images vs the training images")


def _figures(run_dir: Path, results: dict) -> tuple[tuple[str, str], ...]:
    if "what" in results:
        return ((results["figure"], results["figure"][:-len(".png")].replace("_", " ")),)
    return GRID_FIGURES if "variants" in results else CELL_FIGURES


def _body(run_dir: Path, results: dict, h: str) -> str:
    rows = quality_rows(results)
    parts = [f"<p class=muted>{html.escape(_note(results))}</p>"]
    if rows:
        parts.append(f"<{h}>Quality</{h}>{metrics_table(rows)}")
        if any("elbo" in r for r in rows.values()):
            parts.append(f"<p class=muted>{html.escape(PUBLISHED_VAE)}</p>")
        if any(str(r.get("config", {}).get("model")) == "ddpm" for r in rows.values()):
            parts.append(f"<p class=muted>{html.escape(PUBLISHED_DDPM)}</p>")
    for name, caption in _figures(run_dir, results):
        if (run_dir / name).is_file():
            parts.append(f"<{h}>{html.escape(caption)}</{h}>{embed_png(run_dir / name, caption)}")
    return "".join(parts)


def title_of(run_dir: Path, results: dict) -> str:
    return results.get("title") or f"dlapps gan: {Path(run_dir).name}"


def title(results: dict) -> str:
    """The heading of a run on a page over several runs."""
    return results.get("title") or "dlapps gan"


def section(run_dir: Path, results: dict) -> str:
    """An HTML fragment for a page over several runs (under its :func:`title`): the quality
    table and figures, h3 headings."""
    return _body(Path(run_dir), results, "h3")


def render(run_dir: Path) -> Path:
    """``run_dir/report.html`` from its results.json and figures (self-contained)."""
    run_dir = Path(run_dir)
    results = load_results(run_dir, "generate")
    title = title_of(run_dir, results)
    raw = html.escape(json.dumps(results, indent=1)[:20000])
    body = (f"<h1>{html.escape(title)}</h1>" + _body(run_dir, results, "h2")
            + f"<h2>results.json</h2><pre>{raw}</pre>")
    return write_page(run_dir / "report.html", title, body)
