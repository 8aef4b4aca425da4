"""The one training loop and what it needs: batches from in-memory tensors, seeding, devices,
DDP, atomic checkpoints and the run log."""

from dlapps.engine.batches import Labelled, PairedBatches, to_float
from dlapps.engine.checkpoint import load_checkpoint, save_checkpoint
from dlapps.engine.device import autocast, resolve_device
from dlapps.engine.seeding import seed_everything
from dlapps.engine.trainer import Trainer

__all__ = ["Labelled", "PairedBatches", "Trainer", "autocast", "load_checkpoint",
           "resolve_device", "save_checkpoint", "seed_everything", "to_float"]
