"""On-disk cache of generated tensors, keyed by the generator's parameters, with checksums.

Generated domains (MNIST-M, SynDigits, ...) take seconds to minutes to build, so they are kept in
``$DLAPPS_DATA/cache`` (default ``~/.cache/dlapps/cache``). The file name holds a hash of the
generator's name, version and parameters, so changing any of them builds a new file; the file
itself stores the parameters and a SHA-256 of every tensor's bytes, which are checked on every
load. A file that fails to load, holds other parameters (stale) or whose bytes do not match
(corrupt) is reported with a warning and rebuilt, never silently used. Writes are atomic.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable
from pathlib import Path

import torch

from dlapps.errors import CheckpointError
from dlapps.io import atomic_torch_save, safe_torch_load

log = logging.getLogger(__name__)

Tensors = dict[str, torch.Tensor]


def data_root() -> Path:
    """Where dlapps keeps downloads and caches: ``$DLAPPS_DATA`` or ``~/.cache/dlapps``."""
    return Path(os.environ.get("DLAPPS_DATA") or Path.home() / ".cache" / "dlapps").expanduser()


def cache_key(name: str, params: dict) -> str:
    blob = json.dumps({"name": name, "params": params}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def tensors_digest(tensors: Tensors) -> str:
    """SHA-256 over the names, dtypes, shapes and bytes of the tensors, in name order."""
    h = hashlib.sha256()
    for key in sorted(tensors):
        t = tensors[key].detach().cpu().contiguous()
        h.update(f"{key}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")  # 0-d too
    return h.hexdigest()


def cache_path(name: str, params: dict, root: Path | None = None) -> Path:
    return (root or data_root()) / "cache" / f"{name}-{cache_key(name, params)}.pt"


def cached(name: str, params: dict, build: Callable[[], Tensors], root: Path | None = None) -> Tensors:
    """Return the tensors cached for ``(name, params)``, building and storing them if needed.

    ``params`` must hold everything the output depends on (seed, sizes, generator version, a
    digest of the inputs); it is stored in the file and compared on load.
    """
    path = cache_path(name, params, root)
    if path.exists():
        problem = _verify(path, params)
        if problem is None:
            return safe_torch_load(path, "cache file")["tensors"]
        log.warning("cache file %s is %s; rebuilding it", path, problem)
    tensors = build()
    payload = {
        "tensors": tensors,
        "params": json.dumps(params, sort_keys=True, default=str),
        "sha256": tensors_digest(tensors),
    }
    atomic_torch_save(payload, path)
    return tensors


def _verify(path: Path, params: dict) -> str | None:
    """None when the file is good, else a word saying what is wrong with it."""
    try:
        payload = safe_torch_load(path, "cache file")
        tensors, stored_params, digest = payload["tensors"], payload["params"], payload["sha256"]
    except (CheckpointError, KeyError, TypeError):
        return "unreadable (corrupt or truncated)"
    if stored_params != json.dumps(params, sort_keys=True, default=str):
        return "stale (built with other parameters)"
    if tensors_digest(tensors) != digest:
        return "corrupt (checksum mismatch)"
    return None
