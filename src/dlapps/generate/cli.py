"""``dlapps gan ...``: DCGAN and conditional DCGAN (thin wrappers over dlapps.generate).

    dlapps gan                       DCGAN and cDCGAN on mnist5k, offline (the embedded default)
    dlapps gan train [--data mnist5k] [--conditional] [--nz 100 --ngf 32 --ndf 32 --epochs 5]
    dlapps gan ablate --grid ngf=8,32,128 nz=10,100,1000 loss=nonsat,minimax ...
    dlapps gan sample RUN_DIR [--class 7];  dlapps gan interpolate RUN_DIR [--slerp];  dlapps gan grid RUN_DIR
"""

from __future__ import annotations

from pathlib import Path

import typer

from dlapps.cli_support import default_run_dir, parse_seeds, user_errors

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False,
                  help="DCGAN and conditional DCGAN: train, ablate, sample, interpolate, class grid. "
                       "With no command: DCGAN and cDCGAN on mnist5k at the default budget, offline.")

OUT = typer.Option(None, help="output directory; default runs/gan-<timestamp>")
SEEDS = typer.Option(None, help="seeds, e.g. 0,1,2 or 0:3; default 0")
N_SAMPLES = typer.Option(5000, help="generated images the quality metrics use")
QUIET = typer.Option(False, "--quiet", "-q", help="no progress bars")
WORKERS = typer.Option(None, help="cells trained at once, one process each; default one per CPU core")


def _print(results: dict, out: Path) -> None:
    from dlapps.generate.figures import metrics_table

    rows = {name: v for name, v in results["variants"].items()}
    if results.get("floor"):
        rows["real vs real (floor)"] = results["floor"]
    typer.echo(metrics_table(rows, markdown=True))
    typer.echo(f"n = {results['n_samples']} generated samples; results in {out}/results.json, "
               f"report in {out}/report.html")


@app.callback(invoke_without_command=True)
@user_errors
def default(ctx: typer.Context, out: Path = OUT, seeds: str = SEEDS, n_samples: int = N_SAMPLES,
            quiet: bool = QUIET, workers: int = WORKERS) -> None:
    """With no sub-command: DCGAN and cDCGAN on mnist5k at the default budget, offline."""
    if ctx.invoked_subcommand is not None:
        return
    from dlapps.generate.experiment import default_variants, run_variants

    out = out or default_run_dir("gan")
    results = run_variants(default_variants(), parse_seeds(seeds) or [0], out, n_samples=n_samples,
                           progress=not quiet, title="dlapps gan: DCGAN and cDCGAN on mnist5k",
                           workers=workers)
    _print(results, out)


@app.command()
@user_errors
def train(
    data: str = typer.Option("mnist5k", help="a dlapps domain or folder:PATH (unlabelled)"),
    conditional: bool = typer.Option(False, "--conditional", help="cDCGAN: G and D see the class"),
    d_unconditional: bool = typer.Option(False, "--cdx", help="D without y (cD(x) ablation)"),
    size: int = typer.Option(32, help="image side: 32 or 64 (one more block)"),
    channels: int = typer.Option(1, help="1 (grey) or 3 (colour)"),
    nz: int = typer.Option(100, help="latent size"),
    ngf: int = typer.Option(32, help="G's width"),
    ndf: int = typer.Option(32, help="D's width"),
    init: str = typer.Option("dcgan", help="dcgan (N(0, 0.02)) or default (PyTorch's)"),
    loss: str = typer.Option("nonsat", help="generator loss: nonsat or minimax"),
    batch_size: int = typer.Option(128, help="images per step"),
    lr_g: float = typer.Option(2e-4, help="G's Adam learning rate"),
    lr_d: float = typer.Option(2e-4, help="D's Adam learning rate"),
    beta1_g: float = typer.Option(0.5, help="G's Adam beta1"),
    beta1_d: float = typer.Option(0.5, help="D's Adam beta1"),
    epochs: int = typer.Option(5, help="passes over the training images"),
    seeds: str = SEEDS,
    n_samples: int = N_SAMPLES,
    inception_weights: Path = typer.Option(None, help="pt_inception-2015-12-05-6726825d.pth: adds the "
                                           "standard FID (needs torch-fidelity)"),
    out: Path = OUT,
    quiet: bool = QUIET,
    workers: int = WORKERS,
) -> None:
    """Train a DCGAN (or cDCGAN) per seed, measure it offline and draw it."""
    from dlapps.generate.experiment import run_variants
    from dlapps.generate.train import GanConfig

    if d_unconditional and not conditional:
        from dlapps.errors import ConfigError

        raise ConfigError("--cdx (D without y) only makes sense with --conditional")
    config = GanConfig(data=data, size=size, channels=channels, conditional=conditional,
                       d_conditional=not d_unconditional, nz=nz, ngf=ngf, ndf=ndf, init=init, loss=loss,
                       batch_size=batch_size, lr_g=lr_g, lr_d=lr_d, beta1_g=beta1_g, beta1_d=beta1_d,
                       epochs=epochs)
    name = ("cdx" if d_unconditional else "cdcgan") if conditional else "dcgan"
    out = out or default_run_dir("gan")
    results = run_variants({name: config}, parse_seeds(seeds) or [0], out, n_samples=n_samples,
                           progress=not quiet, inception_weights=inception_weights,
                           title=f"dlapps gan train: {name} on {data}", workers=workers)
    _print(results, out)


@app.command()
@user_errors
def ablate(
    grid: str = typer.Option(..., help="factors and values, e.g. 'ngf=8,32,128 loss=nonsat,minimax'"),
    more: list[str] = typer.Argument(None, help="further factors (ndf=8,32 nz=10,100 ...)"),
    data: str = typer.Option("mnist5k", help="a dlapps domain"),
    conditional: bool = typer.Option(False, "--conditional", help="ablate the cDCGAN"),
    epochs: int = typer.Option(5, help="epochs per cell"),
    batch_size: int = typer.Option(128, help="images per step"),
    product: bool = typer.Option(False, "--product", help="the full product of the grid"),
    seeds: str = SEEDS,
    n_samples: int = typer.Option(2000, help="generated images per cell for the metrics"),
    out: Path = OUT,
    quiet: bool = QUIET,
    workers: int = WORKERS,
) -> None:
    """Vary one factor at a time around the default (or --product); resumable with the same --out."""
    from dlapps.generate.ablate import parse_grid, run_ablation
    from dlapps.generate.train import GanConfig

    base = GanConfig(data=data, conditional=conditional, epochs=epochs, batch_size=batch_size)
    out = out or default_run_dir("gan")
    results = run_ablation(base, parse_grid([grid, *(more or [])]), out, parse_seeds(seeds), product,
                           n_samples, progress=not quiet, workers=workers)
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
           seed: int = SEED, out: Path = OUT) -> None:
    """A grid of samples (all of one --class when given)."""
    _inspect("sample", run_dir, out, cls=cls, n=n, seed=seed)


@app.command()
@user_errors
def interpolate(run_dir: Path = RUN_DIR, slerp: bool = typer.Option(False, "--slerp", help="spherical"),
                cls: int = CLASS, seed: int = SEED, out: Path = OUT) -> None:
    """8 rows of 10 images from G(z1) to G(z2): linear, or spherical with --slerp."""
    _inspect("interpolate", run_dir, out, spherical=slerp, cls=cls, seed=seed)


@app.command()
@user_errors
def grid(run_dir: Path = RUN_DIR, seed: int = SEED, out: Path = OUT) -> None:
    """Rows = class, columns = one shared z each (conditional G)."""
    _inspect("grid", run_dir, out, seed=seed)
