"""The table, figure and page of a ``dlapps distill`` run.

The table has one row for the teacher, the student from scratch and each distilled student: test
accuracy (mean ± std over seeds), parameters, images/s at inference (measured on the run's
machine, test set, batch 256) and agreement with the teacher (the fraction of test images where
the student's argmax equals the teacher's). The figure draws test accuracy and agreement against
epochs per kind (mean over seeds).
"""

from __future__ import annotations

import html
import json
from pathlib import Path

from dlapps.report import (
    COLORS,
    embed_png,
    html_table,
    markdown_table,
    pyplot,
    save_figure,
    text_table,
    write_page,
)
from dlapps.runs import load_results

KIND = "distill"
FIGURE = "figures/curves.png"
COLUMNS = ("network", "net", "test accuracy", "agreement with teacher", "parameters", "images/s")
LABELS = {"teacher": "teacher", "scratch": "student from scratch", "response": "student + response KD",
          "feature": "student + FitNets hint", "relation": "student + RKD"}


def _pm(stat: dict | None, digits: int = 4) -> str:
    if not stat:
        return "–"
    return f"{stat['mean']:.{digits}f} ± {stat['std']:.{digits}f}" if stat.get("n", 1) > 1 else \
        f"{stat['mean']:.{digits}f}"


def table_rows(results: dict) -> list[list[str]]:
    rows = []
    for name, r in results["rows"].items():
        net = results["teacher"]["net"] if name == "teacher" else results["student"]
        ips = r.get("images_per_s")
        rows.append([LABELS.get(name, f"student + {name}"), net, _pm(r["test_acc"]),
                     "1" if name == "teacher" else _pm(r["agreement"], 3), f"{r['params']:,}",
                     f"{ips['mean']:,.0f}" if ips else "–"])
    return rows


def results_table(results: dict, markdown: bool = False) -> str:
    """The table as Markdown (``markdown``) or plain text."""
    rows = table_rows(results)
    return markdown_table(COLUMNS, rows) if markdown else text_table(COLUMNS, rows)


def summary_line(results: dict) -> str:
    t = results["teacher"]
    return (f"{results['data']['name']} ({results['data']['train']} train / {results['data']['test']} test, "
            f"{tuple(results['data']['shape'])}); teacher: {t['source']}; student {results['student']}, "
            f"{results['epochs']} epochs, batch {results['batch_size']}, shift {results['shift']}; "
            f"T = {results['T']}, α = {results['alpha']}, hint β = {results['hint_weight']}, RKD λ_D = "
            f"{results['rkd_distance']}, λ_A = {results['rkd_angle']}; seeds {results['seeds']}")


def curves_figure(results: dict, path: Path) -> Path:
    """Test accuracy and agreement with the teacher against epochs, one line per kind."""
    fig, axes = pyplot().subplots(1, 2, figsize=(11, 3.8))
    for i, (name, curve) in enumerate(results["curves"].items()):
        color = COLORS[i % len(COLORS)]
        style = "--" if name in ("teacher", "scratch") else "-"
        for ax, key in zip(axes, ("test_acc", "agreement"), strict=True):
            if key in curve:
                ax.plot(curve["epoch"], curve[key], style, color=color, marker=".",
                        label=LABELS.get(name, name))
    for ax, title in zip(axes, ("test accuracy", "agreement with the teacher (test)"), strict=True):
        ax.set(xlabel="epoch", title=title)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path, dpi=100)


def title(results: dict) -> str:
    """The heading of a run on a page over several runs."""
    return results.get("title") or "dlapps distill"


def _body(run_dir: Path, results: dict, h: str) -> str:
    parts = [f"<p class=muted>{html.escape(summary_line(results))}</p>",
             f"<{h}>Teacher and students</{h}>", html_table(COLUMNS, table_rows(results), "distill"),
             "<p class=muted>test accuracy: mean ± std over seeds, last epoch; agreement: fraction of test "
             "images where the argmax equals the teacher's; images/s: inference, test set, batch 256, "
             "measured on this run's machine.</p>"]
    if (run_dir / FIGURE).is_file():
        parts.append(f"<{h}>Accuracy and agreement against epochs</{h}>"
                     + embed_png(run_dir / FIGURE, "accuracy and agreement against epochs"))
    return "".join(parts)


def section(run_dir: Path, results: dict) -> str:
    """An HTML fragment for a page over several runs: the table and the figure, h3 headings."""
    return _body(Path(run_dir), results, "h3")


def render(run_dir: Path) -> Path:
    """``run_dir/report.html`` from its results.json and figure (self-contained)."""
    run_dir = Path(run_dir)
    results = load_results(run_dir, KIND)
    raw = html.escape(json.dumps(results, indent=1)[:20000])
    body = (f"<h1>{html.escape(title(results))}</h1>" + _body(run_dir, results, "h2")
            + f"<h2>results.json</h2><pre>{raw}</pre>")
    return write_page(run_dir / "report.html", title(results), body)
