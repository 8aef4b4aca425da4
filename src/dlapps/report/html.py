"""The page shell: a self-contained HTML document, embedded PNGs and tables.

Figures are embedded as base64 PNGs and the style sheet is inline, so a page opens from disk,
offline, in any browser, and can be mailed as one file. Pages have no scripts.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from pathlib import Path

from dlapps.io import atomic_write_bytes

STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em auto;max-width:1100px;
color:#222;padding:0 1em}
h1{font-size:1.6em;margin-bottom:.2em} h2{font-size:1.2em;margin-top:2em;border-bottom:1px solid #ddd}
h3{font-size:1.05em;margin-top:1.5em}
table{border-collapse:collapse;margin:1em 0;font-size:.95em}
th,td{border:1px solid #ccc;padding:.35em .7em;text-align:right} th{background:#f4f4f4}
td:first-child,th:first-child{text-align:left}
img{max-width:100%;border:1px solid #eee;margin:.5em 0}
pre{background:#f7f7f7;padding:1em;overflow:auto;font-size:.85em}
.muted{color:#666;font-size:.9em} ul.notes li,ul.methods li{margin:.2em 0}
section.run{border-top:3px solid #888;margin-top:3em}
"""


def embed_png(path: Path, alt: str) -> str:
    """An <img> tag with the PNG inlined as base64, so the page stays one file."""
    data = base64.b64encode(Path(path).read_bytes()).decode()
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def page(title: str, body: str) -> bytes:
    """A complete HTML document: inline style sheet, no scripts, no external requests."""
    return (f"<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8>"
            f"<meta name=viewport content='width=device-width, initial-scale=1'>"
            f"<title>{html.escape(title)}</title><link rel=icon href='data:,'>"
            f"<style>{STYLE}</style></head>"
            f"<body>{body}</body></html>\n").encode()


def write_page(path: Path, title: str, body: str) -> Path:
    """Write :func:`page` atomically to ``path``."""
    return atomic_write_bytes(Path(path), page(title, body))


def html_table(columns: Sequence[str], rows: Sequence[Sequence], table_id: str = "",
               raw: bool = False) -> str:
    """A table; cells are escaped unless ``raw`` (cells that already hold markup)."""
    cell = (lambda c: str(c)) if raw else (lambda c: html.escape(str(c)))
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{cell(c)}</td>" for c in r) + "</tr>" for r in rows)
    ident = f' id="{html.escape(table_id)}"' if table_id else ""
    return f"<table{ident}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def markdown_table(columns: Sequence[str], rows: Sequence[Sequence]) -> str:
    return "\n".join(["| " + " | ".join(map(str, columns)) + " |", "|" + "---|" * len(columns),
                      *("| " + " | ".join(map(str, r)) + " |" for r in rows)])


def text_table(columns: Sequence[str], rows: Sequence[Sequence]) -> str:
    """A plain-text table with columns padded to their widest cell."""
    cells = [[str(c) for c in columns], *([str(c) for c in r] for r in rows)]
    widths = [max(len(r[i]) for r in cells) for i in range(len(columns))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    return "\n".join([lines[0], "  ".join("-" * w for w in widths), *lines[1:]])


def fmt(stat: dict | None, scale: float = 100.0, digits: int = 2) -> str:
    """``mean ± std`` of a statistic over seeds (in percent by default)."""
    if not stat:
        return "–"
    if len(stat["values"]) == 1:
        return f"{stat['mean'] * scale:.{digits}f}"
    return f"{stat['mean'] * scale:.{digits}f} ± {stat['std'] * scale:.{digits}f}"
