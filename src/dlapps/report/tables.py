"""The results table, made from ``results.json`` alone (printed, markdown, HTML)."""

from __future__ import annotations

import html

from dlapps.adapt.methods import get_method
from dlapps.errors import UnknownNameError


def _known(method: str) -> bool:
    try:
        get_method(method)
    except UnknownNameError:
        return False
    return True

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


def _text(columns: list[str], body: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in [columns, *body]) for i in range(len(columns))]
    line = lambda r: "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()  # noqa: E731
    return [line(columns), line(["-" * w for w in widths]), *map(line, body)]


def text_table(results: dict) -> str:
    out = _text(COLUMNS, rows(results)) + [""] + notes(results)
    selection = selection_rows(results["summary"]["methods"])
    if selection:
        out += ["", *_text(SELECTION_COLUMNS, selection), SELECTION_NOTE]
    return "\n".join(out)


def markdown_table(results: dict) -> str:
    out = _markdown(COLUMNS, rows(results))
    selection = selection_markdown(results)
    out += ["", *(f"- {n}" for n in notes(results))]
    return "\n".join(out + ([f"\n{selection}"] if selection else []))


def html_table(results: dict) -> str:
    descriptions = "".join(
        f"<li><b>{html.escape(m)}</b>: {html.escape(get_method(m).description)}</li>"
        for m in results["summary"]["methods"] if _known(m)
    )
    note = "".join(f"<li>{html.escape(n)}</li>" for n in notes(results))
    return (_html(COLUMNS, rows(results), "results") + f"<ul class=notes>{note}</ul>"
            + selection_html(results) + f"<ul class=methods>{descriptions}</ul>")


# --- label-free selection (one run) and the method × pair grid of ``dlapps adapt compare`` ---------

SELECTION_RULES = ["last", "entropy", "im", "dev", "reverse", "oracle"]
SELECTION_COLUMNS = ["method", "last epoch", "entropy ↓", "info-max ↑", "DEV ↓", "reverse val. ↑",
                     "oracle (target labels)", "target ECE (last)"]


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


def _markdown(columns: list[str], body: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns),
            *("| " + " | ".join(r) + " |" for r in body)]


def _html(columns: list[str], body: list[list[str]], table_id: str, raw: bool = False) -> str:
    cell = (lambda c: c) if raw else html.escape
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    rows_ = "".join("<tr>" + "".join(f"<td>{cell(c)}</td>" for c in r) + "</tr>" for r in body)
    return f'<table id="{table_id}"><thead><tr>{head}</tr></thead><tbody>{rows_}</tbody></table>'


SELECTION_NOTE = ("label-free selection: target test accuracy of the epoch each criterion picks "
                  "without target labels; 'oracle' picks with target labels (not available to a user)")


def selection_markdown(results: dict) -> str:
    body = selection_rows(results["summary"]["methods"])
    return "\n".join(_markdown(SELECTION_COLUMNS, body) + ["", f"- {SELECTION_NOTE}"]) if body else ""


def selection_html(results: dict) -> str:
    body = selection_rows(results["summary"]["methods"])
    return (_html(SELECTION_COLUMNS, body, "selection") + f"<p class=muted>{html.escape(SELECTION_NOTE)}</p>"
            if body else "")


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
            stat = grid[pair]["methods"].get(method, {}).get("target_acc")
            text = escape(mean_std(stat))
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
            above = sum(a > acc["source"] for a in adapted.values())
            parts.append(f"{above} of {len(adapted)} methods above source-only ({acc['source']:.3f})")
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
            *ranking_lines(results), *selection_gap_lines(results)]


def compare_markdown(results: dict) -> str:
    columns, body = compare_cells(results)
    out = ["## Target accuracy", "", *_markdown(columns, body), "",
           *(f"- {n}" for n in compare_notes(results)), ""]
    for pair in results["pairs"]:
        body = selection_rows(results["grid"][pair]["methods"])
        if body:
            out += [f"## Label-free selection: {pair.replace(':', ' → ')}", "",
                    *_markdown(SELECTION_COLUMNS, body), ""]
    return "\n".join(out + [f"- {SELECTION_NOTE}"])


def compare_html(results: dict) -> str:
    columns, body = compare_cells(results, ("<b>", "</b>"), html.escape)
    parts = [_html(columns, body, "compare", raw=True),
             "<ul class=notes>" + "".join(f"<li>{html.escape(n)}</li>" for n in compare_notes(results))
             + "</ul>"]
    for pair in results["pairs"]:
        sel = selection_rows(results["grid"][pair]["methods"])
        if sel:
            parts.append(f"<h2>Label-free selection: {html.escape(pair.replace(':', ' → '))}</h2>"
                         + _html(SELECTION_COLUMNS, sel, f"selection-{html.escape(pair)}"))
    return "".join(parts) + f"<p class=muted>{html.escape(SELECTION_NOTE)}</p>"
