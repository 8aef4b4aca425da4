"""``dlapps generate`` and ``dlapps gan``: GANs, VAEs and DDPMs (thin wrappers over dlapps.generate).

    dlapps generate [--models dcgan,cdcgan,vae,cvae,ddpm,cddpm] [--data mnist5k] [--seeds 0,1,2]
                    [--option ddpm.epochs=40 ...]   every model on the same data, one table
    dlapps gan                       DCGAN and cDCGAN on mnist5k, offline (the GAN chapter's default)
    dlapps gan train [--data mnist5k] [--conditional] [--nz 100 --ngf 32 --ndf 32 --epochs 5]
    dlapps gan compare --grid ngf=8,32,128 nz=10,100,1000 loss=nonsat,minimax ...
    dlapps gan sample RUN_DIR [--class 7];  dlapps gan interpolate RUN_DIR [--slerp];  dlapps gan grid RUN_DIR
    (every sub-command of ``dlapps gan`` is also one of ``dlapps generate``; sample, interpolate
    and grid read any model's run: GAN, VAE or DDPM)

Every command that trains takes --seeds, --out, --quiet, --workers, --device and --config (a
config.json of a GAN run; given options override it), and resumes when run again with the same
--out.
"""

from __future__ import annotations

from pathlib import Path

import typer

from dlapps import cli_support as opt
from dlapps.cli_support import default_run_dir, parse_seeds, user_errors
from dlapps.engine.launchers import parse_launcher

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False,
                  help="DCGAN and conditional DCGAN: train, compare, sample, interpolate, class grid. "
                       "With no command: DCGAN and cDCGAN on mnist5k at the default budget, offline.")

generate_app = typer.Typer(add_completion=False, pretty_exceptions_enable=False,
                           help="GANs, VAEs and DDPMs side by side on the same data, measured in one table. "
                                "With no command: dcgan, cdcgan, vae, cvae, ddpm and cddpm on mnist5k "
                                "at the default budget, offline. `dlapps gan`'s sub-commands work here too.")

N_SAMPLES = typer.Option(5000, help="generated images the quality metrics use")


def _print(results: dict, out: Path) -> None:
    from dlapps.generate.report import metrics_table, quality_rows

    typer.echo(metrics_table(quality_rows(results), markdown=True), nl=False)
    typer.echo(f"n = {results['n_samples']} generated samples; results in {out}/results.json, "
               f"report in {out}/report.html")


@app.callback(invoke_without_command=True)
@user_errors
def default(ctx: typer.Context, out: Path = opt.OUT, seeds: str = opt.SEEDS, n_samples: int = N_SAMPLES,
            quiet: bool = opt.QUIET, workers: int = opt.WORKERS, device: str = opt.DEVICE,
            config: Path = opt.CONFIG) -> None:
    """With no sub-command: DCGAN and cDCGAN on mnist5k at the default budget, offline."""
    if ctx.invoked_subcommand is not None:
        return
    from dlapps.config import merge
    from dlapps.engine.device import resolve_device
    from dlapps.generate.config import GanConfig
    from dlapps.generate.experiment import default_config, run_default

    base = merge(GanConfig, config, {}, base=default_config())
    dev = resolve_device(device)
    out = out or default_run_dir("gan")
    results = run_default(out, parse_seeds(seeds), base=base, n_samples=n_samples, progress=not quiet,
                          workers=workers, device=dev)
    _print(results, out)


@app.command()
@user_errors
def train(
    data: str = typer.Option(None, help="a dlapps domain or folder:PATH (unlabelled); default mnist5k"),
    conditional: bool = typer.Option(None, "--conditional/--unconditional",
                                     help="cDCGAN: G and D see the class (default: unconditional)"),
    cdx: bool = typer.Option(False, "--cdx", help="D without y (cD(x) ablation; with --conditional)"),
    size: int = typer.Option(None, help="image side: 32 (default) or 64 (one more block)"),
    channels: int = typer.Option(None, help="1 (grey, default) or 3 (colour)"),
    nz: int = typer.Option(None, help="latent size; default 100"),
    ngf: int = typer.Option(None, help="G's width; default 32"),
    ndf: int = typer.Option(None, help="D's width; default 32"),
    init: str = typer.Option(None, help="dcgan (N(0, 0.02), default) or default (PyTorch's)"),
    loss: str = typer.Option(None, help="generator loss: nonsat (default) or minimax"),
    batch_size: int = typer.Option(None, help="images per step; default 128"),
    lr_g: float = typer.Option(None, help="G's Adam learning rate; default 2e-4"),
    lr_d: float = typer.Option(None, help="D's Adam learning rate; default 2e-4"),
    beta1_g: float = typer.Option(None, help="G's Adam beta1; default 0.5"),
    beta1_d: float = typer.Option(None, help="D's Adam beta1; default 0.5"),
    epochs: int = typer.Option(None, help="passes over the training images; default 5"),
    channels_last: bool = typer.Option(None, "--channels-last/--no-channels-last",
                                       help="G and D in NHWC memory format (default on: faster on a CPU)"),
    seeds: str = opt.SEEDS,
    n_samples: int = N_SAMPLES,
    inception_weights: Path = typer.Option(None, help="pt_inception-2015-12-05-6726825d.pth: adds the "
                                           "standard FID (needs torch-fidelity)"),
    out: Path = opt.OUT, quiet: bool = opt.QUIET, workers: int = opt.WORKERS, device: str = opt.DEVICE,
    config: Path = opt.CONFIG,
) -> None:
    """Train a DCGAN (or cDCGAN) per seed, measure it offline and draw it."""
    from dlapps.config import merge
    from dlapps.engine.device import resolve_device
    from dlapps.generate.config import GanConfig
    from dlapps.generate.experiment import run_train

    cfg = merge(GanConfig, config, {
        "data": data, "size": size, "channels": channels, "conditional": conditional,
        "d_conditional": False if cdx else None, "nz": nz, "ngf": ngf, "ndf": ndf, "init": init,
        "loss": loss, "batch_size": batch_size, "lr_g": lr_g, "lr_d": lr_d, "beta1_g": beta1_g,
        "beta1_d": beta1_d, "epochs": epochs, "channels_last": channels_last})
    dev = resolve_device(device)
    out = out or default_run_dir("gan")
    results = run_train(cfg, out, parse_seeds(seeds), n_samples=n_samples,
                        inception_weights=inception_weights, progress=not quiet, workers=workers, device=dev)
    _print(results, out)


@app.command()
@user_errors
def compare(
    grid: str = typer.Option(..., help="factors and values, e.g. 'ngf=8,32,128 loss=nonsat,minimax'"),
    more: list[str] = typer.Argument(None, help="further factors (ndf=8,32 nz=10,100 ...)"),
    data: str = typer.Option(None, help="a dlapps domain; default mnist5k"),
    conditional: bool = typer.Option(None, "--conditional/--unconditional", help="compare cDCGANs"),
    epochs: int = typer.Option(None, help="epochs per cell; default 5"),
    batch_size: int = typer.Option(None, help="images per step; default 128"),
    product: bool = typer.Option(False, "--product", help="the full product of the grid"),
    seeds: str = opt.SEEDS,
    n_samples: int = typer.Option(2000, help="generated images per cell for the metrics"),
    out: Path = opt.OUT, quiet: bool = opt.QUIET, workers: int = opt.WORKERS, device: str = opt.DEVICE,
    launcher: str = opt.LAUNCHER, launcher_option: list[str] = opt.LAUNCHER_OPTION,
    config: Path = opt.CONFIG,
) -> None:
    """Vary one factor at a time around the base (or --product); resumable with the same --out."""
    from dlapps.config import merge
    from dlapps.engine.device import resolve_device
    from dlapps.generate.compare import parse_grid, run_compare
    from dlapps.generate.config import GanConfig

    base = merge(GanConfig, config, {"data": data, "conditional": conditional, "epochs": epochs,
                                     "batch_size": batch_size})
    factors = parse_grid([grid, *(more or [])])
    dev = resolve_device(device)
    out = out or default_run_dir("gan")
    results = run_compare(base, factors, out, parse_seeds(seeds), product, n_samples, progress=not quiet,
                          workers=workers, device=dev, launcher=parse_launcher(launcher, launcher_option))
    _print(results, out)


def _inspect(what: str, run_dir: Path, out: Path | None, **kw) -> None:
    from dlapps.generate.experiment import inspect_run

    out = out or default_run_dir("gan")
    result = inspect_run(run_dir, out, what, **kw)
    typer.echo(f"{result['images']} images from {result['run']} -> {out / result['figure']}")


RUN_DIR = typer.Argument(..., help="a `dlapps gan` run directory (or one of its cells)")
CLASS = typer.Option(None, "--class", help="class index (conditional G only)")
SEED = typer.Option(0, help="seed of the noise")


@app.command()
@user_errors
def sample(run_dir: Path = RUN_DIR, cls: int = CLASS, n: int = typer.Option(100, help="images"),
           seed: int = SEED, out: Path = opt.OUT) -> None:
    """A grid of samples (all of one --class when given)."""
    _inspect("sample", run_dir, out, cls=cls, n=n, seed=seed)


@app.command()
@user_errors
def interpolate(run_dir: Path = RUN_DIR, slerp: bool = typer.Option(False, "--slerp", help="spherical"),
                cls: int = CLASS, seed: int = SEED, out: Path = opt.OUT) -> None:
    """8 rows of 10 images from G(z1) to G(z2): linear, or spherical with --slerp."""
    _inspect("interpolate", run_dir, out, spherical=slerp, cls=cls, seed=seed)


@app.command()
@user_errors
def grid(run_dir: Path = RUN_DIR, seed: int = SEED, out: Path = opt.OUT) -> None:
    """Rows = class, columns = one shared z each (conditional G)."""
    _inspect("grid", run_dir, out, seed=seed)


@generate_app.callback(invoke_without_command=True)
@user_errors
def generate_default(
    ctx: typer.Context,
    models: str = typer.Option(None, "--models", help="comma-separated: dcgan, cdcgan, vae, cvae, ddpm, "
                               "cddpm; default all six"),
    data: str = typer.Option("mnist5k", help="a dlapps domain (see `dlapps data list`) or folder:PATH"),
    size: int = typer.Option(32, help="image side: 32 or 64"),
    channels: int = typer.Option(1, help="1 (grey) or 3 (colour)"),
    option: list[str] = typer.Option(None, "--option", help="a model's setting, MODEL.SETTING=VALUE "
                                     "(repeat it), e.g. ddpm.epochs=40, cddpm.guidance=3, vae.beta=4"),
    seeds: str = opt.SEEDS,
    n_samples: int = typer.Option(1000, help="generated images per cell for the metrics"),
    out: Path = opt.OUT, quiet: bool = opt.QUIET, workers: int = opt.WORKERS, device: str = opt.DEVICE,
    launcher: str = opt.LAUNCHER, launcher_option: list[str] = opt.LAUNCHER_OPTION,
) -> None:
    """With no sub-command: every model on the same data, trained as parallel cells, one table."""
    if ctx.invoked_subcommand is not None:
        return
    from dlapps.cli_support import csv_list, parse_method_options
    from dlapps.engine.device import resolve_device
    from dlapps.generate.experiment import run_models

    dev = resolve_device(device)
    out = out or default_run_dir("generate")
    results = run_models(out, csv_list(models), parse_seeds(seeds), data=data, size=size, channels=channels,
                         options=parse_method_options(option), n_samples=n_samples, progress=not quiet,
                         workers=workers, device=dev, launcher=parse_launcher(launcher, launcher_option))
    _print(results, out)


generate_app.registered_commands.extend(app.registered_commands)  # train, compare, sample, ...
