"""Sample quality measured offline, with a small classifier standing in for Inception.

The standard FID (Heusel et al. 2017) embeds images with an ImageNet Inception-v3 whose weights
must be downloaded. Offline, and for digits, a small CNN trained once on the same data does the
job (as in the Fréchet "LeNet" distances of many GAN papers): its 128-d penultimate layer gives
the features and its logits the class probabilities. The math is torchmetrics':

* Fréchet distance  ‖μ_r − μ_g‖² + Tr(Σ_r + Σ_g − 2 (Σ_r Σ_g)^½)  between Gaussians fitted to the
  real and generated features;
* KID: the unbiased MMD² with the cubic polynomial kernel k(a, b) = (aᵀb / d + 1)³, averaged over
  random subsets (unbiased, so it is ≈ 0, possibly slightly negative, for equal distributions);
* Inception-Score style  exp(E_x KL(p(y|x) ‖ p(y)))  on the classifier's logits: high when each
  sample is classified confidently and the classes are balanced (≤ the number of classes).

For a conditional G we also report the label accuracy of G(z, y) (does the classifier read y back?)
and its confusion matrix. Real-vs-real values (train vs held-out test images) give the floor a
perfect generator would reach with the same number of samples. The classifier is trained once per
(domain, size, channels), cached under ``data_root()/cache`` with its test accuracy.

When the user has the Inception weights file (``pt_inception-2015-12-05-6726825d.pth`` of
torch-fidelity), :func:`inception_fid` gives the standard FID, labelled as such.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from dlapps.data.cache import cached
from dlapps.engine.batches import epoch_generator, index_stream
from dlapps.engine.trainer import Trainer
from dlapps.errors import CheckpointError, ConfigError, DataError
from dlapps.generate.data import GanData, to_signed

CLASSIFIER_VERSION = 2
BATCH = 500
JUDGE_EPOCHS = 8  # the classifier's training epochs


class DigitsClassifier(nn.Module):
    """conv3x3-16 → pool → conv3x3-32 → pool → conv3x3-64 → 4x4 avg pool → fc128 (features) → fc K.

    Takes images in [-1, 1] of any side ≥ 8 (the adaptive pooling fixes the feature size);
    about 2.6 M multiply-adds per 32x32 image, so scoring 5,000 samples takes seconds on a CPU.
    """

    feature_dim = 128

    def __init__(self, channels: int = 1, n_classes: int = 10) -> None:
        super().__init__()
        self.n_classes = n_classes
        self.body = nn.Sequential(
            nn.Conv2d(channels, 16, 3, padding=1), nn.BatchNorm2d(16), nn.MaxPool2d(2), nn.ReLU(True),
            nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.MaxPool2d(2), nn.ReLU(True),
            nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(True),
            nn.AdaptiveAvgPool2d(4), nn.Flatten(),
            nn.Linear(64 * 16, self.feature_dim), nn.ReLU(True),
        )
        self.head = nn.Sequential(nn.Dropout(0.3), nn.Linear(self.feature_dim, n_classes))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


class Given(nn.Module):
    """The feature extractor torchmetrics sees: the features are computed once beforehand (one
    pass of the classifier per image set, shared by FID, KID and IS), so it passes them on."""

    def __init__(self, num_features: int) -> None:
        super().__init__()
        self.num_features = num_features

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return features


@dataclass
class Embedded:
    """A set of images as the judge sees them: penultimate features and logits."""

    features: torch.Tensor
    logits: torch.Tensor

    def __len__(self) -> int:
        return len(self.features)


@dataclass
class Judge:
    """The trained classifier and what is known about it."""

    classifier: DigitsClassifier
    test_acc: float
    epochs: int
    data: str


@torch.no_grad()
def predict(classifier: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Arg-max class of images (uint8 or float in [-1, 1]), in batches."""
    classifier.eval()
    out = [classifier(to_signed(b) if b.dtype == torch.uint8 else b).argmax(1) for b in x.split(BATCH)]
    return torch.cat(out)


class JudgeBatches:
    """The judge's batches for :class:`~dlapps.engine.Trainer`: ``(x in [-1, 1], y)``, ``batch``
    images per step from consecutive permutations drawn per (seed, epoch) (stream 7, the judge's
    own), the last partial batch dropped."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, batch: int, seed: int) -> None:
        self.x, self.y, self.batch, self.seed = x, y, batch, seed
        self.steps_per_epoch = len(x) // batch

    def to(self, device: torch.device) -> JudgeBatches:
        return JudgeBatches(self.x.to(device), self.y.to(device), self.batch, self.seed)

    def epoch(self, epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        count = self.steps_per_epoch * self.batch
        idx = index_stream(len(self.x), count, epoch_generator(self.seed, epoch, 7)).to(self.x.device)
        for b in idx.split(self.batch):
            yield to_signed(self.x[b]), self.y[b]


class ShiftedCrossEntropy(nn.Module):
    """The judge's objective: cross-entropy on the batch shifted by (dy, dx) ~ U{−2..2}² pixels
    (one shift per batch, the border filled with black)."""

    def __init__(self, net: DigitsClassifier) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor, y: torch.Tensor, progress: float) -> dict[str, torch.Tensor]:
        dx, dy = torch.randint(-2, 3, (2,)).tolist()
        x = torch.roll(F.pad(x, (2, 2, 2, 2), value=-1.0), (dy, dx), (2, 3))[..., 2:-2, 2:-2]
        return {"loss": F.cross_entropy(self.net(x), y)}


def train_classifier(data: GanData, epochs: int = 8, seed: int = 0) -> tuple[DigitsClassifier, float]:
    """Adam (1e-3), batch 128, random ±2 px shifts, in memory through the engine's Trainer;
    returns the net and its test accuracy."""
    torch.manual_seed(seed)
    net = DigitsClassifier(data.x.shape[1], len(data.classes))
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    Trainer(ShiftedCrossEntropy(net), JudgeBatches(data.x, data.y, 128, seed), opt, None, epochs, None,
            amp=False, progress=False, tensorboard=False).fit()
    acc = (predict(net, data.test_x) == data.test_y).float().mean().item()
    return net.eval(), acc


def get_judge(data: GanData, epochs: int | None = None, seed: int = 0) -> Judge:
    """The classifier for ``data``'s domain, trained once and cached (with its test accuracy)."""
    epochs = epochs or JUDGE_EPOCHS
    if not data.labelled:
        raise DataError(f"{data.name} has no labels: the classifier-based quality metrics need them")
    params = {"data": data.name, "shape": list(data.x.shape[1:]), "n_train": len(data.x),
              "classes": data.classes, "epochs": epochs, "seed": seed, "version": CLASSIFIER_VERSION}

    def build() -> dict[str, torch.Tensor]:
        net, acc = train_classifier(data, epochs, seed)
        # the cache's checksum views bytes, which 0-d tensors cannot do: store them as shape (1,)
        return {**{f"net.{k}": v.reshape(-1) for k, v in net.state_dict().items()},
                "test_acc": torch.tensor([acc])}

    tensors = cached("gan-classifier", params, build)
    net = DigitsClassifier(data.x.shape[1], len(data.classes))
    shapes = {k: v.shape for k, v in net.state_dict().items()}
    try:
        net.load_state_dict({k[4:]: v.reshape(shapes[k[4:]]) for k, v in tensors.items()
                             if k.startswith("net.")})
    except (RuntimeError, KeyError) as exc:
        raise CheckpointError(f"cached classifier does not fit: {str(exc)[:200]}") from exc
    return Judge(net.eval(), float(tensors["test_acc"]), epochs, data.name)


@torch.no_grad()
def embed(judge: Judge, x: torch.Tensor) -> Embedded:
    """Features and logits of images (uint8, or floats in [-1, 1]; N,C,H,W), in batches."""
    clf = judge.classifier.eval()
    feats = [clf.features(to_signed(b) if b.dtype == torch.uint8 else b.float()) for b in x.split(BATCH)]
    features = torch.cat(feats)
    return Embedded(features, torch.cat([clf.head(f) for f in features.split(BATCH)]))


def quality(judge: Judge, real: torch.Tensor | Embedded, fake: torch.Tensor | Embedded,
            fake_labels: torch.Tensor | None = None, seed: int = 0, kid_subsets: int = 20,
            kid_subset_size: int = 1000) -> dict:
    """FID, KID (mean, std) and IS (mean, std) of ``fake`` against ``real`` (images as for
    :func:`embed`, or already embedded) on the judge's features; with ``fake_labels``, the label
    accuracy and the confusion matrix (rows = asked class, columns = class read back). KID
    averages ``kid_subsets`` subsets of ``kid_subset_size`` (its cost grows with the square)."""
    from torchmetrics.image.fid import FrechetInceptionDistance
    from torchmetrics.image.inception import InceptionScore
    from torchmetrics.image.kid import KernelInceptionDistance

    real = real if isinstance(real, Embedded) else embed(judge, real)
    fake = fake if isinstance(fake, Embedded) else embed(judge, fake)
    if min(len(real), len(fake)) < 2:
        raise ConfigError("quality metrics need at least 2 real and 2 generated images")
    k = judge.classifier.n_classes
    features = Given(judge.classifier.feature_dim)
    fid = FrechetInceptionDistance(features)
    subset = min(kid_subset_size, len(real), len(fake))
    with warnings.catch_warnings():  # "will save all extracted features": they are already in memory
        warnings.simplefilter("ignore", UserWarning)
        kid = KernelInceptionDistance(features, subsets=kid_subsets, subset_size=subset)
        score = InceptionScore(Given(k), splits=min(10, len(fake)))
    for metric in (fid, kid):
        metric.update(real.features, real=True)
        metric.update(fake.features, real=False)
    score.update(fake.logits)
    with torch.random.fork_rng():  # KID and IS draw random subsets: make them repeatable
        torch.manual_seed(seed)
        kid_mean, kid_std = kid.compute()
        is_mean, is_std = score.compute()
    out = {"fid": float(fid.compute()), "kid": float(kid_mean), "kid_std": float(kid_std),
           "is": float(is_mean), "is_std": float(is_std), "n_samples": len(fake), "n_real": len(real)}
    if fake_labels is not None:
        pred = fake.logits.argmax(1)
        confusion = torch.bincount(fake_labels * k + pred, minlength=k * k).view(k, k)
        out["label_acc"] = float((pred == fake_labels).float().mean())
        out["confusion"] = confusion.tolist()
    return out


@torch.no_grad()
def generate(g: nn.Module, n: int, seed: int = 0,
             n_classes: int = 0) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``n`` images of G (eval mode) as floats in [-1, 1]; balanced labels 0..K-1 when conditional."""
    gen = torch.Generator().manual_seed(20_000 + seed)
    z = torch.randn(n, g.nz, generator=gen)
    y = torch.arange(n) % n_classes if n_classes else None
    g.eval()
    out = [g(zb, None if y is None else y[i * BATCH:(i + 1) * BATCH]) for i, zb in enumerate(z.split(BATCH))]
    return torch.cat(out), y


def real_floor(judge: Judge, data: GanData, real: Embedded | None = None, seed: int = 0) -> dict:
    """Real-vs-real values: held-out test images scored against the training images."""
    out = quality(judge, data.x if real is None else real, data.test_x, seed=seed)
    out["label_acc"] = judge.test_acc
    return out


def inception_fid(real: torch.Tensor, fake: torch.Tensor, weights: Path) -> float:
    """The standard FID (Inception-v3 pool features, 2048-d) from a local weights file.

    Needs torch-fidelity (``pip install torch-fidelity``) and the file torch-fidelity downloads
    (``pt_inception-2015-12-05-6726825d.pth``); nothing is downloaded here.
    """
    weights = Path(weights).expanduser()
    if not weights.is_file():
        raise DataError(f"Inception weights file {weights} not found (the standard FID needs "
                        "pt_inception-2015-12-05-6726825d.pth from torch-fidelity's releases)")
    from torchmetrics.image.fid import FrechetInceptionDistance

    try:
        fid = FrechetInceptionDistance(2048, normalize=True, feature_extractor_weights_path=str(weights))
    except ModuleNotFoundError as exc:
        raise ConfigError("the standard FID needs torch-fidelity: pip install torch-fidelity") from exc

    def rgb01(x: torch.Tensor) -> torch.Tensor:
        x = (to_signed(x) if x.dtype == torch.uint8 else x.float()).add(1).div(2).clamp(0, 1)
        return x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x

    for b in real.split(64):
        fid.update(rgb01(b), real=True)
    for b in fake.split(64):
        fid.update(rgb01(b), real=False)
    return float(fid.compute())

