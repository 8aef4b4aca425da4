"""What makes ``dann+self-train`` beat DANN: Lee's pseudo-labels alone, a shifted student view, a
mean teacher, or both (the default), on mnist5k → mnistm5k over seeds.

    python bench/self_training_ablation.py [--seeds 0,1,2] [--workers 2] [--out runs/bench-selftrain]

Every variant is one `dlapps adapt` run directory under --out with the same training settings as
bench/adapt_compare.py (fast preset, 12 epochs, 4,000 training images per domain); rerunning
skips finished cells. Writes bench/results/self_training.{md,json}: target accuracy at the last
epoch (no target labels used), mean ± std over seeds, and each variant's gain over DANN paired
by seed.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from dlapps.adapt.config import preset
from dlapps.adapt.experiment import run_adapt
from dlapps.adapt.report import mean_std
from dlapps.engine.device import environment
from dlapps.runs import stat

RESULTS = Path(__file__).parent / "results"
VARIANTS = {  # name -> (method, self-training options, what it is)
    "dann": ("dann", {}, "DANN alone"),
    "lee": ("dann+self-train", {"ema": 0, "shift": 0}, "Lee 2013: the network labels itself"),
    "shift": ("dann+self-train", {"ema": 0, "shift": 2},
              "labels from the unshifted batch, loss on a ±2 px shifted copy"),
    "teacher": ("dann+self-train", {"ema": 0.99, "shift": 0}, "labels from a mean teacher (ema 0.99)"),
    "default": ("dann+self-train", {"ema": 0.99, "shift": 2}, "mean teacher + shifted student (the default)"),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--workers", type=int, default=None, help="cell processes (default: one per core)")
    ap.add_argument("--train-limit", type=int, default=4000)
    ap.add_argument("--out", type=Path, default=Path("runs/bench-selftrain"))
    ap.add_argument("--note", default="", help="a line on the conditions (e.g. other jobs sharing the CPU)")
    args = ap.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    accs, raw = {}, {}
    for name in args.variants.split(","):
        method, options, _ = VARIANTS[name]
        cfg = preset("fast", methods=[method], seeds=seeds, train_limit=args.train_limit, tsne=False,
                     a_distance=False, method_options={"self-train": options} if options else {})
        run_dir = args.out / name
        resume = run_dir if (run_dir / "config.json").exists() else None
        results = run_adapt(cfg, out=run_dir, resume=resume, progress=True, report=False,
                            workers=args.workers)
        accs[name] = [r["target_acc"] for r in sorted(results["runs"], key=lambda r: r["seed"])]
        raw[name] = {"method": method, "options": options, "target_acc": accs[name],
                     "environment": results["environment"], "wall_seconds": results["wall_seconds"]}
        write(args, seeds, accs, raw)  # after every variant, so a stopped bench keeps what it measured


def write(args, seeds: list[int], accs: dict[str, list[float]], raw: dict) -> None:
    env = environment()
    rows = ["| variant | what | target acc | per seed | vs dann (paired) |", "|---|---|---|---|---|"]
    for name, values in accs.items():
        gain = "—"
        if name != "dann" and "dann" in accs:
            diffs = [100 * (a - b) for a, b in zip(values, accs["dann"], strict=True)]
            gain = f"{statistics.mean(diffs):+.1f} points ({', '.join(f'{d:+.1f}' for d in diffs)})"
        rows.append(f"| {name} | {VARIANTS[name][2]} | {mean_std(stat(values))} | "
                    f"{', '.join(f'{v:.3f}' for v in values)} | {gain} |")
    text = "\n".join([
        "### Self-training on top of DANN: what helps (mnist5k → mnistm5k)", "", *rows, "",
        f"- seeds {seeds}; fast preset, 12 epochs, batch 32 + 32, at most {args.train_limit} training "
        "images per domain; target test accuracy at the last epoch (no target labels used); "
        "± is the standard deviation over seeds (population, as in every dlapps table)",
        "- every self-training variant: τ = 0.9, α_f = 1, T1 = 0.2, T2 = 0.6",
        f"- hardware: {env['cpu']}, {args.workers or 'one per core'} cell processes x 1 thread, "
        f"torch {env['torch']}",
        *([f"- note: {args.note}"] if args.note else []),
        f"- command: `python bench/self_training_ablation.py --seeds {args.seeds} "
        f"--variants {args.variants}`", "",
    ])
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "self_training.md").write_text(text)
    (RESULTS / "self_training.json").write_text(json.dumps(raw, indent=2) + "\n")
    print(text)


if __name__ == "__main__":
    main()
