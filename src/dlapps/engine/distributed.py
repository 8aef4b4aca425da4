"""DistributedDataParallel under ``torchrun`` (gloo on CPU, NCCL on GPU).

``torchrun --nproc_per_node=N -m dlapps adapt ...`` starts N processes with RANK, WORLD_SIZE and
LOCAL_RANK set; :func:`setup` joins them into a process group. Every rank trains on its slice of
each global batch and DDP averages the gradients, so N processes follow the same trajectory as
one process with the same global batch. Only rank 0 writes files.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1


def from_env() -> Dist:
    return Dist(int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)),
                int(os.environ.get("LOCAL_RANK", 0)))


def setup(device: torch.device) -> Dist:
    """Join the process group torchrun prepared (a no-op in a single process)."""
    info = from_env()
    if info.active and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return info


def barrier(info: Dist) -> None:
    if info.active and dist.is_initialized():
        dist.barrier()


def teardown(info: Dist) -> None:
    if info.active and dist.is_initialized():
        dist.destroy_process_group()
