"""Issue 16's question why DANN falls below source-only on some pairs, measured on finished runs.

    python bench/adapt_joint.py [--runs 'NAME=RUN_GRID:METHOD;...'] [--seeds 0,1,2]
        [--pairs syndigits:mnist5k,mnist5k:digits,mnist5k:mnistm5k,fashion:fashionm]

Ben-David et al.'s bound, ε_T(h) ≤ ε_S(h) + ½ d_HΔH(S, T) + λ*, says alignment helps only while
it lowers the divergence term (here the proxy A-distance d_A, a linear SVM telling the domains
apart on G_f's features) without raising λ*, the error of the best *joint* hypothesis. λ* is
estimated as Chen et al. (ICML 2019) do: a logistic regression fitted to the labelled features of
both domains, its errors on both test splits (:func:`dlapps.adapt.diagnostics.joint_error`).
It reads target labels — a diagnostic of finished runs, never a selection or a setting.

No training: each run is a finished grid of ``dlapps adapt compare`` (bench/adapt_probe.py,
bench/adapt_best.py) whose cells kept their last-epoch checkpoint; the network is rebuilt from the
grid's config.json and its weights loaded. Test features: a fixed sample of up to 3,000 images
per domain. Writes bench/results/adapt_joint.{md,json} (--name: another name).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from dlapps.adapt.config import AdaptConfig
from dlapps.adapt.diagnostics import joint_error, proxy_a_distance
from dlapps.adapt.experiment import build_method, environment, load_pair
from dlapps.adapt.report import mean_std
from dlapps.config import load_config
from dlapps.engine.batches import batched, fixed_sample
from dlapps.engine.checkpoint import load_checkpoint
from dlapps.runs import stat

RESULTS = Path(__file__).parent / "results"
RUNS = ("source-only=runs/bench-probe/source-only:source;"
        "DANN, default=runs/bench-probe/default:dann;"
        "DANN, λ_max 0.3=runs/bench-probe/max-0.3:dann;"
        "DANN, λ_max 0.5, domain 500-500=runs/bench-probe/max-0.5-domain-500-500:dann;"
        "DANN, λ_max 0.3, domain 500-500=runs/bench-probe/max-0.3-domain-500-500:dann;"
        "dann+self-train (strong view)=runs/bench-best/e12:dann+self-train;"
        "train-on-target=runs/bench-best/e12:target")
TEST_SAMPLES = 3000


def parse_runs(text: str) -> dict[str, tuple[Path, str]]:
    out = {}
    for item in filter(None, (s.strip() for s in text.split(";"))):
        name, _, where = item.partition("=")
        grid, _, method = where.rpartition(":")
        out[name.strip()] = (Path(grid), method)
    return out


def measure(cell: Path, config: AdaptConfig, pair, method_name: str, seed: int) -> dict:
    """Target accuracy (the run's own), d_A and λ* of one finished cell's G_f."""
    method = build_method(config, pair, method_name, seed)
    method.load_state_dict(load_checkpoint(cell)["module"])
    method.eval()
    cpu = torch.device("cpu")
    s, t = pair.source, pair.target
    i_s, i_t = fixed_sample(len(s.test_y), TEST_SAMPLES), fixed_sample(len(t.test_y), TEST_SAMPLES)

    def features(x: torch.Tensor) -> np.ndarray:
        return batched(method.embed, x, cpu).float().numpy()

    fs, ft = features(s.train_x), features(t.train_x)
    fs_te, ft_te = features(s.test_x[i_s]), features(t.test_x[i_t])
    joint = joint_error(fs, s.train_y.numpy(), ft, t.train_y.numpy(),
                        fs_te, s.test_y[i_s].numpy(), ft_te, t.test_y[i_t].numpy(), seed)
    final = json.loads((cell / "final.json").read_text())
    return {"target_acc": final["target_acc"], "source_acc": final["source_acc"],
            "a_distance": proxy_a_distance(fs_te, ft_te, seed), "joint": joint["joint"],
            "joint_source": joint["source"], "joint_target": joint["target"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", default=RUNS, help="NAME=GRID_DIR:METHOD, separated by ';'")
    ap.add_argument("--pairs", default="syndigits:mnist5k,mnist5k:digits,mnist5k:mnistm5k,fashion:fashionm")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--name", default="adapt_joint", help="name of the results files")
    args = ap.parse_args()
    torch.set_num_threads(2)
    runs, pairs = parse_runs(args.runs), args.pairs.split(",")
    seeds = [int(s) for s in args.seeds.split(",")]
    started = time.perf_counter()
    cells: dict[str, dict[str, list[dict]]] = {p: {} for p in pairs}
    for p in pairs:
        pair_dir = p.replace(":", "-")
        loaded = None
        for name, (grid, method) in runs.items():
            config = load_config(AdaptConfig, grid / pair_dir / "config.json")
            if loaded is None:  # the data are the same for every run of a pair
                loaded = load_pair(config)
            cells[p][name] = [measure(grid / pair_dir / f"{method}-seed{seed}", config, loaded, method, seed)
                              for seed in seeds]
            print(p, name, {k: round(float(np.mean([c[k] for c in cells[p][name]])), 3)
                            for k in ("target_acc", "a_distance", "joint")}, flush=True)

    def col(p: str, name: str, key: str) -> str:
        return mean_std(stat([c[key] for c in cells[p][name]]))

    env = environment()
    lines = [
        "# Why DANN falls below source-only on some pairs: d_A and the ideal joint error λ* (issue 16)", "",
        f"- command: `python bench/adapt_joint.py --seeds {args.seeds}` (runs: {args.runs})",
        f"- hardware: {env.get('cpu') or env['processor']}, torch {env['torch']}, cpu; wall time "
        f"{time.perf_counter() - started:.0f} s; no training: the grids' last-epoch checkpoints "
        "(12 epochs, train-limit 4000, the fast preset otherwise; settings as named)",
        "- target acc: the run's last-epoch target test accuracy (no target labels used in training "
        "or selection); d_A: proxy A-distance of G_f's features, linear SVM on half of a fixed "
        f"sample of ≤ {TEST_SAMPLES} test images per domain (2: separable, 0: indistinguishable); "
        "λ* = ε_S + ε_T of one logistic regression fitted to the *labelled* training features of both "
        "domains (4,000 each), measured on the test samples — **reads target labels**: a diagnostic, "
        f"never a selection; mean ± std over seeds {args.seeds}", ""]
    for p in pairs:
        lines += [f"## {p.replace(':', ' → ')}", "",
                  "| run | target acc | d_A | λ* = ε_S + ε_T | ε_S | ε_T |", "|---|---|---|---|---|---|"]
        lines += [f"| {n} | {col(p, n, 'target_acc')} | {col(p, n, 'a_distance')} | {col(p, n, 'joint')} | "
                  f"{col(p, n, 'joint_source')} | {col(p, n, 'joint_target')} |" for n in runs]
        lines.append("")
    md = "\n".join(lines)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{args.name}.md").write_text(md)
    raw = {"runs": {n: [str(g), m] for n, (g, m) in runs.items()}, "pairs": pairs, "seeds": seeds,
           "environment": env, "cells": cells}
    (RESULTS / f"{args.name}.json").write_text(json.dumps(raw, indent=2) + "\n")
    print(md)


if __name__ == "__main__":
    main()
