"""``dlapps distill``: knowledge distillation, teacher -> student (a thin wrapper over
:func:`dlapps.distill.experiment.run_distill`).

    dlapps distill                      CNN teacher trained here -> MLP student on mnist5k, offline:
                                        scratch, response, feature and relation students
    dlapps distill --teacher RUN_DIR    the teacher of a finished run of any area (its model.pt)
    dlapps distill --kinds response --T 8 --alpha 0.5 --student cnn-small --seeds 0,1,2

Takes --seeds, --out, --quiet, --workers, --launcher (local, slurm or ray, with --launcher-option
KEY=VALUE), --device and --config (a config.json of a distill run; given options override it), and
resumes when run again with the same --out.
"""

from __future__ import annotations

from pathlib import Path

import typer

from dlapps import cli_support as opt
from dlapps.cli_support import csv_list, default_run_dir, parse_seeds, user_errors

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False,
                  help="Knowledge distillation: a teacher's response, feature and relation knowledge "
                       "into a small student, beside the student from scratch.")


@app.callback(invoke_without_command=True)
@user_errors
def distill(
    ctx: typer.Context,
    data: str = typer.Option(None, help="a dlapps domain (mnist5k, fashion, digits, ...) or "
                             "imagefolder:PATH; default mnist5k"),
    teacher: str = typer.Option(None, help="a network trained here first (cnn, default) or a finished run "
                                "directory / model.pt of any area"),
    student: str = typer.Option(None, help="the student network: mlp (default), mlp-tiny, mlp-wide, "
                                "cnn-small, cnn"),
    kinds: str = typer.Option(None, help="comma-separated kinds of knowledge: response, feature, relation "
                              "(default all three; the student from scratch always trains beside)"),
    temperature: float = typer.Option(None, "--T", "--temperature", help="softmax temperature; default 4"),
    alpha: float = typer.Option(None, help="weight of the soft targets in [0, 1]; default 0.9"),
    epochs: int = typer.Option(None, help="students' epochs; default 30"),
    teacher_epochs: int = typer.Option(None, help="epochs of a teacher trained here; default 6"),
    batch_size: int = typer.Option(None, help="images per step; default 64"),
    lr: float = typer.Option(None, help="Adam's learning rate (cosine decay to 0); default 3e-3"),
    limit: int = typer.Option(None, help="use only N training images (a fixed random subset)"),
    size: int = typer.Option(None, help="image side (default: the data's, or a loaded teacher's)"),
    channels: int = typer.Option(None, help="1 or 3 (default: the data's, or a loaded teacher's)"),
    channels_last: bool = typer.Option(None, "--channels-last/--no-channels-last",
                                       help="convolutions in NHWC memory format (default on)"),
    seeds: str = opt.SEEDS, out: Path = opt.OUT, quiet: bool = opt.QUIET, workers: int = opt.WORKERS,
    launcher: str = opt.LAUNCHER, launcher_option: list[str] = opt.LAUNCHER_OPTION,
    device: str = opt.DEVICE, config: Path = opt.CONFIG,
) -> None:
    """Teacher, student from scratch and one distilled student per kind; the table and report.

    With no options: a CNN teacher (~325k parameters) trained here on mnist5k (4,000 training
    digits, offline), then an MLP student (~102k) from scratch and with response, feature and
    relation knowledge; a few minutes on a CPU.
    """
    if ctx.invoked_subcommand is not None:
        return
    from dlapps.config import merge
    from dlapps.distill.config import DistillConfig
    from dlapps.distill.experiment import run_distill
    from dlapps.distill.report import results_table
    from dlapps.engine.launchers import parse_launcher

    cfg = merge(DistillConfig, config, {
        "data": data, "teacher": teacher, "student": student, "kinds": csv_list(kinds), "T": temperature,
        "alpha": alpha, "epochs": epochs, "teacher_epochs": teacher_epochs, "batch_size": batch_size,
        "lr": lr, "limit": limit, "size": size, "channels": channels, "channels_last": channels_last,
        "seeds": parse_seeds(seeds), "device": device})
    out = out or default_run_dir("distill")
    results = run_distill(cfg, out, progress=not quiet, workers=workers,
                          launcher=parse_launcher(launcher, launcher_option))
    typer.echo(results_table(results, markdown=True))
    typer.echo(f"\n{results['wall_seconds']:.0f} s; results in {out}/results.json, "
               f"report in {out}/report.html")
