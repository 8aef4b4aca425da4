"""Checkpoints: everything needed to continue a run exactly, written atomically.

A checkpoint holds the module's and optimizer's state, the position (epochs done, global step),
every RNG state, the per-epoch history, the seconds trained so far and a fingerprint of the
configuration. It is loaded with ``weights_only=True``; a file that is corrupt, crafted or made
for another configuration is refused with a :class:`CheckpointError` before anything is written.
"""

from __future__ import annotations

from pathlib import Path

from dlapps.errors import CheckpointError
from dlapps.io import atomic_torch_save, safe_torch_load

CHECKPOINT = "checkpoint.pt"
REQUIRED = ("module", "optimizer", "epoch", "step", "rng", "history", "fingerprint", "seconds")


def save_checkpoint(run_dir: Path, state: dict) -> Path:
    missing = [k for k in REQUIRED if k not in state]
    if missing:
        raise ValueError(f"checkpoint state lacks {missing}")
    return atomic_torch_save(state, Path(run_dir) / CHECKPOINT)


def load_checkpoint(run_dir: Path, fingerprint: str | None = None) -> dict | None:
    """The checkpoint in ``run_dir``, None when there is none; refuses a bad or foreign one."""
    path = Path(run_dir) / CHECKPOINT
    if not path.exists():
        return None
    state = safe_torch_load(path, "checkpoint")
    if not isinstance(state, dict) or any(k not in state for k in REQUIRED):
        raise CheckpointError(f"refusing checkpoint {path}: it lacks the fields of a dlapps checkpoint")
    if fingerprint is not None and state["fingerprint"] != fingerprint:
        raise CheckpointError(
            f"refusing checkpoint {path}: it was written for another configuration "
            f"({state['fingerprint']} != {fingerprint}); resume with the run's own config.json"
        )
    return state
