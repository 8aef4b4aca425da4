"""Measure dlapps.explain on the offline ImageNet model and scikit-image's bundled photos.

    .venv/bin/python bench/explain_bench.py [--size 160] [--threads 1] [--parts saliency,attacks,...]

Writes bench/results/explain.json and explain.md (+ figures under bench/results/explain/):

* saliency faithfulness: RISE deletion (to zeros of the normalised input, as RISE's code; and to
  black) / insertion (from blurred) normalised AUCs of each method against two random-map
  baselines (i.i.d. and smooth noise), at single-pixel and tile granularity, at the model's 224 px,
  mean ± std over the photos;
* attacks: success rate, mean L2 / L∞, iterations and seconds per image of naive (targeted),
  FGSM (smallest successful ε of a grid, per image), PGD (L∞ and L2) and DeepFool, and success
  rate against ε;
* class visualisation: the target probability over iterations from noise, a few classes;
* throughput: saliency maps per second on the CPU for each backbone (random weights: speed does
  not depend on the weights, and squeezenet/vgg16 weights need a download);
* completeness: Integrated Gradients' completeness gap per photo at 32 fixed steps (the old default)
  and at the default refinement (steps tripled until the gap is ≤ 5%), with the steps and seconds,
  on the bundled photos plus matplotlib's grace_hopper and scikit-learn's china and flower, at 224 px;
* sanity: Adebayo et al.'s cascading model-parameter randomisation of EfficientNet-Lite0 (Spearman,
  SSIM per step, the figure), with the ``edge`` control; with ``--digits-run RUN/CELL`` also the
  data (label) randomisation of a ``dlapps adapt`` digits network;
* the saliency part also reports faithfulness correlation and max-sensitivity (Quantus's
  definitions) beside RISE, against the two random maps;
* cli: the wall time of ``dlapps explain`` with no arguments (its defaults, ``--threads``), as a
  user runs it, in a fresh output folder.

Examples: ``--parts completeness`` (IG only), ``--parts sanity --sanity-photos 4``,
``--parts saliency --sensitivity-samples 3``.
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

from dlapps.explain import attacks
from dlapps.explain.classvis import ClassVisSettings, class_visualization
from dlapps.explain.inputs import BUNDLED, load_images, resolve_class
from dlapps.explain.metrics import faithfulness_correlation, max_sensitivity, rise_curves
from dlapps.explain.models import from_backbone, load_model
from dlapps.explain.report import curves, image_grid, sanity_curves, sanity_maps
from dlapps.explain.saliency import BASELINES, integrated_gradients, saliency
from dlapps.io import atomic_write_bytes, atomic_write_json

RESULTS = Path(__file__).parent / "results"
PHOTOS = BUNDLED[:10]  # the colour photos and the grey camera man
SALIENCY = ("vanilla", "smoothgrad", "ig", "gradcam", "gradcampp")
FGSM_GRID = tuple(2 ** (k / 2) / 255 for k in range(-6, 11))  # 1/8 ... 32 (/255), steps of √2
L2_GRID = (0.1, 0.25, 0.5, 1.0, 2.0, 4.0)
TARGET = "quail"
CLASSVIS = ("tarantula", "goldfish", "Yorkshire terrier")


def mean_std(values) -> dict:
    values = [float(v) for v in values]
    return {"mean": statistics.fmean(values), "std": statistics.pstdev(values) if len(values) > 1 else 0.0}


SALIENCY_SETTINGS = (("mean", 1), ("black", 1), ("mean", 8))  # (deletion substrate, tile side)
SANITY = ("vanilla", "smoothgrad", "ig", "gradcam", "edge")


def more_photos() -> list[str]:
    """grace_hopper (matplotlib's sample data) and china, flower (scikit-learn's sample images)."""
    import matplotlib.cbook
    import sklearn.datasets

    images = Path(sklearn.datasets.__file__).parent / "images"
    return [str(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)),
            str(images / "china.jpg"), str(images / "flower.jpg")]


def explainer(model, method: str, ig_steps: list[int] | None = None):
    """(x, target) -> maps; IG one photo at a time at the fixed steps it took on that clean photo
    (``ig_steps``, in the batch's order); a random map redrawn at each call."""
    if method in BASELINES:
        draws = iter(range(1, 10**6))
        return lambda z, t: BASELINES[method](model, z, t, seed=next(draws))
    if ig_steps:
        return lambda z, t: torch.cat([saliency(model, z[i : i + 1], t[i : i + 1], method, tolerance=None,
                                                steps=k) for i, k in enumerate(ig_steps)])
    return lambda z, t: saliency(model, z, t, method)


def bench_saliency(model, x, steps: int = 24, sensitivity_samples: int = 3) -> dict:
    """RISE AUCs, faithfulness correlation and max-sensitivity of every method and both random
    baselines, per (substrate, tile) setting, with how many photos each method beats each baseline
    on. IG converges per photo (default tolerance); max-sensitivity reruns it at the steps it took."""
    from dlapps.explain.saliency import normalise, reduce

    cls = model.predict(x)[0]
    ig = [integrated_gradients(model, x[i : i + 1], cls[i : i + 1]) for i in range(len(x))]  # per photo
    ig_steps = [int(r.steps.max()) for r in ig]
    maps = {m: torch.cat([normalise(reduce(r.attributions, "sum-abs")) for r in ig]) if m == "ig"
            else saliency(model, x, cls, m) for m in SALIENCY}
    maps.update({b: fn(model, x, cls) for b, fn in BASELINES.items()})
    extra = {m: {"faithfulness_correlation": faithfulness_correlation(model, x, v, cls)}
             for m, v in maps.items()}
    for m in maps if sensitivity_samples else ():
        fn = explainer(model, m, ig_steps if m == "ig" else None)
        extra[m]["max_sensitivity"] = max_sensitivity(x, cls, fn, sensitivity_samples)

    def beats(m: str, b: str, k: str) -> int:  # photos on which m is better than b
        better = extra[m][k] > extra[b][k] if k == "faithfulness_correlation" else extra[m][k] < extra[b][k]
        return int(better.sum())

    out = {"more_metrics": {m: {k: mean_std(v) for k, v in e.items()} for m, e in extra.items()},
           "more_metrics_beats": {m: {b: {k: beats(m, b, k) for k in extra[m]} for b in BASELINES}
                                  for m in SALIENCY},
           "sensitivity_samples": sensitivity_samples, "ig_steps_for_sensitivity": ig_steps}
    for substrate, patch in SALIENCY_SETTINGS:
        scores = {
            m: rise_curves(model, x, v, cls, steps=steps, patch=patch, substrate=substrate)
            for m, v in maps.items()
        }
        rows = {
            m: {"deletion_auc": mean_std(s["deletion_auc"]), "insertion_auc": mean_std(s["insertion_auc"])}
            for m, s in scores.items()
        }
        for m in SALIENCY:
            for b in BASELINES:
                rows[m][f"beats_{b}"] = {
                    "deletion": rows[m]["deletion_auc"]["mean"] < rows[b]["deletion_auc"]["mean"],
                    "insertion": rows[m]["insertion_auc"]["mean"] > rows[b]["insertion_auc"]["mean"],
                    "photos_deletion": int((scores[m]["deletion_auc"] < scores[b]["deletion_auc"]).sum()),
                    "photos_insertion": int((scores[m]["insertion_auc"] > scores[b]["insertion_auc"]).sum()),
                }
        key = f"{substrate}-patch{patch}"
        out[key] = {"substrate": substrate, "patch": patch, "steps": steps, "rows": rows}
    return out


def bench_completeness(model, names: list[str], x: torch.Tensor, baselines: list[str]) -> dict:
    """Per photo (one at a time, so seconds are per photo): IG's gap at 32 fixed steps and the
    default refinement's steps, gap and seconds, for each baseline."""
    cls = model.predict(x)[0]
    out = {}
    for baseline in baselines:
        rows = []
        for i, name in enumerate(names):
            one, t = x[i : i + 1], cls[i : i + 1]
            fixed = integrated_gradients(model, one, t, steps=32, baseline=baseline, tolerance=None)
            res = integrated_gradients(model, one, t, baseline=baseline)
            rows.append({"image": name, "gap_at_32": float(fixed.gap[0]), "steps": int(res.steps[0]),
                         "gap": float(res.gap[0]), "converged": bool(res.converged[0]),
                         "seconds": res.seconds,
                         "score_difference": float(res.attributions.sum() - res.delta[0])})  # S(x) − S(x̄)
            print(f"  {baseline} {name}: {rows[-1]['steps']} steps, gap {rows[-1]['gap']:.3f}, "
                  f"{res.seconds:.0f} s", file=sys.stderr, flush=True)
        out[baseline] = rows
    return out


def bench_sanity(model, x: torch.Tensor, fig_dir: Path, digits_run: str | None) -> dict:
    """Cascading randomisation of ``model`` (and label randomisation of a digits network): mean
    Spearman / SSIM per step and method, flagged methods, the figures."""
    from dlapps.explain import sanity

    cls = model.predict(x)[0]
    # IG at 32 fixed steps: maps are compared, not summed
    explain = {m: (lambda mdl, z, t, m=m: saliency(mdl, z, t, m, tolerance=None)) for m in SANITY}
    results = {"model": sanity.cascading_randomisation(model, x, cls, explain)}
    if digits_run:
        digits = load_model(digits_run)
        xd = digits.training_data()[0][-4:]  # four of its own digits, in [0, 1]
        results["data"] = sanity.data_randomisation(digits, xd, digits.predict(xd)[0], explain)
        results["model (digits)"] = sanity.cascading_randomisation(digits, xd, digits.predict(xd)[0], explain)
    out = {}
    for check, res in results.items():
        slug = check.replace(" ", "-").replace("(", "").replace(")", "")
        sanity_curves(res, fig_dir / f"sanity-{slug}.png")
        sanity_maps(x[0] if check == "model" else xd[0], res, fig_dir / f"sanity-{slug}-maps.png")
        out[check] = {"steps": res.steps, "info": res.info, "summary": res.summary(),
                      "spearman": {m: res.mean("spearman", m) for m in SANITY},
                      "ssim": {m: res.mean("ssim", m) for m in SANITY}}
    return out


def time_default_cli(threads: int) -> dict:
    """``dlapps explain --threads N --quiet`` into a fresh folder: the wall seconds and its parts."""
    with tempfile.TemporaryDirectory() as tmp:
        began = time.perf_counter()
        subprocess.run([sys.executable, "-m", "dlapps", "explain", "--threads", str(threads), "--quiet",
                        "--out", tmp], check=True)
        wall = time.perf_counter() - began
        parts = sorted(p.parent.name for p in Path(tmp).glob("*/results.json"))
    return {"wall_seconds": round(wall, 1), "threads": threads, "parts": parts}


def summarize(res: attacks.AttackResult, extra: dict | None = None) -> dict:
    ok = res.success
    return {
        "success_rate": float(ok.float().mean()),
        "n": len(ok),
        "mean_l2": float(res.l2[ok].mean()) if ok.any() else None,
        "mean_linf": float(res.linf[ok].mean()) if ok.any() else None,
        "mean_iterations": float(res.iterations[ok].float().mean()) if ok.any() else None,
        "seconds_per_image": res.seconds,
        **(extra or {}),
    }


def minimal_fgsm(model, x) -> dict:
    """Per image, the smallest ε of FGSM_GRID at which FGSM succeeds, and that perturbation's size."""
    start = time.perf_counter()
    n = len(x)
    l2, linf, eps_found = (torch.full((n,), float("nan"), dtype=torch.float64) for _ in range(3))
    for eps in FGSM_GRID:
        res = attacks.fgsm(model, x, eps)
        new = res.success & eps_found.isnan()
        l2[new], linf[new], eps_found[new] = res.l2[new].double(), res.linf[new].double(), eps
    ok = ~eps_found.isnan()
    return {
        "success_rate": float(ok.float().mean()),
        "n": n,
        "mean_l2": float(l2[ok].mean()),
        "mean_linf": float(linf[ok].mean()),
        "mean_iterations": 1.0,
        "seconds_per_image": (time.perf_counter() - start) / n,
        "eps_grid_255": [e * 255 for e in FGSM_GRID],
        "per_image_l2": l2.tolist(),
    }


def bench_attacks(model, x) -> dict:
    t = torch.full((len(x),), resolve_class(TARGET, model.classes))
    df = attacks.deepfool(model, x)
    rows = {
        "naive (targeted: quail)": summarize(attacks.naive(model, x, t, max_iter=100)),
        "fgsm (smallest ε of a grid)": minimal_fgsm(model, x),
        "pgd-linf ε=2/255": summarize(attacks.pgd(model, x, 2 / 255, steps=20)),
        "pgd-l2 ε=1": summarize(attacks.pgd(model, x, 1.0, norm="l2", steps=20)),
        "pgd-linf ε=4/255 (targeted: quail)": summarize(attacks.pgd(model, x, 4 / 255, t, steps=20)),
        "deepfool": summarize(df, {"per_image_l2": df.l2.tolist()}),
        "deepfool (targeted: quail)": summarize(attacks.deepfool(model, x, t)),
    }
    fg = torch.tensor(rows["fgsm (smallest ε of a grid)"]["per_image_l2"])
    both = ~fg.isnan() & df.success
    ratio = float(fg[both].mean() / df.l2[both].double().mean()) if both.any() else None
    curves_ = {
        "fgsm": attacks.success_curve(model, x, "fgsm", FGSM_GRID),
        "pgd": attacks.success_curve(model, x, "pgd", FGSM_GRID[:9:2]),
        "deepfool": attacks.success_curve(model, x, "deepfool", L2_GRID),
        "pgd-l2": attacks.success_curve(model, x, "pgd-l2", L2_GRID[:4]),
    }
    return {
        "rows": rows,
        "fgsm_over_deepfool_l2": ratio,
        "images_both_succeed": int(both.sum()),
        "success_vs_eps": curves_,
    }


def bench_classvis(model, iters: int, fig_dir: Path) -> dict:
    out = {}
    marks = (0, 25, 50, 100, 150, 200)
    for name in CLASSVIS:
        t = resolve_class(name, model.classes)
        start = time.perf_counter()
        res = class_visualization(model, t, ClassVisSettings(iters=iters), snapshots=marks)
        out[name] = {
            "probability_at": {k: res.probabilities[k] for k in marks if k <= iters},
            "final_probability": res.probabilities[-1],
            "seconds": time.perf_counter() - start,
            "probabilities": res.probabilities,
        }
        snaps = sorted(res.snapshots.items())
        image_grid(
            [im for _, im in snaps],
            [f"{name} iter {k} p={res.probabilities[k]:.2f}" for k, _ in snaps],
            fig_dir / f"classvis-{t}.png",
        )
    curves(
        {n: (list(range(len(v["probabilities"]))), v["probabilities"]) for n, v in out.items()},
        fig_dir / "classvis-probability.png",
        "iteration",
        "target probability",
    )
    return out


def bench_compare(model, fig_dir: Path, iters: int = 100) -> dict:
    """The course's parameter study for one class: final probability per setting, one grid figure."""
    from dlapps.explain.config import CompareConfig
    from dlapps.explain.experiment import run_compare

    points = [k * iters // 4 for k in range(1, 5)]
    res = run_compare(
        CompareConfig(target=CLASSVIS[0], iters=points),
        fig_dir / "compare",
        model=model,
        progress=False,
    )
    return {"target": res["target"], "iters": iters, "grid": res["grid"]}


def bench_speed(size: int, batch: int = 4) -> dict:
    from dlapps.models.pretrained import load_backbone

    out = {}
    x = torch.rand((batch, 3, size, size), generator=torch.Generator().manual_seed(0))
    for name in ("squeezenet1_1", "efficientnet_lite0", "vgg16"):
        model = from_backbone(load_backbone(name, pretrained=False).at_size(size))
        target = torch.zeros(batch, dtype=torch.long)
        out[name] = {}
        for method in ("vanilla", "gradcam", "smoothgrad", "ig"):
            if name == "vgg16" and method in ("smoothgrad", "ig"):
                continue  # ~16-32x vanilla's cost: minutes on one shared core
            saliency(model, x[:1], target[:1], method)  # warm-up
            start = time.perf_counter()
            saliency(model, x, target, method)
            out[name][method] = batch / (time.perf_counter() - start)
    return out


def steps_text(sal: dict) -> str:
    steps = sal["ig_steps_for_sensitivity"]
    return ", ".join(map(str, steps)) if isinstance(steps, list) else f"at most {steps}"


def markdown(r: dict) -> str:
    env = r["environment"]
    photos_of = r.get("photos_of", {})
    lines = [
        "# dlapps explain benchmark\n",
        f"EfficientNet-Lite0 (ImageNet weights, offline), photos from scikit-image, matplotlib and "
        f"scikit-learn at {r['size']}x{r['size']} px (attacks, class visualisation; saliency, "
        f"completeness and sanity at their own size below). {env['hardware']}; "
        f"torch {env['torch']}, {env['threads']} thread(s).\n",
        "Photos of each part:\n",
        *(f"- {part}: {len(names)} ({', '.join(names)})" for part, names in photos_of.items()),
        "",
    ]
    notes = r.get("notes", {})
    if notes:
        lines.append("Load on the machine while each part ran (its seconds depend on it):\n")
        lines += [f"- {part}: {note or 'nothing else running'}" for part, note in notes.items()]
        lines.append("")
    n_sal = len(photos_of.get("saliency", r["photos"]))
    if "saliency" in r:
        lines.append(
            f"## Saliency faithfulness (RISE; normalised AUC, mean ± std over the {n_sal} photos, "
            f"at {r['saliency_size']}x{r['saliency_size']} px, the model's own input size)\n"
        )
        lines.append(
            "Deletion: the most salient pixels (or tiles) first, set to the deletion substrate, lower is "
            "better. Insertion: restored into a blurred image (11x11, σ=5) in the same order, higher is "
            "better. Substrate `mean` = zeros of the normalised input, as in RISE's code (grey 0.5 for "
            "EfficientNet-Lite0); `black` = pixel value 0. Baselines: `random` = i.i.d. uniform noise map, "
            "`random-smooth` = a random 7x7 grid upsampled. The last column says whether the mean beats "
            "each baseline (✓/✗) and on how many photos.\n"
        )
        settings = {k: v for k, v in r["saliency"].items() if isinstance(v, dict) and "rows" in v}
        for setting in settings.values():
            tiles = "single pixels" if setting["patch"] == 1 else f"tiles of {setting['patch']} px"
            lines.append(f"### substrate `{setting['substrate']}`, {tiles}, {setting['steps']} steps\n")
            lines.append(
                "| map | deletion AUC ↓ | insertion AUC ↑ | vs random (del / ins) "
                "| vs random-smooth (del / ins) |"
            )
            lines.append("|---|---|---|---|---|")
            for m, row in setting["rows"].items():
                d, i = row["deletion_auc"], row["insertion_auc"]
                flags = []
                for b in BASELINES if m in SALIENCY else ():
                    w = row[f"beats_{b}"]
                    flags.append(
                        f"{'✓' if w['deletion'] else '✗'} {w['photos_deletion']}/{n_sal} / "
                        f"{'✓' if w['insertion'] else '✗'} {w['photos_insertion']}/{n_sal}"
                    )
                flags += [""] * (2 - len(flags))
                lines.append(
                    f"| {m} | {d['mean']:.3f} ± {d['std']:.3f} | {i['mean']:.3f} ± {i['std']:.3f} | "
                    + " | ".join(flags)
                    + " |"
                )
            lines.append("")
    if "more_metrics" in r.get("saliency", {}):
        sal = r["saliency"]
        k = sal["sensitivity_samples"]
        lines.append(
            "### Faithfulness correlation and max-sensitivity (Quantus's definitions)\n\n"
            "Faithfulness correlation: Pearson ρ between a random 224-pixel subset's saliency mass and the "
            "target logit's drop when the subset is set to black, over 100 subsets (higher is better; a "
            "random map: 0). Max-sensitivity: the largest ‖Φ(x + δ) − Φ(x)‖ / ‖x‖ over "
            f"{k} perturbations δ ~ U(−0.2, 0.2) (Quantus: 200), maps normalised (lower is more robust; "
            "a map that ignores the input scores 0, so it is read beside faithfulness). IG is rerun on "
            f"each photo at the steps it needed on the clean photo ({steps_text(sal)}); the random maps "
            "are redrawn for each perturbation. Beside each: on how many photos the method beats "
            "random / random-smooth.\n")
        metrics = list(next(iter(sal["more_metrics"].values())))
        lines.append("| map | " + " | ".join(metrics) + " |")
        lines.append("|---|" + "---|" * len(metrics))
        for m, row in sal["more_metrics"].items():
            beats = sal["more_metrics_beats"].get(m)
            cells = [f"{row[k]['mean']:.3f} ± {row[k]['std']:.3f}"
                     + (f" ({beats['random'][k]}/{n_sal}, {beats['random-smooth'][k]}/{n_sal})"
                        if beats else "") for k in metrics]
            lines.append(f"| {m} | " + " | ".join(cells) + " |")
        lines.append("")
    if "completeness" in r:
        size = r["saliency_size"]
        lines.append(f"## Integrated Gradients' completeness ({size} px, one photo at a time)\n")
        lines.append("Gap = |Σ attributions − (S_y(x) − S_y(x̄))| / |S_y(x) − S_y(x̄)|. Default: from 32 "
                     "steps, tripled (reusing every earlier point) until the gap is ≤ 5%, at most 2592 steps "
                     "or 600 s.\n")
        for baseline, rows in r["completeness"].items():
            ok = sum(row["converged"] for row in rows)
            lines.append(f"### baseline `{baseline}`: converged on {ok}/{len(rows)} photos\n")
            lines.append("| photo | gap at 32 steps | steps taken | gap | converged | seconds |")
            lines.append("|---|---|---|---|---|---|")
            lines += [f"| {row['image']} | {row['gap_at_32']:.1%} | {row['steps']} | {row['gap']:.2%} | "
                      f"{'✓' if row['converged'] else '✗'} | {row['seconds']:.0f} |" for row in rows]
            lines.append("")
    if "sanity" in r:
        lines.append(f"## Sanity checks (Adebayo et al. 2018), {r['sanity_photos']} photos at "
                     f"{r['saliency_size']} px\n")
        lines.append("Each method's maps compared with the trained network's (mean over the photos) as the "
                     "layers are re-initialised from the top (logits) down; IG at 32 fixed steps. A method "
                     "still rank-similar (Spearman ≥ 0.5) at full randomisation is flagged. `edge` is a "
                     "Sobel edge map of the image, a control that ignores the network. Figures: "
                     "explain/sanity-*.png.\n")
        for check, c in r["sanity"].items():
            info = c["info"]
            extra = (f" (random-label training accuracy {info['random_label_train_accuracy']:.2f})"
                     if "random_label_train_accuracy" in info else "")
            lines.append(f"### {check}{extra}\n")
            lines.append("| step | " + " | ".join(c["spearman"]) + " |")
            lines.append("|---|" + "---|" * len(c["spearman"]))
            for k, step in enumerate(c["steps"]):
                lines.append(f"| {step} | " + " | ".join(f"{c['spearman'][m][k]:.2f} / {c['ssim'][m][k]:.2f}"
                                                          for m in c["spearman"]) + " |")
            flagged = [m for m, v in c["summary"].items() if v["flagged"]]
            lines.append(f"\nSpearman / SSIM per cell. Flagged: {', '.join(flagged) or 'none'}.\n")
    if "attacks" in r:
        a = r["attacks"]
        lines.append("## Attacks (untargeted unless stated; success = prediction changed / is the target)\n")
        lines.append("| attack | success | mean L2 | mean L∞ (×255) | mean iterations | s / image |")
        lines.append("|---|---|---|---|---|---|")
        for name, row in a["rows"].items():

            def f(v, scale=1.0):
                return "–" if v is None else f"{v * scale:.3f}"

            lines.append(
                f"| {name} | {row['success_rate']:.2f} | {f(row['mean_l2'])} | {f(row['mean_linf'], 255)} "
                f"| {f(row['mean_iterations'])} | {row['seconds_per_image']:.2f} |"
            )
        if a["fgsm_over_deepfool_l2"]:
            lines.append(
                f"\nOn the {a['images_both_succeed']} photos where both succeed, FGSM's smallest successful "
                f"perturbation has {a['fgsm_over_deepfool_l2']:.1f}x DeepFool's mean L2.\n"
            )
        lines.append("Success rate against ε (L∞ ×255 for fgsm/pgd; L2 for deepfool/pgd-l2):\n")
        for name, pts in a["success_vs_eps"].items():
            scale = 255 if name in ("fgsm", "pgd") else 1
            lines.append(
                f"- {name}: " + ", ".join(f"{p['eps'] * scale:.3g} → {p['success_rate']:.2f}" for p in pts)
            )
        lines.append("")
    if "classvis" in r:
        lines.append("## Class visualisation from noise (lr 5, l2 1e-3, blur every 10, jitter 16, seed 0)\n")
        marks = list(next(iter(r["classvis"].values()))["probability_at"])
        lines.append("| class | " + " | ".join(f"p @ {k}" for k in marks) + " | seconds |")
        lines.append("|---|" + "---|" * (len(marks) + 1))
        for name, v in r["classvis"].items():
            lines.append(
                f"| {name} | "
                + " | ".join(f"{v['probability_at'][k]:.3f}" for k in marks)
                + f" | {v['seconds']:.0f} |"
            )
        lines.append("")
    w = r.get("compare") or r.get("sweep")  # "sweep": results written before the rename
    if w:
        name = "compare" if "compare" in r else "sweep"
        figure = f"explain/{name}/figures/{name}.png"
        lines.append(
            f"## Class visualisation settings compared ({w['target']}, one parameter varied at a time "
            f"around the defaults, {w['iters']} iterations; figure: {figure})\n"
        )
        lines.append("| parameter | value | target probability |")
        lines.append("|---|---|---|")
        lines += [f"| {g['parameter']} | {g['value']:g} | {g['probability']:.3f} |" for g in w["grid"]]
        lines.append("")
    if "cli" in r:
        c = r["cli"]
        lines.append(f"## `dlapps explain` with no arguments\n\n{c['wall_seconds']:.0f} s wall "
                     f"({c['wall_seconds'] / 60:.1f} min; the limit is 5 min) with --threads {c['threads']}, "
                     f"parts: {', '.join(c['parts'])}.\n")
    if "speed" in r:
        lines.append(
            f"## Saliency maps per second on the CPU ({r['speed_size']} px, batch 4, random weights)\n"
        )
        methods = ("vanilla", "gradcam", "smoothgrad", "ig")
        lines.append("| model | " + " | ".join(methods) + " |")
        lines.append("|---|" + "---|" * len(methods))
        for name, v in r["speed"].items():
            lines.append(
                f"| {name} | " + " | ".join(f"{v[m]:.2f}" if m in v else "–" for m in methods) + " |"
            )
        lines.append(
            "\nSmoothGrad uses 16 noisy copies and IG 32 path points, so each costs that many gradients."
        )
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=160, help="image side for attacks and class visualisation")
    p.add_argument("--saliency-size", type=int, default=224, help="image side for the RISE faithfulness part")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--parts", default="saliency,completeness,sanity,attacks,classvis,speed")
    p.add_argument("--classvis-iters", type=int, default=200)
    p.add_argument("--sensitivity-samples", type=int, default=3, help="max-sensitivity draws (0: skip)")
    p.add_argument("--ig-baselines", default="black", help="completeness part: black,blurred,uniform")
    p.add_argument("--sanity-photos", type=int, default=4, help="photos of the sanity part")
    p.add_argument("--digits-run", default=None, help="a dlapps adapt cell RUN/CELL for the data check")
    p.add_argument("--note", default="", help="e.g. 'other jobs were sharing the CPU'")
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    parts = args.parts.split(",")
    model = load_model("efficientnet_lite0", image_size=args.size)
    named = load_images([*PHOTOS, *more_photos()])
    x = model.preprocess([im.pixels for im in named])
    fig_dir = args.out / "explain"
    path = args.out / "explain.json"
    r = json.loads(path.read_text()) if path.exists() else {}  # parts not re-run are kept
    if "photos" in r and "photos_of" not in r:  # results written before photos were kept per part
        r["photos_of"] = {p: r["photos"] for p in ("saliency", "attacks", "classvis", "sweep") if p in r}
    r.update(
        {
            "size": args.size,
            "photos": [im.name for im in named],
            "images": len(x),
            "predictions": [model.classes[int(c)] for c in model.predict(x)[0]],
            "environment": {
                "torch": torch.__version__,
                "threads": args.threads,
                "note": args.note,
                "hardware": f"{platform.machine()} CPU, {os.cpu_count()} cores",
            },
        }
    )
    r.setdefault("notes", {})
    r.setdefault("photos_of", {})
    for part in parts:
        r["notes"][part] = args.note
        r["photos_of"][part] = [im.name for im in named][: args.sanity_photos if part == "sanity" else None]
        start = time.perf_counter()
        print(f"[{part}] ...", file=sys.stderr, flush=True)
        big = load_model("efficientnet_lite0", image_size=args.saliency_size)
        x_big = big.preprocess([im.pixels for im in named])
        r["saliency_size"] = args.saliency_size
        if part == "saliency":
            r["saliency"] = bench_saliency(big, x_big, sensitivity_samples=args.sensitivity_samples)
        elif part == "completeness":
            r["completeness"] = bench_completeness(big, [im.name for im in named], x_big,
                                                   args.ig_baselines.split(","))
        elif part == "sanity":
            r["sanity"] = bench_sanity(big, x_big[: args.sanity_photos], fig_dir, args.digits_run)
            r["sanity_photos"] = args.sanity_photos
        elif part == "attacks":
            r["attacks"] = bench_attacks(model, x)
        elif part == "classvis":
            r["classvis"] = bench_classvis(model, args.classvis_iters, fig_dir)
        elif part == "compare":
            r["compare"] = bench_compare(model, fig_dir)
        elif part == "speed":
            r["speed"], r["speed_size"] = bench_speed(224), 224
        elif part == "cli":
            r["cli"] = time_default_cli(args.threads)
        r.setdefault("seconds", {})[part] = round(time.perf_counter() - start, 1)
        atomic_write_json(path, r)
        print(f"[{part}] {r['seconds'][part]} s", file=sys.stderr, flush=True)
    atomic_write_bytes(args.out / "explain.md", markdown(r).encode())
    print(markdown(r))


if __name__ == "__main__":
    main()
