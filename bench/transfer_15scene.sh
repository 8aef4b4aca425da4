#!/usr/bin/env bash
# Reproduce the course's 15 Scene table (docs/PAPERS.md §3: VGG16 relu7 + linear SVM ~ 88.6%).
# Needs the internet once (torchvision ImageNet weights go to $TORCH_HOME/hub/checkpoints) and
# the 15 Scene images arranged as DIR/train/<class>/*.jpg and DIR/test/<class>/*.jpg
# (the course split: 100 training images per class, the rest for test). Not run in CI.
#
#   bench/transfer_15scene.sh ~/15-Scene [runs/15scene]
set -euo pipefail
DATA=${1:?usage: $0 15-SCENE-DIR [OUT-DIR]}
OUT=${2:-runs/15scene}
# backbones x taps with the SVM (C by 3-fold CV on train; the C sweep 1e-3..1e2 is in the report)
dlapps transfer compare --data "imagefolder:$DATA" --backbones vgg16,resnet18,alexnet \
    --layers relu7,relu6,pool5,avgpool --C 1e-3:1e2 --out "$OUT/compare"
# PCA to 100 dimensions before the SVM
dlapps transfer --data "imagefolder:$DATA" --backbone vgg16 --layer relu7 --classifier svm \
    --pca 100 --out "$OUT/pca100"
# new FC head on the frozen network, fine-tuning (backbone lr x0.1) and VGG16 from scratch
dlapps transfer --data "imagefolder:$DATA" --backbone vgg16 --layer relu7 \
    --classifier svm,fc,finetune,scratch --epochs 10 --out "$OUT/classifiers"
