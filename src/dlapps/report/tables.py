"""The results table, made from ``results.json`` alone (printed, markdown, HTML)."""

from __future__ import annotations

import html

from dlapps.adapt.methods import METHODS

COLUMNS = ["method", "source acc", "target acc", "domain acc", "A-distance", "train s", "paper target"]


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
            mean_std(row["source_acc"]), mean_std(row["target_acc"]), mean_std(row["domain_acc"]),
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
    lines.append(f"{cfg['source']} → {cfg['target']}, {cfg['epochs']} epochs, preset {cfg['preset']}, "
                 f"last-epoch numbers (no checkpoint picked with target labels); paper column: "
                 "ICML 2015 (JMLR 2016) target accuracy")
    return lines


def text_table(results: dict) -> str:
    body = rows(results)
    widths = [max(len(r[i]) for r in [COLUMNS, *body]) for i in range(len(COLUMNS))]
    line = lambda r: "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()  # noqa: E731
    out = [line(COLUMNS), line(["-" * w for w in widths]), *map(line, body)]
    return "\n".join(out + [""] + notes(results))


def markdown_table(results: dict) -> str:
    out = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    out += ["| " + " | ".join(r) + " |" for r in rows(results)]
    return "\n".join(out + [""] + [f"- {n}" for n in notes(results)])


def html_table(results: dict) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in COLUMNS)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows(results)
    )
    descriptions = "".join(
        f"<li><b>{html.escape(m)}</b>: {html.escape(METHODS[m].description)}</li>"
        for m in results["summary"]["methods"] if m in METHODS
    )
    note = "".join(f"<li>{html.escape(n)}</li>" for n in notes(results))
    return (f'<table id="results"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'
            f"<ul class=notes>{note}</ul><ul class=methods>{descriptions}</ul>")
