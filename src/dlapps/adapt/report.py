"""The adapt area's report: the results table (printed, markdown, HTML), the figures, and the
page of a run or of a method × pair grid — all made from ``results.json`` and the files of the run
directory alone, with the shared shell of :mod:`dlapps.report`."""

from __future__ import annotations

import html
import json
from datetime import datetime
from pathlib import Path

import numpy as np

from dlapps.adapt.config import AdaptConfig
from dlapps.adapt.methods import METHODS
from dlapps.adapt.paper import gap_closed
from dlapps.engine.runlog import read_metrics
from dlapps.io import atomic_write_bytes, safe_torch_load
from dlapps.report import (
    COLORS,
    embed_png,
    html_table,
    markdown_table,
    save_figure,
    text_table,
    write_page,
)
from dlapps.report import (
    pyplot as plt,
)
from dlapps.runs import load_results


def _known(method: str) -> bool:
    try:
        METHODS[method]
    except KeyError:
        return False
    return True


COLUMNS = ["method", "source acc", "target acc", "domain acc", "A-distance", "train s", "paper target"]


def diverged_note(row: dict) -> str:
    """`` (1 of 3 diverged)`` after a method's number when some of its seeds diverged (NaN)."""
    d = row.get("diverged") or 0
    return f" ({d} of {row['n_seeds']} diverged)" if d else ""


def mean_std(stat: dict | None, digits: int = 3) -> str:
    if not stat:
        return "—"
    if len(stat.get("values", [])) > 1:
        return f"{stat['mean']:.{digits}f} ± {stat['std']:.{digits}f}"
    return f"{stat['mean']:.{digits}f}"


def rows(results: dict) -> list[list[str]]:
    """One row of strings per method, in the configured order."""
    summary = results["summary"]
    paper = summary.get("paper") or {}
    out = []
    for name, row in summary["methods"].items():
        p = paper.get(name)
        out.append([
            name + (f" ({row['n_seeds']} seeds)" if row["n_seeds"] > 1 else ""),
            mean_std(row["source_acc"]), mean_std(row["target_acc"]) + diverged_note(row),
            mean_std(row["domain_acc"]),
            mean_std(row["a_distance"], 2), mean_std(row["seconds"], 0),
            f"{p['icml2015']:.3f} ({p['jmlr2016']:.3f})" if p else "—",
        ])
    return out


def notes(results: dict) -> list[str]:
    """Lines under the table: the share of the gap closed, next to the paper's."""
    summary, lines = results["summary"], []
    paper_gap = (summary.get("paper") or {}).get("gap_closed_dann")
    for name, gap in summary.get("gap_closed", {}).items():
        if gap is None:
            continue
        line = f"gap closed by {name}: {100 * gap:.1f}%"
        if paper_gap is not None and name == "dann":
            line += f" (paper: {100 * paper_gap:.1f}%)"
        lines.append(line)
    cfg = results["config"]
    lines.append(robust_rule(cfg, results.get("runs") or []))
    lines.append(f"{cfg['source']} → {cfg['target']}, {cfg['epochs']} epochs, preset {cfg['preset']}, "
                 f"last-epoch numbers (no checkpoint picked with target labels); paper column: "
                 "ICML 2015 (JMLR 2016) target accuracy")
    return lines


def warning_lines(methods: dict) -> list[str]:
    """'⚠ method: warning (seeds …)' for every failure signature :mod:`.health` found."""
    return [f"⚠ {name}: {line}" for name, row in methods.items() for line in row.get("warnings") or []]


def robust_rule(cfg: dict, runs: list[dict]) -> str:
    """The line that states the run's robust rules (issue 16) — or that they were off."""
    norm = ("input: each image standardised per channel (instance normalisation)"
            if cfg.get("input_norm", "mean") == "instance"
            else "input: minus the training mean (the papers')")
    fast = AdaptConfig()
    lam, widths, backbone = cfg.get("lambda_max", 1.0), cfg.get("domain_hidden"), cfg.get("backbone")
    if backbone:  # the backbone's heads are its own, whatever domain_hidden says
        shown = "the backbone’s own"
    else:
        shown = "-".join(map(str, widths)) if widths else "the architecture’s own"
    weight = f"λ_max {lam:g}, domain classifier {shown}"
    if not backbone and (lam, widths) == (fast.lambda_max, fast.domain_hidden):
        weight += (" (chosen on development pairs, the evaluation pairs reversed, by the largest "
                   "worst-pair gain over source-only: bench/results/adapt_dev.md)")
    warmup = cfg.get("warmup_acc") or 0.0
    if not warmup:
        return f"{norm}; {weight}; no warm-up (alignment terms from the first step, as the papers)"
    opened = sorted({r.get("gate_epoch") for r in runs if r.get("gate_epoch") is not None})
    when = f"; opened after epoch {', '.join(map(str, opened))}" if opened else ""
    return (f"{norm}; {weight}; warm-up: the alignment terms wait until the held-out source accuracy "
            f"reaches {warmup:.2f}, then their λ schedule starts from 0{when}")


def results_text(results: dict) -> str:
    out = [text_table(COLUMNS, rows(results)), "", *warning_lines(results["summary"]["methods"]),
           *notes(results)]
    selection = selection_rows(results["summary"]["methods"])
    if selection:
        out += ["", text_table(SELECTION_COLUMNS, selection), SELECTION_NOTE]
    return "\n".join(out)


def results_markdown(results: dict) -> str:
    out = [markdown_table(COLUMNS, rows(results))]
    selection = selection_markdown(results)
    out += ["", *(f"- {n}" for n in warning_lines(results["summary"]["methods"]) + notes(results))]
    return "\n".join(out + ([f"\n{selection}"] if selection else []))


def results_html(results: dict) -> str:
    descriptions = "".join(
        f"<li><b>{html.escape(m)}</b>: {html.escape(METHODS[m].description)}</li>"
        for m in results["summary"]["methods"] if _known(m)
    )
    note = "".join(f"<li>{html.escape(n)}</li>" for n in notes(results))
    warn = "".join(f"<li class=warning>{html.escape(n)}</li>"
                   for n in warning_lines(results["summary"]["methods"]))
    return (html_table(COLUMNS, rows(results), "results")
            + (f"<ul class=warnings>{warn}</ul>" if warn else "") + f"<ul class=notes>{note}</ul>"
            + selection_html(results) + f"<ul class=methods>{descriptions}</ul>")


# --- label-free selection (one run) and the method × pair grid of ``dlapps adapt compare`` ---------

SELECTION_RULES = ["last", "entropy", "im", "snd", "dev", "reverse", "reverse-linear", "oracle"]
SELECTION_COLUMNS = ["method", "last epoch", "entropy ↓", "info-max ↑", "SND ↑", "DEV ↓", "reverse val. ↑",
                     "reverse (linear) ↑", "oracle (target labels)", "target ECE (last)"]


def selection_rows(methods: dict) -> list[list[str]]:
    """Target accuracy of the epoch each rule picks (mean ± std over seeds), per method."""
    out = []
    for name, row in methods.items():
        sel = row.get("selection")
        if not sel:
            continue
        out.append([name, *(mean_std((sel.get(r) or {}).get("target_acc")) for r in SELECTION_RULES),
                    mean_std(row.get("ece"))])
    return out


SELECTION_NOTE = ("label-free selection: target test accuracy of the epoch each criterion picks "
                  "without target labels; 'oracle' picks with target labels (not available to a user)")


def selection_markdown(results: dict) -> str:
    body = selection_rows(results["summary"]["methods"])
    return "\n".join([markdown_table(SELECTION_COLUMNS, body), "", f"- {SELECTION_NOTE}"]) if body else ""


def selection_html(results: dict) -> str:
    body = selection_rows(results["summary"]["methods"])
    note = f"<p class=muted>{html.escape(SELECTION_NOTE)}</p>"
    return html_table(SELECTION_COLUMNS, body, "selection") + note if body else ""


def compare_cells(results: dict, bold: tuple[str, str] = ("**", "**"),
                  escape=lambda s: s) -> tuple[list[str], list[list[str]]]:
    """(columns, rows) of the method × pair table: target accuracy mean ± std over seeds, the
    best method of each pair in bold, the paper's number beside ours where it has one."""
    pairs, grid = results["pairs"], results["grid"]
    best = {}
    for pair in pairs:
        means = {m: row["target_acc"]["mean"] for m, row in grid[pair]["methods"].items()
                 if row.get("target_acc") and m != "target"}
        best[pair] = max(means, key=means.get) if means else None
    body = []
    for method in results["methods"]:
        row = [escape(method)]
        for pair in pairs:
            cell = grid[pair]["methods"].get(method, {})
            stat = cell.get("target_acc")
            text = escape(mean_std(stat) + diverged_note(cell))
            if stat and best[pair] == method:
                text = bold[0] + text + bold[1]
            paper = (grid[pair].get("paper") or {}).get(method)
            if paper:
                text += escape(f" (paper {paper[0]:.3f})")
            row.append(text)
        body.append(row)
    columns = ["method", *(p.replace(":", " → ") for p in pairs)]
    return columns, body


def selection_gap_lines(results: dict, method: str = "dann", points: float = 0.02) -> list[str]:
    """For ``method``: on how many pairs each criterion's pick is within ``points`` of the oracle."""
    lines = []
    for rule in SELECTION_RULES[:-1]:
        gaps = []
        for pair in results["pairs"]:
            sel = (results["grid"][pair]["methods"].get(method) or {}).get("selection") or {}
            if rule in sel:
                gaps.append(sel["oracle"]["target_acc"]["mean"] - sel[rule]["target_acc"]["mean"])
        if gaps:
            within = sum(g <= points + 1e-9 for g in gaps)
            lines.append(f"{method}, {rule}: within {100 * points:.0f} points of the oracle on {within} of "
                         f"{len(gaps)} pairs (gaps {', '.join(f'{100 * g:.1f}' for g in gaps)} points)")
    return lines


def ranking_lines(results: dict, reference: str = "dann") -> list[str]:
    """Per pair: how many methods beat source-only, and the best method against ``reference``
    (and ``reference+self-train`` against it when both ran), in points of mean target accuracy."""
    lines = []
    for pair in results["pairs"]:
        acc = {m: v["target_acc"]["mean"] for m, v in results["grid"][pair]["methods"].items()
               if (v.get("target_acc") or {}).get("mean") is not None and m != "target"}
        adapted = {m: a for m, a in acc.items() if m != "source"}
        parts = []
        if "source" in acc and adapted:
            above = sum(a >= acc["source"] for a in adapted.values())
            parts.append(f"{above} of {len(adapted)} methods at or above source-only ({acc['source']:.3f})")
            chance = [m for m, a in adapted.items() if a < 0.15 <= acc["source"]]
            if chance:
                parts.append(f"at chance (< 0.15) where source-only is not: {', '.join(chance)}")
        if reference in acc and adapted:
            best = max(adapted, key=adapted.get)
            parts.append(f"best {best} {adapted[best]:.3f} ({100 * (adapted[best] - acc[reference]):+.1f} "
                         f"points vs {reference})")
            if f"{reference}+self-train" in acc:
                gain = acc[f"{reference}+self-train"] - acc[reference]
                parts.append(f"{reference}+self-train {100 * gain:+.1f} points vs {reference}")
        if parts:
            lines.append(f"{pair.replace(':', ' → ')}: " + "; ".join(parts))
    return lines


def near_oracle(selection: dict, points: float = 0.02) -> list[str]:
    """The label-free criteria of one method's selection summary whose pick lands within
    ``points`` of the oracle's, in mean target accuracy (none without an oracle entry)."""
    if "oracle" not in selection:
        return []
    best = selection["oracle"]["target_acc"]["mean"]
    return [r for r in SELECTION_RULES[1:-1] if r in selection
            and best - selection[r]["target_acc"]["mean"] <= points + 1e-9]


def gap_lines(results: dict) -> list[str]:
    """Per pair with both source-only and train-on-target: the share of the gap DANN and the best
    method close, and the criteria that pick within 2 points of the oracle for that method."""
    lines = []
    for pair in results["pairs"]:
        rows = results["grid"][pair]["methods"]
        acc = {m: v["target_acc"]["mean"] for m, v in rows.items() if (v.get("target_acc") or {}).get("mean")
               is not None}
        if not {"source", "target"} <= set(acc) or acc["target"] <= acc["source"]:
            continue
        gap = {m: gap_closed(acc["source"], a, acc["target"]) for m, a in acc.items()
               if m not in ("source", "target")}
        if not gap:
            continue
        best = max(gap, key=gap.get)
        near = near_oracle(rows[best].get("selection") or {})
        seconds = (rows[best].get("seconds") or {}).get("mean")
        lines.append(f"{pair.replace(':', ' → ')}: gap closed (source-only {acc['source']:.3f} → "
                     f"target {acc['target']:.3f}): "
                     + (f"dann {100 * gap['dann']:.1f}%, " if "dann" in gap else "")
                     + f"best {best} {100 * gap[best]:.1f}%"
                     + (f" ({seconds:.0f} s per cell)" if seconds else "")
                     + f"; within 2 points of the oracle for {best}: {', '.join(near) or 'none'}")
    return lines


def compare_notes(results: dict) -> list[str]:
    cfg = results["config"]
    per_pair = results.get("seeds_per_pair") or {}
    seeds = (f"seeds {results['seeds']}" if len({tuple(v) for v in per_pair.values()}) <= 1 else
             "seeds " + ", ".join(f"{p.replace(':', ' → ')} {v}" for p, v in per_pair.items()))
    return [f"target test accuracy, mean ± std over {seeds}; last epoch "
            f"(no target labels used); {cfg['epochs']} epochs, preset {cfg['preset']}, batch "
            f"{cfg['batch_size']} + {cfg['batch_size']}"
            + (f", at most {cfg['train_limit']} training images per domain" if cfg.get("train_limit") else "")
            + "; bold: best per pair; paper: Ganin & Lempitsky 2015 (MNIST → MNIST-M only)",
            *ranking_lines(results), *gap_lines(results), *selection_gap_lines(results),
            *(f"{pair.replace(':', ' → ')}: {w}" for pair in results["pairs"]
              for w in warning_lines(results["grid"][pair]["methods"]))]


def compare_markdown(results: dict) -> str:
    columns, body = compare_cells(results)
    out = ["## Target accuracy", "", markdown_table(columns, body), "",
           *(f"- {n}" for n in compare_notes(results)), ""]
    for pair in results["pairs"]:
        body = selection_rows(results["grid"][pair]["methods"])
        if body:
            out += [f"## Label-free selection: {pair.replace(':', ' → ')}", "",
                    markdown_table(SELECTION_COLUMNS, body), ""]
    return "\n".join(out + [f"- {SELECTION_NOTE}"])


def compare_html(results: dict) -> str:
    columns, body = compare_cells(results, ("<b>", "</b>"), html.escape)
    parts = [html_table(columns, body, "compare", raw=True),
             "<ul class=notes>" + "".join(f"<li>{html.escape(n)}</li>" for n in compare_notes(results))
             + "</ul>"]
    for pair in results["pairs"]:
        sel = selection_rows(results["grid"][pair]["methods"])
        if sel:
            parts.append(f"<h2>Label-free selection: {html.escape(pair.replace(':', ' → '))}</h2>"
                         + html_table(SELECTION_COLUMNS, sel, f"selection-{html.escape(pair)}"))
    return "".join(parts) + f"<p class=muted>{html.escape(SELECTION_NOTE)}</p>"


# --- figures --------------------------------------------------------------------------------

def _epoch_series(run_dir: Path, cell: str, key: str) -> tuple[np.ndarray, np.ndarray]:
    recs = [r for r in read_metrics(run_dir / cell) if r["kind"] == "epoch" and r.get(key) is not None]
    return np.array([r["epoch"] for r in recs]), np.array([r[key] for r in recs], dtype=float)


def accuracy_curves(run_dir: Path, results: dict) -> Path:
    """Source (dashed) and target (solid) test accuracy per epoch; band = min-max over seeds."""
    cfg = results["config"]
    fig, ax = plt().subplots(figsize=(7, 4.2))
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
    return save_figure(fig, run_dir / "figures" / "accuracy.png")


def training_curves(run_dir: Path, results: dict) -> Path:
    """Losses, λ_p, learning rate and domain accuracy over training (first seed of each method)."""
    cfg = results["config"]
    panels = [("loss", "total loss"), ("cls_loss", "label loss L_y"), ("domain_loss", "domain loss L_d"),
              ("train_domain_acc", "domain classifier acc (train batches)"),
              ("lambda", "λ_p"), ("lr", "learning rate")]
    fig, axes = plt().subplots(2, 3, figsize=(12, 6.5))
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
    return save_figure(fig, run_dir / "figures" / "training.png")


def tsne_figure(run_dir: Path, results: dict) -> Path | None:
    """t-SNE of G_f features per method: coloured by domain (left) and by class (right)."""
    cfg = results["config"]
    cells = [(m, run_dir / f"{m}-seed{cfg['seeds'][0]}" / "tsne.pt") for m in cfg["methods"]]
    cells = [(m, p) for m, p in cells if p.is_file()]
    if not cells:
        return None
    fig, axes = plt().subplots(len(cells), 2, figsize=(9, 4.2 * len(cells)), squeeze=False)
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
    return save_figure(fig, run_dir / "figures" / "tsne.png")


def target_bars(run_dir: Path, results: dict) -> Path:
    """Target accuracy per method, mean ± std over seeds, the paper's values as markers."""
    summary = results["summary"]
    names = [m for m, row in summary["methods"].items() if row["target_acc"]]  # not every seed diverged
    means = [summary["methods"][m]["target_acc"]["mean"] for m in names]
    stds = [summary["methods"][m]["target_acc"]["std"] for m in names]
    fig, ax = plt().subplots(figsize=(1.3 * len(names) + 2, 3.8))
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
    return save_figure(fig, run_dir / "figures" / "target_accuracy.png")


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
    fig, ax = plt().subplots(figsize=(2.2 * len(pairs) + 3, 4.2))
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
    return save_figure(fig, Path(out) / "figures" / "compare.png")



# --- pages ----------------------------------------------------------------------------------

def _data_lines(results: dict) -> str:
    return "".join(
        f"<li><b>{role}</b>: {html.escape(d['name'])} — {d['train']:,} train / {d['test']:,} test"
        + (f" (photos: {html.escape(d['photos'])})" if d.get("photos") else "") + "</li>"
        for role, d in results["data"].items())


def _run_body(run_dir: Path, results: dict, level: int) -> str:
    """The results table, the data, every figure and the configuration of one adapt run."""
    h = f"h{level}"
    cfg, env = results["config"], results["environment"]
    figs = all_figures(run_dir, results)
    sections = "".join(f"<{h}>{html.escape(name)}</{h}>{embed_png(path, name)}"
                       for name, path in figs.items())
    return (f"<p class=muted>{html.escape(str(run_dir))} · seeds {cfg['seeds']} · {cfg['epochs']} epochs · "
            f"{html.escape(env.get('device', 'cpu'))} ({env['threads']} threads, torch "
            f"{html.escape(env['torch'])}) · {results['wall_seconds']} s wall · rendered "
            f"{datetime.now():%Y-%m-%d %H:%M}</p>"
            f"<{h}>Results</{h}>{results_html(results)}"
            f"<{h}>Data</{h}><ul>{_data_lines(results)}</ul>{sections}"
            f"<{h}>Configuration</{h}><pre>{html.escape(json.dumps(cfg, indent=2))}</pre>")


def _compare_body(out: Path, results: dict, level: int) -> str:
    chart = compare_bars(out, results)
    return (f"<p class=muted>{len(results['methods'])} methods × {len(results['pairs'])} pairs × "
            f"{len(results['seeds'])} seeds · {results['wall_seconds']} s wall (this invocation)</p>"
            + compare_html(results).replace("<h2>", f"<h{level}>").replace("</h2>", f"</h{level}>")
            + embed_png(chart, "target accuracy per method and pair")
            + f"<h{level}>Configuration</h{level}>"
            + f"<pre>{html.escape(json.dumps(results['config'], indent=2))}</pre>")


def title(results: dict) -> str:
    if results.get("command") == "compare":
        return "dlapps adapt compare: methods × pairs"
    cfg = results["config"]
    return f"dlapps adapt: {cfg['source']} → {cfg['target']}"


def section(run_dir: Path, results: dict) -> str:
    """This run's part of a page that shows several runs (headings from h3 down)."""
    if results.get("command") == "compare":
        return _compare_body(Path(run_dir), results, 3)
    return _run_body(Path(run_dir), results, 3)


def render(run_dir: Path) -> Path:
    """Write ``RUN_DIR/report.html`` (a run or a grid) from ``results.json`` and the run's files."""
    run_dir = Path(run_dir)
    results = load_results(run_dir, "adapt")
    if results.get("command") == "compare":
        atomic_write_bytes(run_dir / "compare.md", compare_markdown(results).encode())
        body = _compare_body(run_dir, results, 2)
    else:
        body = _run_body(run_dir, results, 2)
    heading = f"<h1>{html.escape(title(results))}</h1>"
    return write_page(run_dir / "report.html", title(results), heading + body)
