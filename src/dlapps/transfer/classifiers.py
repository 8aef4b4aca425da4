"""The classifiers compared on a target task, from cheapest to most expensive: one small function
each, registered in :data:`CLASSIFIERS` (name -> :class:`Classifier`).

On frozen features (computed once, cached):

* ``svm``: StandardScaler -> optional PCA -> LinearSVC (squared hinge, L2). C is chosen by
  stratified k-fold cross-validation **on the training split only** (:func:`choose_C` accepts
  only a :class:`Split` whose role is ``"train"``); the test split is touched once, by the final
  model.
* ``probe``: a linear softmax layer on standardised features - logistic regression, the usual
  "linear probe": full-batch AdamW with weight decay, 200 epochs.
* ``fc``: a new fully connected layer as the network's own head would be retrained on a frozen
  backbone: dropout on the raw features, mini-batch SGD with momentum (the course's "new FC
  head, frozen backbone").

On the images, through the whole network (:func:`train_network`):

* ``finetune``: the pretrained network with a fresh head; every layer trains, the backbone with a
  smaller learning rate (``lr * backbone_lr_factor``).
* ``scratch``: the same architecture from random weights, every layer at ``lr``: what training
  the big network on the small dataset directly gives.

Every training loop is the engine's :class:`~dlapps.engine.Trainer`: the linear heads in memory
(``run_dir=None``), the networks with a checkpoint per epoch in their cell's folder, so a killed
fine-tune continues where it stopped and ends as an uninterrupted one would.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from dlapps.engine import Labelled, PairedBatches, Trainer, to_float
from dlapps.engine.schedules import cosine
from dlapps.errors import ConfigError, DataError
from dlapps.models.export import MODEL_FILE, save_classifier
from dlapps.models.pretrained import Backbone, Prepare, load_backbone, with_new_head
from dlapps.registry import Registry
from dlapps.transfer.config import DEFAULT_CS

if TYPE_CHECKING:
    from dlapps.transfer.config import TransferConfig


@dataclass
class Split:
    """Rows of one split: features or images ``x``, labels ``y``, and which split it is."""

    x: torch.Tensor
    y: torch.Tensor
    role: str  # "train" or "test"

    def __post_init__(self) -> None:
        if len(self.x) != len(self.y):
            raise DataError(f"{self.role} split has {len(self.x)} rows but {len(self.y)} labels")


@dataclass
class Cell:
    """One classifier on one seed's draw: what a classifier function is given."""

    name: str
    seed: int
    train: Split  # features for a classifier on features, else images
    test: Split
    n_classes: int
    config: TransferConfig
    run_dir: Path | None = None  # where a network checkpoints (None: in memory)
    device: torch.device = torch.device("cpu")
    progress: bool = False
    backbone: Backbone | None = None  # the pretrained backbone at its input size; None: loaded by name
    classes: list[str] | None = None  # class names (a trained network is exported with them)


@dataclass(frozen=True)
class Classifier:
    name: str
    label: str  # what it is, for tables
    on_features: bool  # trained on cached features (else on images, through the network)
    fit: Callable[[Cell], dict]  # -> {"pred": test predictions, extras}


CLASSIFIERS: Registry[Classifier] = Registry("classifier")


def classifier(name: str, label: str, on_features: bool):
    """Register the decorated ``fit(cell) -> dict`` as classifier ``name``."""

    def register(fit: Callable[[Cell], dict]) -> Callable[[Cell], dict]:
        CLASSIFIERS.register(name, Classifier(name, label, on_features, fit))
        return fit

    return register


def check_classes(y: torch.Tensor, what: str = "training set") -> int:
    """Number of classes; a clear error when fewer than 2 are present."""
    present = torch.unique(y)
    if len(present) < 2:
        raise DataError(f"the {what} has {len(present)} class; a classifier needs at least 2")
    return int(y.max()) + 1


def prepared_backbone(name: str, image_size: int | None, pretrained: bool = True) -> Backbone:
    """Backbone ``name`` fed ``image_size`` crops (None: its own input size)."""
    b = load_backbone(name, pretrained)
    return b.at_size(image_size) if image_size else b


# --- linear SVM ----------------------------------------------------------------------------------


def _svm(C: float, pca: int | None, seed: int):
    from sklearn.decomposition import PCA
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import LinearSVC

    steps = [StandardScaler()]
    if pca:
        steps.append(PCA(n_components=pca, random_state=seed))
    steps.append(LinearSVC(C=C, dual="auto", max_iter=1000, random_state=seed))
    return make_pipeline(*steps)


def choose_C(train: Split, Cs: Sequence[float] = DEFAULT_CS, folds: int = 3, pca: int | None = None,
             seed: int = 0) -> tuple[float, list[dict]]:
    """The C with the best mean k-fold accuracy on ``train``, and the whole CV curve.

    Only a training split is accepted: choosing C on test rows would report an optimistic number.
    """
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.model_selection import StratifiedKFold, cross_val_score

    if train.role != "train":
        raise ConfigError(f"C is chosen on the training split only, got the {train.role} split")
    check_classes(train.y)
    x, y = train.x.numpy(), train.y.numpy()
    folds = max(2, min(folds, int(np.bincount(y).min()) if np.bincount(y).min() else 2))
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    curve = []
    for C in Cs:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            scores = cross_val_score(_svm(C, pca, seed), x, y, cv=cv)
        curve.append({"C": float(C), "cv_acc": float(scores.mean()), "cv_std": float(scores.std())})
    best = max(curve, key=lambda r: (r["cv_acc"], -r["C"]))  # ties -> the smaller C
    return best["C"], curve


def svm_classifier(train: Split, test: Split, Cs: Sequence[float] = DEFAULT_CS, folds: int = 3,
                   pca: int | None = None, seed: int = 0, test_curve: bool = False) -> dict:
    """Fit the SVM with C chosen on ``train`` by CV; predict ``test`` once.

    ``test_curve=True`` also reports test accuracy at every C, for the C-sweep figure only
    (computed after C is chosen; it never feeds back into the choice).
    """
    import warnings

    from sklearn.exceptions import ConvergenceWarning

    C, curve = choose_C(train, Cs, folds, pca, seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = _svm(C, pca, seed).fit(train.x.numpy(), train.y.numpy())
        pred = torch.from_numpy(model.predict(test.x.numpy()))
        if test_curve:
            for row in curve:
                fit = _svm(row["C"], pca, seed).fit(train.x.numpy(), train.y.numpy())
                row["test_acc"] = float((fit.predict(test.x.numpy()) == test.y.numpy()).mean())
    return {"pred": pred, "C": C, "cv_curve": curve, "pca": pca}


@classifier("svm", "features + linear SVM", on_features=True)
def svm(cell: Cell) -> dict:
    cfg = cell.config
    return svm_classifier(cell.train, cell.test, cfg.Cs, cfg.folds, cfg.pca, cell.seed,
                          test_curve=cfg.test_curve and cell.seed == cfg.seeds[0])


# --- linear heads on features --------------------------------------------------------------------


class _LinearHead(nn.Module):
    """Dropout then one linear layer; one cross-entropy step per batch of features."""

    def __init__(self, dim: int, n_classes: int, dropout: float) -> None:
        super().__init__()
        self.layers = nn.Sequential(nn.Dropout(dropout), nn.Linear(dim, n_classes))

    def forward(self, x, y, _xt=None, _yt=None, progress: float = 0.0) -> dict:
        return {"loss": F.cross_entropy(self.layers(x), y)}


def train_linear(train: Split, test: Split, *, standardize: bool, dropout: float, optimizer: str,
                 epochs: int, lr: float, weight_decay: float, batch_size: int | None, seed: int,
                 device: torch.device | None = None, amp: bool = True, progress: bool = False,
                 desc: str = "linear") -> dict:
    """A single linear layer on features (the ``probe`` and ``fc`` classifiers), trained by the
    engine in memory. ``batch_size=None`` is full-batch. Returns the test predictions and the
    training loss of the final layer (eval mode: no dropout)."""
    n_classes = check_classes(train.y)
    x, xt = train.x.float(), test.x.float()
    if standardize:  # statistics of the training split only
        mean, std = x.mean(0), x.std(0).clamp_min(1e-6)
        x, xt = (x - mean) / std, (xt - mean) / std
    torch.manual_seed(seed)
    head = _LinearHead(x.shape[1], n_classes, dropout)
    opt = (torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=weight_decay) if optimizer == "adamw"
           else torch.optim.SGD(head.parameters(), lr=lr, momentum=0.9, weight_decay=weight_decay))
    batches = PairedBatches(Labelled(x, train.y), None, min(batch_size or len(x), len(x)), seed)
    trainer = Trainer(head, batches, opt, None, epochs, None, device=device, amp=amp, progress=progress,
                      desc=desc, tensorboard=False)
    trainer.fit()
    head.eval()
    with torch.no_grad():
        dev = trainer.device
        loss = F.cross_entropy(head.layers(x.to(dev)), train.y.to(dev))
        return {"pred": head.layers(xt.to(dev)).argmax(1).cpu(), "train_loss": float(loss)}


PROBE = dict(standardize=True, dropout=0.0, optimizer="adamw", epochs=200, lr=1e-2, weight_decay=1e-2,
             batch_size=None)
FC_HEAD = dict(standardize=False, dropout=0.5, optimizer="sgd", epochs=30, lr=1e-2, weight_decay=5e-4,
               batch_size=32)


@classifier("probe", "features + linear probe (torch)", on_features=True)
def probe(cell: Cell) -> dict:
    return train_linear(cell.train, cell.test, seed=cell.seed, device=cell.device, amp=cell.config.amp,
                        desc=f"probe seed {cell.seed}", **PROBE)


@classifier("fc", "new FC head, frozen backbone", on_features=True)
def fc(cell: Cell) -> dict:
    return train_linear(cell.train, cell.test, seed=cell.seed, device=cell.device, amp=cell.config.amp,
                        progress=cell.progress, desc=f"fc seed {cell.seed}", **FC_HEAD)


# --- whole networks on images --------------------------------------------------------------------


class _ImageClassifier(nn.Module):
    """The network behind its preprocessing; one cross-entropy step per batch. The summed loss
    of the epoch lives in buffers, so a checkpoint carries it and ``epoch_loss`` survives a
    resume."""

    def __init__(self, net: nn.Module, prepare: Callable[[torch.Tensor], torch.Tensor]) -> None:
        super().__init__()
        self.net = net
        self.prepare = prepare
        self.register_buffer("loss_sum", torch.zeros((), dtype=torch.float64))
        self.register_buffer("seen", torch.zeros((), dtype=torch.int64))

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(self.prepare(x)).flatten(1)  # SqueezeNet's head ends in (N, classes, 1, 1)

    def forward(self, x, y, _xt=None, _yt=None, progress: float = 0.0) -> dict:
        loss = F.cross_entropy(self.logits(x), y)
        self.loss_sum += loss.detach().double() * len(y)
        self.seen += len(y)
        return {"loss": loss}

    def end_epoch(self) -> dict:
        mean = float(self.loss_sum / self.seen.clamp_min(1))
        self.loss_sum.zero_()
        self.seen.zero_()
        return {"train_loss": mean}


def train_network(net: nn.Module, head: str, train: Split, test: Split,
                  prepare: Callable[[torch.Tensor], torch.Tensor], *, epochs: int, lr: float,
                  backbone_lr_factor: float, batch_size: int, seed: int, run_dir: Path | None = None,
                  device: torch.device | None = None, amp: bool = True, progress: bool = True,
                  desc: str = "train", fingerprint: str = "",
                  export: Callable[[nn.Module], None] | None = None) -> dict:
    """Train every layer of ``net`` on images; the head at ``lr``, the rest at ``lr * factor``.

    ``prepare`` maps a float [0, 1] batch to the network's normalised input (an ``nn.Module``
    such as :class:`Prepare` follows the network to its device). AdamW (weight decay 1e-4) with
    a cosine decay ``lr * (1 + cos(pi p)) / 2`` over the training progress p in [0, 1], applied
    per parameter group through ``lr_mult``; batches of ``batch_size`` images in an order drawn
    from (seed, epoch), the last partial batch dropped. With a ``run_dir`` the engine
    checkpoints every epoch and ``train_network`` continues from the checkpoint it finds there;
    ``export`` is handed the trained classifier (preprocessing + network, images in [0, 1]).
    The network is in train mode (dropout, batch-norm statistics) while training and in eval
    mode for the test predictions.
    """
    check_classes(train.y)
    if epochs < 1:
        raise ConfigError(f"epochs must be at least 1, got {epochs}")
    torch.manual_seed(seed)
    module = _ImageClassifier(net, prepare)
    head_params = list(net.get_submodule(head).parameters())
    head_ids = {id(p) for p in head_params}
    body = [p for p in net.parameters() if id(p) not in head_ids]
    opt = torch.optim.AdamW([{"params": body, "lr": lr * backbone_lr_factor, "lr_mult": backbone_lr_factor},
                             {"params": head_params, "lr": lr, "lr_mult": 1.0}], lr=lr, weight_decay=1e-4)
    batches = PairedBatches(Labelled(train.x, train.y), None, min(batch_size, len(train.y)), seed)
    trainer = Trainer(module, batches, opt, cosine(lr), epochs, run_dir,
                      evaluate=lambda m: m.end_epoch(), device=device, amp=amp, progress=progress, desc=desc,
                      fingerprint=fingerprint)
    history = trainer.fit()
    pred = predict_network(module, test.x, batch_size=batch_size * 2)
    if export is not None:
        export(nn.Sequential(module.prepare, module.net))
    return {"pred": pred, "epoch_loss": [h["train_loss"] for h in history],
            "train_seconds": history[-1]["seconds"]}


@torch.no_grad()
def predict_network(module: _ImageClassifier, images: torch.Tensor, batch_size: int = 128) -> torch.Tensor:
    """Class predictions of a trained network for uint8 (or float [0, 1]) images, in eval mode."""
    module.eval()
    device = module.loss_sum.device
    return torch.cat([module.logits(to_float(images[s:s + batch_size].to(device))).argmax(1).cpu()
                      for s in range(0, len(images), batch_size)])


def network_fingerprint(cell: Cell) -> str:
    """What a network cell's checkpoint depends on (a checkpoint of other settings is refused)."""
    cfg = cell.config
    keys = {"name": cell.name, "seed": cell.seed, "data": cfg.data, "backbone": cfg.backbone,
            "image_size": cfg.image_size, "per_class": cfg.per_class, "epochs": cfg.epochs, "lr": cfg.lr,
            "backbone_lr_factor": cfg.backbone_lr_factor, "batch_size": cfg.batch_size, "amp": cfg.amp,
            "train": len(cell.train.y), "classes": cell.n_classes}
    return hashlib.sha256(json.dumps(keys, sort_keys=True).encode()).hexdigest()[:16]


def _train_on_images(cell: Cell, source: Backbone, backbone_lr_factor: float) -> dict:
    torch.manual_seed(cell.seed)
    net = with_new_head(source, cell.n_classes)
    cfg = cell.config

    def export(model: nn.Module) -> None:  # model.pt: `dlapps distill --teacher CELL_DIR` reads it
        if cell.run_dir is not None and cell.classes:
            save_classifier(cell.run_dir / MODEL_FILE, model, "pretrained",
                            {"name": source.name, "num_classes": cell.n_classes,
                             "image_size": source.input_size}, cell.classes, size=source.input_size,
                            channels=3, kind="transfer")

    return train_network(net, source.head, cell.train, cell.test, Prepare(source), epochs=cfg.epochs,
                         lr=cfg.lr, backbone_lr_factor=backbone_lr_factor, batch_size=cfg.batch_size,
                         seed=cell.seed, run_dir=cell.run_dir, device=cell.device, amp=cfg.amp,
                         progress=cell.progress, desc=f"{cell.name} seed {cell.seed}",
                         fingerprint=network_fingerprint(cell), export=export)


@classifier("finetune", "fine-tuned, all layers", on_features=False)
def finetune(cell: Cell) -> dict:
    cfg = cell.config
    source = cell.backbone or prepared_backbone(cfg.backbone, cfg.image_size)
    return _train_on_images(cell, source, cfg.backbone_lr_factor)


@classifier("scratch", "same network from scratch", on_features=False)
def scratch(cell: Cell) -> dict:
    cfg = cell.config
    torch.manual_seed(cell.seed)  # the random weights
    return _train_on_images(cell, prepared_backbone(cfg.backbone, cfg.image_size, pretrained=False), 1.0)


def timed(fn: Callable[[], dict]) -> dict:
    """Run ``fn`` and add its wall time as ``seconds``."""
    t0 = time.perf_counter()
    out = fn()
    out["seconds"] = time.perf_counter() - t0
    return out
