"""Training speed of dlapps against peers, measured in the same run on warm networks.

Part ``dann``: DANN with the paper's MNIST network (G_f: two 5x5 convs → 768 features; G_y
768→100→100→10; G_d 768→100→1; SGD lr 0.01, momentum 0.9) on mnist5k → mnistm5k held as in-memory
uint8 tensors (28 px, 3 channels, x/255), 64 source + 64 target images per step:

* ``dlapps-engine``: dlapps' Trainer running its DANN method, as bench/throughput.py does (lr and λ
  schedules, finiteness check, metrics.jsonl + TensorBoard, an atomic checkpoint per epoch);
* ``dlapps-bare``: the same method and optimizer in a bare loop (batch, forward, backward, step; λ = 0.5);
* ``pytorch-adapt``: pytorch-adapt 0.0.83's ``DANNHook`` (GRL weight 1) on its ``MNISTFeatures`` as G,
  C and D of the sizes above, one SGD per model, on the same batches.

Part ``gan``: a DCGAN step (D on x → D on G(z) detached → step D; D on G(z) → step G) with G and D from
dlapps' ``build_gan`` at GanConfig's defaults (32 px, 1 channel, nz 100, ngf = ndf = 32, batch 128,
Adam 2e-4, β = (0.5, 0.999), mnist5k):

* ``dlapps-gan``: the generate experiment's own path, ``generate.models.trainer(config, ...).fit()``
  (the engine with, per epoch, a grid of 100 samples, config.json, metrics and a checkpoint);
* ``examples-dcgan``: the plain loop of pytorch/examples' dcgan/main.py (BCELoss, labels 1, 0, 1),
  on the same in-memory images and without its per-step printing.

Every contestant runs in its own worker process (``--worker NAME``: it loads the data, trains
``--warm-epochs`` untimed, times ``--epochs``, prints one JSON line), so start-up and imports stay
outside the timing for all alike; pytorch-adapt pins torchmetrics 0.9.3, so only its worker gets
``PYTHONPATH=--peer-path``. After training each worker measures its network (source-test accuracy;
for the GAN, mean D(x) on test images and D(G(z)) on fixed noise, both in eval mode), so the table
shows whether it learns. Contestants alternate within each of ``--repeats`` rounds (the order rotated
per round); reported are the median images/s, every run, and ratio = median / the fastest median on
the other side (a dlapps contestant against the peers, a peer against dlapps' contestants).

The ceiling is measured on the machine that runs the bench: the FLOPs of one DANN training step
(forward and backward, counted by torch's ``FlopCounterMode``: 21 MFLOP per image, of which conv1
2.8 + conv2 4.9 + MLPs 0.2 forward; conv1's backward needs no input gradient) over the best fp32
rate ``--threads`` threads reach on a large convolution or matrix product (``measured_ceiling``).
The small convolutions of the step run below that rate, so each contestant's fraction of it says
how much of the CPU it leaves unused. (On the issue's first machine, ≈ 190 GFLOP/s on 2 cores, it
was ≈ 8,000 images/s; faster CPUs give more.)

Reproduce (2 cores, nothing else running)::

    pip install --target /work/peers --no-deps pytorch-adapt==0.0.83 torchmetrics==0.9.3 \\
        'setuptools<70' pytorch-metric-learning
    python bench/peers.py --peer-path /work/peers [--parts dann,gan] [--epochs 2] [--warm-epochs 1] \\
        [--repeats 3] [--threads 2] [--note TEXT]

Writes bench/results/peers.json and peers.md (``--out DIR`` elsewhere; ``--limit N`` caps the
training images of each domain, for a quick check of this script only).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import torch
from torch import nn

from dlapps.data import load_domain
from dlapps.engine import Labelled, PairedBatches, Trainer, seed_everything
from dlapps.engine.batches import batched, epoch_generator, eval_mode
from dlapps.engine.device import cpu_name
from dlapps.io import atomic_write_bytes, atomic_write_json

RESULTS = Path(__file__).parent / "results"
PARTS = {"dann": ("dlapps-engine", "dlapps-bare", "pytorch-adapt"), "gan": ("dlapps-gan", "examples-dcgan")}
NOTES = {
    "dlapps-engine": "Trainer: lr + λ schedules, metrics, checkpoint per epoch, channels_last (default)",
    "dlapps-bare": "same method, bare loop, λ = 0.5",
    "pytorch-adapt": "DANNHook 0.0.83, GRL weight 1, constant lr",
    "dlapps-gan": "generate.models.trainer: engine + per-epoch grid, metrics, checkpoint",
    "examples-dcgan": "pytorch/examples dcgan loop, BCELoss",
}

# A contestant: train(first_epoch, last_epoch), images per epoch, measure() -> quality numbers.
Contest = tuple[Callable[[int, int], None], int, Callable[[], dict]]


def dann_data(limit: int | None) -> tuple[Labelled, Labelled, Labelled]:
    source, target = load_domain("mnist5k", 28, 3), load_domain("mnistm5k", 28, 3)
    return (Labelled(source.train_x[:limit], source.train_y[:limit]),
            Labelled(target.train_x[:limit], target.train_y[:limit]), Labelled(source.test_x, source.test_y))


def accuracy(net: nn.Module, test: Labelled) -> float:
    with eval_mode(net):
        logits = batched(net, test.x, torch.device("cpu"))
    return round(float((logits.argmax(1) == test.y).float().mean()), 4)


def dlapps_dann(args, tmp: Path, engine: bool) -> Contest:
    from dlapps.adapt.config import AdaptConfig
    from dlapps.adapt.experiment import make_optimizer
    from dlapps.adapt.methods import get_method
    from dlapps.engine.schedules import annealed
    from dlapps.models import build_digits_net

    s, t, test = dann_data(args.limit)
    cfg = AdaptConfig(batch_size=args.batch_size)
    mean = torch.cat([s.x, t.x]).float().mean((0, 2, 3)).div(255).tolist()
    seed_everything(0)
    method = get_method("dann")(build_digits_net("mnist", mean=mean), cfg)
    opt = make_optimizer(cfg, method)
    batches = PairedBatches(s, t, args.batch_size, 0)

    def train(first: int, last: int) -> None:
        if engine:  # resumes from the checkpoint the warm-up left in tmp
            Trainer(method, batches, opt, annealed(cfg.lr), last, tmp, progress=False,
                    channels_last=cfg.channels_last).fit()
            return
        for epoch in range(first, last):
            for xs, ys, xt, _ in batches.epoch(epoch):
                loss = method(xs, ys, xt, None, 0.5)["loss"]
                opt.zero_grad()
                loss.backward()
                opt.step()

    images = batches.steps_per_epoch * 2 * args.batch_size
    return train, images, lambda: {"source_acc": accuracy(method.net, test)}


def pytorch_adapt(args, tmp: Path) -> Contest:
    return pytorch_adapt_dann(*dann_data(args.limit), args.batch_size, seed=0)


def pytorch_adapt_dann(s: Labelled, t: Labelled, test: Labelled, batch_size: int, seed: int) -> Contest:
    """pytorch-adapt's DANNHook on its MNISTFeatures, C and D of the paper's sizes; ``test`` is what
    ``measure`` scores (its key stays ``source_acc``)."""
    from pytorch_adapt.hooks import DANNHook
    from pytorch_adapt.models import MNISTFeatures

    seed_everything(seed)
    models = {"G": MNISTFeatures(),
              "C": nn.Sequential(nn.Linear(768, 100), nn.ReLU(), nn.Linear(100, 100), nn.ReLU(),
                                 nn.Linear(100, 10)),
              "D": nn.Sequential(nn.Linear(768, 100), nn.ReLU(), nn.Linear(100, 1), nn.Flatten(0))}
    hook = DANNHook(opts=[torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9) for m in models.values()])
    batches = PairedBatches(s, t, batch_size, seed)
    domains = {"src_domain": torch.zeros(batch_size), "target_domain": torch.ones(batch_size)}

    def train(first: int, last: int) -> None:
        for epoch in range(first, last):
            for xs, ys, xt, _ in batches.epoch(epoch):
                hook({**models, **domains, "src_imgs": xs, "src_labels": ys, "target_imgs": xt})

    net = nn.Sequential(models["G"], models["C"])
    return train, batches.steps_per_epoch * 2 * batch_size, lambda: {"source_acc": accuracy(net, test)}


def gan_setup(limit: int | None):
    from dlapps.generate.config import GanConfig
    from dlapps.generate.data import load_gan_data

    cfg = GanConfig()
    data = load_gan_data(cfg.data, cfg.size, cfg.channels)
    return cfg, replace(data, x=data.x[:limit], y=None if data.y is None else data.y[:limit])


def gan_health(g: nn.Module, d: nn.Module, cfg, data) -> dict:
    """Mean D(x) on 256 test images and mean D(G(z)) on 256 fixed z, both nets in eval mode."""
    from dlapps.generate.data import to_signed

    z = torch.randn(256, cfg.nz, generator=torch.Generator().manual_seed(1))
    with torch.no_grad(), eval_mode(g), eval_mode(d):
        return {"d_x": round(float(d(to_signed(data.test_x[:256])).mean()), 4),
                "d_g_z": round(float(d(g(z)).mean()), 4)}


def dlapps_gan(args, tmp: Path) -> Contest:
    from dlapps.generate import models

    cfg, data = gan_setup(args.limit)
    trainer = None

    def train(first: int, last: int) -> None:
        nonlocal trainer  # each call resumes from the checkpoint the previous one left in tmp
        trainer = models.trainer(replace(cfg, epochs=last), data, tmp, progress=False)
        trainer.fit()

    per_epoch = len(data.x) // cfg.batch_size * cfg.batch_size
    return train, per_epoch, lambda: gan_health(trainer.module.g, trainer.module.d, cfg, data)


def examples_dcgan(args, tmp: Path) -> Contest:
    from dlapps.generate.data import to_signed
    from dlapps.generate.dcgan import build_gan

    cfg, data = gan_setup(args.limit)
    seed_everything(cfg.seed)
    g, d = build_gan(cfg.nz, cfg.ngf, cfg.ndf, cfg.channels, cfg.size, init=cfg.init)
    criterion = nn.BCELoss()
    opt_d = torch.optim.Adam(d.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_g = torch.optim.Adam(g.parameters(), lr=2e-4, betas=(0.5, 0.999))
    bs = cfg.batch_size
    n = len(data.x) // bs * bs

    def train(first: int, last: int) -> None:
        for epoch in range(first, last):
            for idx in torch.randperm(len(data.x), generator=epoch_generator(cfg.seed, epoch))[:n].split(bs):
                real = to_signed(data.x[idx])
                d.zero_grad()
                label = torch.full((bs,), 1.0)
                criterion(d(real), label).backward()
                fake = g(torch.randn(bs, cfg.nz))
                label.fill_(0.0)
                criterion(d(fake.detach()), label).backward()
                opt_d.step()
                g.zero_grad()
                label.fill_(1.0)
                criterion(d(fake), label).backward()
                opt_g.step()

    return train, n, lambda: gan_health(g, d, cfg, data)


WORKERS: dict[str, Callable[..., Contest]] = {
    "dlapps-engine": lambda a, tmp: dlapps_dann(a, tmp, engine=True),
    "dlapps-bare": lambda a, tmp: dlapps_dann(a, tmp, engine=False),
    "pytorch-adapt": pytorch_adapt, "dlapps-gan": dlapps_gan, "examples-dcgan": examples_dcgan,
}


def worker(args) -> None:
    """Train one contestant warm, then timed; print {"images", "seconds", quality...} as one line."""
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        train, per_epoch, measure = WORKERS[args.worker](args, Path(tmp))
        if args.warm_epochs:
            train(0, args.warm_epochs)
        start = time.perf_counter()
        train(args.warm_epochs, args.warm_epochs + args.epochs)
        seconds = time.perf_counter() - start
        print(json.dumps({"images": args.epochs * per_epoch, "seconds": seconds, **measure()}))


def run_worker(name: str, args) -> dict:
    cmd = [sys.executable, __file__, "--worker", name, "--threads", str(args.threads), "--epochs",
           str(args.epochs), "--warm-epochs", str(args.warm_epochs), "--batch-size", str(args.batch_size)]
    cmd += ["--limit", str(args.limit)] if args.limit else []
    env = {**os.environ, "PYTHONPATH": str(args.peer_path)} if name == "pytorch-adapt" else None
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode:
        sys.exit(f"worker {name} failed:\n{proc.stderr[-3000:]}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    print(f"  {name:15s} {out['images'] / out['seconds']:7.0f} images/s  "
          + "  ".join(f"{k} {v}" for k, v in out.items() if k not in ("images", "seconds")), flush=True)
    return out


def summarize(runs: dict[str, list[dict]]) -> dict:
    """Per contestant: median images/s, every run, ratio to the best other median, quality per run."""
    rates = {k: [r["images"] / r["seconds"] for r in v] for k, v in runs.items()}
    medians = {k: statistics.median(v) for k, v in rates.items()}
    return {k: {"median_images_per_s": round(medians[k]), "runs": [round(r) for r in rates[k]],
                "ratio_to_fastest_other_side": round(medians[k] / max(
                    m for o, m in medians.items() if o.startswith("dlapps") != k.startswith("dlapps")), 3),
                "images_per_run": v[0]["images"],
                "quality": {q: [r[q] for r in v] for q in v[0] if q not in ("images", "seconds")},
                "note": NOTES[k]}
            for k, v in runs.items()}


def paired(rows: dict, ours: str, peer: str) -> str:
    """The ratio within each round (both ran minutes apart, so a slow spell of a shared host hits
    both): its median and range over the rounds."""
    ratios = [a / b for a, b in zip(rows[ours]["runs"], rows[peer]["runs"], strict=True)]
    return f"{statistics.median(ratios):.3f} (rounds {min(ratios):.2f}–{max(ratios):.2f})"


def measured_ceiling(threads: int, batch: int) -> dict:
    """This machine's fp32 limit for the DANN step: FLOPs per training image (one dlapps DANN step
    on ``batch`` + ``batch`` images, forward and backward, counted by ``FlopCounterMode``) against
    the best fp32 rate ``threads`` threads reach, the faster of a large convolution (oneDNN, which
    runs the step's convolutions; 256 → 256 channels, 3 x 3, 16 x 32 x 32, channels_last) and a
    2048² matrix product (MKL, which takes a slower path on some CPUs); best of five each."""
    from torch.nn.functional import conv2d
    from torch.utils.flop_counter import FlopCounterMode

    from dlapps.adapt.config import AdaptConfig
    from dlapps.adapt.methods import get_method
    from dlapps.models import build_digits_net

    torch.set_num_threads(threads)
    method = get_method("dann")(build_digits_net("mnist"), AdaptConfig(batch_size=batch))
    xs, xt = (torch.randint(0, 256, (batch, 3, 28, 28), dtype=torch.uint8) for _ in range(2))
    with FlopCounterMode(display=False) as counter:
        method(xs, torch.randint(0, 10, (batch,)), xt, None, 0.5)["loss"].backward()
    per_image = counter.get_total_flops() / (2 * batch)

    def rate(fn, flops: float) -> float:
        fn()  # warm
        best = float("inf")
        for _ in range(5):
            start = time.perf_counter()
            fn()
            best = min(best, time.perf_counter() - start)
        return flops / best

    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    x = torch.randn(16, 256, 32, 32).to(memory_format=torch.channels_last)
    w = torch.randn(256, 256, 3, 3).to(memory_format=torch.channels_last)
    rates = {"conv": rate(lambda: conv2d(x, w), 2 * 16 * 30 * 30 * 256 * 256 * 9),
             "matmul": rate(lambda: a @ b, 2 * 2048**3)}
    best = max(rates.values())
    return {"mflop_per_image": round(per_image / 1e6, 2),
            **{f"{k}_gflop_s": round(v / 1e9, 1) for k, v in rates.items()},
            "images_per_s": round(best / per_image)}


def headline(part: str, rows: dict, ceiling: dict | None = None) -> dict:
    """dlapps over its peer (ratio of medians, and paired within rounds); for DANN also each
    contestant's fraction of the machine's fp32 ceiling."""
    med = {k: v["median_images_per_s"] for k, v in rows.items()}
    ours, peer = ("dlapps-gan", "examples-dcgan") if part == "gan" else ("dlapps-engine", "pytorch-adapt")
    pair = {f"{ours} / {peer}": round(med[ours] / med[peer], 3),
            f"{ours} / {peer}, paired within each round": paired(rows, ours, peer)}
    if part == "gan" or ceiling is None:
        return pair
    limit = ceiling["images_per_s"]
    return {**pair, **{f"{k} / {limit:,} images/s (this machine's fp32 ceiling)": round(v / limit, 3)
                       for k, v in med.items()}}


def quality_text(quality: dict) -> str:
    names = {"source_acc": "source acc", "d_x": "D(x)", "d_g_z": "D(G(z))"}
    return ", ".join(f"{names[q]} {statistics.median(v):.3f}" for q, v in quality.items())


def markdown(result: dict) -> str:
    s = result["setup"]
    lines = ["# dlapps vs peers: training speed, same run, alternating, warm networks", "",
             f"Setup: {s['threads']} threads on {s['cpu']}, torch {s['torch']}; per worker process "
             f"{s['warm_epochs']} untimed warm epoch(s), then {s['epochs']} timed; {s['repeats']} "
             f"alternating repeats; training images per domain: {s['limit'] or 'all'}.", "",
             f"Note: {s['note'] or '-'}", ""]
    if c := s.get("ceiling"):
        lines += [f"fp32 ceiling of this machine for the DANN step: "
                  f"{c['mflop_per_image']} MFLOP per training "
                  f"image (FlopCounterMode) at the best fp32 rate of {s['threads']} threads "
                  f"(large convolution {c['conv_gflop_s']} GFLOP/s, 2048² matrix product "
                  f"{c['matmul_gflop_s']} GFLOP/s) = {c['images_per_s']:,} images/s.", ""]
    titles = {"dann": f"DANN, mnist5k → mnistm5k, {s['batch']} + {s['batch']} images per step",
              "gan": f"DCGAN step, {s['gan']}"}
    for part, rows in result["parts"].items():
        lines += [f"## {titles[part]}", "",
                  "| contestant | median images/s | runs | × other side's fastest | accuracy / notes |",
                  "|---|---:|---|---:|---|"]
        lines += [f"| {name} | {r['median_images_per_s']} | {', '.join(map(str, r['runs']))} | "
                  f"{r['ratio_to_fastest_other_side']:.3f} | {quality_text(r['quality'])}; {r['note']} |"
                  for name, r in rows.items()]
        lines += [""] + [f"- {k}: {v}" for k, v in result["headline"].get(part, {}).items()] + [""]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--parts", default="dann,gan", help="comma-separated: dann, gan")
    ap.add_argument("--peer-path", type=Path, help="folder pytorch-adapt was pip-installed into (--target)")
    ap.add_argument("--epochs", type=int, default=2, help="timed epochs per run")
    ap.add_argument("--warm-epochs", type=int, default=1, help="untimed epochs before the timed ones")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=64, help="DANN images per domain per step")
    ap.add_argument("--limit", type=int, help="cap on training images per domain (a quick check only)")
    ap.add_argument("--note", default="", help="a line on the load conditions of the measurement")
    ap.add_argument("--out", type=Path, default=RESULTS, help="folder for peers.json and peers.md")
    ap.add_argument("--worker", choices=sorted(WORKERS), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        return worker(args)
    parts = args.parts.split(",")
    if unknown := set(parts) - set(PARTS):
        ap.error(f"unknown parts {sorted(unknown)}; choose from {sorted(PARTS)}")
    if "dann" in parts and not (args.peer_path and (args.peer_path / "pytorch_adapt").is_dir()):
        ap.error("part dann needs --peer-path DIR holding pytorch_adapt (see the docstring)")
    if args.epochs < 1 or args.warm_epochs < 0 or args.repeats < 1:
        ap.error("need --epochs >= 1, --warm-epochs >= 0, --repeats >= 1")

    result: dict = {"parts": {}, "headline": {}}
    ceiling = measured_ceiling(args.threads, args.batch_size) if "dann" in parts else None
    for part in parts:
        names = PARTS[part]
        runs: dict[str, list[dict]] = {n: [] for n in names}
        for r in range(args.repeats):
            print(f"{part}, repeat {r + 1}/{args.repeats}", flush=True)
            for name in names[r % len(names):] + names[:r % len(names)]:
                runs[name].append(run_worker(name, args))
        result["parts"][part] = summarize(runs)
        result["headline"][part] = headline(part, result["parts"][part], ceiling)
    from dlapps.generate.config import GanConfig

    gan = GanConfig()
    result["setup"] = {"threads": args.threads, "batch": args.batch_size, "epochs": args.epochs,
                       "warm_epochs": args.warm_epochs, "repeats": args.repeats, "limit": args.limit,
                       "gan": f"{gan.data}, {gan.size} px, nz {gan.nz}, ngf {gan.ngf}, ndf {gan.ndf}, "
                              f"batch {gan.batch_size}",
                       "torch": torch.__version__, "cpu": cpu_name(), "note": args.note,
                       "ceiling": ceiling}
    atomic_write_json(args.out / "peers.json", result)
    atomic_write_bytes(args.out / "peers.md", markdown(result).encode())
    print(markdown(result))


if __name__ == "__main__":
    main()
