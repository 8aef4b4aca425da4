"""The ``dlapps`` command line: it mounts each area's sub-app and nothing else.

    dlapps adapt | transfer | explain | generate (gan) | semi | distill | ssl | data  each area's commands
    dlapps report RUN_DIR... [--out index.html]                  one page over any mix of runs

Each sub-app lives in its area (``dlapps.<area>.cli``) and is a thin wrapper over the area's
public Python functions. Errors caused by input (unknown names, bad values, missing files) print
one line and exit with status 2; anything else is a bug and shows its traceback.
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from dlapps.adapt.cli import app as adapt_app
from dlapps.cli_support import user_errors
from dlapps.data.cli import app as data_app
from dlapps.distill.cli import app as distill_app
from dlapps.explain.cli import app as explain_app
from dlapps.generate.cli import app as gan_app
from dlapps.generate.cli import generate_app
from dlapps.semi.cli import app as semi_app
from dlapps.ssl.cli import app as ssl_app
from dlapps.transfer.cli import app as transfer_app

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Deep learning applications, reproduced: domain adaptation, transfer learning, "
                       "network visualisation, GANs, semi-supervised learning, knowledge distillation, "
                       "self-supervised learning; "
                       "data and reports.")
app.add_typer(adapt_app, name="adapt")
app.add_typer(transfer_app, name="transfer")
app.add_typer(explain_app, name="explain")
app.add_typer(gan_app, name="gan")
app.add_typer(generate_app, name="generate")
app.add_typer(semi_app, name="semi")
app.add_typer(distill_app, name="distill")
app.add_typer(ssl_app, name="ssl")
app.add_typer(data_app, name="data")


@app.command("report")
@user_errors
def report(
    run_dirs: list[Path] = typer.Argument(..., help="finished run directories, of any kind"),
    out: Path = typer.Option(Path("runs/index.html"), "--out", help="the page to write"),
) -> None:
    """Re-render each run's report.html and write one page over all of them."""
    from dlapps.reports import render_index, render_run

    for d in run_dirs:
        render_run(d)
    typer.echo(f"wrote {render_index(run_dirs, out)}")


def main() -> None:
    app(prog_name="dlapps")


if __name__ == "__main__":
    sys.exit(main())
