"""``dlapps report RUN...``: one page over any mix of finished runs.

Each run's ``results.json`` names its ``kind``; the area of that kind renders the run's own
``report.html`` (``<area>.report.render``), its part of the combined page
(``<area>.report.section``) and the heading of that part (``<area>.report.title``). The page
opens with an index linking every run's section.
"""

from __future__ import annotations

import html
import importlib
from pathlib import Path
from types import ModuleType

from dlapps.errors import DataError
from dlapps.registry import Registry
from dlapps.report import write_page
from dlapps.runs import load_results

#: kind -> the module that reports it
AREAS: Registry[str] = Registry("kind of run")
for _kind, _module in (("adapt", "dlapps.adapt.report"), ("transfer", "dlapps.transfer.report"),
                       ("explain", "dlapps.explain.report"), ("generate", "dlapps.generate.report"),
                       ("semi", "dlapps.semi.report"), ("distill", "dlapps.distill.report"),
                       ("ssl", "dlapps.ssl.report")):
    AREAS.register(_kind, _module)


def area_report(kind: str) -> ModuleType:
    try:
        name = AREAS[kind]
    except KeyError:
        raise DataError(f"results.json says kind {kind!r}, which this dlapps cannot report "
                        f"(it knows {', '.join(AREAS.names())})") from None
    return importlib.import_module(name)


def render_run(run_dir: Path) -> Path:
    """Re-render one run's own ``report.html``."""
    results = load_results(run_dir)
    return area_report(results["kind"]).render(Path(run_dir))


def render_index(run_dirs: list[Path], out: Path) -> Path:
    """One page over ``run_dirs`` (any kinds): an index, then each run's section."""
    if not run_dirs:
        raise DataError("give at least one run directory")
    loaded = [(Path(d), load_results(d)) for d in run_dirs]  # every folder checked before any write
    modules = [area_report(r["kind"]) for _, r in loaded]
    items, sections = [], []
    for i, ((run_dir, results), module) in enumerate(zip(loaded, modules, strict=True)):
        anchor = f"run-{i + 1}"
        title = module.title(results)
        link = (run_dir / "report.html").resolve()
        where = f'{html.escape(results["kind"])}, {html.escape(str(run_dir))}'
        items.append(f'<li><a href="#{anchor}">{html.escape(title)}</a> '
                     f'<span class=muted>({where})</span></li>')
        own = f'<p><a href="{html.escape(link.as_uri())}">its own report</a></p>' if link.exists() else ""
        sections.append(f'<section class=run id="{anchor}"><h2>{html.escape(title)}</h2>{own}'
                        f"{module.section(run_dir, results)}</section>")
    kinds = sorted({r["kind"] for _, r in loaded})
    body = (f"<h1>dlapps: {len(loaded)} run{'s' * (len(loaded) > 1)}</h1>"
            f"<p class=muted>kinds: {html.escape(', '.join(kinds))}</p><ol>{''.join(items)}</ol>"
            + "".join(sections))
    return write_page(Path(out), "dlapps: runs", body)
