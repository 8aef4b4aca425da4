"""The embedded GAN default, measured: DCGAN and cDCGAN over seeds, plus the two ablations the
course asks about at the same budget — cD(x) (D without y) and the "true" minimax G loss.

    python bench/gan_bench.py [--seeds 0,1,2] [--ablation-seeds 0,1,2] [--epochs N] [--threads 1]
                              [--n-samples 5000] [--out runs/gan-bench] [--results bench/results]

Every variant trains on mnist5k (4,000 training digits, 32x32 grey) with the default budget of
``dlapps gan`` (batch 64, Adam 2e-4 / β1 0.5 for G and D). Quality: Fréchet distance and KID on
the judge classifier's penultimate features, an IS-style score on its logits, and the label
accuracy of G(z, y) for the conditional variants, on n generated samples; the real-vs-real floor
beside them. Resumable: rerun with the same --out. Writes bench/results/gan.json and gan.md.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from dataclasses import replace
from pathlib import Path

import torch

from dlapps.cli_support import parse_seeds
from dlapps.generate.experiment import DEFAULT_EPOCHS, default_variants, run_variants
from dlapps.generate.figures import metrics_table

RESULTS = Path(__file__).parent / "results"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--ablation-seeds", default="0,1,2")
    ap.add_argument("--epochs", type=int, default=DEFAULT_EPOCHS)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--n-samples", type=int, default=5000)
    ap.add_argument("--out", type=Path, default=Path("runs/gan-bench"))
    ap.add_argument("--results", type=Path, default=RESULTS, help="where gan.json and gan.md go")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    base = default_variants(args.epochs)
    runs = {"default": (base, parse_seeds(args.seeds)),
            "ablations": ({"cdx (D without y)": replace(base["cdcgan"], d_conditional=False),
                           "dcgan minimax": replace(base["dcgan"], loss="minimax")},
                          parse_seeds(args.ablation_seeds))}
    began = time.perf_counter()
    results = {name: run_variants(variants, seeds, args.out / name, n_samples=args.n_samples,
                                  title=f"gan bench: {name}")
               for name, (variants, seeds) in runs.items()}
    hardware = (f"{platform.machine()} CPU, {torch.get_num_threads()} thread(s), torch {torch.__version__}; "
                "other jobs were sharing the 2-core CPU")
    out = {"results": results, "epochs": args.epochs, "batch_size": base["dcgan"].batch_size,
           "n_samples": args.n_samples, "hardware": hardware,
           "wall_seconds": round(time.perf_counter() - began, 1)}
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
          + metrics_table(rows, markdown=True))
    (args.results / "gan.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
