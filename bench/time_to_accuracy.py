"""Time to accuracy: training seconds until DANN's *target* test accuracy first reaches a goal.

mnist5k → mnistm5k (28 px, 3 channels, the paper's MNIST network: G_f two 5x5 convs → 768
features, G_y 768→100→100→10, G_d 768→100→1; SGD μ0 0.01, momentum 0.9); after every epoch the
target accuracy acc_t = mean 1[argmax G_y(G_f(x)) = y] over mnistm5k's test split. Measured is the
training time T(e*) of the first epoch e* with acc_t ≥ ``--goal`` (0.70), evaluation excluded,
for four contestants:

* ``dlapps-default``: what ``dlapps adapt --methods dann`` runs, ``preset("fast")`` (instance-normalised
  input, warm-up gate at source accuracy 0.5, 32 + 32 images per step, 12 epochs, μ_p = μ0 / (1 + 10p)^0.75,
  λ_p = 2 / (1 + exp(-10p)) - 1 from the gate on), trained by dlapps' own ``train_cell`` (the Trainer
  with the experiment's per-epoch evaluation, metrics.jsonl + TensorBoard, a checkpoint per epoch);
* ``dlapps-paper``: the same path with ``preset("paper")`` (mean-subtracted input, no warm-up, 64 + 64,
  the same μ_p and λ_p), its 100 epochs capped at ``--max-epochs`` (as are dlapps-default's 12), the
  schedules spanning the cap;
* ``plain-paper``: the paper's settings in a plain loop (the ``bare_loop`` of bench/throughput.py):
  the same DANN method, network, initial weights and batch order as ``dlapps-paper``, with μ_p set by hand
  per step and p = step / (max epochs x steps per epoch) handed to the method, which turns it into λ_p;
* ``pytorch-adapt``: pytorch-adapt 0.0.83's ``DANNHook`` at its defaults (GRL weight 1, constant lr 0.01,
  x / 255), G, C, D and the hook built by bench/peers.py, on this run's data and seed, 64 + 64 per step.

The dlapps contestants' clock is the Trainer's own (training steps with their logging; evaluation
and checkpoint writes excluded), read back from metrics.jsonl; since ``train_cell`` has no early
stop they train their whole length, which changes nothing before e*. The plain loops time their
epochs with ``time.perf_counter`` outside the evaluation and stop at the goal or ``--max-epochs``.
Every contestant and seed runs in its own worker process (``--worker NAME --seeds S``: it loads
the data, trains, prints its per-epoch history as one JSON line), so imports and data loading stay
outside all clocks; pytorch-adapt pins torchmetrics 0.9.3, so only its worker gets
``PYTHONPATH=--peer-path``. Reported per contestant and seed: T(e*) (or "not reached in N epochs
(T s)"), e*, acc_t at e* and at the last epoch trained, and T(e*) / T_dlapps-default(e*).

Reproduce (2 cores, nothing else running)::

    pip install --target /work/peers --no-deps pytorch-adapt==0.0.83 torchmetrics==0.9.3 \\
        'setuptools<70' pytorch-metric-learning
    python bench/time_to_accuracy.py --peer-path /work/peers [--seeds 0,1,2] [--goal 0.70] \\
        [--max-epochs 30] [--threads 2] [--note TEXT]

Writes bench/results/time_to_accuracy.json and .md (``--out DIR`` elsewhere; ``--limit N`` caps the
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
from pathlib import Path

import torch

import peers  # bench/peers.py, beside this script
from dlapps.adapt.config import AdaptConfig, preset
from dlapps.adapt.experiment import Pair, build_method, load_pair, make_optimizer, train_cell
from dlapps.engine import Labelled, PairedBatches
from dlapps.engine.device import cpu_name
from dlapps.engine.distributed import Dist
from dlapps.engine.runlog import read_metrics
from dlapps.engine.schedules import lr_schedule
from dlapps.io import atomic_write_bytes, atomic_write_json

RESULTS = Path(__file__).parent / "results"
BASE = "dlapps-default"
PEER_BATCH = 64  # pytorch-adapt's images per domain per step, as in bench/peers.py
PRESETS = {"dlapps-default": "fast", "dlapps-paper": "paper", "plain-paper": "paper",
           "pytorch-adapt": "paper"}  # pytorch-adapt: only for its data (the same images)
NOTES = {
    "dlapps-default": "preset fast via train_cell: instance norm, warm-up gate, 32+32, annealed lr, λ ramp",
    "dlapps-paper": "preset paper via train_cell: mean subtraction, no warm-up, 64+64, annealed lr, λ ramp",
    "plain-paper": "plain loop, paper settings: same method/init/batches as dlapps-paper, μ_p and p by hand",
    "pytorch-adapt": "DANNHook 0.0.83 at its defaults (GRL weight 1, constant lr 0.01), 64+64",
}


def adapt_config(name: str, args, seed: int) -> AdaptConfig:
    """The contestant's configuration, its preset's length capped at ``--max-epochs``."""
    base = preset(PRESETS[name])
    return preset(PRESETS[name], methods=["dann"], seeds=[seed], epochs=min(base.epochs, args.max_epochs),
                  train_limit=args.limit, tsne=False, a_distance=False, selection=False).validate()


def target_test(pair: Pair) -> Labelled:
    return Labelled(pair.target.test_x, pair.target.test_y)


def until_goal(train_epoch: Callable[[int], None], target_acc: Callable[[], float], args) -> list[dict]:
    """Train epoch by epoch (evaluation off the clock) until target accuracy ≥ goal or max epochs."""
    history: list[dict] = []
    seconds = 0.0
    for epoch in range(args.max_epochs):
        began = time.perf_counter()
        train_epoch(epoch)
        seconds += time.perf_counter() - began
        history.append({"epoch": epoch + 1, "seconds": round(seconds, 3), "target_acc": target_acc()})
        if history[-1]["target_acc"] >= args.goal:
            break
    return history


def dlapps_cell(name: str, args, seed: int) -> list[dict]:
    """One DANN cell through dlapps' own ``train_cell``; its epoch records from metrics.jsonl."""
    cfg = adapt_config(name, args, seed)
    pair = load_pair(cfg)
    with tempfile.TemporaryDirectory() as tmp:
        train_cell(cfg, pair, "dann", seed, Path(tmp), torch.device("cpu"), Dist(), progress=False)
        epochs = [r for r in read_metrics(Path(tmp)) if r["kind"] == "epoch"]
    return [{"epoch": r["epoch"], "seconds": r["seconds"], "target_acc": round(r["target_acc"], 4)}
            for r in epochs]


def plain_paper(args, seed: int) -> list[dict]:
    cfg = adapt_config("plain-paper", args, seed)
    pair = load_pair(cfg)
    s, t = pair.source, pair.target
    method = build_method(cfg, pair, "dann", seed)
    opt = make_optimizer(cfg, method)
    lr = lr_schedule(cfg.lr_schedule, cfg.lr, cfg.lr_alpha, cfg.lr_beta)
    batches = PairedBatches(Labelled(s.train_x, s.train_y), Labelled(t.train_x, t.train_y),
                            cfg.batch_size, seed)
    n_steps = batches.steps_per_epoch
    total = cfg.epochs * n_steps

    def train_epoch(epoch: int) -> None:
        for k, (xs, ys, xt, _) in enumerate(batches.epoch(epoch)):
            p = (epoch * n_steps + k) / total
            for group in opt.param_groups:
                group["lr"] = lr(p)
            loss = method(xs, ys, xt, None, p)["loss"]
            opt.zero_grad()
            loss.backward()
            opt.step()

    return until_goal(train_epoch, lambda: peers.accuracy(method.net, target_test(pair)), args)


def pytorch_adapt(args, seed: int) -> list[dict]:
    """bench/peers.py's pytorch-adapt contestant on this run's data and seed, scored on the target."""
    pair = load_pair(adapt_config("pytorch-adapt", args, seed))
    s, t = pair.source, pair.target
    train, _, measure = peers.pytorch_adapt_dann(
        Labelled(s.train_x, s.train_y), Labelled(t.train_x, t.train_y), target_test(pair), PEER_BATCH, seed)
    return until_goal(lambda epoch: train(epoch, epoch + 1), lambda: measure()["source_acc"], args)


WORKERS: dict[str, Callable[..., list[dict]]] = {
    "dlapps-default": lambda a, seed: dlapps_cell("dlapps-default", a, seed),
    "dlapps-paper": lambda a, seed: dlapps_cell("dlapps-paper", a, seed),
    "plain-paper": plain_paper,
    "pytorch-adapt": pytorch_adapt,
}


def run_worker(name: str, seed: int, args) -> dict:
    cmd = [sys.executable, __file__, "--worker", name, "--seeds", str(seed), "--threads", str(args.threads),
           "--max-epochs", str(args.max_epochs), "--goal", str(args.goal)]
    cmd += ["--limit", str(args.limit)] if args.limit else []
    env = {**os.environ, "PYTHONPATH": str(args.peer_path)} if name == "pytorch-adapt" else None
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode:
        sys.exit(f"worker {name} (seed {seed}) failed:\n{proc.stderr[-3000:]}")
    run = outcome(json.loads(proc.stdout.strip().splitlines()[-1]), seed, args.goal)
    print(f"  {name:15s} seed {seed}: {reach_text(run)}, final target acc {run['final_acc']:.4f}", flush=True)
    return run


def outcome(history: list[dict], seed: int, goal: float) -> dict:
    """One run: the first epoch at the goal (None if never), its seconds and accuracy, the last epoch."""
    hit = next((r for r in history if r["target_acc"] >= goal), None)
    return {"seed": seed, "reached": hit is not None, "goal_epoch": hit and hit["epoch"],
            "seconds_to_goal": hit and hit["seconds"], "acc_at_goal": hit and hit["target_acc"],
            "epochs_trained": history[-1]["epoch"], "train_seconds": history[-1]["seconds"],
            "final_acc": history[-1]["target_acc"], "history": history}


def reach_text(run: dict) -> str:
    if run["reached"]:
        return f"{run['seconds_to_goal']:.1f} s (epoch {run['goal_epoch']})"
    return f"not reached in {run['epochs_trained']} epochs ({run['train_seconds']:.1f} s)"


def ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else round(a / b, 3)


def summarize(runs: dict[str, list[dict]]) -> dict:
    """Per contestant: its runs with the ratio to dlapps-default's seconds on the same seed, and the
    median seconds to goal over seeds (None unless every seed reached it)."""
    medians = {k: statistics.median(r["seconds_to_goal"] for r in v) if all(r["reached"] for r in v) else None
               for k, v in runs.items()}
    base = {r["seed"]: r["seconds_to_goal"] for r in runs.get(BASE, [])}
    return {k: {"note": NOTES[k], "reached": f"{sum(r['reached'] for r in v)}/{len(v)}",
                "median_seconds_to_goal": medians[k], "median_ratio_to_dlapps_default": ratio(
                    medians[k], medians.get(BASE)),
                "runs": [{**r, "ratio_to_dlapps_default": ratio(r["seconds_to_goal"], base.get(r["seed"]))}
                         for r in v]}
            for k, v in runs.items()}


def markdown(result: dict) -> str:
    s = result["setup"]
    lines = [f"# Time to {s['goal']:.2f} target accuracy: DANN, mnist5k → mnistm5k", "",
             f"Setup: {s['threads']} threads on {s['cpu']}, torch {s['torch']}; seeds {s['seeds']}; "
             f"at most {s['max_epochs']} epochs (dlapps-default: min(12, max); dlapps-paper: its 100 "
             f"capped at {s['max_epochs']}, the schedules spanning the cap); training images per domain: "
             f"{s['limit'] or 'all'}. Seconds are training time, evaluation excluded (dlapps: the "
             "Trainer's clock from metrics.jsonl, checkpoint writes excluded too).", "",
             f"Note: {s['note'] or '-'}", "",
             "| contestant | seed | seconds to goal | target acc at goal | final target acc (epochs) "
             "| ratio to dlapps-default |", "|---|---:|---|---:|---:|---:|"]
    for name, c in result["contestants"].items():
        for r in c["runs"]:
            at = "-" if r["acc_at_goal"] is None else f"{r['acc_at_goal']:.4f}"
            q = "-" if r["ratio_to_dlapps_default"] is None else f"{r['ratio_to_dlapps_default']:.3f}"
            lines.append(f"| {name} | {r['seed']} | {reach_text(r)} | {at} | {r['final_acc']:.4f} "
                         f"({r['epochs_trained']}) | {q} |")
    lines += ["", "| contestant | reached | median seconds to goal | median ratio to dlapps-default "
              "| setting |", "|---|---:|---:|---:|---|"]
    for name, c in result["contestants"].items():
        med, q = c["median_seconds_to_goal"], c["median_ratio_to_dlapps_default"]
        lines.append(f"| {name} | {c['reached']} | {'-' if med is None else f'{med:.1f}'} | "
                     f"{'-' if q is None else f'{q:.3f}'} | {c['note']} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--contestants", default=",".join(WORKERS), help=f"comma-separated: {', '.join(WORKERS)}")
    ap.add_argument("--peer-path", type=Path, help="folder pytorch-adapt was pip-installed into (--target)")
    ap.add_argument("--goal", type=float, default=0.70, help="target test accuracy to reach")
    ap.add_argument("--max-epochs", type=int, default=30,
                    help="epoch cap (and the length of the paper schedules)")
    ap.add_argument("--seeds", default="0", help="comma-separated seeds, e.g. 0,1,2")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--limit", type=int, help="cap on training images per domain (a quick check only)")
    ap.add_argument("--note", default="", help="a line on the load conditions of the measurement")
    ap.add_argument("--out", type=Path, default=RESULTS, help="folder for time_to_accuracy.json and .md")
    ap.add_argument("--worker", choices=sorted(WORKERS), help=argparse.SUPPRESS)
    args = ap.parse_args()
    try:
        seeds = [int(x) for x in args.seeds.split(",")]
    except ValueError:
        ap.error(f"--seeds takes comma-separated integers, got {args.seeds!r}")
    if args.worker:
        torch.set_num_threads(args.threads)
        print(json.dumps(WORKERS[args.worker](args, seeds[0])))
        return
    names = args.contestants.split(",")
    if unknown := set(names) - set(WORKERS):
        ap.error(f"unknown contestants {sorted(unknown)}; choose from {list(WORKERS)}")
    if "pytorch-adapt" in names and not (args.peer_path and (args.peer_path / "pytorch_adapt").is_dir()):
        ap.error("pytorch-adapt needs --peer-path DIR holding pytorch_adapt (see the docstring)")
    if not 0 < args.goal <= 1 or args.max_epochs < 1 or (args.limit is not None and args.limit < 64):
        ap.error("need 0 < --goal <= 1, --max-epochs >= 1 and --limit >= 64")

    runs: dict[str, list[dict]] = {n: [] for n in names}
    for i, seed in enumerate(seeds):  # the order rotated per seed, so drift hits all alike
        print(f"seed {seed}", flush=True)
        for name in names[i % len(names):] + names[:i % len(names)]:
            runs[name].append(run_worker(name, seed, args))
    result = {"setup": {"pair": "mnist5k -> mnistm5k, 28 px, 3 channels", "goal": args.goal,
                        "max_epochs": args.max_epochs, "seeds": seeds, "threads": args.threads,
                        "limit": args.limit, "evaluation_in_clock": False, "torch": torch.__version__,
                        "cpu": cpu_name(), "note": args.note},
              "contestants": summarize(runs)}
    atomic_write_json(args.out / "time_to_accuracy.json", result)
    atomic_write_bytes(args.out / "time_to_accuracy.md", markdown(result).encode())
    print(markdown(result))


if __name__ == "__main__":
    main()
