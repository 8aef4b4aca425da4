"""Training throughput of the engine vs a bare loop, measured in the same run.

Both train DANN (the paper's MNIST network, 64 source + 64 target images per step) on mnist5k →
mnistm5k held as in-memory tensors. The bare loop is the minimum a user would write: gather a
batch, forward, backward, step. The engine adds the learning-rate and λ schedules, the finiteness
check, metrics.jsonl + TensorBoard logging, the progress bar (off here) and an atomic checkpoint
every epoch. Runs alternate (bare, engine, bare, engine, ...) so drift in the machine's speed hits
both alike; the best of the repeats is reported.

    python bench/throughput.py [--epochs 3] [--repeats 3] [--threads 2] [--batch-size 64]

Writes bench/results/throughput.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import torch

from dlapps.adapt.config import AdaptConfig
from dlapps.adapt.experiment import make_optimizer
from dlapps.adapt.methods import get_method
from dlapps.data import load_domain
from dlapps.engine import Labelled, PairedBatches, Trainer, seed_everything
from dlapps.engine.batches import epoch_generator, index_stream, to_float
from dlapps.engine.device import cpu_name
from dlapps.engine.schedules import annealed
from dlapps.models import build_digits_net


def build(cfg, mean):
    seed_everything(0)
    method = get_method("dann")(build_digits_net("mnist", mean=mean), cfg)
    return method, make_optimizer(cfg, method)


def bare_loop(cfg, mean, s, t, epochs) -> tuple[float, int]:
    method, opt = build(cfg, mean)
    bs, n_steps = cfg.batch_size, len(s.y) // cfg.batch_size
    start = time.perf_counter()
    for epoch in range(epochs):
        i_s = index_stream(len(s.y), n_steps * bs, epoch_generator(0, epoch, 0))
        i_t = index_stream(len(t.y), n_steps * bs, epoch_generator(0, epoch, 1))
        for k in range(n_steps):
            a, b = i_s[k * bs:(k + 1) * bs], i_t[k * bs:(k + 1) * bs]
            loss = method(to_float(s.x[a]), s.y[a], to_float(t.x[b]), None, 0.5)["loss"]
            opt.zero_grad()
            loss.backward()
            opt.step()
    return time.perf_counter() - start, epochs * n_steps * 2 * bs


def engine(cfg, mean, s, t, epochs) -> tuple[float, int]:
    method, opt = build(cfg, mean)
    batches = PairedBatches(s, t, cfg.batch_size, 0)
    with tempfile.TemporaryDirectory() as run_dir:
        trainer = Trainer(method, batches, opt, annealed(cfg.lr), epochs, Path(run_dir), progress=False)
        start = time.perf_counter()
        trainer.fit()
        seconds = time.perf_counter() - start
    return seconds, epochs * batches.steps_per_epoch * 2 * cfg.batch_size


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=64, help="images per domain per step")
    ap.add_argument("--note", default="", help="a line on the conditions of the measurement")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "throughput.json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cfg = AdaptConfig(batch_size=args.batch_size)
    source, target = load_domain("mnist5k", 28, 3), load_domain("mnistm5k", 28, 3)
    s, t = Labelled(source.train_x, source.train_y), Labelled(target.train_x, target.train_y)
    mean = torch.cat([s.x, t.x]).float().mean((0, 2, 3)).div(255).tolist()
    bare_loop(cfg, mean, s, t, 1)  # warm-up
    rates: dict[str, list[float]] = {"bare": [], "engine": []}
    for _ in range(args.repeats):
        for name, fn in (("bare", bare_loop), ("engine", engine)):
            seconds, images = fn(cfg, mean, s, t, args.epochs)
            rates[name].append(images / seconds)
            print(f"{name:6s} {images / seconds:8.0f} images/s ({images} images, {seconds:.1f} s)")
    best = {k: max(v) for k, v in rates.items()}
    result = {
        "bare_images_per_s": round(best["bare"]), "engine_images_per_s": round(best["engine"]),
        "engine_over_bare": round(best["engine"] / best["bare"], 3),
        "all_runs": {k: [round(r) for r in v] for k, v in rates.items()},
        "setup": {"method": "dann", "net": "mnist (paper)",
                  "batch": f"{args.batch_size} source + {args.batch_size} target",
                  "data": "mnist5k -> mnistm5k, in-memory uint8", "epochs": args.epochs,
                  "repeats": args.repeats, "threads": args.threads, "torch": torch.__version__,
                  "machine": platform.machine(), "cpu": cpu_name(), "note": args.note},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"engine keeps {100 * result['engine_over_bare']:.1f}% of the bare loop's speed "
          f"({result['engine_images_per_s']} vs {result['bare_images_per_s']} images/s) -> {args.out}")


if __name__ == "__main__":
    main()
