"""The semantic-segmentation app: what is specific to the task; the runner does the rest.

    python -m apps semantic_segmentation train                  # generated scenes, offline
    python -m apps semantic_segmentation evaluate               # mean IoU, per-class IoU, overlays
    python -m apps semantic_segmentation predict photo.jpg      # mask PNG + overlay per image
    python -m apps semantic_segmentation export
    python -m apps semantic_segmentation train --data.source folder --data.path membrane/ \\
        --data.crop_size 256 --data.elastic 30
"""
import numpy as np
import tensorflow as tf

from apps.core.app import App, SmokeExample
from apps.core.errors import UserError
from apps.core.finetune import finetune_phases
from apps.core.registry import register_app
from apps.core.splits import RecordedSplits
from apps.semantic_segmentation.config import SegmentationConfig
from apps.semantic_segmentation.metrics import SegmentationScores, training_metrics
from apps.semantic_segmentation.model import build_segmenter, model_stride
from apps.semantic_segmentation.pictures import overlay, save_mask, save_sheet
from apps.semantic_segmentation.serving import SegmenterServing, image_probabilities
from data.generated.mask_scenes import make_mask_scenes
from data.images.files import image_paths, picture_names, read_image_file
from data.masks.pipeline import load_segmentation_splits, split_record, train_epoch, validation_batches
from layers.losses.segmentation import IGNORE_LABEL, make_loss

COLLAPSE = 0.01  # warn when one class is predicted for more than 1 - this share of the pixels


@register_app("semantic_segmentation")
class SemanticSegmentation(RecordedSplits, App):
    """Every pixel gets a class: U-Net, FCN (bilinear-initialised transposed convolutions) or DeepLabV3+."""

    Config = SegmentationConfig
    default_data = "generated 128x128 scenes of embedded Fashion-MNIST items with exact masks"
    file_sources = ("folder", "voc")  # data whose splits are recorded file by file

    def __init__(self, config, run_dir=None):
        super().__init__(config, run_dir)
        self.class_names = None

    @property
    def stride(self):
        return model_stride(self.config.model)

    def load_splits(self, record, names):
        return load_segmentation_splits(self.config.data, self.config.seed, record, names)

    def make_split_record(self, splits):
        return split_record(self.config.data, self.config.seed, splits)

    def state(self):
        """Called by the runner on the chief alone, as training starts: the splits are recorded."""
        self.record_splits()
        return {"class_names": self.class_names}

    def load_state(self, state):
        self.class_names = state["class_names"]

    @classmethod
    def smoke_example(cls, folder):
        path = folder / "sample.png"
        tf.io.write_file(str(path), tf.io.encode_png(make_mask_scenes(1, seed=5, size=64, split="test").images[0]))
        flags = ["--data.train_scenes", "32", "--data.val_scenes", "8", "--data.test_scenes", "8",
                 "--data.scene_size", "64", "--data.crop_size", "64", "--epochs", "1", "--batch_size", "8",
                 "--model.width", "4", "--model.depth", "2", "--verbose", "line"]
        return SmokeExample(flags, str(path), {"images": [path.read_bytes()]})

    def build_model(self):
        return build_segmenter(self.config.model, len(self.splits["train"].class_names))

    def build_dataset(self, split, epoch=0):
        cfg = self.config
        if split == "train":
            return train_epoch(self.splits["train"], cfg.data, cfg.batch_size, cfg.seed, epoch)
        if not self.splits[split]:
            return None
        return validation_batches(self.splits[split], cfg.batch_size, self.stride)

    def compile_defaults(self):
        cfg = self.config
        weights = class_weights(cfg.class_weights, self.splits["train"].masks, len(self.class_names))
        if weights is not None:
            print("class weights: " + ", ".join(f"{n} {w:.3g}" for n, w in zip(self.class_names, weights)))
        try:
            loss = make_loss(cfg.loss, weights)
        except ValueError as e:
            raise UserError(f"--loss {cfg.loss} with --class_weights: {e}") from None
        return {"loss": loss, "metrics": training_metrics(len(self.class_names))}

    def phases(self):
        return finetune_phases(self.config.model, self.config.epochs)

    def _probabilities(self, model):
        stride, tta, max_side = self.stride, self.config.tta, self.config.data.max_side
        return tf.function(lambda image: image_probabilities(model, image, stride, tta, max_side),
                           input_signature=[tf.TensorSpec([None, None, 3], tf.float32)])

    def evaluate(self, model, out_dir):
        test = self.test_split()
        if len(self.class_names) != model.output_shape[-1]:
            raise UserError(f"the model predicts {model.output_shape[-1]} classes but the run has {len(self.class_names)}")
        self.refuse_other_classes(test)
        run = self._probabilities(model)
        scores = SegmentationScores(len(self.class_names))
        examples = out_dir / "examples"
        examples.mkdir(exist_ok=True)
        for i, (image, mask) in enumerate(zip(test.images, test.masks)):
            probabilities = run(tf.cast(image, tf.float32)).numpy()
            scores.update(mask, np.log(np.maximum(probabilities, 1e-30)))  # log-probabilities: logits of the same softmax
            if i < self.config.examples:
                save_sheet(image, mask, probabilities.argmax(-1), examples / f"{i:03d}.png")
        report = scores.result()
        report["per_class_iou"] = dict(zip(self.class_names, report.pop("iou")))
        report["per_class_dice"] = dict(zip(self.class_names, report.pop("dice")))
        report["images"] = len(test.images)
        _warn_if_collapsed(scores.confusion, self.class_names)
        print(f"mean IoU {report['mean_iou']:.4f}  pixel accuracy {report['pixel_accuracy']:.4f} "
              f"on {len(test.images)} test images")
        return report

    def predict(self, model, inputs):
        paths = image_paths(inputs)
        run = self._probabilities(model)
        out_dir = self.run_dir / "predictions"
        out_dir.mkdir(parents=True, exist_ok=True)
        records = []
        for path, name in zip(paths, picture_names(paths)):
            image = read_image_file(path, 3)
            ids = run(tf.cast(image, tf.float32)).numpy().argmax(-1).astype(np.uint8)
            stem = name[:-len(".png")]
            save_mask(ids, out_dir / f"{stem}_mask.png")
            tf.io.write_file(str(out_dir / f"{stem}_overlay.png"), tf.io.encode_png(overlay(image, ids)))
            counts = np.bincount(ids.reshape(-1), minlength=len(self.class_names)) / ids.size
            shares = ", ".join(f"{self.class_names[c]} {counts[c]:.1%}" for c in np.argsort(-counts) if counts[c] > 0)
            records.append(f"{path}: {ids.shape[0]}x{ids.shape[1]} mask ({shares}) -> "
                           f"{out_dir / (stem + '_mask.png')}, {out_dir / (stem + '_overlay.png')}")
        return records

    def serving_model(self, model):
        return SegmenterServing(model, self.class_names, self.stride, self.config.tta, max_side=self.config.data.max_side)

    def extra_signatures(self, module):
        return {"probabilities": module.probabilities}


def class_weights(option, masks, num_classes):
    """None, one weight per class from a comma-separated list, or 'balanced': median-frequency balancing
    (SegNet: w_c = median frequency / frequency of c, over the training masks' pixels; a class never seen
    gets the largest weight of the others)."""
    if option is None:
        return None
    if option.strip().lower() == "balanced":
        counts = sum(np.bincount(m[m != IGNORE_LABEL].reshape(-1), minlength=num_classes)[:num_classes] for m in masks)
        freq = counts / max(counts.sum(), 1)
        seen = freq > 0
        weights = np.where(seen, np.median(freq[seen]) / np.where(seen, freq, 1), 0.0)
        return [float(w) for w in np.where(seen, weights, weights.max())]
    try:
        weights = [float(v) for v in option.split(",")]
    except ValueError:
        raise UserError(f"--class_weights must be 'balanced' or {num_classes} comma-separated numbers; got {option!r}") from None
    if len(weights) != num_classes or min(weights) < 0 or not np.all(np.isfinite(weights)):
        raise UserError(f"--class_weights needs {num_classes} finite weights >= 0 (one per class: "
                        f"{num_classes} classes); got {option!r}")
    return weights


def _warn_if_collapsed(confusion, class_names):
    """The "all black" collapse users of U-Net ports keep meeting: (almost) every pixel predicted one class (for two
    classes: foreground under 1% or over 99%) while the other classes get under half their true share."""
    total = confusion.sum()
    if not total:
        return
    predicted, truth = confusion.sum(0) / total, confusion.sum(1) / total  # rows: truth, columns: prediction
    c = int(predicted.argmax())
    if predicted[c] > 1 - COLLAPSE and 1 - predicted[c] < (1 - truth[c]) / 2:
        print(f"warning: the model predicts {class_names[c]} for {predicted[c]:.2%} of the test pixels (the truth: "
              f"{truth[c]:.2%}): (almost) only one class; try more epochs, --class_weights balanced or "
              "--loss cross_entropy+dice")
