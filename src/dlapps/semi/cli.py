"""``dlapps semi``: semi-supervised learning on few labels (a thin wrapper over dlapps.semi).

    dlapps semi                                      the embedded default: mnist5k, 1,000 labels,
                                                     supervised / pseudo-label / fixmatch
    dlapps semi --labels 10,20,1000 --methods supervised,pseudo-label     the lecture's failure cases
    dlapps semi --missing-class 7                    one class gets no labels
    dlapps semi --data fashion --labels 1000 --seeds 0:3

Running it again with the same --out continues a killed run.
"""

from __future__ import annotations

from pathlib import Path

import typer

from dlapps import cli_support as opt
from dlapps.cli_support import (
    csv_list,
    default_run_dir,
    parse_ints,
    parse_method_options,
    parse_seeds,
    user_errors,
)
from dlapps.engine.launchers import parse_launcher

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False,
                  help="Semi-supervised learning on few labels: supervised, pseudo-label (Lee 2013), "
                       "mean-teacher, fixmatch, full. With no options: the offline default.")


@app.callback(invoke_without_command=True)
@user_errors
def semi(
    data: str = typer.Option(None, help="mnist5k (default, offline), fashion, mnist, imagefolder:PATH, ..."),
    labels: str = typer.Option(None, help="labelled images in total, drawn class-balanced: 1000 (default) "
                                          "or a list 10,20,1000"),
    missing_class: str = typer.Option(None, "--missing-class",
                                      help="a class (index or name) given no labels"),
    methods: str = typer.Option(None, help="supervised,pseudo-label,fixmatch (default), mean-teacher, full"),
    epochs: int = typer.Option(None, help="passes over the unlabelled set"),
    batch_size: int = typer.Option(None, "--batch-size", help="labelled images per step"),
    unlabelled_batch: int = typer.Option(None, "--unlabelled-batch", help="unlabelled images per step"),
    lr: float = typer.Option(None, help="SGD learning rate (cosine schedule)"),
    option: list[str] = typer.Option(None, "--option",
                                     help="METHOD.SETTING=VALUE, e.g. fixmatch.threshold=0.9 (repeatable)"),
    tsne: bool = typer.Option(None, "--tsne/--no-tsne", help="t-SNE snapshots of pseudo-labelling"),
    channels_last: bool = typer.Option(None, "--channels-last/--no-channels-last",
                                       help="convolutions in NHWC memory format (default on)"),
    seeds: str = opt.SEEDS, out: Path = opt.OUT, quiet: bool = opt.QUIET, workers: int = opt.WORKERS,
    launcher: str = opt.LAUNCHER, launcher_option: list[str] = opt.LAUNCHER_OPTION,
    device: str = opt.DEVICE, config: Path = opt.CONFIG,
) -> None:
    """Train each method on the labelled and unlabelled images; table, figures and report."""
    from dlapps.config import merge
    from dlapps.semi.config import SemiConfig
    from dlapps.semi.experiment import run_semi
    from dlapps.semi.report import table_markdown

    cfg = merge(SemiConfig, config, {
        "data": data, "labels": parse_ints(labels, "--labels", "whole numbers like 1000 or 10,20,1000"),
        "missing_class": missing_class,
        "methods": csv_list(methods), "epochs": epochs, "batch_size": batch_size,
        "unlabelled_batch": unlabelled_batch, "lr": lr, "method_options": parse_method_options(option),
        "tsne": tsne, "channels_last": channels_last, "seeds": parse_seeds(seeds), "device": device})
    out = out or default_run_dir("semi")
    results = run_semi(cfg, out, progress=not quiet, workers=workers,
                       launcher=parse_launcher(launcher, launcher_option))
    typer.echo(table_markdown(results), nl=False)
    lec = results["lecture"]
    typer.echo(f"lecture (full MNIST, 1,000 labels): supervised {lec['supervised']['test_acc']:.2%}, "
               f"pseudo-label {lec['pseudo-label']['test_acc']:.2%}")
    typer.echo(f"results in {out}/results.json, report in {out}/report.html")
