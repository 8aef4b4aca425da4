"""dlapps: the classic deep learning applications, reproduced on real data.

Domain adaptation (DANN and friends), transfer learning, network visualization and GANs, each a
thin layer over shared pieces: named data domains held as tensors in memory (:mod:`dlapps.data`),
the papers' networks (:mod:`dlapps.models`), one training loop (:mod:`dlapps.engine`) and a run
directory with a self-contained HTML report (:mod:`dlapps.report`).
"""

__version__ = "0.1.0"
