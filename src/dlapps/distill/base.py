"""What every kind of distillation shares: a student, a frozen teacher beside it, the augmented
batch both see, and taps on the penultimate features of both.

A kind is a :class:`Distillation` subclass in its own file (the math in its docstring) that
defines :meth:`Distillation.objective`; the engine trains it in its automatic mode:
``forward(x, y, _, _, progress)`` returns ``{"loss": ..., <logged numbers>}``.

Per step, with a batch (x, y) of training images in [0, 1]:

1. x̃ = random_translate(x, shift) — every image shifted by up to ``shift`` pixels each way (the
   same augmentation for the student from scratch and every distilled student);
2. s = student(x̃) (logits) and f_s = the input of the student's last ``nn.Linear``;
3. without gradients, the teacher in eval mode on the *same* x̃: t = teacher(x̃) and f_t = the input
   of the teacher's last ``nn.Linear`` (a forward hook, so any loaded classifier works);
4. the kind's objective of (s, t, f_s, f_t, y).

The teacher is **not** a sub-module: it is kept out of ``state_dict()`` and ``parameters()`` (so
out of the checkpoint and of the optimizer), stays in eval mode whatever ``train()`` is called,
and follows the module to its device (``_apply``). A resumed run reloads it from its model.pt.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn

from dlapps.data.augment import random_translate
from dlapps.engine.batches import eval_mode
from dlapps.errors import ConfigError


class FeatureTap:
    """The input of the last ``nn.Linear`` a network calls in its forward (its penultimate
    features), caught by a forward hook: after ``net(x)``, ``tap.value`` is that (N, dim) tensor.

    The layer is found by one probe forward on zeros of ``shape`` (C, H, W) in eval mode; networks
    with a ``head`` attribute that is an ``nn.Linear`` (``dlapps.models.nets``) need no probe."""

    def __init__(self, net: nn.Module, shape: tuple[int, int, int], what: str = "network") -> None:
        head = getattr(net, "head", None)
        if not isinstance(head, nn.Linear):
            head = last_linear(net, shape, what)
        self.layer: nn.Linear = head
        self.dim = head.in_features
        self.value: torch.Tensor | None = None
        self.handle = head.register_forward_hook(self._catch)

    def _catch(self, module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        self.value = inputs[0].flatten(1)

    def remove(self) -> None:
        self.handle.remove()


def last_linear(net: nn.Module, shape: tuple[int, int, int], what: str = "network") -> nn.Linear:
    """The last ``nn.Linear`` called by ``net`` on a (2, *shape) batch of zeros."""
    called: list[nn.Linear] = []
    handles = [m.register_forward_hook(lambda m, i, o: called.append(m))
               for m in net.modules() if isinstance(m, nn.Linear)]
    try:
        with eval_mode(net), torch.no_grad():
            device = next((p.device for p in net.parameters()), torch.device("cpu"))
            net(torch.zeros(2, *shape, device=device))
    finally:
        for h in handles:
            h.remove()
    if not called:
        raise ConfigError(f"the feature and relation kinds read the input of the {what}'s last nn.Linear, "
                          f"but it calls none (e.g. a convolutional head); use --kinds response")
    return called[-1]


class Distillation(nn.Module):
    """A student trained on (x̃, y) under a kind's objective, with a frozen teacher beside it."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    #: the config fields the objective reads (they enter the cell's fingerprint)
    settings: ClassVar[tuple[str, ...]] = ()
    uses_teacher: ClassVar[bool] = True
    uses_features: ClassVar[bool] = False

    def __init__(self, student: nn.Module, teacher: nn.Module | None, config: Any,
                 shape: tuple[int, int, int]) -> None:
        super().__init__()
        self.student = student
        self.shift = int(config.shift)
        self.config = {k: getattr(config, k) for k in self.settings}
        if self.uses_teacher:
            if teacher is None:
                raise ConfigError(f"the {self.name} kind needs a teacher")
            teacher.eval().requires_grad_(False)
        self._teacher: tuple[nn.Module, ...] = (teacher,) if self.uses_teacher else ()
        self.student_tap = self.teacher_tap = None
        if self.uses_features:
            self.student_tap = FeatureTap(student, shape, "student")
            self.teacher_tap = FeatureTap(teacher, shape, "teacher")

    @property
    def teacher(self) -> nn.Module | None:
        return self._teacher[0] if self._teacher else None

    def _apply(self, fn, recurse: bool = True):  # .to(device), .float(), ...: the teacher follows
        super()._apply(fn, recurse)
        for t in self._teacher:
            t._apply(fn)
        return self

    def objective(self, s: torch.Tensor, t: torch.Tensor | None, f_s: torch.Tensor | None,
                  f_t: torch.Tensor | None, y: torch.Tensor) -> dict[str, torch.Tensor]:
        """The loss to minimise (``"loss"``) and the numbers to log, from the student's logits
        ``s``, the teacher's ``t``, their penultimate features and the labels."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor, y: torch.Tensor, _xt=None, _yt=None,
                progress: float = 0.0) -> dict[str, torch.Tensor]:
        x = random_translate(x, self.shift)
        s = self.student(x)
        f_s = self.student_tap.value if self.student_tap is not None else None
        t = f_t = None
        if self.teacher is not None:
            with torch.no_grad():
                t = self.teacher(x).float()
            f_t = self.teacher_tap.value.detach().float() if self.teacher_tap is not None else None
        return self.objective(s.float(), t, None if f_s is None else f_s.float(), f_t, y)
