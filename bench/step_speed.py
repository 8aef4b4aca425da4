"""What each CPU speed option buys on the DANN training step, each measured on its own, in one run.

The step: dlapps' DANN on the paper's MNIST network, 64 source + 64 target images per step
(mnist5k → mnistm5k, in-memory uint8), SGD — the bare loop of bench/throughput.py. Variants:

* ``fp32``: the default memory format (NCHW), float32;
* ``channels-last``: the network's weights in ``torch.channels_last`` (convolutions then run
  NHWC, the layout oneDNN prefers on CPU);
* ``bf16``: the step under ``torch.autocast("cpu", dtype=torch.bfloat16)``;
* ``channels-last+bf16``: both.

Each variant trains a warm network (one untimed epoch first), then ``--epochs`` timed epochs;
variants alternate within each of ``--repeats`` rounds; reported: the median images/s, every run,
the ratio to ``fp32`` and the source-test accuracy after training (an option that costs accuracy
is not a speed-up).

    python bench/step_speed.py [--epochs 2] [--repeats 3] [--threads 2] [--note TEXT]

Writes bench/results/step_speed.json and step_speed.md.
"""

from __future__ import annotations

import argparse
import contextlib
import platform
import statistics
import time
from pathlib import Path

import torch

from dlapps.adapt.config import AdaptConfig
from dlapps.adapt.methods import get_method
from dlapps.adapt.methods.base import make_optimizer
from dlapps.data import load_domain
from dlapps.engine import Labelled, PairedBatches, seed_everything
from dlapps.engine.batches import to_float
from dlapps.engine.device import cpu_name
from dlapps.io import atomic_write_bytes, atomic_write_json
from dlapps.models import build_digits_net

VARIANTS = ("fp32", "channels-last", "bf16", "channels-last+bf16")


def train(variant: str, s: Labelled, t: Labelled, test: Labelled, mean, warm: int, epochs: int,
          bs: int = 64) -> tuple[float, int, float]:
    """(seconds, images, source-test accuracy) of ``epochs`` timed epochs after ``warm`` untimed."""
    seed_everything(0)
    cfg = AdaptConfig(batch_size=bs)
    method = get_method("dann")(build_digits_net("mnist", mean=mean), cfg)
    if "channels-last" in variant:
        method = method.to(memory_format=torch.channels_last)
    opt = make_optimizer(cfg, method)
    amp = torch.autocast("cpu", dtype=torch.bfloat16) if "bf16" in variant else contextlib.nullcontext()
    batches = PairedBatches(s, t, bs, 0)
    start = 0.0
    for epoch in range(warm + epochs):
        if epoch == warm:
            start = time.perf_counter()
        for xs, ys, xt, _ in batches.epoch(epoch):
            with amp:
                loss = method(xs, ys, xt, None, 0.5)["loss"]
            opt.zero_grad()
            loss.backward()
            opt.step()
    seconds = time.perf_counter() - start
    method.eval()
    with torch.no_grad():
        pred = torch.cat([method.logits(to_float(x)).argmax(1) for x in test.x.split(512)])
    return seconds, epochs * batches.steps_per_epoch * 2 * bs, float((pred == test.y).float().mean())


def markdown(r: dict) -> str:
    setup = r["setup"]
    lines = ["# Speed options of the DANN training step on the CPU\n",
             f"{setup['cpu']}, {setup['threads']} threads, torch {setup['torch']}; {setup['batch']}, "
             f"{setup['epochs']} timed epochs after {setup['warm']} untimed, {setup['repeats']} alternating "
             f"repeats; {setup['note'] or 'nothing else running'}.\n",
             "| variant | median images/s | runs | × fp32 | source-test accuracy |", "|---|---|---|---|---|"]
    for v, row in r["variants"].items():
        lines.append(f"| {v} | {row['median']:.0f} | {', '.join(f'{x:.0f}' for x in row['runs'])} | "
                     f"{row['ratio_to_fp32']:.2f} | {', '.join(f'{a:.3f}' for a in row['accuracy'])} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--warm", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--note", default="")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    source, target = load_domain("mnist5k", 28, 3), load_domain("mnistm5k", 28, 3)
    s, t = Labelled(source.train_x, source.train_y), Labelled(target.train_x, target.train_y)
    test = Labelled(source.test_x, source.test_y)
    mean = torch.cat([s.x, t.x]).float().mean((0, 2, 3)).div(255).tolist()
    variants = args.variants.split(",")
    runs: dict[str, list] = {v: [] for v in variants}
    for k in range(args.repeats):
        for v in variants[k % len(variants):] + variants[:k % len(variants)]:  # rotated per round
            seconds, images, acc = train(v, s, t, test, mean, args.warm, args.epochs)
            runs[v].append((images / seconds, acc))
            print(f"{v:20s} {images / seconds:7.0f} images/s  source acc {acc:.3f}", flush=True)
    base = statistics.median(x for x, _ in runs[variants[0]])
    result = {
        "variants": {v: {"median": statistics.median(x for x, _ in rs), "runs": [x for x, _ in rs],
                         "ratio_to_fp32": statistics.median(x for x, _ in rs) / base,
                         "accuracy": [a for _, a in rs]} for v, rs in runs.items()},
        "setup": {"batch": "64 source + 64 target", "epochs": args.epochs, "warm": args.warm,
                  "repeats": args.repeats, "threads": args.threads, "torch": torch.__version__,
                  "cpu": cpu_name(), "machine": platform.machine(), "note": args.note},
    }
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(args.out / "step_speed.json", result)
    atomic_write_bytes(args.out / "step_speed.md", markdown(result).encode())
    print(markdown(result))


if __name__ == "__main__":
    main()
