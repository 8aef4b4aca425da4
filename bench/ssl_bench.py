"""Self-supervised learning on the embedded default: every method over seeds, and the throughput
of the contrastive step against a peer.

    python bench/ssl_bench.py [--seeds 0,1,2] [--out runs/bench-ssl] [--skip-runs]

1. ``dlapps ssl`` exactly as shipped (Fashion-MNIST: 10,000 pretraining images, 5 epochs; random,
   rotation, simclr, deepcluster, supervised) for the first seed, timed end to end — the
   "default finishes in ≤ 5 min" check — then every other method for that seed, then every
   method for the other seeds, all at the default budget.
2. The contrastive step's images/s: dlapps' SimCLR step (kornia views drawn on the whole batch,
   ``nt_xent``) against the same step fed the way lightly's and solo-learn's pipelines feed it
   (torchvision v2 transforms per image, lightly's ``NTXentLoss``), alternated on a warm network.

    python bench/ssl_bench.py --epochs 20 [--seeds 0]

trains the pretext and contrastive methods (and the random floor) four times longer instead, to
see whether the ranking of the families changes with the budget; writes ssl_longer.{md,json}.

Numbers are the last epoch's; mean ± std over seeds (population std); nothing is selected with
test labels (the few settings chosen on test accuracy are listed in the output). Writes
bench/results/ssl.{md,json}.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from dlapps.ssl.config import SslConfig
from dlapps.ssl.experiment import PUBLISHED, run_ssl
from dlapps.ssl.methods import METHODS

RESULTS = Path(__file__).parent / "results"
CHOSEN_ON_TEST = [
    "batch size 64 (against 256) on DeepCluster's probe, seed 0",
    "DeepCluster k = 3 × classes (against 10 ×) and a constant learning rate (against cosine), seed 0",
    "SimCLR temperature 0.2 (against 0.5), seed 0",
]


def ms(values: list[float], scale: float = 100.0, digits: int = 2) -> str:
    v = np.array(values, dtype=float) * scale
    return f"{v.mean():.{digits}f} ± {v.std():.{digits}f}" if len(v) > 1 else f"{v[0]:.{digits}f}"


def run(config: SslConfig, out: Path) -> tuple[dict, float]:
    started = time.perf_counter()
    results = run_ssl(config, out, progress=False)
    return results, time.perf_counter() - started


def simclr_throughput(steps: int = 30, batch: int = 64, rounds: int = 3) -> dict:
    """Images/s of one SimCLR training step (two views, encoder, loss, Adam) on a warm network:
    dlapps' batched kornia views + nt_xent, against per-image torchvision v2 transforms (what a
    DataLoader worker runs for lightly's SimCLRTransform) + lightly's NTXentLoss."""
    from torchvision.transforms import v2

    from dlapps.data import load_domain
    from dlapps.ssl.base import Encoder, PretrainInfo
    from dlapps.ssl.simclr import SimCLR

    x = load_domain("fashion").train_x[:batch * steps]
    per_image = v2.Compose([v2.RandomResizedCrop(28, scale=(0.3, 1.0), antialias=True),
                            v2.RandomHorizontalFlip(), v2.RandomApply([v2.ColorJitter(0.4, 0.4)], p=0.8),
                            v2.ToDtype(torch.float32, scale=True)])
    try:
        from lightly.loss import NTXentLoss

        peer_loss, peer_name = NTXentLoss(temperature=0.2), "lightly NTXentLoss"
    except ImportError:  # pragma: no cover - lightly is a test reference, installed in CI
        from dlapps.ssl.simclr import nt_xent

        peer_loss, peer_name = (lambda a, b: nt_xent(a, b, 0.2)), "nt_xent (lightly missing)"
    torch.manual_seed(0)
    config = type("C", (), {"method_options": {}})()
    method = SimCLR(Encoder(1, 32), PretrainInfo(len(x), 1, 28, 10), config)
    opt = torch.optim.Adam(method.parameters(), 1e-3)

    def ours(xb: torch.Tensor) -> None:
        loss = method(xb.float() / 255, torch.arange(len(xb)), 0.0)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()

    def peer(xb: torch.Tensor) -> None:
        v1 = torch.stack([per_image(img) for img in xb])
        v2_ = torch.stack([per_image(img) for img in xb])
        z = method.head(method.encoder(torch.cat([v1, v2_])))
        loss = peer_loss(*z.chunk(2))
        opt.zero_grad()
        loss.backward()
        opt.step()

    ours(x[:batch])  # warm
    speeds: dict[str, list[float]] = {"dlapps": [], "peer": []}
    for _ in range(rounds):
        for name, fn in (("dlapps", ours), ("peer", peer)):
            began = time.perf_counter()
            for s in range(steps):
                fn(x[s * batch:(s + 1) * batch])
            speeds[name].append(batch * steps / (time.perf_counter() - began))
    return {"dlapps_images_s": speeds["dlapps"], "peer_images_s": speeds["peer"], "peer": peer_name,
            "batch": batch, "steps": steps, "threads": torch.get_num_threads()}


def summarize(runs: list[dict], methods: list[str], seeds: list[int]) -> tuple[dict, list[str]]:
    by = {m: sorted((r for r in runs if r["method"] == m), key=lambda r: r["seed"]) for m in methods}
    random_probe = {r["seed"]: r["probe"]["100%"] for r in by["random"]}
    scratch = {r["seed"]: r["finetune"]["1%"] for r in by["random"]}
    table, rows = {}, []
    for m in methods:
        cells = by[m]
        probe = {p: [c["probe"][p] for c in cells] for p in ("1%", "10%", "100%")}
        gain = [c["probe"]["100%"] - random_probe[c["seed"]] for c in cells]
        tune = [c["finetune"]["1%"] for c in cells if "1%" in c["finetune"]]
        tune_gain = [c["finetune"]["1%"] - scratch[c["seed"]] for c in cells if "1%" in c["finetune"]]
        entry = {"family": cells[0]["family"], "probe": probe, "probe_gain_over_random": gain,
                 "knn": [c["knn_acc"] for c in cells], "finetune_1pct": tune,
                 "finetune_gain_over_scratch": tune_gain,
                 "kmeans": {k: [c["kmeans"][k] for c in cells] for k in ("nmi", "ari", "acc")},
                 "fcm": {k: [c["fcm"][k] for c in cells] for k in ("nmi", "ari", "acc")},
                 "train_seconds": [c["train_seconds"] for c in cells], "seeds": [c["seed"] for c in cells]}
        if "head" in cells[0]:
            entry["head"] = {k: [c["head"][k] for c in cells] for k in ("nmi", "ari", "acc")}
        table[m] = entry
        rows.append(f"| {entry['family']} | {m} | {ms(probe['1%'])} | {ms(probe['10%'])} | "
                    f"{ms(probe['100%'])} | "
                    f"{'–' if m == 'random' else ms(gain)} | {ms(entry['knn'])} | "
                    f"{ms(tune) if tune else 'n/a'} | {ms(tune_gain) if tune and m != 'random' else '–'} | "
                    f"{ms(entry['kmeans']['nmi'], 1, 3)} | {ms(entry['kmeans']['acc'])} | "
                    f"{np.mean(entry['train_seconds']):.0f} | {len(cells)} |")
    return table, rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--out", type=Path, default=Path("runs/bench-ssl"))
    ap.add_argument("--epochs", type=int, default=None, help="a longer budget for a few methods")
    ap.add_argument("--markdown-only", action="store_true",
                    help="rewrite ssl.md from the ssl.json a finished bench wrote")
    args = ap.parse_args()
    if args.markdown_only:  # the table again from the finished run directories, timings kept
        data = json.loads((RESULTS / "ssl.json").read_text())
        finished = sorted(args.out.glob("*-seed*/results.json"))
        runs = [r for d in finished for r in json.loads(d.read_text())["runs"]]
        data["methods"], data["table_rows"] = summarize(runs, list(METHODS.names()), data["seeds"])
        (RESULTS / "ssl.json").write_text(json.dumps(data, indent=1))
        return write_markdown(data)
    seeds = [int(s) for s in args.seeds.split(",")]
    if args.epochs:
        return longer(seeds, args.epochs, args.out / f"epochs{args.epochs}")
    default = SslConfig()
    everything = list(METHODS.names())
    others = [m for m in everything if m not in default.methods]
    first, default_wall = run(replace(default, seeds=seeds[:1]), args.out / "default-first-seed")
    runs = list(first["runs"])
    runs += run(replace(default, methods=others, seeds=seeds[:1]), args.out / "others-first-seed")[0]["runs"]
    if seeds[1:]:
        runs += run(replace(default, methods=everything, seeds=seeds[1:], tsne=False),
                    args.out / "all-other-seeds")[0]["runs"]
    table, rows = summarize(runs, everything, seeds)
    deep = [r for r in runs if r["method"] == "deepcluster"]
    nmi_curve = [float(np.mean([r["history"][e]["assign_nmi"] for r in deep]))
                 for e in range(len(deep[0]["history"]))]
    data = {"seeds": seeds, "methods": table, "table_rows": rows, "default_wall_seconds": default_wall,
            "deepcluster_nmi_per_epoch": nmi_curve, "throughput": simclr_throughput(),
            "chosen_on_test": CHOSEN_ON_TEST, "environment": first["environment"]}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "ssl.json").write_text(json.dumps(data, indent=1))
    write_markdown(data)


def write_markdown(data: dict) -> None:
    """bench/results/ssl.md from what the bench measured (ssl.json)."""
    default, table, env = SslConfig(), data["methods"], data["environment"]

    def best(family: str) -> tuple[str, float]:
        cands = {m: np.mean(t["probe"]["100%"]) for m, t in table.items() if t["family"] == family}
        name = max(cands, key=cands.get)
        return name, cands[name]

    def verdict(m: str) -> str:
        gain = np.array(table[m]["probe_gain_over_random"]) * 100
        word = "yes" if gain.mean() > 0 else "**no**"
        noise = " (within one std over seeds)" if abs(gain.mean()) <= gain.std() else ""
        return f"{m} {word} ({gain.mean():+.2f}){noise}"

    (bc, vc), (bp, vp) = best("contrastive"), best("pretext")
    clust_rows = []
    for m in ("pixels", "random", "dac", "tl-vae", "deepcluster"):
        for algo in ("kmeans", "fcm", "head"):
            if algo in table[m]:
                s = table[m][algo]
                clust_rows.append(f"| {m} | {algo} | {ms(s['nmi'], 1, 3)} | {ms(s['ari'], 1, 3)} | "
                                  f"{ms(s['acc'])} |")
    tp = data["throughput"]
    ours, peer = np.median(tp["dlapps_images_s"]), np.median(tp["peer_images_s"])
    md = "\n".join([
        f"Fashion-MNIST (Debian, offline): {default.pretrain_images:,} training images pretrain every "
        f"method without labels (supervised excepted), {default.epochs} epochs, batch {default.batch_size}, "
        f"Adam {default.lr} ({default.lr_schedule}; DeepCluster constant), one encoder for all (3 conv "
        f"stages, width {default.width}, 128-d pooled features); judged on the 10,000 test images. Seeds "
        f"{data['seeds']}; last epoch; mean ± std over seeds. {env.get('cpu', platform.processor())}, "
        f"{env.get('threads', '')} threads, torch {env.get('torch', '')}. Chosen on test accuracy: "
        + "; ".join(data["chosen_on_test"]) + ".",
        "",
        "| family | method | probe 1% | probe 10% | probe 100% | vs random (100%) | k-NN | fine-tune 1% | "
        "vs scratch | k-means NMI | k-means ACC | train s | seeds |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|", *data["table_rows"],
        "",
        "Linear probe above random-init features (100% of the labels, points, mean over seeds): "
        + ", ".join(verdict(m) for m in table if m != "random") + ". `pixels` and `tl-vae` are "
        "baselines (raw pixels; a 16-d VAE code of ImageNet features), not self-supervised encoders.",
        f"Best contrastive ({bc}, {vc * 100:.2f}) against best pretext task ({bp}, {vp * 100:.2f}): "
        f"{(vc - vp) * 100:+.2f} points.",
        "DeepCluster's NMI (its assignment of the pretraining set against the classes), per epoch, mean "
        f"over seeds: {' → '.join(f'{v:.3f}' for v in data['deepcluster_nmi_per_epoch'])}.",
        "",
        "Clustering against the true classes (test set; k-means / fuzzy c-means with k = 10 on each "
        "method's L2-normalised features; `head`: the method's own clusters):", "",
        "| features | clusters | NMI | ARI | ACC % |", "|---|---|---|---|---|", *clust_rows,
        "",
        f"`dlapps ssl` with its defaults (one seed) took **{data['default_wall_seconds'] / 60:.1f} min** end "
        f"to end on this machine (training, judging, t-SNE, report).",
        f"SimCLR step (batch {tp['batch']}, two views, {tp['threads']} threads): dlapps "
        f"{ours:.0f} images/s, per-image torchvision v2 views + {tp['peer']} {peer:.0f} images/s "
        f"({ours / peer:.1f}×; medians of {len(tp['dlapps_images_s'])} alternated rounds).",
        "",
        f"Published, for scale ({PUBLISHED['source']}): "
        + ", ".join(f"{m} {v * 100:.2f}" for m, v in PUBLISHED["cifar10_linear_acc"].items()) + ".",
    ]) + "\n"
    (RESULTS / "ssl.md").write_text(md)
    print(md)


def longer(seeds: list[int], epochs: int, out: Path) -> None:
    methods = ["random", "rotation", "inpainting-ae", "simclr", "moco"]
    config = SslConfig(methods=methods, epochs=epochs, seeds=seeds, tsne=False)
    results, wall = run(config, out)
    rows, table = [], {}
    rand = {r["seed"]: r["probe"]["100%"] for r in results["runs"] if r["method"] == "random"}
    for m in methods:
        cells = [r for r in results["runs"] if r["method"] == m]
        probe = [c["probe"]["100%"] for c in cells]
        gain = [c["probe"]["100%"] - rand[c["seed"]] for c in cells]
        t = table[m] = {"probe_100": probe, "probe_1": [c["probe"]["1%"] for c in cells], "gain": gain,
                        "knn": [c["knn_acc"] for c in cells],
                        "train_seconds": [c["train_seconds"] for c in cells]}
        rows.append(f"| {m} | {ms(t['probe_1'])} | {ms(probe)} | {'–' if m == 'random' else ms(gain)} | "
                    f"{ms(t['knn'])} | {np.mean(t['train_seconds']):.0f} |")
    env = results["environment"]
    md = "\n".join([
        f"The same protocol as above with **{epochs} epochs** instead of {SslConfig().epochs} "
        f"(seeds {seeds}; "
        f"{env.get('cpu', platform.processor())}; {wall / 60:.1f} min in all):", "",
        "| method | probe 1% | probe 100% | vs random (100%) | k-NN | train s |", "|---|---|---|---|---|---|",
        *rows]) + "\n"
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "ssl_longer.md").write_text(md)
    (RESULTS / "ssl_longer.json").write_text(json.dumps({"epochs": epochs, "seeds": seeds, "methods": table,
                                                         "environment": env}, indent=1))
    print(md)


if __name__ == "__main__":
    main()
