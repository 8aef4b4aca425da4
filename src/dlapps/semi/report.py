"""The report of a ``dlapps semi`` run: the table beside the lecture's numbers, and its figures.

* ``curves.png`` — test accuracy of every method against epochs, with Lee's α(t) on a second
  axis (the lecture's plot);
* ``tsne.png`` — t-SNE of the features at several epochs: the background coloured by the true
  class (a nearest-neighbour map of the true labels), labelled points as circles, a sample of
  pseudo-labelled points as stars in their pseudo-label's colour, wrong pseudo-labels ringed in
  red;
* ``per_class.png`` — per-class test accuracy of every method (a class that got no labels
  stands out);
* the failure-case table when the run holds several label counts.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

import numpy as np

from dlapps.engine.runlog import read_metrics
from dlapps.io import safe_torch_load
from dlapps.report import COLORS, embed_png, fmt, html_table, markdown_table, pyplot, save_figure, write_page
from dlapps.runs import load_results
from dlapps.semi.experiment import cell_name
from dlapps.semi.pseudo_label import PseudoLabel, alpha_ramp

FIGURES = (("curves.png", "test accuracy and α(t) against epochs"),
           ("tsne.png", "t-SNE of the features during training (pseudo-labelling)"),
           ("per_class.png", "per-class test accuracy"))


def _cell_dirs(run_dir: Path, results: dict, method: str, labels: int) -> list[Path]:
    return [run_dir / cell_name(method, labels, r["seed"]) for r in results["runs"]
            if r["method"] == method and r["labels"] == labels]


def result_rows(results: dict) -> tuple[list[str], list[list[str]]]:
    """The main table: one row per (labels, method)."""
    columns = ["labels", "method", "test accuracy %", "gain over supervised", "test loss",
               "pseudo-label accuracy % (unlabelled set)", "train s / seed", "seeds"]
    rows = []
    for labels, by_method in results["summary"]["by_labels"].items():
        for method, row in by_method.items():
            gain = row.get("gain_over_supervised")
            rows.append([labels, method, fmt(row["test_acc"]),
                         "–" if gain is None or method == "supervised" else f"{gain * 100:+.2f}",
                         fmt(row["test_loss"], 1.0, 3), fmt(row["pseudo_acc"]),
                         f"{row['seconds']['mean']:.0f}", str(row["n_seeds"])])
    return columns, rows


def lecture_rows(results: dict) -> tuple[list[str], list[list[str]]]:
    lec = results["lecture"]
    rows = [["1000", m, f"{lec[m]['test_acc'] * 100:.2f}", f"{lec[m]['test_loss']}"]
            for m in ("supervised", "pseudo-label")]
    for f in lec["failures"]:
        for m in ("supervised", "pseudo-label"):
            if m in f:
                rows.append([f["case"], m, f"{f[m] * 100:.2f}", f.get("note", "")])
    return ["labels", "method", "test accuracy %", "test loss / note"], rows


def table_markdown(results: dict) -> str:
    return markdown_table(*result_rows(results)) + "\n"


def curves_figure(run_dir: Path, results: dict, path: Path) -> Path | None:
    cfg = results["config"]
    labels = cfg["labels"][0]
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    drawn = False
    for i, method in enumerate(cfg["methods"]):
        curves = []
        for cell in _cell_dirs(run_dir, results, method, labels):
            acc = [r["test_acc"] for r in read_metrics(cell) if r.get("kind") == "epoch"]
            if acc:
                curves.append(acc)
        if not curves:
            continue
        n = min(map(len, curves))
        mean = np.mean([c[:n] for c in curves], axis=0) * 100
        ax.plot(range(1, n + 1), mean, color=COLORS[i % len(COLORS)], label=method)
        drawn = True
    if not drawn:
        pyplot().close(fig)
        return None
    ax.set_xlabel("epoch (passes over the unlabelled set)")
    ax.set_ylabel(f"test accuracy % ({labels} labels)")
    ax.grid(alpha=0.3)
    if "pseudo-label" in cfg["methods"]:
        opts = {**PseudoLabel.options, **cfg.get("method_options", {}).get("pseudo-label", {})}
        e = cfg["epochs"]
        t = np.linspace(0, e, 200)
        twin = ax.twinx()
        twin.plot(t, [alpha_ramp(x / e, opts["alpha"], opts["t1"], opts["t2"]) for x in t], "k--", lw=1,
                  label="α(t) of pseudo-label")
        twin.set_ylabel("α(t)")
        twin.legend(loc="lower right")
    ax.legend(loc="center right")
    return save_figure(fig, path)


def tsne_figure(run_dir: Path, results: dict, path: Path) -> Path | None:
    cells = [run_dir / cell_name(r["method"], r["labels"], r["seed"]) for r in results["runs"]]
    found = next((c / "tsne.pt" for c in cells if (c / "tsne.pt").is_file()), None)
    if found is None:
        return None
    from sklearn.neighbors import KNeighborsClassifier

    panels = safe_torch_load(found, "t-SNE file")
    classes = results["data"]["classes"]
    cmap = pyplot().get_cmap("tab10")
    plt = pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(4.6 * len(panels), 4.6), squeeze=False)
    for ax, p in zip(axes[0], panels, strict=True):
        xy = p["xy"].numpy()
        k = p["n_labelled"]
        true = np.concatenate([p["labelled_y"].numpy(), p["true_y"].numpy()])
        knn = KNeighborsClassifier(5).fit(xy, true)
        lo, hi = xy.min(0) - 2, xy.max(0) + 2
        gx, gy = np.meshgrid(np.linspace(lo[0], hi[0], 150), np.linspace(lo[1], hi[1], 150))
        background = knn.predict(np.c_[gx.ravel(), gy.ravel()]).reshape(gx.shape)
        ax.imshow(background, origin="lower", extent=(lo[0], hi[0], lo[1], hi[1]), cmap=cmap,
                  vmin=-0.5, vmax=9.5, alpha=0.18, aspect="auto", interpolation="nearest")
        pseudo, truth = p["pseudo_y"].numpy(), p["true_y"].numpy()
        shown = np.arange(len(pseudo))[: min(len(pseudo), 200)]
        u = xy[k:][shown]
        wrong = pseudo[shown] != truth[shown]
        ax.scatter(u[:, 0], u[:, 1], marker="*", s=45, c=cmap(pseudo[shown] % 10), edgecolors="none",
                   label="unlabelled (colour: pseudo-label)")
        ax.scatter(u[wrong, 0], u[wrong, 1], marker="o", s=90, facecolors="none", edgecolors="red",
                   linewidths=1.0, label=f"wrong pseudo-label ({wrong.mean() * 100:.0f}%)")
        ax.scatter(xy[:k, 0], xy[:k, 1], marker="o", s=30, c=cmap(p["labelled_y"].numpy() % 10),
                   edgecolors="black", linewidths=0.6, label="labelled")
        ax.set_title(f"epoch {p['epoch']}")
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0][0].legend(loc="lower left", fontsize=7)
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], marker="s", ls="", color=cmap(i % 10), label=c)
               for i, c in enumerate(classes[:10])]
    fig.legend(handles=handles, loc="lower center", ncol=10, fontsize=8, title="background: true class")
    fig.subplots_adjust(bottom=0.18)
    return save_figure(fig, path)


def per_class_figure(results: dict, path: Path) -> Path:
    classes = results["data"]["classes"]
    labels, by_method = next(iter(results["summary"]["by_labels"].items()))
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(max(7.0, 0.8 * len(classes)), 3.8))
    width = 0.8 / len(by_method)
    x = np.arange(len(classes))
    for i, (method, row) in enumerate(by_method.items()):
        ax.bar(x + (i - (len(by_method) - 1) / 2) * width, np.array(row["per_class_acc"]) * 100, width,
               label=method, color=COLORS[i % len(COLORS)])
    missing = results["data"].get("missing_class")
    if missing is not None:
        ax.axvspan(missing - 0.45, missing + 0.45, color="red", alpha=0.1, label="no labels")
    ax.set_xticks(x, classes, rotation=30 if len(classes[0]) > 2 else 0)
    ax.set_ylabel(f"test accuracy % ({labels} labels)")
    ax.set_ylim(0, 105)
    ax.legend(fontsize=8, ncol=3)
    return save_figure(fig, path)


def write_figures(run_dir: Path, results: dict) -> None:
    figures = Path(run_dir) / "figures"
    curves_figure(run_dir, results, figures / "curves.png")
    tsne_figure(run_dir, results, figures / "tsne.png")
    per_class_figure(results, figures / "per_class.png")


def _note(results: dict) -> str:
    cfg, data = results["config"], results["data"]
    missing = data.get("missing_class")
    miss = "" if missing is None else f"; class {data['classes'][missing]} gets no labels"
    return (f"{data['name']} ({data['train']} training images, {data['test']} test), labelled images "
            f"drawn class-balanced per seed{miss}; the rest unlabelled (their labels never reach a "
            f"method). {cfg['epochs']} epochs over the unlabelled set, {cfg['batch_size']} labelled + "
            f"{cfg['unlabelled_batch']} unlabelled per step, seeds {cfg['seeds']}; numbers of the last "
            f"epoch (no selection with test labels); mean ± std over seeds. Hardware: "
            f"{results['environment'].get('cpu', results['environment'].get('platform', ''))}.")


def _body(run_dir: Path, results: dict, h: str) -> str:
    parts = [f"<p class=muted>{html.escape(_note(results))}</p>",
             f"<{h}>Results</{h}>", html_table(*result_rows(results), table_id="semi")]
    columns, rows = lecture_rows(results)
    parts += [f"<{h}>The lecture's numbers</{h}><p class=muted>{html.escape(results['lecture']['protocol'])}"
              "</p>", html_table(columns, rows, table_id="lecture")]
    for name, caption in FIGURES:
        path = Path(run_dir) / "figures" / name
        if path.is_file():
            parts.append(f"<{h}>{html.escape(caption)}</{h}>{embed_png(path, caption)}")
    return "".join(parts)


def title(results: dict) -> str:
    cfg = results["config"]
    return f"dlapps semi: {cfg['data']}, {', '.join(map(str, cfg['labels']))} labels"


def section(run_dir: Path, results: dict) -> str:
    return _body(Path(run_dir), results, "h3")


def render(run_dir: Path) -> Path:
    """``run_dir/report.html`` (and its figures) from results.json."""
    run_dir = Path(run_dir)
    results = load_results(run_dir, "semi")
    write_figures(run_dir, results)
    raw = html.escape(json.dumps({k: v for k, v in results.items() if k != "data"}, indent=1)[:20000])
    body = (f"<h1>{html.escape(title(results))}</h1>" + _body(run_dir, results, "h2")
            + f"<h2>results.json</h2><pre>{raw}</pre>")
    return write_page(run_dir / "report.html", title(results), body)
