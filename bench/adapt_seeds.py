"""The domain adaptation numbers of docs/RESULTS.md: every method over several seeds, per pair.

    python bench/adapt_seeds.py [--pairs mnist5k:mnistm5k,syndigits:mnist5k,mnist5k:digits]
                                [--methods source,dann,dann-nogrl,target] [--seeds 0,1,2]
                                [--preset fast] [--epochs N] [--out runs/bench]

Each pair is one `dlapps adapt` run directory under --out (rerunning resumes: finished cells are
skipped). The tables (mean ± std over seeds, last-epoch numbers, no target-label selection) are
written to bench/results/adapt.md and the raw numbers to bench/results/adapt.json, with the
hardware and wall time of each pair.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from dlapps.adapt.config import preset
from dlapps.adapt.experiment import run_adapt
from dlapps.adapt.report import results_markdown as markdown_table

RESULTS = Path(__file__).parent / "results"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", default="mnist5k:mnistm5k,syndigits:mnist5k,mnist5k:digits")
    ap.add_argument("--methods", default="source,dann,dann-nogrl,target")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--preset", default="fast")
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--out", type=Path, default=Path("runs/bench"))
    ap.add_argument("--tag", default="adapt", help="name of the results files")
    ap.add_argument("--note", default="", help="a line on the conditions (e.g. other jobs sharing the CPU)")
    args = ap.parse_args()
    sections, raw = [], {}
    for pair in args.pairs.split(","):
        source, target = pair.split(":")
        run_dir = args.out / f"{args.tag}-{source}-{target}"
        cfg = preset(args.preset, source=source, target=target, methods=args.methods.split(","),
                     seeds=[int(s) for s in args.seeds.split(",")], epochs=args.epochs)
        resume = run_dir if (run_dir / "config.json").exists() else None
        results = run_adapt(cfg, out=run_dir, resume=resume, progress=True)
        env = results["environment"]
        sections.append(
            f"### {source} → {target}\n\n{markdown_table(results)}\n"
            f"- hardware: {env['processor']} ({env['threads']} threads), {env['device']}, "
            f"torch {env['torch']}; wall time of this run: {results['wall_seconds']} s "
            f"(cells resumed from an earlier run count only their remaining part)\n"
            + (f"- note: {args.note}\n" if args.note else "")
            + f"- command: `python bench/adapt_seeds.py --pairs {pair} --methods {args.methods} "
            f"--seeds {args.seeds} --preset {args.preset}"
            + (f" --epochs {args.epochs}" if args.epochs else "") + "`\n"
        )
        raw[pair] = {"summary": results["summary"], "runs": results["runs"],
                     "config": results["config"], "environment": env, "data": results["data"]}
        print(markdown_table(results))
        write(args.tag, sections, raw)  # after every pair, so a stopped bench keeps what it measured


def write(tag: str, sections: list[str], raw: dict) -> None:
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{tag}.md").write_text("\n".join(sections))
    (RESULTS / f"{tag}.json").write_text(json.dumps(raw, indent=2) + "\n")
    print(f"wrote {RESULTS / (tag + '.md')}")


if __name__ == "__main__":
    main()
