r"""Mean teacher (Tarvainen & Valpola, NeurIPS 2017).

A teacher network f_θ' whose weights are the exponential moving average of the student's,
θ'_t = ε θ'_{t−1} + (1 − ε) θ_t, gives targets on every image; the student learns the labels and
agrees with the teacher on differently perturbed views (η, η': random shifts, and dropout where
the network has it)::

    L = (1/n) Σ_m CE(y_m, f_θ(x_m)) + w(t) · (1/N) Σ_i ‖softmax f_θ(x_i + η) − softmax f_θ'(x_i + η')‖²

over the labelled and unlabelled images of the step (the squared error is summed over classes,
as in the paper). The consistency weight ramps up as in the paper, w(t) = w_max ·
exp(−5 (1 − t/T_r)²) for t < T_r, then w_max; the teacher carries no gradient. Defaults (options
``mean-teacher.*``): ε = 0.99, w_max = 10 (the paper's CIFAR-10 value for its MSE on softmax),
T_r = 0.4 of training, shift = 2 pixels. The student is evaluated and deployed; the teacher's
weights are part of the checkpoint.
"""

from __future__ import annotations

import copy
import math

import torch

from dlapps.data.augment import random_translate
from dlapps.semi.base import SemiMethod
from dlapps.semi.pseudo_label import ema_update


def sigmoid_rampup(t: float, length: float) -> float:
    """exp(−5 (1 − t/length)²) for t < length, else 1 (Laine & Aila; Tarvainen & Valpola)."""
    if length <= 0 or t >= length:
        return 1.0
    return math.exp(-5.0 * (1.0 - t / length) ** 2)


class MeanTeacher(SemiMethod):
    name = "mean-teacher"
    description = "consistency with an EMA teacher (Tarvainen & Valpola 2017)"
    options = {"ema": 0.99, "weight": 10.0, "rampup": 0.4, "shift": 2}

    def __init__(self, net, config):
        super().__init__(net, config)
        self.ema, self.weight = float(self.option("ema")), float(self.option("weight"))
        self.rampup, self.shift = float(self.option("rampup")), int(self.option("shift"))
        self.teacher = copy.deepcopy(net).requires_grad_(False)

    def forward(self, xl, yl, xu, yu, progress):
        if self.training:
            ema_update(self.teacher, self.net, self.ema)
        x = torch.cat([xl, xu])
        student = self.net(random_translate(x, self.shift))
        with torch.no_grad():
            target = self.teacher(random_translate(x, self.shift)).softmax(1)
        supervised = torch.nn.functional.cross_entropy(student[: len(xl)], yl)
        consistency = (student.softmax(1) - target).pow(2).sum(1).mean()
        w = self.weight * sigmoid_rampup(progress, self.rampup)
        return {"loss": supervised + w * consistency, "supervised_loss": supervised,
                "consistency": consistency, "weight": w,
                "labelled_acc": (student[: len(xl)].argmax(1) == yl).float().mean()}
