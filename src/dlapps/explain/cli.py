"""``dlapps explain ...``: look inside a CNN by its gradients with respect to the input.

    dlapps explain                                   everything below on the bundled photos, offline
    dlapps explain saliency IMAGE... [--method vanilla,smoothgrad,ig,gradcam]
    dlapps explain fool IMAGE... --target quail [--method naive,fgsm,pgd,pgd-l2,deepfool] [--epsilons ...]
    dlapps explain classvis --target "Yorkshire terrier" [--init IMAGE] [--lr 5 --l2 1e-3 ...]
    dlapps explain sweep --target tarantula
    dlapps explain activations IMAGE... [--layer first]

Each is a thin wrapper over :mod:`dlapps.explain.run`; heavy imports happen inside the commands.
"""

from __future__ import annotations

from pathlib import Path

import typer

from dlapps.cli_support import csv_list, user_errors
from dlapps.errors import ConfigError

app = typer.Typer(
    add_completion=False,
    pretty_exceptions_enable=False,
    help="Saliency maps, adversarial examples, class visualisation, activation maps.",
)

MODEL_HELP = (
    "efficientnet_lite0 (offline), squeezenet1_1, vgg16, alexnet, resnet18 (downloaded once), "
    "or a dlapps adapt cell RUN_DIR/<method>-seed<k>"
)
IMAGES_HELP = (
    "image files, folders, or bundled photos: chelsea, coffee, rocket, astronaut, motorcycle, camera, ..."
)


def _parse_eps(text: str | None) -> list[float]:
    """``"0.5/255, 1/255, 0.01"`` -> floats."""
    out = []
    for part in csv_list(text) or []:
        try:
            num, _, den = part.partition("/")
            out.append(float(num) / (float(den) if den else 1.0))
        except ValueError:
            raise ConfigError(f"cannot read epsilon {part!r}; write e.g. 2/255 or 0.01") from None
    return out


def _echo_done(results: dict) -> None:
    typer.echo(f"report: {Path(results['out']) / 'report.html'}")


@app.callback(invoke_without_command=True)
@user_errors
def explain(
    ctx: typer.Context,
    out: Path = typer.Option(None, help="output directory; default runs/explain-<timestamp>"),
    image_size: int = typer.Option(160, help="crop size fed to the network"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress bars"),
    threads: int = typer.Option(
        None,
        help="CPU threads for torch (all explain commands); on a busy "
        "machine 1 can be many times faster than 2",
    ),
) -> None:
    """With no sub-command: saliency, attacks, class visualisation and activations of the offline
    EfficientNet-Lite0 on four bundled photos (a few minutes on a CPU)."""
    if threads:
        import torch

        torch.set_num_threads(threads)
    if ctx.invoked_subcommand is not None:
        return
    from dlapps.cli_support import default_run_dir
    from dlapps.explain.run import run_all

    out = out or default_run_dir("explain")
    res = run_all(out, image_size=image_size, progress=not quiet)
    for name, part in res["parts"].items():
        typer.echo(f"{name:12s} {part['seconds']:7.1f} s   {out / name / 'report.html'}")
    typer.echo(f"report: {out / 'report.html'}")


@app.command()
@user_errors
def saliency(
    images: list[str] = typer.Argument(..., help=IMAGES_HELP),
    model: str = typer.Option("efficientnet_lite0", help=MODEL_HELP),
    method: str = typer.Option(
        "vanilla,smoothgrad,ig,gradcam", help="comma-separated: vanilla, smoothgrad, ig, gradcam, gradcampp"
    ),
    target: str = typer.Option(None, help="class to explain (name or index); default the prediction"),
    true: str = typer.Option(None, help="comma-separated true classes of the images, for the figure"),
    image_size: int = typer.Option(None, help="crop size (backbones; default their own, 224)"),
    rise_steps: int = typer.Option(24, help="points of the deletion/insertion curves"),
    patch: int = typer.Option(1, help="RISE tile size in pixels (1: single pixels, as RISE)"),
    deletion_to: str = typer.Option(
        "mean", help="what deleted pixels become: mean (zeros of the normalised input, as RISE) or black"
    ),
    out: Path = typer.Option(None, help="output directory; default runs/explain-saliency-<timestamp>"),
) -> None:
    """Saliency maps with the RISE deletion/insertion AUCs (against a random map)."""
    from dlapps.explain.run import run_saliency

    res = run_saliency(
        images, model, csv_list(method), target, csv_list(true), out, image_size, rise_steps, patch,
        deletion_to=deletion_to,
    )
    for name, s in res["summary"].items():
        typer.echo(
            f"{name:11s} deletion AUC {s['deletion_auc']:.3f}  insertion AUC {s['insertion_auc']:.3f}  "
            f"{s['seconds_per_map']:.2f} s/map"
        )
    for r in res["images"]:
        typer.echo(f"{r['image']}: {r['predicted']} ({r['probability']:.2f})")
    _echo_done(res)


@app.command()
@user_errors
def fool(
    images: list[str] = typer.Argument(..., help=IMAGES_HELP),
    target: str = typer.Option(None, help="class to reach (name or index); untargeted when omitted"),
    method: str = typer.Option("naive", help="comma-separated: naive, fgsm, pgd, pgd-l2, deepfool"),
    eps: str = typer.Option(None, help="budget of fgsm/pgd (L∞, e.g. 2/255) or pgd-l2 (L2)"),
    epsilons: str = typer.Option(
        None, help="success rate of fgsm/pgd at these L∞ ε, e.g. 0.5/255,1/255,2/255"
    ),
    l2_epsilons: str = typer.Option(None, help="success rate of naive/pgd-l2/deepfool at these L2 ε"),
    max_iter: int = typer.Option(100, help="iteration budget of naive and deepfool"),
    model: str = typer.Option("efficientnet_lite0", help=MODEL_HELP),
    image_size: int = typer.Option(None, help="crop size (backbones; default their own, 224)"),
    out: Path = typer.Option(None, help="output directory; default runs/explain-fool-<timestamp>"),
) -> None:
    """Fooling images (targeted gradient ascent) and FGSM / PGD / DeepFool adversarial examples."""
    from dlapps.explain.run import run_fool

    eps_value = _parse_eps(eps)[0] if eps else None
    res = run_fool(
        images,
        model,
        target,
        csv_list(method),
        eps_value,
        _parse_eps(epsilons),
        _parse_eps(l2_epsilons),
        out,
        image_size,
        max_iter,
    )
    for r in res["images"]:
        status = "success" if r["success"] else "FAILED"
        typer.echo(
            f"{r['method']:9s} {r['image']}: {r['original']} -> {r['prediction']} ({r['probability']:.2f}) "
            f"{status} after {r['iterations']} iterations, L2 {r['l2']:.3f}, Linf {r['linf'] * 255:.2f}/255"
            + (f"  [{r['note']}]" if r["note"] else "")
        )
    _echo_done(res)


@app.command()
@user_errors
def classvis(
    target: str = typer.Option(..., help="comma-separated classes (names or indices)"),
    init: str = typer.Option(None, help="start from this image instead of noise"),
    iters: int = typer.Option(200, help="gradient-ascent iterations"),
    lr: float = typer.Option(5.0, help="L2 length of each step in pixel units"),
    l2: float = typer.Option(1e-3, help="λ of the L2 penalty"),
    blur_every: int = typer.Option(10, help="Gaussian blur every N iterations (0: never)"),
    blur_sigma: float = typer.Option(0.5, help="std of that blur in pixels"),
    jitter: int = typer.Option(16, help="maximal random shift in pixels"),
    seed: int = typer.Option(0, help="seed of the noise and the jitter"),
    model: str = typer.Option("efficientnet_lite0", help=MODEL_HELP),
    image_size: int = typer.Option(None, help="crop size (backbones; default their own, 224)"),
    out: Path = typer.Option(None, help="output directory; default runs/explain-classvis-<timestamp>"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress bars"),
) -> None:
    """Class model visualisation: maximise score − λ‖x‖² with jitter, blur and clamping."""
    from dlapps.explain.classvis import ClassVisSettings
    from dlapps.explain.run import run_classvis

    settings = ClassVisSettings(iters, lr, l2, blur_every, blur_sigma, jitter, seed)
    res = run_classvis(csv_list(target), model, settings, init, out, image_size, progress=not quiet)
    for r in res["targets"]:
        typer.echo(
            f"{r['target']}: probability {r['probability']:.3f} after {iters} iterations "
            f"({r['seconds']:.1f} s)"
        )
    _echo_done(res)


@app.command()
@user_errors
def sweep(
    target: str = typer.Option(..., help="class (name or index)"),
    iters: str = typer.Option("25,50,100,200", help="iteration counts shown (snapshots of one run)"),
    lr: str = typer.Option("1,5,25", help="learning rates tried"),
    l2: str = typer.Option("0,1e-3,1e-2", help="L2 penalties tried"),
    blur_every: str = typer.Option("0,10,50", help="blur frequencies tried"),
    init: str = typer.Option(None, help="start from this image instead of noise"),
    model: str = typer.Option("efficientnet_lite0", help=MODEL_HELP),
    image_size: int = typer.Option(None, help="crop size (backbones; default their own, 224)"),
    out: Path = typer.Option(None, help="output directory; default runs/explain-sweep-<timestamp>"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress bars"),
) -> None:
    """The class-visualisation parameter study as one grid (one parameter varied per row)."""
    from dlapps.explain.classvis import ClassVisSettings
    from dlapps.explain.run import run_sweep

    points = [int(v) for v in _parse_eps(iters)]
    base = ClassVisSettings(iters=max(points))
    grid = {
        "lr": _parse_eps(lr),
        "l2": _parse_eps(l2),
        "blur_every": [int(v) for v in _parse_eps(blur_every)],
    }
    res = run_sweep(target, model, base, grid, points, init, out, image_size, progress=not quiet)
    for r in res["grid"]:
        typer.echo(f"{r['parameter']:10s} {r['value']:<8g} probability {r['probability']:.3f}")
    _echo_done(res)


@app.command()
@user_errors
def activations(
    images: list[str] = typer.Argument(..., help=IMAGES_HELP),
    layer: str = typer.Option("first", help="'first' (the first convolution) or a module path"),
    count: int = typer.Option(16, help="channels shown"),
    model: str = typer.Option("efficientnet_lite0", help=MODEL_HELP),
    image_size: int = typer.Option(None, help="crop size (backbones; default their own, 224)"),
    out: Path = typer.Option(None, help="output directory; default runs/explain-activations-<timestamp>"),
) -> None:
    """Activation maps of a layer (default: the first 16 filters of the first convolution)."""
    from dlapps.explain.run import run_activations

    res = run_activations(images, model, layer, count, out, image_size)
    for r in res["images"]:
        typer.echo(f"{r['image']}: {r['channels']} maps of {r['size'][0]}x{r['size'][1]} from {r['layer']}")
    _echo_done(res)
