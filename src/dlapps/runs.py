"""One results format for every kind of run.

Every command that produces results writes ``RUN_DIR/results.json`` through
:func:`write_results`, which stamps the fields every reader can rely on::

    {"kind": "adapt" | "transfer" | "explain" | "generate" | ...,
     "dlapps_version": "0.2.0", "config": {...}, "environment": {...}, "created": "...", ...}

and the rest is the area's own. :func:`load_results` reads one back and refuses, in one line,
a folder that is not a run. ``dlapps report`` dispatches on ``kind``.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from dlapps import __version__
from dlapps.engine.device import environment
from dlapps.errors import DataError
from dlapps.io import atomic_write_bytes, json_text

RESULTS = "results.json"


def write_results(run_dir: Path, kind: str, config: dict[str, Any], results: dict[str, Any]) -> dict:
    """``results`` with ``kind``, the dlapps version, ``config``, the environment and the time
    (fields ``results`` already has are kept), written atomically to ``run_dir/results.json``;
    returns what the file holds (as :func:`load_results` would read it back)."""
    stamped = {"kind": kind, "dlapps_version": __version__, "config": config,
               "environment": results.get("environment") or environment(),
               "created": results.get("created") or datetime.now().isoformat(timespec="seconds")}
    stamped.update({k: v for k, v in results.items() if k not in ("kind", "dlapps_version", "config")})
    text = json_text(stamped)
    atomic_write_bytes(Path(run_dir) / RESULTS, text.encode())
    return json.loads(text)


def load_results(run_dir: Path, kind: str | None = None) -> dict[str, Any]:
    """``run_dir/results.json``; a DataError naming the folder when it is not a dlapps run (or
    not one of ``kind``)."""
    run_dir = Path(run_dir)
    path = run_dir / RESULTS
    if not run_dir.is_dir():
        raise DataError(f"{run_dir} is not a folder (give a dlapps run directory)")
    if not path.is_file():
        raise DataError(f"{run_dir} holds no results.json: not a finished dlapps run")
    try:
        results = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(f"cannot read {path}: {exc}") from exc
    if not isinstance(results, dict) or "kind" not in results:
        raise DataError(f"{path} has no 'kind': not written by this version of dlapps "
                        "(rerun the command that made it)")
    if kind is not None and results["kind"] != kind:
        raise DataError(f"{run_dir} is a '{results['kind']}' run, not a '{kind}' run")
    return results


def stat(values: list[float]) -> dict | None:
    """Mean and (population) standard deviation of a number over seeds, with the values; None
    when there are none."""
    return ({"mean": float(np.mean(values)), "std": float(np.std(values)), "values": values}
            if values else None)
