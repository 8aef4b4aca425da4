"""``dlapps adapt compare``: every method on every pair, same backbone, same budget, one table.

Layout of the output directory::

    OUT/
      <source>-<target>/     one ordinary ``dlapps adapt`` run directory per pair (resumable)
      results.json           per pair and method: target accuracy (mean ± std over seeds), the
                             label-free selection's picks, ECE; the configuration and hardware
      compare.md             the table (markdown), best per pair in bold, paper numbers beside
      figures/compare.png    bar chart: target accuracy per method, grouped by pair
      report.html            the table and the chart, self-contained

Running the same command again continues: finished (method, seed) cells are skipped, an
interrupted one resumes from its last epoch, methods or seeds added since are trained. A pair
directory made with other training settings is refused (it would mix two experiments).
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

from dlapps.adapt.config import AdaptConfig
from dlapps.adapt.experiment import CONFIG, environment, run_adapt
from dlapps.adapt.paper import paper_numbers
from dlapps.config import config_dict, load_config, save_config
from dlapps.errors import ConfigError
from dlapps.runs import write_results

DEFAULT_METHODS = ["source", "dann", "dan", "coral", "adda", "drcn", "cdan", "dann+self-train"]
DEFAULT_PAIRS = ["mnist5k:mnistm5k", "syndigits:mnist5k", "mnist5k:digits", "fashion:fashionm"]


def parse_pairs(pairs: list[str]) -> list[tuple[str, str]]:
    out = []
    for p in pairs:
        parts = p.split(":")
        if len(parts) != 2 or not all(parts):
            raise ConfigError(f"a pair is SOURCE:TARGET (e.g. mnist5k:mnistm5k), got {p!r}")
        out.append((parts[0], parts[1]))
    return out


def pair_dir(out: Path, source: str, target: str) -> Path:
    return Path(out) / f"{source}-{target}".replace("/", "_").replace(":", "_")


def run_pair(config: AdaptConfig, run_dir: Path, progress: bool = True, workers: int | None = 1,
             launcher=None) -> dict:
    """Train (or continue) one pair's run directory with ``config``'s methods and seeds."""
    if (run_dir / CONFIG).is_file():
        saved = load_config(AdaptConfig, run_dir / CONFIG)
        if saved.training_fingerprint("-", 0) != config.training_fingerprint("-", 0):
            raise ConfigError(f"{run_dir} was trained with other settings; use another --out "
                              "or the settings of its config.json")
        save_config(config.validate(), run_dir / CONFIG)  # methods/seeds may grow
        return run_adapt(config, resume=run_dir, progress=progress, workers=workers, launcher=launcher)
    return run_adapt(config, out=run_dir, progress=progress, workers=workers, launcher=launcher)


def run_compare(methods: list[str], pairs: list[str], seeds: list[int], out: Path,
                base: AdaptConfig | None = None, progress: bool = True, workers: int | None = 1,
                launcher=None, pair_methods: dict[str, list[str]] | None = None) -> dict:
    """Run the grid (methods × pairs × seeds) into ``out``; returns the content of its
    ``results.json``. ``base`` holds every other setting (default: the ``fast`` preset);
    ``pair_methods`` gives some pairs (``"source:target"``) their own methods instead."""
    base = base or AdaptConfig()
    parsed = parse_pairs(pairs)
    pair_methods = pair_methods or {}
    configs = [replace(base, source=s, target=t, methods=list(pair_methods.get(f"{s}:{t}", methods)),
                       seeds=list(seeds)).validate()
               for s, t in parsed]
    started = time.perf_counter()
    grid = {}
    for (source, target), config in zip(parsed, configs, strict=True):
        results = run_pair(config, pair_dir(out, source, target), progress, workers, launcher)
        grid[f"{source}:{target}"] = {
            "run_dir": results["run_dir"], "methods": results["summary"]["methods"],
            "paper": paper_numbers(source, target), "epochs": config.epochs,
            "train_images": {"source": results["data"]["source"]["train"],
                             "target": results["data"]["target"]["train"]}}
    results = {"methods": list(methods), "pairs": list(pairs), "seeds": list(seeds),
               "command": "compare",
               "config": {**config_dict(base), "source": None, "target": None, "methods": list(methods),
                          "seeds": list(seeds)},
               "grid": grid, "environment": environment(),
               "wall_seconds": round(time.perf_counter() - started, 1)}
    write_compare(Path(out), results)
    return results


def write_compare(out: Path, results: dict) -> None:
    """results.json, compare.md, figures/compare.png and report.html of a finished grid."""
    from dlapps.adapt.report import render

    write_results(out, "adapt", results["config"], results)
    render(out)
