"""One self-contained ``report.html`` per run, and an index comparing runs.

Figures are embedded as base64 PNGs and the style sheet is inline, so the page opens from disk,
offline, in any browser, and can be mailed as one file. The page has no scripts.
"""

from __future__ import annotations

import base64
import html
import json
from datetime import datetime
from pathlib import Path

from dlapps.errors import DataError
from dlapps.io import atomic_write_bytes
from dlapps.report import figures, tables

STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em auto;max-width:1100px;
color:#222;padding:0 1em}
h1{font-size:1.6em;margin-bottom:.2em} h2{font-size:1.2em;margin-top:2em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:1em 0;font-size:.95em}
th,td{border:1px solid #ccc;padding:.35em .7em;text-align:right} th{background:#f4f4f4}
td:first-child,th:first-child{text-align:left}
img{max-width:100%;border:1px solid #eee;margin:.5em 0}
pre{background:#f7f7f7;padding:1em;overflow:auto;font-size:.85em}
.muted{color:#666;font-size:.9em} ul.notes li,ul.methods li{margin:.2em 0}
"""


def embed_png(path: Path, alt: str) -> str:
    """An <img> tag with the PNG inlined as base64, so the page stays one file."""
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def page(title: str, body: str) -> bytes:
    """A complete HTML document: inline style sheet, no scripts, no external requests."""
    return (f"<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8>"
            f"<meta name=viewport content='width=device-width, initial-scale=1'>"
            f"<title>{html.escape(title)}</title><link rel=icon href='data:,'>"
            f"<style>{STYLE}</style></head>"
            f"<body>{body}</body></html>\n").encode()


def _load(run_dir: Path) -> dict:
    path = Path(run_dir) / "results.json"
    if not path.is_file():
        raise DataError(f"{run_dir} holds no results.json (is it a finished dlapps run?)")
    return json.loads(path.read_text())


def render_run(run_dir: Path) -> Path:
    """Write ``RUN_DIR/report.html`` from ``results.json``, the metrics logs and t-SNE files."""
    run_dir = Path(run_dir)
    results = _load(run_dir)
    cfg, env, data = results["config"], results["environment"], results["data"]
    figs = figures.all_figures(run_dir, results)
    sections = "".join(f"<h2>{html.escape(name)}</h2>{embed_png(path, name)}" for name, path in figs.items())
    data_lines = "".join(
        f"<li><b>{role}</b>: {html.escape(d['name'])} — {d['train']:,} train / {d['test']:,} test"
        + (f" (photos: {html.escape(d['photos'])})" if d.get("photos") else "") + "</li>"
        for role, d in data.items()
    )
    body = (
        f"<h1>dlapps adapt: {html.escape(cfg['source'])} → {html.escape(cfg['target'])}</h1>"
        f"<p class=muted>{html.escape(str(run_dir))} · seeds {cfg['seeds']} · {cfg['epochs']} epochs · "
        f"{html.escape(env['device'])} ({env['threads']} threads, torch {html.escape(env['torch'])}) · "
        f"{results['wall_seconds']} s wall · rendered {datetime.now():%Y-%m-%d %H:%M}</p>"
        f"<h2>Results</h2>{tables.html_table(results)}"
        f"<h2>Data</h2><ul>{data_lines}</ul>{sections}"
        f"<h2>Configuration</h2><pre>{html.escape(json.dumps(cfg, indent=2))}</pre>"
    )
    title = f"dlapps: {cfg['source']} → {cfg['target']}"
    return atomic_write_bytes(run_dir / "report.html", page(title, body))


def render_index(run_dirs: list[Path], out: Path) -> Path:
    """One page comparing several runs: each run's table and target-accuracy chart."""
    if not run_dirs:
        raise DataError("give at least one run directory")
    parts = []
    for run_dir in map(Path, run_dirs):
        results = _load(run_dir)
        cfg = results["config"]
        bars = figures.target_bars(run_dir, results)
        link = (run_dir / "report.html").resolve()
        parts.append(
            f"<h2>{html.escape(cfg['source'])} → {html.escape(cfg['target'])} "
            f"<span class=muted>({html.escape(str(run_dir))}, {cfg['epochs']} epochs, "
            f"preset {html.escape(cfg['preset'])})</span></h2>"
            + tables.html_table(results) + embed_png(bars, "target accuracy")
            + (f'<p><a href="{html.escape(link.as_uri())}">full report</a></p>' if link.exists() else "")
        )
    body = f"<h1>dlapps: {len(run_dirs)} runs compared</h1>" + "".join(parts)
    return atomic_write_bytes(Path(out), page("dlapps: runs compared", body))
