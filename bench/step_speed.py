"""What each CPU speed change buys on the training steps, each measured on its own, in one run.

Part ``dann``: dlapps' DANN on the paper's MNIST network, 64 source + 64 target images per step
(mnist5k → mnistm5k, in-memory uint8), SGD — the bare loop of bench/throughput.py. Variants:

* ``relu-pool``: the lecture's layer order, conv → ReLU → max-pool, NCHW, float32 (dlapps before
  issue 17); ``relu-pool+channels-last``: the same in channels_last;
* ``fp32``: dlapps' network as built today, conv → max-pool → ReLU (the same function and
  gradients: ReLU is monotone; tested in tests/test_models.py), NCHW, float32;
* ``channels-last``: that network's weights in ``torch.channels_last`` (convolutions then run NHWC,
  the layout oneDNN prefers on CPU) — the default of ``dlapps adapt``;
* ``bf16``: the step under ``torch.autocast("cpu", dtype=torch.bfloat16)``;
* ``channels-last+bf16``: both;
* ``channels-last+compile``: the channels-last step through ``torch.compile`` (inductor; its
  compile time lands in the untimed first epoch, reported beside).

Part ``gan``: the DCGAN experiment's own path (``generate.models.trainer(...).fit()``, GanConfig's
defaults: mnist5k, 32 px, batch 128, channels_last), variants:

* ``frozen-d``: the G step builds its graph through D with D's weights frozen (``engine.frozen``),
  so backward computes ∂D/∂x only — the default;
* ``d-grads``: D's weight gradients computed in the G step too (and thrown away by D's next
  zero_grad), as pytorch/examples' loop does.

Each variant trains a warm network (one untimed epoch first), then ``--epochs`` timed epochs;
variants alternate within each of ``--repeats`` rounds (after one untimed epoch that warms the
process: its first training runs slower whatever the variant); reported: the median images/s, every run,
the ratio to the first variant and a quality number after training (DANN: source-test accuracy;
GAN: Σ|θ_G|, equal when the training is the same) — an option that changes it is not a pure speed-up.

    python bench/step_speed.py [--parts dann,gan] [--epochs 2] [--repeats 3] [--threads 2] [--note TEXT]

Writes bench/results/step_speed.json and step_speed.md.
"""

from __future__ import annotations

import argparse
import contextlib
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import torch
from torch import nn

from dlapps.adapt.config import AdaptConfig
from dlapps.adapt.methods import get_method
from dlapps.adapt.methods.base import make_optimizer
from dlapps.data import load_domain
from dlapps.engine import Labelled, PairedBatches, seed_everything
from dlapps.engine.batches import to_float
from dlapps.engine.device import cpu_name
from dlapps.io import atomic_write_bytes, atomic_write_json
from dlapps.models import build_digits_net

PARTS = {"dann": ("relu-pool", "relu-pool+channels-last", "fp32", "channels-last", "bf16",
                  "channels-last+bf16", "channels-last+compile"),
         "gan": ("d-grads", "frozen-d")}
QUALITY = {"dann": "source-test accuracy", "gan": "Σ|θ_G| after training (equal: the same training)"}


def relu_before_pool(body: nn.Sequential) -> nn.Sequential:
    """The same modules with every (max-pool, ReLU) pair back in the lecture's ReLU → pool order."""
    mods = list(body)
    for i in range(len(mods) - 1):
        if isinstance(mods[i], nn.MaxPool2d) and isinstance(mods[i + 1], nn.ReLU):
            mods[i], mods[i + 1] = mods[i + 1], mods[i]
    return nn.Sequential(*mods)


def dann_data() -> dict:
    source, target = load_domain("mnist5k", 28, 3), load_domain("mnistm5k", 28, 3)
    s, t = Labelled(source.train_x, source.train_y), Labelled(target.train_x, target.train_y)
    mean = torch.cat([s.x, t.x]).float().mean((0, 2, 3)).div(255).tolist()
    return {"s": s, "t": t, "test": Labelled(source.test_x, source.test_y), "mean": mean}


Timing = tuple[float, int, float, float]  # seconds, images, quality, seconds of the untimed epochs


def train_dann(variant: str, data: dict, warm: int, epochs: int, bs: int = 64) -> Timing:
    """(seconds, images, source-test accuracy, seconds of the untimed epochs) of ``epochs`` timed
    epochs after ``warm`` untimed."""
    seed_everything(0)
    cfg = AdaptConfig(batch_size=bs)
    net = build_digits_net("mnist", mean=data["mean"])
    if variant.startswith("relu-pool"):
        net.features = relu_before_pool(net.features)
    method = get_method("dann")(net, cfg)
    if "channels-last" in variant:
        method = method.to(memory_format=torch.channels_last)
    opt = make_optimizer(cfg, method)
    amp = torch.autocast("cpu", dtype=torch.bfloat16) if "bf16" in variant else contextlib.nullcontext()
    step = torch.compile(method) if "compile" in variant else method
    batches = PairedBatches(data["s"], data["t"], bs, 0)
    start = time.perf_counter()
    for epoch in range(warm + epochs):
        if epoch == warm:
            start, first = time.perf_counter(), time.perf_counter() - start
        for xs, ys, xt, _ in batches.epoch(epoch):
            with amp:
                loss = step(xs, ys, xt, None, 0.5)["loss"]
            opt.zero_grad()
            loss.backward()
            opt.step()
    seconds = time.perf_counter() - start
    method.eval()
    with torch.no_grad():
        pred = torch.cat([method.logits(to_float(x)).argmax(1) for x in data["test"].x.split(512)])
    accuracy = float((pred == data["test"].y).float().mean())
    return seconds, epochs * batches.steps_per_epoch * 2 * bs, accuracy, first


def gan_data() -> dict:
    from dlapps.generate.config import GanConfig
    from dlapps.generate.data import load_gan_data

    cfg = GanConfig()
    return {"cfg": cfg, "data": load_gan_data(cfg.data, cfg.size, cfg.channels)}


def train_gan(variant: str, data: dict, warm: int, epochs: int) -> Timing:
    """(seconds, images, Σ|θ_G|, seconds of the untimed epochs) of the generate experiment's
    trainer, resumed after ``warm``."""
    from dlapps.generate import gan, models

    cfg, images = data["cfg"], data["data"]
    kept = gan.frozen
    if variant == "d-grads":
        gan.frozen = lambda module: contextlib.nullcontext(module)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            if warm:
                models.trainer(replace(cfg, epochs=warm), images, Path(tmp), progress=False).fit()
            start, first = time.perf_counter(), time.perf_counter() - start
            trainer = models.trainer(replace(cfg, epochs=warm + epochs), images, Path(tmp), progress=False)
            trainer.fit()
            seconds = time.perf_counter() - start
    finally:
        gan.frozen = kept
    per_epoch = len(images.x) // cfg.batch_size * cfg.batch_size
    g_sum = float(sum(p.abs().sum() for p in trainer.module.g.parameters()))
    return seconds, epochs * per_epoch, g_sum, first


TRAIN: dict[str, tuple[Callable[[], dict], Callable[..., Timing]]] = {
    "dann": (dann_data, train_dann), "gan": (gan_data, train_gan)}


def markdown(r: dict) -> str:
    setup = r["setup"]
    lines = ["# Speed changes of the training steps on the CPU, each on its own\n",
             f"{setup['cpu']}, {setup['threads']} threads, torch {setup['torch']}; {setup['epochs']} timed "
             f"epochs after {setup['warm']} untimed, {setup['repeats']} alternating repeats; "
             f"{setup['note'] or 'nothing else running'}.\n"]
    titles = {"dann": "DANN step, 64 source + 64 target images (bare loop)",
              "gan": "DCGAN, the generate experiment's trainer (batch 128, 32 px)"}
    for part, variants in r["parts"].items():
        first = next(iter(variants))
        lines += [f"## {titles[part]}\n",
                  f"| variant | median images/s | runs | × {first} | {QUALITY[part]} | untimed epochs, s |",
                  "|---|---|---|---|---|---|"]
        for v, row in variants.items():
            lines.append(f"| {v} | {row['median']:.0f} | {', '.join(f'{x:.0f}' for x in row['runs'])} | "
                         f"{row['ratio']:.2f} | {', '.join(f'{a:.6g}' for a in row['quality'])} | "
                         f"{statistics.median(row['untimed_seconds']):.1f} |")
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--parts", default="dann,gan")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--warm", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--note", default="")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = ap.parse_args()
    parts = args.parts.split(",")
    if unknown := set(parts) - set(PARTS):
        ap.error(f"unknown parts {sorted(unknown)}; choose from {sorted(PARTS)}")
    torch.set_num_threads(args.threads)
    result: dict = {"parts": {}}
    for part in parts:
        load, train = TRAIN[part]
        data, variants = load(), PARTS[part]
        runs: dict[str, list] = {v: [] for v in variants}
        train(variants[0], data, 0, 1)  # the process's first training is slow (allocator, oneDNN caches)
        for k in range(args.repeats):
            for v in variants[k % len(variants):] + variants[:k % len(variants)]:  # rotated per round
                seconds, images, quality, untimed = train(v, data, args.warm, args.epochs)
                runs[v].append((images / seconds, quality, untimed))
                print(f"{part} {v:20s} {images / seconds:7.0f} images/s  {QUALITY[part]} {quality:.3f}",
                      flush=True)
        base = statistics.median(r[0] for r in runs[variants[0]])
        result["parts"][part] = {
            v: {"median": statistics.median(r[0] for r in rs), "runs": [r[0] for r in rs],
                "ratio": statistics.median(r[0] for r in rs) / base, "quality": [r[1] for r in rs],
                "untimed_seconds": [r[2] for r in rs]}
            for v, rs in runs.items()}
    result["setup"] = {"epochs": args.epochs, "warm": args.warm, "repeats": args.repeats,
                       "threads": args.threads, "torch": torch.__version__, "cpu": cpu_name(),
                       "machine": platform.machine(), "note": args.note}
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(args.out / "step_speed.json", result)
    atomic_write_bytes(args.out / "step_speed.md", markdown(result).encode())
    print(markdown(result))


if __name__ == "__main__":
    main()
