"""``dlapps ssl``: self-supervised and unsupervised representation learning (a thin wrapper
over dlapps.ssl).

    dlapps ssl                                     the embedded default: Fashion-MNIST, random /
                                                   rotation / simclr / deepcluster / supervised,
                                                   judged by probe, k-NN, k-means, fine-tuning
                                                   on 1% of the labels
    dlapps ssl --methods list                      every method, with one line each
    dlapps ssl --methods random,jigsaw,moco,dac,tl-vae --seeds 0:3
    dlapps ssl --probe-labels 1%,10%,100% --finetune-labels 1%,10%
    dlapps ssl --data cifar10 --epochs 200         online: CIFAR-10 (published numbers beside)

Running it again with the same --out continues a killed run.
"""

from __future__ import annotations

from pathlib import Path

import typer

from dlapps import cli_support as opt
from dlapps.cli_support import csv_list, default_run_dir, parse_method_options, parse_seeds, user_errors
from dlapps.engine.launchers import parse_launcher

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False,
                  help="Self-supervised and unsupervised learning: pretext tasks, contrastive learning, "
                       "clustering, each encoder judged by a linear probe, k-NN, k-means and few-label "
                       "fine-tuning. With no options: the offline default.")


@app.callback(invoke_without_command=True)
@user_errors
def ssl(
    data: str = typer.Option(None, help="fashion (default, offline), mnist5k, cifar10, imagefolder:PATH"),
    methods: str = typer.Option(None, help="random,rotation,simclr,deepcluster,supervised (default); "
                                           "`list` shows every method"),
    epochs: int = typer.Option(None, help="passes over the pretraining set"),
    pretrain_images: int = typer.Option(None, "--pretrain-images",
                                        help="training images used for pretraining (0: all)"),
    batch_size: int = typer.Option(None, "--batch-size"),
    lr: float = typer.Option(None, help="Adam learning rate (cosine schedule)"),
    width: int = typer.Option(None, help="encoder width (channels width, 2·width, 4·width)"),
    image_size: int = typer.Option(None, "--image-size", help="resize images to this side"),
    probe_labels: str = typer.Option(None, "--probe-labels", help="label amounts for the linear probe: "
                                                                  "1%,10%,100% (default) or counts"),
    finetune_labels: str = typer.Option(None, "--finetune-labels", help="label amounts for fine-tuning: 1%"),
    finetune_steps: int = typer.Option(None, "--finetune-steps", help="Adam steps of each fine-tuning"),
    option: list[str] = typer.Option(None, "--option",
                                     help="METHOD.SETTING=VALUE, e.g. simclr.temperature=0.2 (repeatable)"),
    tsne: bool = typer.Option(None, "--tsne/--no-tsne", help="t-SNE of every encoder's features"),
    seeds: str = opt.SEEDS, out: Path = opt.OUT, quiet: bool = opt.QUIET, workers: int = opt.WORKERS,
    launcher: str = opt.LAUNCHER, launcher_option: list[str] = opt.LAUNCHER_OPTION,
    device: str = opt.DEVICE, config: Path = opt.CONFIG,
) -> None:
    """Pretrain each method's encoder without labels, then judge its features; table, figures, report."""
    from dlapps.config import merge
    from dlapps.ssl.config import SslConfig
    from dlapps.ssl.methods import METHODS

    if methods is not None and methods.strip() == "list":
        for name, cls in METHODS.items():
            typer.echo(f"{name:15s} {cls.family:12s} {cls.description}")
        return
    from dlapps.ssl.experiment import run_ssl
    from dlapps.ssl.report import table_markdown

    cfg = merge(SslConfig, config, {
        "data": data, "methods": csv_list(methods), "epochs": epochs, "pretrain_images": pretrain_images,
        "batch_size": batch_size, "lr": lr, "width": width, "image_size": image_size,
        "probe_labels": csv_list(probe_labels), "finetune_labels": csv_list(finetune_labels),
        "finetune_steps": finetune_steps,
        "method_options": parse_method_options(option), "tsne": tsne, "seeds": parse_seeds(seeds),
        "device": device})
    out = out or default_run_dir("ssl")
    results = run_ssl(cfg, out, progress=not quiet, workers=workers,
                       launcher=parse_launcher(launcher, launcher_option))
    typer.echo(table_markdown(results), nl=False)
    typer.echo(f"results in {out}/results.json, report in {out}/report.html")
