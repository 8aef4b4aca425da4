"""The run's log: ``metrics.jsonl`` (one JSON object per line) and TensorBoard event files.

Step records look like ``{"kind": "step", "step": 120, "epoch": 1, "lr": ..., "loss": ...}`` and
epoch records like ``{"kind": "epoch", "epoch": 2, "step": 124, "target_acc": ...}``. When a run
resumes from a checkpoint at step s, lines past s (written after that checkpoint, before the
kill) are dropped, and TensorBoard is told to purge events past s, so neither log holds steps
twice.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

METRICS = "metrics.jsonl"


def read_metrics(run_dir: Path) -> list[dict]:
    path = Path(run_dir) / METRICS
    if not path.exists():
        return []
    records = []
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:  # a line cut by a kill
            break
    return records


class RunLog:
    """Append-only metrics for one training run (no-op when ``enabled`` is False)."""

    def __init__(self, run_dir: Path, enabled: bool = True, resume_step: int | None = None,
                 tensorboard: bool = True) -> None:
        self.enabled = enabled
        self.run_dir = Path(run_dir)
        self._file = None
        self._writer = None
        if not enabled:
            return
        self.run_dir.mkdir(parents=True, exist_ok=True)
        path = self.run_dir / METRICS
        if resume_step is not None:
            kept = [r for r in read_metrics(self.run_dir) if r.get("step", 0) <= resume_step]
            path.write_text("".join(json.dumps(r) + "\n" for r in kept))
        elif path.exists():
            path.unlink()
        self._file = open(path, "a", buffering=1 << 16)  # noqa: SIM115 - closed in close()
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(str(self.run_dir), purge_step=resume_step)

    def write(self, kind: str, record: dict) -> None:
        if not self.enabled:
            return
        clean = {k: (float(v) if isinstance(v, float) and math.isfinite(v) else v)
                 for k, v in record.items()}
        self._file.write(json.dumps({"kind": kind, **clean}) + "\n")
        if self._writer is not None:
            step = record["step"]
            for k, v in record.items():
                if k not in ("step", "epoch") and isinstance(v, int | float):
                    self._writer.add_scalar(f"{kind}/{k}", v, step)

    def flush(self) -> None:
        if self.enabled:
            self._file.flush()
            if self._writer is not None:
                self._writer.flush()

    def close(self) -> None:
        if self.enabled:
            self._file.close()
            if self._writer is not None:
                self._writer.close()
