"""``dlapps explain ...``: look inside a CNN by its gradients with respect to the input.

    dlapps explain                                   everything below on the bundled photos, offline
    dlapps explain saliency IMAGE... [--method vanilla,smoothgrad,ig,gradcam]
    dlapps explain fool IMAGE... --target quail [--method naive,fgsm,pgd,pgd-l2,deepfool] [--epsilons ...]
    dlapps explain classvis --target "Yorkshire terrier" [--init IMAGE] [--lr 5 --l2 1e-3 --seeds 0,1 ...]
    dlapps explain compare --target tarantula        the class-visualisation settings as one grid
    dlapps explain activations IMAGE... [--layer first]

Every command takes --out, -q/--quiet, --device and --config FILE (a config.json of an earlier run
of the same command; the options given override it). Each is a thin wrapper over
:mod:`dlapps.explain.experiment`; heavy imports happen inside the commands.
"""

from __future__ import annotations

from pathlib import Path

import typer

from dlapps.cli_support import CONFIG, DEVICE, OUT, QUIET, SEEDS, csv_list, parse_seeds, user_errors
from dlapps.errors import ConfigError

app = typer.Typer(
    add_completion=False,
    pretty_exceptions_enable=False,
    help="Saliency maps, adversarial examples, class visualisation, activation maps.",
)

MODEL = typer.Option(
    None,
    help="efficientnet_lite0 (offline, the default), squeezenet1_1, vgg16, alexnet, resnet18 (downloaded "
    "once), or a dlapps adapt cell RUN_DIR/<method>-seed<k>",
)
IMAGES = typer.Argument(
    None, help="image files, folders, or bundled photos: chelsea, coffee, rocket, astronaut, motorcycle, ..."
)
IMAGE_SIZE = typer.Option(None, help="crop size (backbones; default their own, 224)")


def _numbers(text: str | None) -> list[float] | None:
    """``"0.5/255, 1/255, 0.01"`` -> floats; None stays None (option not given)."""
    if text is None:
        return None
    out = []
    for part in csv_list(text):
        try:
            num, _, den = part.partition("/")
            out.append(float(num) / (float(den) if den else 1.0))
        except ValueError:
            raise ConfigError(f"cannot read number {part!r}; write e.g. 2/255 or 0.01") from None
    return out


def _ints(text: str | None) -> list[int] | None:
    values = _numbers(text)
    return None if values is None else [int(v) for v in values]


def _device(device: str) -> str | None:
    """``--device``'s default (auto) does not override a ``--config`` file's device."""
    return None if device == "auto" else device


def _echo_done(results: dict) -> None:
    typer.echo(f"report: {Path(results['out']) / 'report.html'}")


@app.callback(invoke_without_command=True)
@user_errors
def explain(
    ctx: typer.Context,
    out: Path = OUT,
    image_size: int = typer.Option(None, help="crop size fed to the network; default 160"),
    quiet: bool = QUIET,
    device: str = DEVICE,
    config: Path = CONFIG,
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
    from dlapps.explain.config import AllConfig, merge_command
    from dlapps.explain.experiment import run_all

    cfg = merge_command(AllConfig, config, {"image_size": image_size, "device": _device(device)})
    res = run_all(cfg, out, progress=not quiet)
    for name, part in res["parts"].items():
        typer.echo(f"{name:12s} {part['seconds']:7.1f} s   {Path(res['out']) / name / 'report.html'}")
    _echo_done(res)


@app.command()
@user_errors
def saliency(
    images: list[str] = IMAGES,
    model: str = MODEL,
    method: str = typer.Option(
        None, help="comma-separated: vanilla, smoothgrad, ig, gradcam, gradcampp; "
        "default vanilla,smoothgrad,ig,gradcam"
    ),
    target: str = typer.Option(None, help="class to explain (name or index); default the prediction"),
    true: str = typer.Option(None, help="comma-separated true classes of the images, for the figure"),
    image_size: int = IMAGE_SIZE,
    rise_steps: int = typer.Option(None, help="points of the deletion/insertion curves; default 24"),
    patch: int = typer.Option(None, help="RISE tile size in pixels (default 1: single pixels, as RISE)"),
    deletion_to: str = typer.Option(
        None, help="what deleted pixels become: mean (default: zeros of the normalised input, as RISE) "
        "or black"
    ),
    out: Path = OUT,
    quiet: bool = QUIET,
    device: str = DEVICE,
    config: Path = CONFIG,
) -> None:
    """Saliency maps with the RISE deletion/insertion AUCs (against a random map)."""
    from dlapps.explain.config import SaliencyConfig, merge_command
    from dlapps.explain.experiment import run_saliency

    cfg = merge_command(SaliencyConfig, config, {
        "images": images or None, "model": model, "methods": csv_list(method), "target": target,
        "true_labels": csv_list(true), "image_size": image_size, "rise_steps": rise_steps, "patch": patch,
        "deletion_to": deletion_to, "device": _device(device)})
    res = run_saliency(cfg, out, progress=not quiet)
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
    images: list[str] = IMAGES,
    target: str = typer.Option(None, help="class to reach (name or index); untargeted when omitted"),
    method: str = typer.Option(None, help="comma-separated: naive (default), fgsm, pgd, pgd-l2, deepfool"),
    eps: str = typer.Option(None, help="budget of fgsm/pgd (L∞, e.g. 2/255) or pgd-l2 (L2)"),
    epsilons: str = typer.Option(
        None, help="success rate of fgsm/pgd at these L∞ ε, e.g. 0.5/255,1/255,2/255"
    ),
    l2_epsilons: str = typer.Option(None, help="success rate of naive/pgd-l2/deepfool at these L2 ε"),
    max_iter: int = typer.Option(None, help="iteration budget of naive and deepfool; default 100"),
    model: str = MODEL,
    image_size: int = IMAGE_SIZE,
    out: Path = OUT,
    quiet: bool = QUIET,
    device: str = DEVICE,
    config: Path = CONFIG,
) -> None:
    """Fooling images (targeted gradient ascent) and FGSM / PGD / DeepFool adversarial examples."""
    from dlapps.explain.config import FoolConfig, merge_command
    from dlapps.explain.experiment import run_fool

    eps_value = _numbers(eps)
    cfg = merge_command(FoolConfig, config, {
        "images": images or None, "target": target, "methods": csv_list(method),
        "eps": eps_value[0] if eps_value else None, "epsilons": _numbers(epsilons),
        "l2_epsilons": _numbers(l2_epsilons), "max_iter": max_iter, "model": model,
        "image_size": image_size, "device": _device(device)})
    res = run_fool(cfg, out, progress=not quiet)
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
    target: str = typer.Option(None, help="comma-separated classes (names or indices)"),
    init: str = typer.Option(None, help="start from this image instead of noise"),
    iters: int = typer.Option(None, help="gradient-ascent iterations; default 200"),
    lr: float = typer.Option(None, help="L2 length of each step in pixel units; default 5"),
    l2: float = typer.Option(None, help="λ of the L2 penalty; default 1e-3"),
    blur_every: int = typer.Option(None, help="Gaussian blur every N iterations (0: never); default 10"),
    blur_sigma: float = typer.Option(None, help="std of that blur in pixels; default 0.5"),
    jitter: int = typer.Option(None, help="maximal random shift in pixels; default 16"),
    seeds: str = SEEDS,
    model: str = MODEL,
    image_size: int = IMAGE_SIZE,
    out: Path = OUT,
    quiet: bool = QUIET,
    device: str = DEVICE,
    config: Path = CONFIG,
) -> None:
    """Class model visualisation: maximise score − λ‖x‖² with jitter, blur and clamping.

    One image per target and seed (the seed draws the starting noise and the jitter)."""
    from dlapps.explain.config import ClassVisConfig, merge_command
    from dlapps.explain.experiment import run_classvis

    cfg = merge_command(ClassVisConfig, config, {
        "targets": csv_list(target), "init": init, "iters": iters, "lr": lr, "l2": l2,
        "blur_every": blur_every, "blur_sigma": blur_sigma, "jitter": jitter, "seeds": parse_seeds(seeds),
        "model": model, "image_size": image_size, "device": _device(device)})
    res = run_classvis(cfg, out, progress=not quiet)
    for r in res["targets"]:
        seed = f" seed {r['seed']}" if len(cfg.seeds) > 1 else ""
        typer.echo(
            f"{r['target']}{seed}: probability {r['probability']:.3f} after {cfg.iters} iterations "
            f"({r['seconds']:.1f} s)"
        )
    _echo_done(res)


@app.command()
@user_errors
def compare(
    target: str = typer.Option(None, help="class (name or index)"),
    iters: str = typer.Option(
        None, help="iteration counts shown (snapshots of one run); default 25,50,100,200"
    ),
    lr: str = typer.Option(None, help="learning rates tried; default 1,5,25"),
    l2: str = typer.Option(None, help="L2 penalties tried; default 0,1e-3,1e-2"),
    blur_every: str = typer.Option(None, help="blur frequencies tried; default 0,10,50"),
    init: str = typer.Option(None, help="start from this image instead of noise"),
    seeds: str = SEEDS,
    model: str = MODEL,
    image_size: int = IMAGE_SIZE,
    out: Path = OUT,
    quiet: bool = QUIET,
    device: str = DEVICE,
    config: Path = CONFIG,
) -> None:
    """The class-visualisation settings compared as one grid (one parameter varied per row)."""
    from dlapps.explain.config import CompareConfig, merge_command
    from dlapps.explain.experiment import run_compare

    cfg = merge_command(CompareConfig, config, {
        "target": target, "iters": _ints(iters), "lr": _numbers(lr), "l2": _numbers(l2),
        "blur_every": _ints(blur_every), "init": init, "seeds": parse_seeds(seeds), "model": model,
        "image_size": image_size, "device": _device(device)})
    res = run_compare(cfg, out, progress=not quiet)
    for r in res["grid"]:
        seed = f"seed {r['seed']}  " if len(cfg.seeds) > 1 else ""
        typer.echo(f"{seed}{r['parameter']:10s} {r['value']:<8g} probability {r['probability']:.3f}")
    _echo_done(res)


@app.command()
@user_errors
def activations(
    images: list[str] = IMAGES,
    layer: str = typer.Option(None, help="'first' (the first convolution, default) or a module path"),
    count: int = typer.Option(None, help="channels shown; default 16"),
    model: str = MODEL,
    image_size: int = IMAGE_SIZE,
    out: Path = OUT,
    quiet: bool = QUIET,
    device: str = DEVICE,
    config: Path = CONFIG,
) -> None:
    """Activation maps of a layer (default: the first 16 filters of the first convolution)."""
    from dlapps.explain.config import ActivationsConfig, merge_command
    from dlapps.explain.experiment import run_activations

    cfg = merge_command(ActivationsConfig, config, {
        "images": images or None, "layer": layer, "count": count, "model": model, "image_size": image_size,
        "device": _device(device)})
    res = run_activations(cfg, out, progress=not quiet)
    for r in res["images"]:
        typer.echo(f"{r['image']}: {r['channels']} maps of {r['size'][0]}x{r['size'][1]} from {r['layer']}")
    _echo_done(res)
