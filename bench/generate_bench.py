"""``dlapps generate`` measured: DCGAN / cDCGAN, VAE / cVAE, DDPM / cDDPM on mnist5k over seeds.

    python bench/generate_bench.py [--seeds 0,1,2] [--workers 2] [--n-samples 2000]
                                   [--ddpm-epochs 7] [--cddpm-epochs 24] [--sampler-samples 200]
                                   [--out runs/generate-bench] [--results bench/results]
    python bench/generate_bench.py --cli-wall      # also time `dlapps generate --quiet`, cold cache

Every model trains on the same 4,000 training digits (32x32 grey) in cells of one thread each
(``--workers`` at once), then is measured the same way: judge-FID / KID / IS on n generated
samples against the training images (the judge classifier of ``dlapps gan``), label accuracy for
the conditional ones, trained parameters, training seconds, sampling seconds per 1,000 images;
for the VAEs the test ELBO and the IWAE bound (k = 1,000 on the first 250 binarised test images).

What it answers (issue 15):
1. DDPM against DCGAN at an equal or smaller training time: the GANs at their bench budget
   (14 epochs, batch 16, bench/gan_bench.py), DDPM for ``--ddpm-epochs`` (chosen to take no longer;
   the measured seconds are printed beside).
2. The conditional DDPM (classifier-free guidance) against cDCGAN's label accuracy, at a longer
   budget (``--cddpm-epochs``; its time is stated).
3. The VAE's ELBO against its IWAE bound (it must be tighter).
4. DDIM with 50 steps against 1,000-step ancestral sampling from the same trained DDPM, the same
   x_T, the same n (``--sampler-samples``): judge-FID, KID and seconds.
Resumable: rerun with the same --out. Writes bench/results/generate.json and generate.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from dlapps.cli_support import parse_seeds
from dlapps.engine.parallel import resolve_workers, run_parallel
from dlapps.generate.experiment import model_configs, run_variants
from dlapps.generate.report import metrics_table, quality_rows

RESULTS = Path(__file__).parent / "results"
MODELS = ["dcgan", "cdcgan", "vae", "cvae", "ddpm", "cddpm"]


def options(ddpm_epochs: int, cddpm_epochs: int) -> dict[str, dict]:
    gan = {"epochs": 14, "batch_size": 16}
    vae = {"epochs": 20, "iwae_k": 1000, "eval_images": 250}
    return {"dcgan": gan, "cdcgan": gan, "vae": vae, "cvae": vae,
            "ddpm": {"epochs": ddpm_epochs}, "cddpm": {"epochs": cddpm_epochs}}


def compare_samplers(cell: str, n: int, seed: int) -> dict:
    """DDIM (50 steps) and ancestral sampling (all T steps) from one trained DDPM, the same x_T:
    judge-FID, KID and wall seconds of each (one thread)."""
    from dlapps.generate.data import load_gan_data
    from dlapps.generate.metrics import embed, generate, get_judge, quality
    from dlapps.generate.models import load_cell

    module, config, _ = load_cell(Path(cell))
    data = load_gan_data(config.data, config.size, config.channels)
    judge = get_judge(data)
    real = embed(judge, data.x)
    out = {"cell": Path(cell).name, "n": n, "T": config.timesteps}
    for name, g in (("ddim50", module.generator(sampler="ddim", steps=50)),
                    ("ancestral", module.generator(sampler="ddpm", seed=seed))):
        began = time.perf_counter()
        fake, labels = generate(g, n, seed, g.n_classes)
        seconds = time.perf_counter() - began
        q = quality(judge, real, fake, labels, seed=seed, kid_subset_size=min(n, 1000))
        out[name] = {"fid": q["fid"], "kid": q["kid"], "seconds": seconds, "label_acc": q.get("label_acc")}
    return out


def time_default_cli() -> dict:
    """``dlapps generate --quiet`` as a first-time user runs it: fresh output and data folders."""
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "DLAPPS_DATA": str(Path(tmp) / "data")}
        began = time.perf_counter()
        command = [sys.executable, "-m", "dlapps", "generate", "--quiet", "--out", str(Path(tmp) / "run")]
        subprocess.run(command, check=True, env=env)
        wall = time.perf_counter() - began
        run = json.loads((Path(tmp) / "run" / "results.json").read_text())
    keep = ("fid", "label_acc", "elbo", "iwae", "train_seconds", "sample_seconds_per_1000")
    per_model = {name: {k: round(v[k]["mean"], 4) for k in keep if k in v}
                 for name, v in run["variants"].items()}
    return {"wall_seconds": round(wall, 1), "cold_cache": True, "n_samples": run["n_samples"],
            "models": per_model}


def _ms(values) -> str:
    values = list(values)
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.fmean(values):.4g} ± {sd:.2g}"


def _per_seed(variants: dict, name: str, key: str) -> list[float]:
    return [s[key] for s in variants[name]["seeds"].values()]


def _cli_table(models: dict[str, dict]) -> list[str]:
    keys = list(dict.fromkeys(k for m in models.values() for k in m))
    rows = [f"| {name} | " + " | ".join(f"{m[k]:.4g}" if k in m else "–" for k in keys) + " |"
            for name, m in models.items()]
    return ["| model | " + " | ".join(keys) + " |", "|---|" + "---|" * len(keys), *rows]


def markdown(res: dict) -> str:
    run, seeds = res["run"], res["seeds"]
    v = run["variants"]
    mean = {name: {k: x["mean"] for k, x in m.items() if isinstance(x, dict) and "mean" in x}
            for name, m in v.items()}
    lines = [
        "# Generative models side by side (mnist5k, 32x32 grey)", "",
        f"Seeds {seeds}; mean ± std over seeds. Metrics on n = {run['n_samples']} generated samples against "
        f"the {run['data']['train']} training images with the judge classifier (test accuracy "
        f"{run['judge']['test_acc']:.4f}); floor = the {run['data']['test']} held-out real images. Budgets: "
        f"GANs 14 epochs at batch 16 (bench/gan_bench.py's); VAEs 20 epochs at batch 64, ELBO and IWAE "
        f"(k = 1000) in nats on the first 250 test images, binarised once per seed; DDPM "
        f"{res['ddpm_epochs']} epochs and cDDPM {res['cddpm_epochs']} epochs at batch 64 (U-Net width 32 on "
        f"2x2-folded pixels, T = 1000, linear schedule, EMA 0.999), sampled with DDIM 50 steps, cDDPM with "
        f"guidance 3. Hardware: {res['hardware']}, {run['workers']} cell processes x 1 thread, torch "
        f"{res['torch']}; bench wall {res['bench_seconds'] / 60:.0f} min.",
        *([f"How this run went: {res['note']}"] if res.get("note") else []),
        "", metrics_table(quality_rows(run), markdown=True)]
    d, g, c, cg = mean["ddpm"], mean["dcgan"], mean["cddpm"], mean["cdcgan"]
    winner = "DDPM" if d["fid"] < g["fid"] else "DCGAN"
    lines += [
        f"**DDPM vs DCGAN** at {d['train_seconds']:.0f} s vs {g['train_seconds']:.0f} s of training "
        f"({d['train_seconds'] / g['train_seconds']:.2f}x): judge-FID {_ms(_per_seed(v, 'ddpm', 'fid'))} vs "
        f"{_ms(_per_seed(v, 'dcgan', 'fid'))} — {winner} wins by {abs(d['fid'] - g['fid']):.1f}; sampling "
        f"{d['sample_seconds_per_1000']:.1f} s vs {g['sample_seconds_per_1000']:.2f} s per 1,000 images "
        f"({d['sample_seconds_per_1000'] / g['sample_seconds_per_1000']:.0f}x).", "",
        f"**cDDPM vs cDCGAN label accuracy**: {_ms(_per_seed(v, 'cddpm', 'label_acc'))} vs "
        f"{_ms(_per_seed(v, 'cdcgan', 'label_acc'))} (bench/gan.md: .921); cDDPM trained "
        f"{c['train_seconds']:.0f} s, cDCGAN {cg['train_seconds']:.0f} s; judge-FID {c['fid']:.1f} vs "
        f"{cg['fid']:.1f}.", ""]
    for name in ("vae", "cvae"):
        gaps = [i - e for i, e in zip(_per_seed(v, name, "iwae"), _per_seed(v, name, "elbo"), strict=True)]
        lines.append(f"**{name}**: test ELBO {_ms(_per_seed(v, name, 'elbo'))} nats, IWAE (k = 1000) "
                     f"{_ms(_per_seed(v, name, 'iwae'))} nats: tighter by {_ms(gaps)} nats "
                     f"({'on every seed' if min(gaps) > 0 else 'NOT on every seed'}).")
    lines += ["", "Published, for scale (Burda et al. 2016, one stochastic layer, full 28x28 MNIST, dynamic "
              "binarisation): VAE k = 1 −86.76, k = 50 −84.78 nats. Not comparable to ours: 32x32 images "
              "(1,024 pixels, resized), 4,000 training digits, 20 epochs, a small conv VAE.", ""]
    for key, what in (("samplers", "the ddpm cells above (136 s of training)"),
                      ("samplers_cddpm", "the cddpm cells above (890 s of training; guidance 3)")):
        if not res.get(key):
            continue
        ddim, anc = [r["ddim50"] for r in res[key]], [r["ancestral"] for r in res[key]]
        n, runs = res[key][0]["n"], [r["cell"] for r in res[key]]
        speedup = statistics.fmean(r["seconds"] for r in anc) / statistics.fmean(r["seconds"] for r in ddim)
        lines += [
            f"**DDIM 50 steps vs 1,000-step ancestral sampling** ({what}: {', '.join(runs)}; the same x_T, "
            f"n = {n} each): judge-FID {_ms(r['fid'] for r in ddim)} vs {_ms(r['fid'] for r in anc)} (DDIM − "
            f"ancestral, paired by seed: {_ms(a['fid'] - b['fid'] for a, b in zip(ddim, anc, strict=True))}"
            f"); KID "
            f"{_ms(r['kid'] for r in ddim)} vs {_ms(r['kid'] for r in anc)}; seconds "
            f"{_ms(r['seconds'] for r in ddim)} vs {_ms(r['seconds'] for r in anc)} "
            f"({speedup:.1f}x less time)"
            + (f"; label accuracy {_ms(r['label_acc'] for r in ddim)} vs {_ms(r['label_acc'] for r in anc)}"
               if ddim[0].get("label_acc") is not None else "")
            + f". FID on {n} samples is biased upwards; both samplers share that n.", ""]
    if res.get("cli"):
        cli = res["cli"]
        lines += [f"`dlapps generate --quiet`, the embedded default (all six models, one seed, n = "
                  f"{cli['n_samples']}, cold cache), run alone: **{cli['wall_seconds']:.0f} s** wall. "
                  "What its budgets reach:", "", *_cli_table(cli["models"])]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--n-samples", type=int, default=2000)
    ap.add_argument("--ddpm-epochs", type=int, default=7)
    ap.add_argument("--cddpm-epochs", type=int, default=24)
    ap.add_argument("--sampler-samples", type=int, default=200)
    ap.add_argument("--out", type=Path, default=Path("runs/generate-bench"))
    ap.add_argument("--results", type=Path, default=RESULTS)
    ap.add_argument("--cli-wall", action="store_true")
    ap.add_argument("--markdown-only", action="store_true", help="rewrite generate.md from generate.json")
    ap.add_argument("--samplers-only", default=None, metavar="MODEL",
                    help="only compare DDIM 50 and ancestral sampling on the trained MODEL-seed* cells of "
                         "--out (kept in generate.json beside the rest)")
    ap.add_argument("--note", default=None, help="how the run went (kept in generate.json, shown in the .md)")
    args = ap.parse_args()
    if args.samplers_only:
        res = json.loads((args.results / "generate.json").read_text())
        seeds = parse_seeds(args.seeds)
        jobs = [(str(args.out / f"{args.samplers_only}-seed{s}"), args.sampler_samples, s) for s in seeds]
        res[f"samplers_{args.samplers_only}"] = run_parallel(compare_samplers, jobs, args.workers, "samplers",
                                                             progress=False)
        (args.results / "generate.json").write_text(json.dumps(res, indent=1))
        (args.results / "generate.md").write_text(markdown(res))
        print(markdown(res))
        return
    if args.markdown_only:
        res = json.loads((args.results / "generate.json").read_text())
        if args.note:
            res["note"] = args.note
            (args.results / "generate.json").write_text(json.dumps(res, indent=1))
        (args.results / "generate.md").write_text(markdown(res))
        return
    seeds = parse_seeds(args.seeds)
    workers = resolve_workers(args.workers, 2 * len(seeds))
    began = time.perf_counter()
    configs = model_configs(MODELS, options=options(args.ddpm_epochs, args.cddpm_epochs))
    run = run_variants(configs, seeds, args.out, n_samples=args.n_samples, progress=False,
                       title="generate bench", workers=workers)
    jobs = [(str(args.out / f"ddpm-seed{s}"), args.sampler_samples, s) for s in seeds]
    samplers = run_parallel(compare_samplers, jobs, workers, "samplers", progress=False)
    res = {"seeds": seeds, "ddpm_epochs": args.ddpm_epochs, "cddpm_epochs": args.cddpm_epochs, "run": run,
           "samplers": samplers, "hardware": f"{platform.processor() or platform.machine()}, "
           f"{os.cpu_count()} cores", "torch": torch.__version__,
           "bench_seconds": round(time.perf_counter() - began, 1), "note": args.note}
    if args.cli_wall:
        res["cli"] = time_default_cli()
    args.results.mkdir(parents=True, exist_ok=True)
    (args.results / "generate.json").write_text(json.dumps(res, indent=1))
    (args.results / "generate.md").write_text(markdown(res))
    print(markdown(res))


if __name__ == "__main__":
    main()
