"""``dlapps explain ...``: look inside a CNN by its gradients with respect to the input.

    dlapps explain                                   everything below on the bundled photos, offline
    dlapps explain saliency IMAGE... [--method vanilla,smoothgrad,ig,gradcam,ig+smoothgrad,...]
                    [--baseline black|blurred|uniform] [--steps 32] [--n 16 --sigma 0.15] [--reduction ...]
    dlapps explain sanity IMAGE... [--checks model,data] [--method vanilla,smoothgrad,ig,gradcam,edge]
    dlapps explain fool IMAGE... --target quail [--method naive,fgsm,pgd,pgd-l2,deepfool] [--epsilons ...]
    dlapps explain classvis --target "Yorkshire terrier" [--init IMAGE] [--lr 5 --l2 1e-3 --seeds 0,1 ...]
    dlapps explain compare --target tarantula        the class-visualisation settings as one grid
    dlapps explain activations IMAGE... [--layer first]

Every command takes --out, -q/--quiet, --device and --config FILE (a config.json of an earlier run
of the same command; the options given override it). Each is a thin wrapper over
:mod:`dlapps.explain.experiment`; heavy imports happen inside the commands.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

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
C = TypeVar("C")
METHOD_HELP = ("comma-separated: vanilla, smoothgrad, ig, gradcam, gradcampp, edge (a model-free control), "
               "and any of them smoothed: <method>+smoothgrad, <method>+vargrad (e.g. ig+smoothgrad)")
REDUCTION = typer.Option(None, help="channels -> map: max-abs, sum, sum-abs, abs-sum; "
                         "default each method's own")
BASELINE = typer.Option(None, help="Integrated Gradients' baseline: black (default), blurred, uniform "
                        "(noise averaged: expected gradients)")
STEPS = typer.Option(None, help="Integrated Gradients' Riemann steps (the first, with --ig-tolerance); "
                     "default 32")
IG_TOLERANCE = typer.Option(None, help="completeness gap IG triples its steps until (0: exactly --steps)")
IG_MAX_STEPS = typer.Option(None, help="IG's refinement stops before passing this; default 2592")
IG_MAX_SECONDS = typer.Option(None, help="... or this time (seconds per batch); default 600")
N = typer.Option(None, help="noisy copies of SmoothGrad / VarGrad; default 16")
SIGMA = typer.Option(None, help="their noise std in pixel units ([0,1] images); default 0.15")


def _method_options(method: str | None, reduction: str | None, baseline: str | None, steps: int | None,
                    ig_tolerance: float | None, ig_max_steps: int | None, ig_max_seconds: float | None,
                    n: int | None, sigma: float | None) -> dict[str, Any]:
    """The settings every map-making command shares, as config overrides."""
    return {"methods": csv_list(method), "reduction": reduction, "baseline": baseline, "steps": steps,
            "ig_tolerance": ig_tolerance, "ig_max_steps": ig_max_steps, "ig_max_seconds": ig_max_seconds,
            "n": n, "sigma": sigma}


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


def _run(cls: type[C], run: Callable[..., dict], config: Path | None, out: Path | None, quiet: bool,
         device: str, **options: Any) -> tuple[C, dict]:
    """``--config FILE`` then the given ``options`` merged into a ``cls`` config, run by ``run``:
    (the config, the results)."""
    from dlapps.explain.config import merge_command

    cfg = merge_command(cls, config, {**options, "device": _device(device)})
    return cfg, run(cfg, out, progress=not quiet)


def _echo(results: dict, lines: Iterable[str]) -> None:
    """The command's summary lines, then where its report is."""
    for line in lines:
        typer.echo(line)
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
    from dlapps.explain.config import AllConfig
    from dlapps.explain.experiment import run_all

    _, res = _run(AllConfig, run_all, config, out, quiet, device, image_size=image_size)
    _echo(res, (f"{name:12s} {part['seconds']:7.1f} s   {Path(res['out']) / name / 'report.html'}"
                for name, part in res["parts"].items()))


@app.command()
@user_errors
def saliency(
    images: list[str] = IMAGES,
    method: str = typer.Option(None, help=METHOD_HELP + "; default vanilla,smoothgrad,ig,gradcam"),
    target: str = typer.Option(None, help="class to explain (name or index); default the prediction"),
    true: str = typer.Option(None, help="comma-separated true classes of the images, for the figure"),
    reduction: str = REDUCTION, baseline: str = BASELINE, steps: int = STEPS,
    ig_tolerance: float = IG_TOLERANCE, ig_max_steps: int = IG_MAX_STEPS,
    ig_max_seconds: float = IG_MAX_SECONDS, n: int = N, sigma: float = SIGMA,
    rise_steps: int = typer.Option(None, help="points of the deletion/insertion curves; default 24"),
    patch: int = typer.Option(None, help="RISE tile size in pixels (default 1: single pixels, as RISE)"),
    deletion_to: str = typer.Option(
        None, help="what deleted pixels become: mean (default: zeros of the normalised input, as RISE) "
        "or black"
    ),
    faithfulness_runs: int = typer.Option(None, help="random pixel subsets of the faithfulness correlation; "
                                          "default 100"),
    faithfulness_subset: int = typer.Option(None, help="pixels per subset; default 224"),
    sensitivity_samples: int = typer.Option(None, help="perturbations of max-sensitivity (0: skip); "
                                            "default 5"),
    model: str = MODEL, image_size: int = IMAGE_SIZE,
    out: Path = OUT, quiet: bool = QUIET, device: str = DEVICE, config: Path = CONFIG,
) -> None:
    """Saliency maps, IG's completeness per image, and faithfulness: RISE deletion/insertion,
    faithfulness correlation, max-sensitivity (against two random maps)."""
    from dlapps.explain.config import SaliencyConfig
    from dlapps.explain.experiment import run_saliency

    _, res = _run(SaliencyConfig, run_saliency, config, out, quiet, device, images=images or None,
                  target=target, true_labels=csv_list(true), rise_steps=rise_steps, patch=patch,
                  deletion_to=deletion_to, faithfulness_runs=faithfulness_runs,
                  faithfulness_subset=faithfulness_subset, sensitivity_samples=sensitivity_samples,
                  model=model, image_size=image_size,
                  **_method_options(method, reduction, baseline, steps, ig_tolerance, ig_max_steps,
                                    ig_max_seconds, n, sigma))
    ig = [res["integrated_gradients"]["note"]] if res["integrated_gradients"] else []
    numbers = lambda s: "  ".join(f"{k.replace('_', ' ')} {v:.3f}" for k, v in s.items()  # noqa: E731
                                  if k != "seconds_per_map")
    _echo(res, [*(f"{name:14s} {numbers(s)}  {s['seconds_per_map']:.2f} s/map"
                  for name, s in res["summary"].items()),
                *ig, *(f"{r['image']}: {r['predicted']} ({r['probability']:.2f})" for r in res["images"])])


@app.command()
@user_errors
def sanity(
    images: list[str] = IMAGES,
    checks: str = typer.Option(None, help="comma-separated: model (cascading randomisation of the layers, "
                               "default), data (retrained on permuted labels: the digits networks of "
                               "dlapps adapt)"),
    method: str = typer.Option(None, help=METHOD_HELP + "; default vanilla,smoothgrad,ig,gradcam,edge"),
    target: str = typer.Option(None, help="class to explain (name or index); default the prediction"),
    max_layers: int = typer.Option(None, help="layers randomised one at a time, from the top; default 12"),
    flag_at: float = typer.Option(None, help="flag a method still this rank-similar at full randomisation; "
                                  "default 0.5"),
    epochs: int = typer.Option(None, help="epochs of the random-label retraining (data); default 30"),
    train_images: int = typer.Option(None, help="training images it memorises (data); default 2000"),
    seed: int = typer.Option(None, help="of the re-initialisation and the permutation; default 0"),
    reduction: str = REDUCTION, baseline: str = BASELINE, steps: int = STEPS,
    ig_tolerance: float = IG_TOLERANCE, ig_max_steps: int = IG_MAX_STEPS,
    ig_max_seconds: float = IG_MAX_SECONDS, n: int = N, sigma: float = SIGMA,
    model: str = MODEL, image_size: int = IMAGE_SIZE,
    out: Path = OUT, quiet: bool = QUIET, device: str = DEVICE, config: Path = CONFIG,
) -> None:
    """Sanity checks (Adebayo et al. 2018): do the maps change when the model does?"""
    from dlapps.explain.config import SanityConfig
    from dlapps.explain.experiment import run_sanity

    _, res = _run(SanityConfig, run_sanity, config, out, quiet, device, images=images or None,
                  checks=csv_list(checks), target=target, max_layers=max_layers, flag_at=flag_at,
                  epochs=epochs,
                  train_images=train_images, seed=seed, model=model, image_size=image_size,
                  **_method_options(method, reduction, baseline, steps, ig_tolerance, ig_max_steps,
                                    ig_max_seconds, n, sigma))
    flag = "  FLAGGED: its maps do not depend on the weights"
    _echo(res, (f"{name:5s} {m:20s} Spearman {s['spearman']:6.3f}  SSIM {s['ssim']:6.3f} at "
                f"{check['steps'][-1]}" + (flag if s["flagged"] else "")
                for name, check in res["checks"].items() for m, s in check["summary"].items()))


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
    model: str = MODEL, image_size: int = IMAGE_SIZE,
    out: Path = OUT, quiet: bool = QUIET, device: str = DEVICE, config: Path = CONFIG,
) -> None:
    """Fooling images (targeted gradient ascent) and FGSM / PGD / DeepFool adversarial examples."""
    from dlapps.explain.config import FoolConfig
    from dlapps.explain.experiment import run_fool

    eps_value = _numbers(eps)
    _, res = _run(FoolConfig, run_fool, config, out, quiet, device, images=images or None, target=target,
                  methods=csv_list(method), eps=eps_value[0] if eps_value else None,
                  epsilons=_numbers(epsilons), l2_epsilons=_numbers(l2_epsilons), max_iter=max_iter,
                  model=model, image_size=image_size)
    _echo(res, (
        f"{r['method']:9s} {r['image']}: {r['original']} -> {r['prediction']} ({r['probability']:.2f}) "
        f"{'success' if r['success'] else 'FAILED'} after {r['iterations']} iterations, L2 {r['l2']:.3f}, "
        f"Linf {r['linf'] * 255:.2f}/255" + (f"  [{r['note']}]" if r["note"] else "")
        for r in res["images"]
    ))


@app.command()
@user_errors
def classvis(
    target: str = typer.Option(None, help="comma-separated classes (names or indices)"),
    seeds: str = SEEDS,
    init: str = typer.Option(None, help="start from this image instead of noise"),
    iters: int = typer.Option(None, help="gradient-ascent iterations; default 200"),
    lr: float = typer.Option(None, help="L2 length of each step in pixel units; default 5"),
    l2: float = typer.Option(None, help="λ of the L2 penalty; default 1e-3"),
    blur_every: int = typer.Option(None, help="Gaussian blur every N iterations (0: never); default 10"),
    blur_sigma: float = typer.Option(None, help="std of that blur in pixels; default 0.5"),
    jitter: int = typer.Option(None, help="maximal random shift in pixels; default 16"),
    model: str = MODEL, image_size: int = IMAGE_SIZE,
    out: Path = OUT, quiet: bool = QUIET, device: str = DEVICE, config: Path = CONFIG,
) -> None:
    """Class model visualisation: maximise score − λ‖x‖² with jitter, blur and clamping.

    One image per target and seed (the seed draws the starting noise and the jitter)."""
    from dlapps.explain.config import ClassVisConfig
    from dlapps.explain.experiment import run_classvis

    cfg, res = _run(ClassVisConfig, run_classvis, config, out, quiet, device, targets=csv_list(target),
                    init=init, iters=iters, lr=lr, l2=l2, blur_every=blur_every, blur_sigma=blur_sigma,
                    jitter=jitter, seeds=parse_seeds(seeds), model=model, image_size=image_size)
    seed = " seed {}" if len(cfg.seeds) > 1 else ""
    _echo(res, (f"{r['target']}{seed.format(r['seed'])}: probability {r['probability']:.3f} after "
                f"{cfg.iters} iterations ({r['seconds']:.1f} s)" for r in res["targets"]))


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
    model: str = MODEL, image_size: int = IMAGE_SIZE,
    out: Path = OUT, quiet: bool = QUIET, device: str = DEVICE, config: Path = CONFIG,
) -> None:
    """The class-visualisation settings compared as one grid (one parameter varied per row)."""
    from dlapps.explain.config import CompareConfig
    from dlapps.explain.experiment import run_compare

    cfg, res = _run(CompareConfig, run_compare, config, out, quiet, device, target=target, iters=_ints(iters),
                    lr=_numbers(lr), l2=_numbers(l2), blur_every=_ints(blur_every), init=init,
                    seeds=parse_seeds(seeds), model=model, image_size=image_size)
    seed = "seed {}  " if len(cfg.seeds) > 1 else ""
    _echo(res, (f"{seed.format(r['seed'])}{r['parameter']:10s} {r['value']:<8g} "
                f"probability {r['probability']:.3f}" for r in res["grid"]))


@app.command()
@user_errors
def activations(
    images: list[str] = IMAGES,
    layer: str = typer.Option(None, help="'first' (the first convolution, default) or a module path"),
    count: int = typer.Option(None, help="channels shown; default 16"),
    model: str = MODEL, image_size: int = IMAGE_SIZE,
    out: Path = OUT, quiet: bool = QUIET, device: str = DEVICE, config: Path = CONFIG,
) -> None:
    """Activation maps of a layer (default: the first 16 filters of the first convolution)."""
    from dlapps.explain.config import ActivationsConfig
    from dlapps.explain.experiment import run_activations

    _, res = _run(ActivationsConfig, run_activations, config, out, quiet, device, images=images or None,
                  layer=layer, count=count, model=model, image_size=image_size)
    _echo(res, (f"{r['image']}: {r['channels']} maps of {r['size'][0]}x{r['size'][1]} from {r['layer']}"
                for r in res["images"]))
