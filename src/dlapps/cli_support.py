"""Small pieces every ``dlapps`` sub-command shares: error handling and option parsing.

Kept apart from ``dlapps.cli`` so each area's command module (``dlapps.<area>.cli``) can use them
without importing the top-level app (which imports the areas).
"""

from __future__ import annotations

import functools
import json
from datetime import datetime
from pathlib import Path

import typer

from dlapps.errors import ConfigError, DlappsError


def user_errors(fn):
    """Turn a DlappsError into one line on stderr and exit status 2."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except DlappsError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from None

    return wrapper


def csv_list(text: str | None) -> list[str] | None:
    """``"a, b,c"`` -> ``["a", "b", "c"]``; None stays None (option not given)."""
    return None if text is None else [t.strip() for t in text.split(",") if t.strip()]


def parse_seeds(text: str | None) -> list[int] | None:
    """``"0,1,2"`` or ``"0:3"`` -> ``[0, 1, 2]``; a bare ``"3"`` is the single seed 3 — in every
    command (``--seeds`` is always a list of seeds, never a count)."""
    if text is None:
        return None
    try:
        if ":" in text:
            a, b = text.split(":")
            return list(range(int(a), int(b)))
        return [int(s) for s in csv_list(text)]
    except ValueError:
        raise ConfigError(f"--seeds takes integers like 0,1,2 or 0:3, got {text!r}") from None


def parse_ints(text: str | None, flag: str, what: str) -> list[int] | None:
    """``"500,500"`` -> ``[500, 500]``; None stays None (option not given); anything else is one
    line: ``{flag} takes {what}, got '…'``."""
    if text is None:
        return None
    try:
        return [int(w) for w in csv_list(text)]
    except ValueError:
        raise ConfigError(f"{flag} takes {what}, got {text!r}") from None


def parse_method_options(items: list[str] | None) -> dict[str, dict] | None:
    """``["self-train.ema=0", "dan.estimator=linear"]`` -> ``{"self-train": {"ema": 0}, "dan":
    {"estimator": "linear"}}``. A value is read as JSON when it is JSON (numbers, true/false,
    ``["logits"]``), else kept as text. None stays None (option not given)."""
    if not items:
        return None
    options: dict[str, dict] = {}
    for item in items:
        name, dot, rest = item.partition(".")
        key, eq, text = rest.partition("=")
        if not (dot and eq and name and key):
            raise ConfigError(f"--option takes METHOD.SETTING=VALUE (e.g. self-train.ema=0), got {item!r}")
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            value = text
        options.setdefault(name, {})[key] = value
    return options


def default_run_dir(area: str) -> Path:
    """``runs/<area>-<timestamp>``: where a command writes when no ``--out`` is given."""
    return Path("runs") / f"{area}-{datetime.now():%Y%m%d-%H%M%S}"


# The options every command that trains shares, defined once so they read the same everywhere.
SEEDS = typer.Option(None, "--seeds",
                     help="seeds: a list 0,1,2 or a range 0:3 (3 alone is seed 3); default 0")
OUT = typer.Option(None, "--out", help="run directory; default runs/<command>-<timestamp>")
QUIET = typer.Option(False, "--quiet", "-q", help="no progress bars")
WORKERS = typer.Option(None, "--workers",
                       help="cells trained at once, one process each; default one per core")
DEVICE = typer.Option(None, "--device", help="auto, cpu or cuda; default auto (or the --config file's)")
CONFIG = typer.Option(None, "--config", help="settings from a config.json (given options override it)")


LAUNCHER = typer.Option(None, "--launcher", help="where a grid's cells run: local (default: this "
                        "machine's processes), slurm (one job per cell, via submitit) or ray")
LAUNCHER_OPTION = typer.Option(
    None, "--launcher-option", help="the launcher's settings, KEY=VALUE (repeat it): slurm: partition, time "
    "(minutes), cpus, gpus, mem_gb or any sbatch setting (account=..., qos=...); ray: address "
    "(HOST:PORT, auto or local), cpus, gpus")

