"""Transfer learning: ImageNet features + linear SVM / probe / FC head, fine-tuning and training
from scratch (:mod:`dlapps.transfer.experiment`), compared on a small labelled dataset."""
