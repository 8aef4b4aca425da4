"""Issue 16's probe: can one DANN setting reach source-only on every pair?

    python bench/adapt_probe.py [--settings 'default={};lambda 0.5={"lambda_max": 0.5};...']
        [--pairs syndigits:mnist5k,mnist5k:digits,mnist5k:mnistm5k,fashion:fashionm] [--seeds 0,1,2]
        [--train-limit 4000] [--workers 2] [--out runs/bench-probe]

Each setting is a set of AdaptConfig overrides on the fast preset as it stood before this
choice (λ_max 1, the architecture's own domain classifier); DANN (or --method) is trained with it
on every pair and seed through `dlapps adapt compare`'s run_compare (one grid directory per
setting under --out; rerunning skips finished cells), beside source-only at that default. No
selection reads target labels: every number is the last epoch's target test accuracy.
Writes bench/results/adapt_probe.{md,json} (--name: another name).

--choose: the pairs are *development* pairs, and the run decides a default by a rule fixed
before it runs: every setting's gain over source-only (mean over seeds) on each pair; the setting
with the largest worst-pair gain is chosen (ties: the larger mean gain). This reads the development
pairs' target labels, and only theirs: run on pairs other than the ones a default is evaluated on
(issue 16: the four evaluation pairs reversed), it decides without the evaluation pairs' labels.
"""

from __future__ import annotations

import argparse
import json
import re
import time
from dataclasses import replace
from pathlib import Path
from statistics import mean

from dlapps.adapt.compare import run_compare
from dlapps.adapt.config import preset
from dlapps.adapt.experiment import environment
from dlapps.adapt.report import mean_std
from dlapps.engine.parallel import available_cores

RESULTS = Path(__file__).parent / "results"
SETTINGS = ('default={};λ_max 0.5={"lambda_max": 0.5};λ_max 0.3={"lambda_max": 0.3};'
            'warm-up gate 0.9={"warmup_acc": 0.9};batch norm={"batchnorm": true}')


def parse_settings(text: str) -> dict[str, dict]:
    settings = {}
    for item in filter(None, (s.strip() for s in text.split(";"))):
        name, _, overrides = item.partition("=")
        settings[name.strip()] = json.loads(overrides or "{}")
    return settings


def cell(result: dict, pair: str, method: str) -> str:
    return mean_std(result["grid"][pair]["methods"][method]["target_acc"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--settings", default=SETTINGS, help="NAME=JSON overrides, separated by ';'")
    ap.add_argument("--pairs", default="syndigits:mnist5k,mnist5k:digits,mnist5k:mnistm5k,fashion:fashionm")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--train-limit", type=int, default=4000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", type=Path, default=Path("runs/bench-probe"))
    ap.add_argument("--note", default="")
    ap.add_argument("--name", default="adapt_probe", help="name of the results files")
    ap.add_argument("--method", default="dann", help="the method trained with each setting")
    ap.add_argument("--choose", action="store_true",
                    help="development pairs: choose the setting with the largest worst-pair gain")
    args = ap.parse_args()
    pairs, seeds = args.pairs.split(","), [int(s) for s in args.seeds.split(",")]
    started = time.perf_counter()

    def grid(methods: list[str], name: str, overrides: dict) -> dict:
        # on the settings the probes began from (λ_max 1, the architecture's own domain classifier),
        # pinned, since the fast preset's default is now the setting these runs chose
        base = replace(preset("fast", train_limit=args.train_limit, tsne=False, a_distance=False,
                              reverse_every=0), **{"lambda_max": 1.0, "domain_hidden": None, **overrides})
        out = args.out / re.sub(r"[^A-Za-z0-9.]+", "-", name).strip("-")
        return run_compare(methods, pairs, seeds, out, base, progress=False, workers=args.workers)

    reference = grid(["source"], "source-only", {})
    settings = parse_settings(args.settings)
    method = args.method
    label = "DANN" if method == "dann" else method
    runs = {name: grid([method], name, overrides) for name, overrides in settings.items()}
    env = environment()
    rows = ["| source-only (default) | " + " | ".join(cell(reference, p, "source") for p in pairs) + " |"]
    rows += [f"| {label}, {name} | " + " | ".join(cell(r, p, method) for p in pairs) + " |"
             for name, r in runs.items()]
    arrow = [p.replace(":", " → ") for p in pairs]

    def accuracy(result: dict, pair: str, method: str) -> float:  # a diverged setting counts as chance
        return (result["grid"][pair]["methods"][method]["target_acc"] or {}).get("mean", 0.1)

    gains = {name: [accuracy(r, p, method) - accuracy(reference, p, "source") for p in pairs]
             for name, r in runs.items()}
    chosen = max(gains, key=lambda n: (min(gains[n]), mean(gains[n])))
    choice = ["", "## The choice (development pairs, rule fixed before the run)", "",
              "Gain over source-only per pair (mean over seeds); the largest worst-pair gain wins, "
              "ties to the larger mean gain.", "",
              "| setting | " + " | ".join(arrow) + " | worst | mean |", "|---|" + "---|" * (len(pairs) + 2),
              *(f"| {n} | " + " | ".join(f"{g:+.3f}" for g in gs) + f" | {min(gs):+.3f} | {mean(gs):+.3f} |"
                for n, gs in gains.items()),
              "", f"Chosen: **{chosen}**.", ""] if args.choose else []
    md = "\n".join([
        f"# Development pairs (issue 16): {label}'s default chosen without the evaluation pairs' labels"
        if args.choose else f"# Probe (issue 16): can one {label} setting reach source-only on every pair?",
        "",
        f"- command: `python bench/adapt_probe.py --pairs {args.pairs} --seeds {args.seeds} "
        f"--train-limit {args.train_limit} --workers {args.workers}"
        + (f" --name {args.name}" if args.name != "adapt_probe" else "")
        + (" --choose" if args.choose else "") + (f" --method {args.method}" if args.method != "dann" else "")
        + f"` (settings: {args.settings})",
        f"- hardware: {env.get('cpu') or env['processor']} ({available_cores()} cores), {args.workers} cell "
        f"processes x 1 thread, torch {env['torch']}, cpu; wall time {time.perf_counter() - started:.0f} s "
        "(cells resumed from an earlier run count only their remaining part)"
        + (f"; {args.note}" if args.note else ""),
        f"- default preset otherwise (12 epochs, 32 + 32, instance norm, warm-up gate 0.5, λ_max 1.0, the "
        "architecture's own domain classifier: the settings before this choice); "
        f"target test accuracy at the last epoch, mean ± std over seeds {args.seeds}; "
        + ("the choice below reads these pairs' target labels" if args.choose else "no target labels used"),
        "", "| setting | " + " | ".join(arrow) + " |", "|---|" + "---|" * len(pairs), *rows, *choice, ""])
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{args.name}.md").write_text(md)
    raw = {"settings": settings, "pairs": pairs, "seeds": seeds, "environment": env,
           "source": {p: reference["grid"][p]["methods"]["source"]["target_acc"] for p in pairs},
           method: {n: {p: r["grid"][p]["methods"][method]["target_acc"] for p in pairs}
                    for n, r in runs.items()},
           **({"gains": gains, "chosen": chosen} if args.choose else {})}
    (RESULTS / f"{args.name}.json").write_text(json.dumps(raw, indent=2) + "\n")
    print(md)


if __name__ == "__main__":
    main()
