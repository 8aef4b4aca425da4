"""The report of a ``dlapps ssl`` run: what every encoder's features are worth.

* the main table — per method (grouped by family): linear-probe accuracy with each amount of
  labels and its gain over random-init features, k-NN accuracy, fine-tuning with few labels
  (and its gain over training the same encoder from scratch on them), k-means NMI / ACC;
* the clustering table — NMI, ARI, ACC of k-means and fuzzy c-means on every method's features,
  and of the clusters the clustering methods make themselves (DAC's argmax);
* ``probe.png`` — linear-probe accuracy against the number of labels used;
* ``training.png`` — per trained method, the pretext task's own accuracy over the epochs beside
  the k-NN accuracy of the features (the lecture's point: the pretext accuracy is not the goal);
* ``clustering.png`` — NMI over the epochs of the clustering methods (DeepCluster's assignment
  against the classes and against its previous assignment; DAC's clusters);
* ``tsne.png`` — t-SNE of every encoder's test features, coloured by the true class;
* the published numbers (solo-learn, CIFAR-10) for scale.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

from dlapps.io import safe_torch_load
from dlapps.report import COLORS, embed_png, fmt, html_table, markdown_table, pyplot, save_figure, write_page
from dlapps.runs import load_results
from dlapps.ssl.experiment import cell_name

FIGURES = (("probe.png", "linear-probe accuracy against the labels used"),
           ("training.png", "pretext accuracy (dashed) beside k-NN accuracy of the features, per epoch"),
           ("clustering.png", "NMI over the epochs (clustering methods)"),
           ("tsne.png", "t-SNE of each encoder's test features (colour: true class)"))


def _gain(value: float | None) -> str:
    return "–" if value is None else f"{value * 100:+.2f}"


def result_rows(results: dict) -> tuple[list[str], list[list[str]]]:
    """The main table: one row per method."""
    cfg = results["config"]
    probes, tunes = cfg["probe_labels"], cfg["finetune_labels"]
    columns = (["family", "method"] + [f"probe {p} %" for p in probes]
               + [f"probe {probes[-1]} vs random", "k-NN %"]
               + [f"fine-tune {t} %" for t in tunes] + [f"fine-tune {t} vs scratch" for t in tunes]
               + ["k-means NMI", "k-means ACC %", "s / seed", "seeds"])
    rows = []
    for method, row in results["summary"]["methods"].items():
        gain = row.get("probe_gain_over_random", {}).get(probes[-1])
        tune_gain = row.get("finetune_gain_over_scratch", {})
        rows.append([row["family"], method, *[fmt(row["probe"][p]) for p in probes],
                     "–" if method == "random" else _gain(gain), fmt(row["knn_acc"]),
                     *[fmt(row["finetune"][t]) if row["finetune"][t] else "n/a" for t in tunes],
                     *["–" if method == "random" or t not in tune_gain else _gain(tune_gain[t])
                       for t in tunes],
                     fmt(row["kmeans"]["nmi"], 1.0, 3), fmt(row["kmeans"]["acc"]),
                     f"{row['seconds']['mean']:.0f}", str(row["n_seeds"])])
    return columns, rows


def clustering_rows(results: dict) -> tuple[list[str], list[list[str]]]:
    columns = ["method", "clusters from", "NMI", "ARI", "ACC %"]
    rows = []
    names = {"kmeans": "k-means on features", "fcm": "fuzzy c-means on features",
             "head": "the method's own clusters"}
    for method, row in results["summary"]["methods"].items():
        for algo, label in names.items():
            if algo in row:
                s = row[algo]
                rows.append([method, label, fmt(s["nmi"], 1.0, 3), fmt(s["ari"], 1.0, 3), fmt(s["acc"])])
    return columns, rows


def published_rows(results: dict) -> tuple[list[str], list[list[str]]]:
    pub = results["published"]
    return (["method", "linear Acc@1 %"],
            [[m, f"{v * 100:.2f}"] for m, v in pub["cifar10_linear_acc"].items()])


def table_markdown(results: dict) -> str:
    return markdown_table(*result_rows(results)) + "\n"


def _runs(results: dict, method: str) -> list[dict]:
    return [r for r in results["runs"] if r["method"] == method]


def _integer_ticks():
    from matplotlib.ticker import MaxNLocator

    return MaxNLocator(integer=True)


def probe_figure(results: dict, path: Path) -> Path:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    cfg = results["config"]
    for i, (method, row) in enumerate(results["summary"]["methods"].items()):
        counts = [_runs(results, method)[0]["probe_counts"][p] for p in cfg["probe_labels"]]
        means = [row["probe"][p]["mean"] * 100 for p in cfg["probe_labels"]]
        stds = [row["probe"][p]["std"] * 100 for p in cfg["probe_labels"]]
        ax.errorbar(counts, means, yerr=stds, marker="o", capsize=3, label=method,
                    color=COLORS[i % len(COLORS)], linestyle="--" if row["family"] == "baseline" else "-")
    ax.set_xscale("log")
    ax.set_xlabel("labelled images used by the probe")
    ax.set_ylabel("test accuracy %")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    return save_figure(fig, path)


def training_figure(results: dict, path: Path) -> Path | None:
    trained = [m for m in results["summary"]["methods"] if _runs(results, m)[0]["history"]]
    if not trained:
        return None
    plt = pyplot()
    cols = min(4, len(trained))
    rows = -(-len(trained) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.6 * rows), squeeze=False)
    for ax, method in zip(axes.flat, trained, strict=False):
        history = _runs(results, method)[0]["history"]
        epochs = [h["epoch"] for h in history]
        ax.plot(epochs, [h["knn_acc"] * 100 for h in history], color=COLORS[0], marker="o", label="k-NN")
        pretext = [(h["epoch"], h["pretext_acc"] * 100) for h in history if h.get("pretext_acc") is not None]
        if pretext:
            ax.plot(*zip(*pretext, strict=True), color=COLORS[1], linestyle="--", marker=".", label="pretext")
        ax.set_title(method, fontsize=9)
        ax.set_ylim(0, 100)
        ax.set_xlabel("epoch", fontsize=8)
        ax.xaxis.set_major_locator(_integer_ticks())
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(trained):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7)
    fig.tight_layout()
    return save_figure(fig, path)


def clustering_figure(results: dict, path: Path) -> Path | None:
    curves = []
    for method in results["summary"]["methods"]:
        history = _runs(results, method)[0]["history"]
        for key, label in (("assign_nmi", "assignment vs classes"),
                           ("nmi_previous", "vs previous assignment"), ("head_nmi", "clusters vs classes")):
            points = [(h["epoch"], h[key]) for h in history if h.get(key) is not None]
            if points:
                curves.append((f"{method}: {label}", points))
    if not curves:
        return None
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for i, (label, points) in enumerate(curves):
        ax.plot(*zip(*points, strict=True), marker="o", label=label, color=COLORS[i % len(COLORS)])
    ax.set_xlabel("epoch (the clustering used during it)")
    ax.xaxis.set_major_locator(_integer_ticks())
    ax.set_ylabel("NMI")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return save_figure(fig, path)


def tsne_figure(run_dir: Path, results: dict, path: Path) -> Path | None:
    seed = results["config"]["seeds"][0]
    panels = [(m, run_dir / cell_name(m, seed) / "tsne.pt") for m in results["summary"]["methods"]]
    panels = [(m, p) for m, p in panels if p.is_file()]
    if not panels:
        return None
    plt = pyplot()
    cols = min(4, len(panels))
    rows = -(-len(panels) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.0 * cols, 3.0 * rows), squeeze=False)
    classes = results["data"]["classes"]
    for ax, (method, p) in zip(axes.flat, panels, strict=False):
        t = safe_torch_load(p, "t-SNE panel")
        xy, y = t["xy"].numpy(), t["y"].numpy()
        for c in range(len(classes)):
            sel = y == c
            ax.scatter(xy[sel, 0], xy[sel, 1], s=3, color=COLORS[c % len(COLORS)],
                       label=classes[c] if ax is axes.flat[0] else None)
        ax.set_title(method, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    fig.legend(loc="lower center", ncol=min(5, len(classes)), fontsize=7, markerscale=3)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    return save_figure(fig, path)


def write_figures(run_dir: Path, results: dict) -> None:
    figures = Path(run_dir) / "figures"
    probe_figure(results, figures / "probe.png")
    training_figure(results, figures / "training.png")
    clustering_figure(results, figures / "clustering.png")
    tsne_figure(Path(run_dir), results, figures / "tsne.png")


def _note(results: dict) -> str:
    cfg, data = results["config"], results["data"]
    env = results["environment"]
    return (f"{data['name']}: {data['pretrain']} of its {data['train']} training images pretrain every "
            f"method without labels (the supervised ceiling excepted) for {cfg['epochs']} epochs "
            f"(batch {cfg['batch_size']}, Adam {cfg['lr']}, {cfg['lr_schedule']}); the same encoder "
            f"(3 conv stages, width {cfg['width']}, global average pooling) for every method. Judged on "
            f"the {data['test']} test images: logistic-regression probe (C = {cfg['probe_c']}, fixed) on "
            f"class-balanced labels of the pretraining set, {cfg['knn_k']}-NN with every label, "
            f"k-means / fuzzy c-means with k = {len(data['classes'])}, fine-tuning for "
            f"{cfg['finetune_steps']} steps. Seeds {cfg['seeds']}; mean ± std over seeds; last epoch "
            f"(nothing selected with test labels). Hardware: {env.get('cpu', env.get('platform', ''))}.")


def _body(run_dir: Path, results: dict, h: str) -> str:
    parts = [f"<p class=muted>{html.escape(_note(results))}</p>",
             f"<{h}>What the features are worth</{h}>", html_table(*result_rows(results), table_id="ssl"),
             f"<{h}>Clustering against the true classes</{h}>",
             html_table(*clustering_rows(results), table_id="clustering")]
    pub = results["published"]
    parts += [f"<{h}>Published numbers, for scale</{h}><p class=muted>{html.escape(pub['source'])}; "
              f"{html.escape(pub['notes'])}</p>", html_table(*published_rows(results), table_id="published")]
    for name, caption in FIGURES:
        path = Path(run_dir) / "figures" / name
        if path.is_file():
            parts.append(f"<{h}>{html.escape(caption)}</{h}>{embed_png(path, caption)}")
    return "".join(parts)


def title(results: dict) -> str:
    cfg = results["config"]
    return f"dlapps ssl: {cfg['data']}, {len(cfg['methods'])} methods"


def section(run_dir: Path, results: dict) -> str:
    return _body(Path(run_dir), results, "h3")


def render(run_dir: Path) -> Path:
    """``run_dir/report.html`` (and its figures) from results.json."""
    run_dir = Path(run_dir)
    results = load_results(run_dir, "ssl")
    write_figures(run_dir, results)
    slim = {k: v for k, v in results.items() if k not in ("data", "runs")}
    raw = html.escape(json.dumps(slim, indent=1)[:20000])
    body = (f"<h1>{html.escape(title(results))}</h1>" + _body(run_dir, results, "h2")
            + f"<h2>results.json (summary)</h2><pre>{raw}</pre>")
    return write_page(run_dir / "report.html", title(results), body)

