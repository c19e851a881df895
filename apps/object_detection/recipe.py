"""The detection recipe's values that a run sets from its data unless the user sets them (flags left at "auto"
or unset): which network, canvas and mosaic share suit the source, and how long to train for the number of
images.

Generated scenes are small, synthetic and many (4,000): a small zoo ResNet from scratch on 128-pixel
canvases, 12 epochs, no mosaics (their 2-5 objects fill the canvas already; not measured with them).
Photos (voc, coco, tfds) are what ImageNet features are for, and a few hundred of them are the usual
user's set: a pretrained backbone shipped with the suite, fine-tuned, on 256-pixel canvases, half the
training canvases YOLOv4-style mosaics of four (more objects per canvas, at more sizes and places: the
raccoon folds in bench/README.md), and as many epochs as it takes to show the network about EPOCH_IMAGES
images (a few hundred photos: 100 epochs, as detection fine-tuning recipes run on small sets; 4,000 and
more: 12), the first tenth of them on the frozen backbone.
"""
import dataclasses
import math

from data.boxes.pipeline import with_canvas_size

SCENE_BACKBONE = "resnet"  # the zoo ResNet, from scratch
PHOTO_BACKBONE = ("efficientnet_lite0", "imagenet")  # shipped with the suite, with its ImageNet weights
PHOTO_MOSAIC = 0.5  # share of the training canvases that are mosaics, for photos
EPOCH_IMAGES = 48_000  # images shown in training: 12 epochs of the 4,000 default scenes
EPOCH_RANGE = (12, 100)
FROZEN_SHARE = 0.1  # of the epochs, with pretrained weights, on the frozen backbone


def source_defaults(cfg):
    """`cfg` (a DetectionConfig) with its "auto" backbone (and its weights), canvas size and mosaic share set
    for its data source. YOLO has its own backbone: "auto" stays, unused."""
    model = cfg.model
    if model.backbone == "auto" and model.arch == "retinanet":
        if cfg.data.source == "scenes":
            model = dataclasses.replace(model, backbone=SCENE_BACKBONE)
        else:
            model = dataclasses.replace(model, backbone=PHOTO_BACKBONE[0], weights=model.weights or PHOTO_BACKBONE[1])
    data = with_canvas_size(cfg.data)
    if data.mosaic is None:
        data = dataclasses.replace(data, mosaic=0.0 if data.source == "scenes" else PHOTO_MOSAIC)
    if data.multi_scale is None:
        data = dataclasses.replace(data, multi_scale=0.0)  # an option, not a default: bench/README.md
    return dataclasses.replace(cfg, model=model, data=data)


def auto_epochs(train_images):
    return int(min(max(round(EPOCH_IMAGES / max(train_images, 1)), EPOCH_RANGE[0]), EPOCH_RANGE[1]))


def size_defaults(cfg, train_images):
    """`cfg` with unset epochs and freeze_epochs set for `train_images`, and the line that says so (None:
    the user set both)."""
    said = []
    epochs = cfg.epochs
    if epochs is None:
        epochs = auto_epochs(train_images)
        said.append(f"{epochs} epochs for {train_images} training images (--epochs to choose)")
    freeze = cfg.model.freeze_epochs
    if freeze is None:
        freeze = math.ceil(FROZEN_SHARE * epochs) if cfg.model.weights else 0
        if freeze:
            said.append(f"the first {freeze} on the frozen backbone (--model.freeze_epochs)")
    cfg = dataclasses.replace(cfg, epochs=epochs, model=dataclasses.replace(cfg.model, freeze_epochs=freeze))
    return cfg, ("recipe: " + ", ".join(said)) if said else None
