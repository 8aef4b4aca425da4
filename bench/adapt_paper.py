"""The ``paper`` preset's 100 epochs on the embedded pair, beside the default's 12 (issue 16).

    python bench/adapt_paper.py [--methods source,dann,target] [--seeds 0] [--out runs/bench16-paper]

Trains (or, rerun, reads back) ``dlapps adapt --preset paper`` on mnist5k → mnistm5k — SGD 0.01
annealed, λ_p with γ = 10, batches of 64 + 64, the training mean subtracted, no warm-up, 100 epochs
— and writes bench/results/adapt_paper.{md,json} with the share of the gap DANN closes next to the
paper's. Selection criteria are off (they do not change training; 100 evaluations would double
the time).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from dlapps.adapt.compare import run_pair
from dlapps.adapt.config import preset
from dlapps.adapt.report import results_markdown
from dlapps.engine.parallel import available_cores

RESULTS = Path(__file__).parent / "results"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--methods", default="source,dann,target")
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--out", type=Path, default=Path("runs/bench16-paper"))
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--note", default="")
    args = ap.parse_args()
    config = preset("paper", methods=args.methods.split(","), seeds=[int(s) for s in args.seeds.split(",")],
                    tsne=False, a_distance=False, selection=False)
    started = time.perf_counter()
    results = run_pair(config, args.out, progress=False, workers=args.workers)
    env = results["environment"]
    command = f"python bench/adapt_paper.py --methods {args.methods} --seeds {args.seeds}"
    header = (f"# The paper preset (100 epochs) on the embedded pair\n\n- command: `{command}`\n"
              f"- hardware: {env.get('cpu') or env['processor']} ({available_cores()} cores), "
              f"1 thread per cell, torch {env['torch']}" + (f"; {args.note}" if args.note else "") + "\n"
              f"- bench wall time (cells already finished are read back): "
              f"{time.perf_counter() - started:.0f} s\n\n")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "adapt_paper.md").write_text(header + results_markdown(results) + "\n")
    (RESULTS / "adapt_paper.json").write_text(json.dumps({"command": command, **results}, indent=2,
                                                         default=str) + "\n")
    print(header + results_markdown(results))


if __name__ == "__main__":
    main()
