"""The published numbers our tables print beside ours (target accuracy; docs/PAPERS.md §1).

Ganin & Lempitsky (ICML 2015) Table 1, with the JMLR 2016 Table 2 values where they differ; for
``vada`` and ``dirt-t`` both entries are Shu et al. (ICLR 2018) Table 2 (instance-normalised input,
their larger network).
"""

from __future__ import annotations

# domain name -> the family the paper's dataset belongs to
FAMILY = {"mnist": "MNIST", "mnist5k": "MNIST", "mnistm": "MNIST-M", "mnistm5k": "MNIST-M",
          "mnistm-original": "MNIST-M", "syndigits": "Syn Numbers", "svhn": "SVHN"}

# (source family, target family) -> method -> (ICML 2015, JMLR 2016)
TARGET_ACCURACY = {
    ("MNIST", "MNIST-M"): {"source": (0.5749, 0.5225), "dann": (0.8149, 0.7666),
                           "target": (0.9891, 0.9596), "vada": (0.957, 0.957), "dirt-t": (0.987, 0.987)},
    ("Syn Numbers", "SVHN"): {"source": (0.8665, 0.8674), "dann": (0.9048, 0.9109),
                              "target": (0.9244, 0.9220)},
    ("SVHN", "MNIST"): {"source": (0.5919, 0.5490), "dann": (0.7107, 0.7385),
                        "target": (0.9951, 0.9942)},
}


def paper_numbers(source: str, target: str) -> dict[str, tuple[float, float]] | None:
    """The paper's target accuracies for this pair of domains, or None if it has none."""
    return TARGET_ACCURACY.get((FAMILY.get(source, source), FAMILY.get(target, target)))


def gap_closed(source_only: float, adapted: float, oracle: float) -> float | None:
    """(adapted − source only) / (train on target − source only): the share of the gap closed."""
    gap = oracle - source_only
    return None if abs(gap) < 1e-9 else (adapted - source_only) / gap
