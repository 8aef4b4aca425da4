"""Assemble docs/RESULTS.md from the files the benchmarks wrote in bench/results/.

Every number in docs/RESULTS.md comes from one of the bench scripts below; this script only
stitches their markdown together under one heading per area, in a fixed order, and says which
sections have not been measured yet. Rerun a benchmark, then rerun this:

    python bench/write_results.py
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results"
DOC = ROOT.parent / "docs" / "RESULTS.md"

# (results file stem, section title, the command that makes it)
SECTIONS = [
    ("adapt", "Domain adaptation: source-only, DANN, DANN without GRL, train-on-target",
     "python bench/adapt_seeds.py"),
    ("adapt_more", "Domain adaptation on the other offline pairs (one seed)",
     "python bench/adapt_seeds.py --pairs mnist5k:digits,syndigits:mnist5k --seeds 0 --tag adapt_more"),
    ("adapt_backbone", "Domain adaptation on a pretrained backbone over image folders",
     "python bench/adapt_backbone.py"),
    ("throughput", "Training throughput: the engine vs a bare loop", "python bench/throughput.py"),
    ("step_speed", "Speed changes of the training steps on the CPU, each on its own (issue 17)",
     "python bench/step_speed.py"),
    ("peers", "Training speed against peers: pytorch-adapt's DANN, pytorch/examples' DCGAN (issue 17)",
     "python bench/peers.py --peer-path DIR --repeats 7"),
    ("peers_intel", "Training speed against peers on an Intel Xeon 2.8 GHz, 2026-12-01 (issue 17)",
     "python bench/peers.py --peer-path DIR --repeats 7 (at commit 68c73a7, fixed 8,000 images/s ceiling; "
     "the file renamed)"),
    ("peers_epyc", "Training speed against peers on an earlier, slower AMD EPYC machine (issue 17)",
     "python bench/peers.py --peer-path DIR --repeats 5 (at commit cc05b0b; the file renamed)"),
    ("time_to_accuracy", "Time to 70% target accuracy on mnist5k → mnistm5k (issue 17)",
     "python bench/time_to_accuracy.py --peer-path DIR --seeds 0"),
    ("adapt_compare", "Domain adaptation methods compared, robust defaults with the development-pair choice "
     "(λ_max 0.3, a 500-500 domain classifier; issue 16)",
     "python bench/adapt_compare.py --methods source,target,dann,dann+self-train,mcc,vada,dirt-t,cdan,dan,"
     "coral,adda,drcn --train-limit 4000"),
    ("adapt_dann5", "DANN against source-only over 5 seeds at the defaults (issue 16)",
     "python bench/adapt_compare.py --methods source,dann --seeds 5 --other-seeds 5 --train-limit 4000 "
     "--name adapt_dann5"),
    ("adapt_probe", "Probe: one DANN setting that reaches source-only on every pair? (issue 16)",
     "python bench/adapt_probe.py"),
    ("adapt_probe2", "Probe: more DANN settings on syndigits → mnist5k, where DANN falls below source-only "
     "(issue 16)", "python bench/adapt_probe.py --pairs syndigits:mnist5k --name adapt_probe2 --settings S"),
    ("adapt_probe3", "Probe: λ_max 0.5 combined with a smaller learning rate, a wider domain classifier or a "
     "later warm-up gate, on all four pairs (issue 16)",
     "python bench/adapt_probe.py --name adapt_probe3 --settings S"),
    ("adapt_probe4", "Probe: a larger batch, and λ_max 0.3 with a wider domain classifier, on all four pairs "
     "(issue 16)", "python bench/adapt_probe.py --name adapt_probe4 --settings S"),
    ("adapt_dev", "Development pairs: DANN's default chosen by a fixed rule on the evaluation pairs "
     "reversed, without the evaluation pairs' labels (issue 16)",
     "python bench/adapt_probe.py --choose --name adapt_dev --out runs/bench-dev --pairs "
     "mnistm5k:mnist5k,mnist5k:syndigits,digits:mnist5k,fashionm:fashion --settings S"),
    *((f"adapt_dev_{m}", f"Development pairs: {m}'s λ_max (and domain classifier, where it has one) "
       "chosen the same way (issue 16)",
       f"python bench/adapt_probe.py --method {m} --choose --name adapt_dev_{m} --out runs/bench-dev-{m} "
       "--pairs P --settings S") for m in ("cdan", "dan", "vada")),
    ("adapt_joint", "Why DANN falls below source-only on some pairs: the domain distance and the ideal joint "
     "error of the features (issue 16)", "python bench/adapt_joint.py"),
    ("adapt_best", "The best label-free method: self-training on strong views, 48 epochs (issue 16)",
     "python bench/adapt_best.py"),
    ("adapt_best12", "The same self-training on strong views at the default budget, 12 epochs (issue 16)",
     "python bench/adapt_best.py --methods dann+self-train --epochs 12 --name adapt_best12"),
    ("adapt_best96", "The same self-training on strong views at eight times the budget, 96 epochs, the best "
     "method of each pair at 48 epochs (issue 16)",
     'python bench/adapt_best.py --epochs 96 --name adapt_best96 --only "mnist5k:mnistm5k=dann+self-train;'
     'mnist5k:digits=mcc+self-train;fashion:fashionm=dann+self-train"'),
    ("adapt_paper", "The paper preset (100 epochs) on the embedded pair", "python bench/adapt_paper.py"),
    ("adapt_compare_v2", "Domain adaptation methods compared, robust defaults before the development-pair "
     "choice (λ_max 1, the architecture's own domain classifier)",
     "python bench/adapt_compare.py (at commit c86cce0; the file renamed)"),
    ("adapt_compare_v1", "Domain adaptation methods compared, before the robust defaults (the papers' "
     "mean-subtracted input, no warm-up, 12 epochs)", "python bench/adapt_compare.py (at commit 20eac98)"),
    ("self_training", "Self-training on top of DANN: what helps", "python bench/self_training_ablation.py"),
    ("transfer_offline", "Transfer learning: pretrained features vs from scratch (offline)",
     "python bench/transfer_offline.py"),
    ("transfer_throughput", "Transfer learning: feature extraction throughput",
     "python bench/transfer_throughput.py"),
    ("explain", "Network visualisation: saliency faithfulness, attacks, class visualisation",
     "python bench/explain_bench.py"),
    ("explain_completeness", "Integrated Gradients' completeness, converged",
     "python bench/explain_bench.py --parts completeness --ig-baselines black,blurred --threads 1"),
    ("gan", "GANs: DCGAN and cDCGAN quality, offline metrics", "python bench/gan_bench.py"),
    ("generate", "Generative models side by side: DCGAN, VAE, DDPM and their conditional forms",
     "python bench/generate_bench.py --cli-wall"),
    ("semi", "Semi-supervised learning: pseudo-labelling as the lecture runs it, mean teacher, FixMatch",
     "python bench/semi.py"),
    ("semi_fashion", "Semi-supervised learning at the lecture's scale (Fashion-MNIST, 59,000 unlabelled)",
     "python bench/semi.py --scale fashion"),
    ("distill", "Knowledge distillation: response, feature and relation knowledge vs a student from scratch",
     "python bench/distill.py"),
    ("ssl", "Self-supervised and unsupervised learning: what each encoder's features are worth",
     "python bench/ssl_bench.py"),
    ("ssl_longer", "Self-supervised learning with four times the budget",
     "python bench/ssl_bench.py --epochs 20"),
]

INTRO = """# Measured results

Everything below was measured by the scripts in `bench/` (the command is given with each
section) and assembled by `python bench/write_results.py`; nothing is typed in by hand. Unless a
section says otherwise, numbers are last-epoch values (no checkpoint chosen with target labels),
mean ± std over the seeds stated, on the CPU machine named in the section.
"""


def throughput_markdown(path: Path) -> str:
    """bench/throughput.py writes JSON only; render it as a short table."""
    import json

    r = json.loads(path.read_text())
    s = r["setup"]
    return (
        "| loop | images / s (best of repeats) | all repeats |\n|---|---|---|\n"
        f"| bare loop | {r['bare_images_per_s']:,} | {r['all_runs']['bare']} |\n"
        f"| dlapps engine | {r['engine_images_per_s']:,} | {r['all_runs']['engine']} |\n\n"
        f"The engine keeps **{100 * r['engine_over_bare']:.1f}%** of the bare loop's speed "
        f"(DANN, {s['net']} network, {s['batch']}, {s['data']}; {s['epochs']} epochs × "
        f"{s['repeats']} alternating repeats; {s['threads']} threads, torch {s['torch']}, "
        f"{s['cpu']}).\n" + (f"\n{s['note']}\n" if s.get("note") else "")
    )


def section(stem: str, title: str, command: str) -> str:
    md, js = RESULTS / f"{stem}.md", RESULTS / f"{stem}.json"
    if md.is_file():  # its headings go under this section's
        body = "\n".join("##" + line if line.startswith("#") else line
                         for line in md.read_text().strip().splitlines()) + "\n"
    elif stem == "throughput" and js.is_file():
        body = throughput_markdown(js)
    else:
        body = "_Not measured yet._\n"
    return f"## {title}\n\nCommand: `{command}`\n\n{body}"


def main() -> None:
    text = INTRO + "\n" + "\n".join(section(*s) for s in SECTIONS)
    DOC.write_text(text)
    print(f"wrote {DOC}")


if __name__ == "__main__":
    main()
