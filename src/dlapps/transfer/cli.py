"""``dlapps transfer``: pretrained features + classifiers (thin wrappers over
:mod:`dlapps.transfer.experiment`; heavy imports happen inside the commands).

    dlapps transfer [OPTIONS]            classifiers on one backbone tap (default: offline, Fashion-MNIST)
    dlapps transfer compare [OPTIONS]    the SVM on every backbone x tap: the grid and its table
    dlapps transfer activations IMAGE    first-convolution filters and maps of one image
    dlapps transfer layers [BACKBONE]    the taps a --layer can name

Running a training command again with the same ``--out`` continues the run there. The cells of a
training command run in ``--workers`` processes of this machine, or as Slurm jobs or Ray tasks
(``--launcher slurm|ray``, settings by ``--launcher-option KEY=VALUE``).
"""

from __future__ import annotations

from pathlib import Path

import typer

from dlapps import cli_support as opt
from dlapps.cli_support import csv_list, default_run_dir, parse_seeds, user_errors
from dlapps.errors import ConfigError

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False, invoke_without_command=True,
                  help="Transfer learning: ImageNet features + SVM / probe / FC head vs fine-tuning "
                       "and training from scratch. With no arguments: the offline default.")

DATA = typer.Option(None, "--data", help="a dlapps domain or imagefolder:PATH "
                    "(default: Fashion-MNIST if installed, else mnist5k; 100 images/class, 64 px)")
IMAGE_SIZE = typer.Option(None, "--image-size", help="network input side (default: the backbone's, "
                          "224; 64 for the offline default)")
PER_CLASS = typer.Option(None, "--per-class", help="labelled training images per class (0 = all)")
TEST_PER_CLASS = typer.Option(None, "--test-per-class", help="test images per class (0 = all)")
CS = typer.Option(None, "--C", help="SVM C grid: a:b (decades) or a list 0.01,1,100; default 1e-3:1e2")
PCA = typer.Option(None, "--pca", help="reduce features to this many PCA components before the SVM")


def parse_cs(text: str | None) -> list[float] | None:
    """``"1e-3:1e2"`` -> every decade from 1e-3 to 1e2; ``"0.1,1,10"`` -> that list."""
    import math

    if text is None:
        return None
    try:
        if ":" in text:
            lo, hi = (math.log10(float(v)) for v in text.split(":"))
            return [10.0 ** e for e in range(round(lo), round(hi) + 1)]
        return [float(v) for v in csv_list(text)]
    except ValueError:
        raise ConfigError(f"--C takes a:b (decades) or a list like 0.1,1,10, got {text!r}") from None


@app.callback()
@user_errors
def transfer(ctx: typer.Context, data: str = DATA,
             backbone: str = typer.Option(None, "--backbone", help="alexnet, efficientnet_lite0 (default), "
                                          "resnet18, squeezenet1_1, vgg16"),
             layer: str = typer.Option(None, "--layer", help="feature tap, e.g. vgg16 relu7/relu6/pool5 "
                                       "(default: the backbone's)"),
             classifier: str = typer.Option(None, "--classifier",
                                            help="svm|probe|fc|finetune|scratch|all (default), or a list"),
             per_class: int = PER_CLASS, test_per_class: int = TEST_PER_CLASS, seeds: str = opt.SEEDS,
             image_size: int = IMAGE_SIZE, cs: str = CS, pca: int = PCA,
             epochs: int = typer.Option(None, "--epochs", help="epochs of fine-tuning / from scratch "
                                        "(default 4 offline, else 10)"),
             out: Path = opt.OUT, quiet: bool = opt.QUIET, workers: int = opt.WORKERS,
             launcher: str = opt.LAUNCHER, launcher_option: list[str] = opt.LAUNCHER_OPTION,
             device: str = opt.DEVICE, config: Path = opt.CONFIG) -> None:
    """Compare classifiers on one backbone tap (runs when no sub-command is given)."""
    if ctx.invoked_subcommand is not None:
        return
    from dlapps.config import merge
    from dlapps.engine.launchers import parse_launcher
    from dlapps.transfer.config import TransferConfig
    from dlapps.transfer.experiment import run_transfer
    from dlapps.transfer.report import summary_markdown

    names = None if classifier in (None, "all") else csv_list(classifier)
    cfg = merge(TransferConfig, config, dict(
        data=data, backbone=backbone, layer=layer, classifiers=names, per_class=per_class,
        test_per_class=test_per_class, seeds=parse_seeds(seeds), image_size=image_size, Cs=parse_cs(cs),
        pca=pca, epochs=epochs, device=device))
    out = out or default_run_dir("transfer")
    results = run_transfer(cfg, out, progress=not quiet, workers=workers,
                           launcher=parse_launcher(launcher, launcher_option))
    typer.echo(summary_markdown(results))
    typer.echo(f"wrote {out / 'results.json'} and {out / 'report.html'}")


@app.command()
@user_errors
def compare(data: str = typer.Option(None, "--data", help="a dlapps domain or imagefolder:PATH (default: "
                                     "the offline default's)"),
            backbones: str = typer.Option(None, "--backbones", help="comma-separated; default "
                                          "efficientnet_lite0"),
            layers: str = typer.Option(None, "--layers", help="comma-separated taps (default: each "
                                       "backbone's own); taps a backbone lacks are skipped"),
            per_class: int = PER_CLASS, test_per_class: int = TEST_PER_CLASS, seeds: str = opt.SEEDS,
            image_size: int = IMAGE_SIZE, cs: str = CS, pca: int = PCA, out: Path = opt.OUT,
            quiet: bool = opt.QUIET, workers: int = opt.WORKERS, launcher: str = opt.LAUNCHER,
            launcher_option: list[str] = opt.LAUNCHER_OPTION, device: str = opt.DEVICE,
            config: Path = opt.CONFIG) -> None:
    """Linear-SVM accuracy across backbones x layers, with the C sweep (the grid runner)."""
    from dlapps.config import merge
    from dlapps.engine.launchers import parse_launcher
    from dlapps.transfer.config import CompareConfig
    from dlapps.transfer.experiment import run_compare

    cfg = merge(CompareConfig, config, dict(
        data=data, backbones=csv_list(backbones), layers=csv_list(layers), per_class=per_class,
        test_per_class=test_per_class, seeds=parse_seeds(seeds), image_size=image_size, Cs=parse_cs(cs),
        pca=pca, device=device))
    out = out or default_run_dir("transfer-compare")
    results = run_compare(cfg, out, progress=not quiet, workers=workers,
                          launcher=parse_launcher(launcher, launcher_option))
    for c in results["cells"]:
        typer.echo(f"{c['backbone']:>18} {c['layer']:>8}  {100 * c['test_acc']:.2f}% "
                   f"± {100 * c['test_acc_std']:.2f}")
    for s in results["skipped"]:
        typer.echo(f"skipped {s['backbone']}/{s['layer']}: its taps are {', '.join(s['taps'])}")
    typer.echo(f"wrote {out / 'report.html'}")


@app.command()
@user_errors
def activations(image: Path = typer.Argument(..., help="an image file"),
                backbone: str = typer.Option("efficientnet_lite0", "--backbone"),
                image_size: int = IMAGE_SIZE, out: Path = opt.OUT) -> None:
    """First-convolution filters and activation maps of IMAGE, with its top-5 ImageNet classes."""
    from dlapps.transfer.experiment import first_conv_activations

    out = out or default_run_dir("transfer-activations")
    results = first_conv_activations(image, backbone, out, image_size)
    for t in results["top5"]:
        typer.echo(f"{t['p']:.3f}  {t['class']}")
    typer.echo(f"wrote {out / 'report.html'}")


@app.command()
@user_errors
def layers(backbone: str = typer.Argument("efficientnet_lite0")) -> None:
    """The named taps of BACKBONE, then every graph node usable as --layer."""
    from dlapps.models.pretrained import graph_nodes, load_backbone

    b = load_backbone(backbone, pretrained=False)
    for name, node in b.taps.items():
        typer.echo(f"{name:>10} = {node}{'  (default)' if name == b.default_tap else ''}")
    typer.echo(" ".join(graph_nodes(b.net)))
