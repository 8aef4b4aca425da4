"""Feature-extraction throughput on the CPU per backbone, and data loading's share of the time.

Real colour photos (scikit-image's bundled ones, tiled to ``--images`` crops of 320x256 and
written as JPEG files, as a user's image folder would hold them) go through two pipelines:

* ``files``: decode each JPEG (PIL, one file at a time, as a folder-of-images loader does), then
  the backbone's batched preprocessing (short-side resize, centre crop, normalisation);
* ``memory``: the same images already decoded into one uint8 tensor (how dlapps holds datasets),
  batched preprocessing only.

The network time is the backbone's forward pass to its default tap in eval() under no_grad.
EfficientNet-Lite0 uses its ImageNet weights; the torchvision backbones use random weights (the
speed is the same, and no download is needed). The best of ``--repeats`` passes is reported.

    python bench/transfer_throughput.py [--images 32] [--batch-size 16] [--threads 2]

Writes bench/results/transfer_throughput.json and .md.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from dlapps.data.sources import read_image, skimage_photos
from dlapps.engine.device import cpu_name
from dlapps.models.pretrained import backbone_names, load_backbone

RESULTS = Path(__file__).parent / "results"


def photo_crops(n: int) -> list[np.ndarray]:
    """``n`` 256x320 RGB crops of the bundled photos (resized up where a photo is smaller)."""
    crops = []
    photos = skimage_photos()
    for i in range(n):
        p = photos[i % len(photos)]
        img = Image.fromarray(p).resize((max(320, p.shape[1]), max(256, p.shape[0])))
        a = np.asarray(img)
        y = (i * 37) % (a.shape[0] - 255)
        x = (i * 53) % (a.shape[1] - 319)
        crops.append(np.ascontiguousarray(a[y:y + 256, x:x + 320]))
    return crops


@torch.no_grad()
def measure(backbone, files: list[Path], memory: torch.Tensor, batch: int) -> dict[str, float]:
    """Seconds for decoding, preprocessing and the network over all images."""
    extractor = backbone.feature_extractor([backbone.default_tap])
    t = {"decode": 0.0, "preprocess": 0.0, "network": 0.0}
    for s in range(0, len(files), batch):
        t0 = time.perf_counter()
        decoded = torch.from_numpy(np.stack([read_image(f) for f in files[s:s + batch]])).permute(0, 3, 1, 2)
        t1 = time.perf_counter()
        x = backbone.normalize(backbone.preprocess(memory[s:s + batch]))
        t2 = time.perf_counter()
        extractor(x)
        t3 = time.perf_counter()
        assert decoded.shape == memory[s:s + batch].shape
        t["decode"] += t1 - t0
        t["preprocess"] += t2 - t1
        t["network"] += t3 - t2
    return t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=32)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    crops = photo_crops(args.images)
    memory = torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).contiguous()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        files = []
        for i, c in enumerate(crops):
            files.append(Path(tmp) / f"{i:04d}.jpg")
            Image.fromarray(c).save(files[-1], quality=90)
        configs = [(name, None) for name in backbone_names()] + [("efficientnet_lite0", 64)]
        for name, size in configs:
            torch.manual_seed(0)
            b = load_backbone(name, pretrained=name == "efficientnet_lite0")
            b = b.at_size(size) if size else b
            measure(b, files[:args.batch_size], memory[:args.batch_size], args.batch_size)  # warm-up
            runs = [measure(b, files, memory, args.batch_size) for _ in range(args.repeats)]
            best = {k: min(r[k] for r in runs) for k in runs[0]}
            n = args.images
            row = {"backbone": name, "weights": b.weights_id, "input_size": b.input_size,
                   "tap": b.default_tap,
                   "network_images_per_s": n / best["network"],
                   "memory_images_per_s": n / (best["preprocess"] + best["network"]),
                   "files_images_per_s": n / sum(best.values()),
                   "data_share_memory": best["preprocess"] / (best["preprocess"] + best["network"]),
                   "data_share_files": (best["decode"] + best["preprocess"]) / sum(best.values()),
                   "seconds": best}
            rows.append(row)
            print(f"{name:18s} {b.input_size:3d}px network {row['network_images_per_s']:7.1f} img/s, "
                  f"from files {row['files_images_per_s']:7.1f} img/s "
                  f"(data {100 * row['data_share_files']:.0f}%)")
    result = {"rows": rows, "setup": {"images": args.images, "batch_size": args.batch_size,
                                      "image": "256x320 JPEG crops of scikit-image photos",
                                      "threads": args.threads, "repeats": args.repeats,
                                      "torch": torch.__version__, "cpu": cpu_name(), "cores": os.cpu_count(),
                                      "load_average_1min_end": os.getloadavg()[0]}}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "transfer_throughput.json").write_text(json.dumps(result, indent=2) + "\n")
    (RESULTS / "transfer_throughput.md").write_text(markdown(result))
    print(markdown(result))


def markdown(r: dict) -> str:
    s = r["setup"]
    lines = ["| backbone | weights | input | tap | network img/s | in-memory img/s (data share) | "
             "from JPEG files img/s (data share) |", "|---|---|---:|---|---:|---:|---:|"]
    for x in r["rows"]:
        lines.append(f"| {x['backbone']} | {x['weights']} | {x['input_size']} | {x['tap']} | "
                     f"{x['network_images_per_s']:.1f} | {x['memory_images_per_s']:.1f} "
                     f"({100 * x['data_share_memory']:.0f}%) | {x['files_images_per_s']:.1f} "
                     f"({100 * x['data_share_files']:.0f}%) |")
    lines += ["", f"{s['images']} images ({s['image']}), batch {s['batch_size']}, best of {s['repeats']}; "
              f"{s['cpu']}, {s['cores']} cores, torch {s['torch']}, {s['threads']} threads; 1-minute load "
              f"average at the end {s['load_average_1min_end']:.1f} (other jobs shared the CPU when it "
              "is above 2).", ""]
    if s["load_average_1min_end"] > s["threads"] + 0.5:
        lines += ["**Warning: measured while the CPU was oversubscribed; these rates are far below an idle "
                  "machine's. Rerun on a quiet machine before quoting them.**", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
