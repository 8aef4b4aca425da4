"""User-facing errors.

Everything a user can get wrong (a name, a path, a number, a file) raises a :class:`DlappsError`
subclass whose message says what was wrong and what to do instead. The command line prints the
message without a traceback and exits with status 2; library users catch the class they care about.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class DlappsError(Exception):
    """Base class of errors caused by input, configuration or the environment, not by a bug."""


class UnknownNameError(DlappsError, KeyError):
    """A name (domain, method, model, preset, ...) that is not registered."""

    def __init__(self, kind: str, name: str, valid: Iterable[str]):
        valid = sorted(valid)
        close = difflib.get_close_matches(name, valid, n=3)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        super().__init__(f"unknown {kind} {name!r}.{hint} Valid {kind}s: {', '.join(valid)}")
        self.kind, self.name, self.valid = kind, name, valid

    def __str__(self) -> str:  # KeyError would quote the message
        return self.args[0]

    def __reduce__(self):  # rebuilt from its own arguments when it crosses a process boundary
        return type(self), (self.kind, self.name, self.valid)


class DataError(DlappsError):
    """A dataset, folder or image that cannot be used as asked."""


class DownloadError(DlappsError):
    """A download that failed or did not verify; the message says which file to put where."""


class CheckpointError(DlappsError):
    """A checkpoint or weight file that cannot be loaded safely."""


class ConfigError(DlappsError, ValueError):
    """An option value that makes no sense (epochs 0, negative learning rate, ...)."""


class NonFiniteLossError(DlappsError, FloatingPointError):
    """Training produced a NaN or infinite loss; the message names the step."""

    def __init__(self, step: int, epoch: int, losses: dict[str, float]):
        parts = ", ".join(f"{k}={v:.4g}" for k, v in losses.items())
        super().__init__(
            f"non-finite loss at step {step} (epoch {epoch}): {parts}. The last good checkpoint "
            "is kept; lower the learning rate or check the data."
        )
        self.step, self.epoch, self.losses = step, epoch, losses

    def __reduce__(self):
        return type(self), (self.step, self.epoch, self.losses)
