"""The embedded GAN default, measured: DCGAN and cDCGAN over seeds, plus the two ablations the
course asks about at the same budget — cD(x) (D without y) and the "true" minimax G loss.

    python bench/gan_bench.py [--seeds 0,1,2] [--ablation-seeds 0,1,2] [--epochs N] [--workers 2]
                              [--n-samples 5000] [--out runs/gan-bench] [--results bench/results]
                              [--cli-wall] [--note TEXT]

Every variant trains on mnist5k (4,000 training digits, 32x32 grey) with the default budget of
``dlapps gan`` (batch 16, 14 epochs, Adam 2e-4 / β1 0.5 for G and D), cells in ``--workers``
processes of one thread each (on 2 cores: 2). ``--cli-wall`` also times the embedded default
itself, ``dlapps gan --quiet`` into a fresh directory, as a user runs it. Quality: Fréchet distance and KID on
the judge classifier's penultimate features, an IS-style score on its logits, and the label
accuracy of G(z, y) for the conditional variants, on n generated samples; the real-vs-real floor
beside them. Resumable: rerun with the same --out. Writes bench/results/gan.json and gan.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch

from dlapps.cli_support import parse_seeds
from dlapps.engine.parallel import available_cores, resolve_workers
from dlapps.generate.experiment import DEFAULT_EPOCHS, default_variants, run_variants
from dlapps.generate.report import metrics_table

RESULTS = Path(__file__).parent / "results"


def time_default_cli() -> dict:
    """``dlapps gan --quiet`` as a first-time user runs it: a fresh output directory and a fresh,
    empty data folder (so the digits are rebuilt and the judge classifier trained); wall seconds
    and each GAN's training seconds per epoch, from that run's results.json."""
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "DLAPPS_DATA": str(Path(tmp) / "data")}
        began = time.perf_counter()
        subprocess.run([sys.executable, "-m", "dlapps", "gan", "--quiet", "--out", str(Path(tmp) / "run")],
                       check=True, env=env)
        wall = time.perf_counter() - began
        run = json.loads((Path(tmp) / "run" / "results.json").read_text())
    per_epoch = {k: round(v["seconds_per_epoch"]["mean"], 1) for k, v in run["variants"].items()}
    return {"wall_seconds": round(wall, 1), "cold_cache": True, "seconds_per_epoch": per_epoch}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--ablation-seeds", default="0,1,2")
    ap.add_argument("--epochs", type=int, default=DEFAULT_EPOCHS)
    ap.add_argument("--workers", type=int, default=None, help="cell processes; default one per core")
    ap.add_argument("--cli-wall", action="store_true", help="also time `dlapps gan --quiet` end to end")
    ap.add_argument("--note", default="", help="e.g. 'other jobs were sharing the CPU'")
    ap.add_argument("--n-samples", type=int, default=5000)
    ap.add_argument("--out", type=Path, default=Path("runs/gan-bench"))
    ap.add_argument("--results", type=Path, default=RESULTS, help="where gan.json and gan.md go")
    args = ap.parse_args()
    workers = resolve_workers(args.workers, 2 * len(parse_seeds(args.seeds)))
    base = default_variants(args.epochs)
    runs = {"default": (base, parse_seeds(args.seeds)),
            "ablations": ({"cdx (D without y)": replace(base["cdcgan"], d_conditional=False),
                           "dcgan minimax": replace(base["dcgan"], loss="minimax")},
                          parse_seeds(args.ablation_seeds))}
    began = time.perf_counter()
    results = {name: run_variants(variants, seeds, args.out / name, n_samples=args.n_samples,
                                  title=f"gan bench: {name}", workers=args.workers)
               for name, (variants, seeds) in runs.items()}
    env = results["default"]["environment"]
    hardware = (f"{env['cpu']} ({platform.machine()}, {available_cores()} cores), {workers} cell processes "
                f"x {max(1, torch.get_num_threads() // workers)} thread, torch {torch.__version__}"
                + (f"; {args.note}" if args.note else ""))
    out = {"results": results, "epochs": args.epochs, "batch_size": base["dcgan"].batch_size,
           "n_samples": args.n_samples, "hardware": hardware, "workers": workers,
           "wall_seconds": round(time.perf_counter() - began, 1)}
    if args.cli_wall:
        out["cli"] = time_default_cli()
    args.results.mkdir(parents=True, exist_ok=True)
    (args.results / "gan.json").write_text(json.dumps(out, indent=1) + "\n")
    rows = {**results["default"]["variants"], **results["ablations"]["variants"]}
    rows["real vs real (floor)"] = results["default"]["floor"]
    judge = results["default"]["judge"]
    md = (f"# GAN bench (mnist5k, 32x32 grey)\n\n"
          f"{args.epochs} epochs at batch {base['dcgan'].batch_size} (Adam 2e-4, β1 0.5 for G and D); "
          f"DCGAN/cDCGAN seeds {runs['default'][1]}, ablations seeds {runs['ablations'][1]}; "
          f"mean ± std over seeds. Metrics on n = {args.n_samples} generated samples against the "
          f"{results['default']['data']['train']} training images, with the judge classifier "
          f"(test accuracy {judge['test_acc']:.4f}); the floor is the {results['default']['data']['test']} "
          f"held-out real images. s/epoch = training time per epoch. Hardware: {hardware}.\n\n"
          + metrics_table(rows, markdown=True)
          + (f"\n\n`dlapps gan --quiet`, the embedded default, run alone on this machine as a first-time "
             f"user runs it (empty data folder: digits rebuilt, judge trained; both GANs at once): "
             f"**{out['cli']['wall_seconds']:.0f} s** wall; training time per epoch "
             + ", ".join(f"{k} {v} s" for k, v in out["cli"]["seconds_per_epoch"].items()) + ".\n"
             if args.cli_wall else ""))
    (args.results / "gan.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
