"""The method comparison of docs/RESULTS.md: `dlapps adapt compare` over the grid, resumably.

    python bench/adapt_compare.py [--methods source,dann,dan,coral,adda,drcn,cdan,dann+self-train]
        [--pairs mnist5k:mnistm5k,syndigits:mnist5k,mnist5k:digits,fashion:fashionm]
        [--seeds 3] [--other-seeds 3] [--epochs N] [--train-limit N] [--out runs/bench-compare]

Cells are trained in passes so that a run stopped early still covers the most important part:
first every method with seed 0 on the first pair, then the further seeds there, then the other
pairs with ``--other-seeds`` seeds. After every pass bench/results/adapt_compare.{json,md} are
rewritten from what has finished (grid, epochs, seeds, hardware, wall time); rerunning the same
command skips finished cells.

``--keep FILE`` completes a grid in parts: the (pair, method) rows of an earlier results file
fill every cell this run does not train (its rows win where both have one), so a grid whose
first cells' run directories are gone is finished without retraining them.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from dlapps.adapt.compare import DEFAULT_METHODS, DEFAULT_PAIRS, pair_dir, run_compare
from dlapps.adapt.config import AdaptConfig, preset
from dlapps.adapt.experiment import CONFIG, FINAL, environment, summarize
from dlapps.adapt.paper import paper_numbers
from dlapps.adapt.report import compare_markdown
from dlapps.engine.parallel import available_cores, resolve_workers

RESULTS = Path(__file__).parent / "results"


def write(results: dict, args: argparse.Namespace, started: float) -> None:
    env = results["environment"]
    command = (f"python bench/adapt_compare.py --methods {args.methods} --pairs {args.pairs} "
               f"--seeds {args.seeds} --other-seeds {args.other_seeds}"
               + (f" --epochs {args.epochs}" if args.epochs else "")
               + (f" --train-limit {args.train_limit}" if args.train_limit else "")
               + (f" --reverse-every {args.reverse_every}" if args.reverse_every is not None else "")
               + (" --one-pass" if args.one_pass else "") + (f" --keep {args.keep}" if args.keep else ""))
    workers = resolve_workers(args.workers, 8)
    header = (f"# Domain adaptation methods compared\n\n- command: `{command}`\n"
              f"- hardware: {env.get('cpu') or env['processor']} ({available_cores()} cores), {workers} cell "
              f"processes x 1 thread, torch {env['torch']}, device {env['cuda'] or 'cpu'}"
              + (f"; {args.note}" if args.note else "") + "\n"
              + (f"- PARTIAL: {results['partial']} (cells are trained in the background at nice 5)\n"
                 if results.get("partial") else
                 f"- bench wall time so far: {time.perf_counter() - started:.0f} s\n"
                 if not (args.report_only or args.keep) else "")  # parts: see the note
              + "\n")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{args.name}.md").write_text(header + compare_markdown(results) + "\n")
    (RESULTS / f"{args.name}.json").write_text(json.dumps({"command": command, **results}, indent=2) + "\n")


def keep_rows(earlier: dict, results: dict) -> dict:
    """``results`` with every (pair, method) row it lacks taken from ``earlier`` (a results file
    of the same grid): pairs and methods in the earlier order, then any new ones."""
    pairs = list(dict.fromkeys(earlier["pairs"] + results["pairs"]))
    methods = list(dict.fromkeys(earlier["methods"] + results["methods"]))
    grid = {}
    for pair in pairs:
        old, new = earlier["grid"].get(pair), results["grid"].get(pair)
        base = dict(new or old)
        base["methods"] = {**(old or {}).get("methods", {}), **(new or {}).get("methods", {})}
        base["methods"] = {m: base["methods"][m] for m in methods if m in base["methods"]}
        grid[pair] = base
    per_pair = {p: sorted(set(earlier.get("seeds_per_pair", {}).get(p, []))
                          | set(results.get("seeds_per_pair", {}).get(p, []))) for p in pairs}
    seeds = sorted(set(earlier["seeds"]) | set(results["seeds"]))
    short = [f"{m} on {p} ({grid[p]['methods'].get(m, {}).get('n_seeds', 0)} of {len(seeds)} seeds)"
             for p in pairs for m in methods if grid[p]["methods"].get(m, {}).get("n_seeds", 0) < len(seeds)]
    return {**results, "methods": methods, "pairs": pairs, "grid": grid, "seeds_per_pair": per_pair,
            "seeds": seeds, "partial": f"cells missing: {'; '.join(short)}" if short else None,
            "config": {**results["config"], "methods": methods}}


def with_warnings(final: Path) -> dict:
    """A cell's final.json with its warnings recomputed by today's dlapps.adapt.health from the
    history in its checkpoint (cells trained before a change of the rules get the new lines)."""
    import torch

    from dlapps.adapt.health import cell_warnings

    cell = json.loads(final.read_text())
    checkpoint = final.parent / "checkpoint.pt"
    if checkpoint.is_file():
        history = torch.load(checkpoint, map_location="cpu", weights_only=False)["history"]
        classes = 10  # every pair of the grid has ten classes
        cell["warnings"] = cell_warnings(history, cell.get("selection"), classes)
    return cell


def finished_cells(grid_dir: Path, methods: list[str], pairs: list[str], expected: int) -> dict:
    """The grid's results from the cells that have their final.json, whatever is still running
    (``expected``: the number of cells of the whole grid, to say whether it is complete)."""
    grid, seeds, base, per_pair, found = {}, set(), None, {}, 0
    for pair in pairs:
        source, target = pair.split(":")
        run_dir = pair_dir(grid_dir, source, target)
        runs = [with_warnings(f) for f in sorted(run_dir.glob(f"*-seed*/{FINAL}"))]
        if not runs:
            continue
        found += len(runs)
        config = AdaptConfig.load(run_dir / CONFIG)
        config.methods = [m for m in methods if any(r["method"] == m for r in runs)]
        base = base or config
        seeds |= {r["seed"] for r in runs}
        per_pair[pair] = sorted({r["seed"] for r in runs})
        grid[pair] = {"run_dir": str(run_dir), "methods": summarize(config, runs)["methods"],
                      "paper": paper_numbers(source, target), "epochs": config.epochs}
    cfg = {**(base or AdaptConfig()).to_dict(), "source": None, "target": None, "methods": methods}
    return {"methods": methods, "pairs": [p for p in pairs if p in grid], "seeds": sorted(seeds),
            "seeds_per_pair": per_pair, "config": cfg, "grid": grid, "environment": environment(),
            "wall_seconds": None,
            "partial": (f"only the {found} of {expected} cells finished so far; a method's n_seeds "
                        "says how many") if found < expected else None}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--methods", default=",".join(DEFAULT_METHODS))
    ap.add_argument("--pairs", default=",".join(DEFAULT_PAIRS))
    ap.add_argument("--seeds", type=int, default=3, help="seeds on the first pair")
    ap.add_argument("--other-seeds", type=int, default=3, help="seeds on the other pairs")
    ap.add_argument("--epochs", type=int, default=None, help="default: the fast preset's")
    ap.add_argument("--train-limit", type=int, default=None)
    ap.add_argument("--out", type=Path, default=Path("runs/bench-compare"))
    ap.add_argument("--workers", type=int, default=None, help="cell processes; default one per core")
    ap.add_argument("--note", default="", help="e.g. 'other jobs were sharing the CPU'")
    ap.add_argument("--name", default="adapt_compare", help="bench/results/NAME.{md,json}")
    ap.add_argument("--reverse-every", type=int, default=None,
                    help="reverse validation every k epochs (default: the preset's; 0 = never)")
    ap.add_argument("--report-only", action="store_true",
                    help="train nothing: tabulate the cells finished so far (e.g. while a run goes on)")
    ap.add_argument("--one-pass", action="store_true",
                    help="train every pair with --seeds seeds in one pass (no tables after each seed)")
    ap.add_argument("--keep", type=Path, default=None,
                    help="an earlier results .json of this grid: its rows fill the cells not trained here")
    args = ap.parse_args()
    earlier = json.loads(args.keep.read_text()) if args.keep else None
    methods, pairs = args.methods.split(","), args.pairs.split(",")
    if args.report_only:
        expected = len(methods) * (args.seeds + (len(pairs) - 1) * args.other_seeds)
        results = finished_cells(args.out / "grid", methods, pairs, expected)
        write(results, args, time.perf_counter())
        print(compare_markdown(results))
        return
    base = preset("fast", epochs=args.epochs, train_limit=args.train_limit, tsne=False, a_distance=False,
                  reverse_every=args.reverse_every)
    passes = [(pairs[:1], list(range(n))) for n in range(1, args.seeds + 1)]
    passes += [(pairs[1:], list(range(n))) for n in range(1, args.other_seeds + 1)]
    if args.one_pass:  # every pair and seed at once: no early tables, the cores kept busy
        passes = [(pairs, list(range(args.seeds)))]
    started, grid, seeds_done = time.perf_counter(), {}, {}
    for pass_pairs, seeds in passes:
        if not pass_pairs:
            continue
        results = run_compare(methods, pass_pairs, seeds, args.out / "grid", base, workers=args.workers)
        grid.update(results["grid"])
        seeds_done.update({p: seeds for p in pass_pairs})
        # the table over everything finished so far, each pair with the seeds it has completed
        merged = {**results, "pairs": [p for p in pairs if p in grid], "grid": grid,
                  "seeds": sorted(set().union(*seeds_done.values())), "seeds_per_pair": seeds_done}
        if earlier:
            merged = keep_rows(earlier, merged)
        write(merged, args, started)
        print(compare_markdown(merged), flush=True)


if __name__ == "__main__":
    main()
