"""`dlapps transfer ...`: pretrained features + classifiers, the backbone/layer study, activations.

Thin wrappers over :mod:`dlapps.transfer.study`; heavy imports happen inside the commands.
"""

from __future__ import annotations

from pathlib import Path

import typer

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
SEEDS = typer.Option("0", "--seeds", help="e.g. 0,1,2 or 0:3 (each seed draws its own training subset)")
CS = typer.Option("1e-3:1e2", "--C", help="SVM C grid: a:b (decades) or a list 0.01,1,100")
PCA = typer.Option(None, "--pca", help="reduce features to this many PCA components before the SVM")
OUT = typer.Option(None, "--out", help="run directory (default runs/transfer-<time>)")
QUIET = typer.Option(False, "--quiet", help="no progress bars")


def parse_cs(text: str) -> list[float]:
    """``"1e-3:1e2"`` -> every decade from 1e-3 to 1e2; ``"0.1,1,10"`` -> that list."""
    import math

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
             backbone: str = typer.Option("efficientnet_lite0", "--backbone",
                                          help="alexnet, efficientnet_lite0, resnet18, squeezenet1_1, vgg16"),
             layer: str = typer.Option(None, "--layer", help="feature tap, e.g. vgg16 relu7/relu6/pool5 "
                                       "(default: the backbone's)"),
             classifier: str = typer.Option("all", "--classifier",
                                            help="svm|probe|fc|finetune|scratch|all, or a list"),
             per_class: int = PER_CLASS, test_per_class: int = TEST_PER_CLASS, seeds: str = SEEDS,
             image_size: int = IMAGE_SIZE, cs: str = CS, pca: int = PCA,
             epochs: int = typer.Option(None, "--epochs", help="epochs of fine-tuning / from scratch "
                                        "(default 4 offline, else 10)"),
             out: Path = OUT, quiet: bool = QUIET) -> None:
    """Compare classifiers on one backbone tap (runs when no sub-command is given)."""
    if ctx.invoked_subcommand is not None:
        return
    from dlapps.transfer.classifiers import CLASSIFIERS
    from dlapps.transfer.report import markdown_table
    from dlapps.transfer.study import TransferConfig, run_transfer

    names = list(CLASSIFIERS) if classifier == "all" else csv_list(classifier)
    cfg = TransferConfig(data=data, backbone=backbone, layer=layer, classifiers=names, per_class=per_class,
                         test_per_class=test_per_class, seeds=parse_seeds(seeds), image_size=image_size,
                         Cs=parse_cs(cs), pca=pca, epochs=epochs)
    out = out or default_run_dir("transfer")
    results = run_transfer(cfg, out, progress=not quiet)
    typer.echo(markdown_table(results))
    typer.echo(f"wrote {out / 'results.json'} and {out / 'report.html'}")


@app.command()
@user_errors
def study(data: str = typer.Option(..., "--data", help="a dlapps domain or imagefolder:PATH"),
          backbones: str = typer.Option("efficientnet_lite0", "--backbones", help="comma-separated"),
          layers: str = typer.Option(None, "--layers", help="comma-separated taps (default: each "
                                     "backbone's own); taps a backbone lacks are skipped"),
          per_class: int = PER_CLASS, test_per_class: int = TEST_PER_CLASS, seeds: str = SEEDS,
          image_size: int = IMAGE_SIZE, cs: str = CS, pca: int = PCA, out: Path = OUT,
          quiet: bool = QUIET) -> None:
    """Linear-SVM accuracy across backbones x layers, with the C sweep."""
    from dlapps.transfer.study import TransferConfig, run_study

    cfg = TransferConfig(per_class=per_class, test_per_class=test_per_class, seeds=parse_seeds(seeds),
                         image_size=image_size, Cs=parse_cs(cs), pca=pca)
    out = out or default_run_dir("transfer-study")
    results = run_study(data, csv_list(backbones), csv_list(layers), cfg, out, progress=not quiet)
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
                image_size: int = IMAGE_SIZE, out: Path = OUT) -> None:
    """First-convolution filters and activation maps of IMAGE, with its top-5 ImageNet classes."""
    from dlapps.transfer.study import first_conv_activations

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
