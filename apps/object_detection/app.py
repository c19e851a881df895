"""The object-detection app: what is specific to the task; the runner does the rest.

    python -m apps object_detection train                 # generated digit scenes, offline
    python -m apps object_detection evaluate              # mAP@0.5, mAP@[.5:.95], PR curve, box errors
    python -m apps object_detection predict photo.jpg     # boxes drawn to runs/object_detection/predictions
    python -m apps object_detection export
    python -m apps object_detection train --data.source voc --data.path raccoon/   # recipe.py adapts the rest
    python -m apps object_detection train --data.source voc --data.path raccoon/ --model.arch yolo \\
        --model.weights yolov4-tiny.weights                                       # YOLOv4-tiny from COCO

`train` first reports the training boxes as the anchors see them (printed, and drawn to
<run_dir>/data_report.png) and, when the configured anchors cover under 95% of them, fits anchor_size
and aspect_ratios to them (anchor_fit.py; --model.anchors config keeps the configured ones). The run
records its anchors, and resume, evaluate, predict and the export use them.
"""
import dataclasses

import numpy as np
import tensorflow as tf

from apps.core.app import App, SmokeExample
from apps.core.errors import UserError
from apps.core.finetune import finetune_phases
from apps.core.registry import register_app
from apps.core.splits import RecordedSplits
from apps.object_detection.anchor_fit import anchor_record, choose_anchors, coverage
from apps.object_detection.box_errors import box_errors, summary_line
from apps.object_detection.boxes import Anchors, BoxCoder
from apps.object_detection.config import DetectionConfig
from apps.object_detection.data_report import REPORT, box_statistics, draw_report, summary_lines
from apps.object_detection.loss import DetectionLoss, LossPart
from apps.object_detection.metrics import coco_evaluate, draw_detections, plot_pr_curves
from apps.object_detection.model import build_detector
from apps.object_detection.recipe import size_defaults, source_defaults
from apps.object_detection.yolo import YoloCoder, YoloLoss, build_yolo_detector, train_only_heads
from data.boxes.geometry import canvas_to_image, to_xyxy
from data.boxes.pipeline import canvas_sides, eval_batches, load_detection_splits, split_record, train_epoch
from data.generated.scenes import make_scenes
from data.images.decode import decode_letterbox_batch
from data.images.files import decode_image, image_paths, picture_names, refuse_dark_16_bit_png, refused_because

EXAMPLES = 8  # test images drawn by `evaluate`
KEPT_ON_RESUME = ("mosaic", "multi_scale")  # data flags a resumed run keeps from its state unless set again


@register_app("object_detection")
class ObjectDetection(RecordedSplits, App):
    """Single-stage anchor-based detection (RetinaNet family) over any backbone of the suite."""

    Config = DetectionConfig
    default_data = "generated 128x128 scenes of embedded MNIST digits, 4,000 + 200 + 500 scenes"
    file_sources = ("voc", "coco")  # data whose splits are recorded file by file

    def __init__(self, config, run_dir=None):
        # augmentation shares the flags leave unset: the recipe's, and a resumed run keeps its own
        self._unset = {k for k in KEPT_ON_RESUME if getattr(config.data, k) is None}
        super().__init__(source_defaults(config), run_dir)
        config = self.config
        self._coder = None
        self._side_coders = {}  # (side, anchors): BoxCoder, for multi-scale training
        self.class_names = None
        self.image_size = config.data.image_size
        self.anchors = None  # the run's Anchors: chosen as training starts, or its record; None: configured
        self._anchor_record = None  # what state() keeps of them
        self._report = None  # (statistics, AnchorChoice) to draw, when this process chose the anchors

    @property
    def yolo(self):
        return self.config.model.arch == "yolo"

    @property
    def coder(self):
        """The run's box arithmetic: BoxCoder (RetinaNet-style anchors) or YoloCoder."""
        if self._coder is None:
            try:
                self._coder = (YoloCoder(self.image_size, self.config.model.negative_iou) if self.yolo else
                               BoxCoder.from_config(self.image_size, self.config.model, self.anchors))
            except ValueError as e:
                raise UserError(str(e)) from None
        return self._coder

    def _configured_anchors(self):
        try:
            return Anchors.configured(self.config.model)
        except ValueError as e:
            raise UserError(str(e)) from None

    def _choose_anchors(self):
        """As training starts: the run's anchors if it has recorded state (a resumed run), else the data
        report and the configured anchors or, with --model.anchors fit, anchors fitted to the training boxes."""
        if self._anchor_record is not None:  # a resumed run's (resume_state) or a loaded run's
            return
        stats = box_statistics(self.splits["train"])
        if self.yolo:  # its anchors are the pretrained heads': not fitted
            shapes = ", ".join(f"{w:g}x{h:g}" for w, h in self.coder.shapes)
            note = f"anchors: YOLOv4-tiny's (w x h canvas pixels: {shapes}), kept with its weights"
            print("\n".join(summary_lines(stats, None, self.image_size, note=note)))
            self._report, self._anchor_record = (stats, None, note), {"arch": "yolo"}
            return
        self._configured_anchors()
        choice = choose_anchors(stats.boxes, self.image_size, self.config.model, self.config.seed)
        print("\n".join(summary_lines(stats, choice, self.image_size, self._held_out(choice))))
        self._report = (stats, choice, None)
        self.anchors, self._coder = choice.anchors, None
        self._anchor_record = choice.record(self.config.model.anchors)

    def _held_out(self, choice):
        """(boxes, configured coverage, used coverage) of the validation split's targets (no crowd regions), or None
        without one."""
        val = self.splits["val"]
        if val is None:
            return None
        boxes = np.concatenate([b for b, _ in val.targets()] + [np.zeros((0, 4), np.float32)])
        if not len(boxes) or choice.before is None:
            return None
        coders = (BoxCoder.from_config(self.image_size, self.config.model, a) for a in (None, choice.anchors))
        return (boxes, *(coverage(c, boxes) for c in coders))

    def _use_anchors(self, record):
        """The anchors of a run's state; a run recorded before anchors were (None) used the configured ones."""
        if self.yolo:
            self._anchor_record, self._coder = {"arch": "yolo"}, None
            return
        configured = self._configured_anchors()
        if record is None:
            self.anchors = configured
            self._anchor_record = anchor_record(configured, configured, "config")
        else:
            try:
                self.anchors = Anchors(float(record["anchor_size"]), tuple(float(r) for r in record["aspect_ratios"]))
                flags = record.get("configured") or {}
            except (KeyError, TypeError, ValueError, AttributeError) as e:
                raise UserError(f"the run's state ({self.run_dir / 'state.json'}) has a malformed anchors record: "
                                f"{e!r}") from None
            self._anchor_record = record
            print(f"anchors: the run's ({self.anchors.describe()})")
            if (flags.get("anchor_size"), flags.get("aspect_ratios")) != (configured.size, list(configured.ratios)):
                print(f"note: the run's anchors ({self.anchors.describe()}) are used; the anchor flags now "
                      f"({configured.describe()}) would apply to a new run (another --run_dir)")
        self._coder = None

    def load_splits(self, record, names):
        return load_detection_splits(self.config.data, self.config.seed, record, names)

    def make_split_record(self, splits):
        return split_record(self.config.data, self.config.seed, splits)

    def state(self):
        """Called by the runner on the chief alone, as training starts: the splits are recorded, so that the
        other workers, a resumed run and `evaluate` see the same images, the anchors likewise, and the data
        report is drawn."""
        self.record_splits()
        self._choose_anchors()
        if self._report is not None:
            stats, choice, note = self._report
            draw_report(stats, choice, self.image_size, self.run_dir / REPORT, note)
            print(f"data report drawn to {self.run_dir / REPORT}")
            self._report = None
        if "mosaic" in self._unset and self.config.data.mosaic:
            print(f"recipe: {self.config.data.mosaic:g} of the training canvases mosaics of four (--data.mosaic to choose)")
        return {"class_names": self.class_names, "image_size": self.image_size, "anchors": self._anchor_record,
                **{k: getattr(self.config.data, k) for k in KEPT_ON_RESUME}}

    def load_state(self, state):
        self.class_names = state["class_names"]
        self.image_size = state["image_size"]
        self._use_anchors(state.get("anchors"))

    def resume_state(self, state):
        """A resumed run trains on with the anchors its weights learned, whatever the anchor flags say now,
        and with its own mosaic share and multi-scale spread unless flags set them (runs from before they were
        recorded: 0)."""
        self._use_anchors(state.get("anchors"))
        for key in sorted(self._unset):
            recorded = state.get(key, 0.0)
            if recorded != getattr(self.config.data, key):
                print(f"note: the run's data.{key} {recorded:g} is kept (--data.{key} to change it)")
                self.config = dataclasses.replace(self.config, data=dataclasses.replace(self.config.data, **{key: recorded}))

    @classmethod
    def smoke_example(cls, folder):
        path = folder / "sample.png"
        tf.io.write_file(str(path), tf.io.encode_png(make_scenes(1, seed=5, size=64)[0][0]))
        flags = ["--data.image_size", "64", "--data.train_scenes", "64", "--data.val_scenes", "16",
                 "--data.test_scenes", "16", "--epochs", "1", "--batch_size", "16", "--model.width", "8",
                 "--model.fpn_width", "16", "--model.head_width", "16", "--model.head_depth", "1",
                 "--score_threshold", "0.001", "--draw_threshold", "0.0", "--verbose", "line"]
        return SmokeExample(flags, str(path), {"images": [path.read_bytes()]})

    @property
    def train_sides(self):
        """The canvas sides training draws from: data.image_size, or several with --data.multi_scale, in steps
        of the coarsest stride (at least 32) so that every level's anchors stay on its grid."""
        step = max(32, 2 ** self.config.model.max_level)
        return canvas_sides(dataclasses.replace(self.config.data, image_size=self.image_size), step)

    def coder_for(self, side):
        """The run's coder for a square canvas of `side` (multi-scale training): the same anchors in pixels."""
        if side == self.image_size:
            return self.coder
        key = (side, self.anchors)
        if key not in self._side_coders:
            self._side_coders[key] = BoxCoder.from_config(side, self.config.model, self.anchors)
        return self._side_coders[key]

    def build_model(self):
        names = self.splits["train"].class_names
        sides = self.train_sides
        if self.yolo:
            model = build_yolo_detector(self.config.model, self.image_size, len(names))
        else:
            model = build_detector(self.config.model, self.image_size, len(names), self.coder.anchors_per_cell,
                                   any_size=len(sides) > 1)
        for side in sides:
            try:
                count = model.compute_output_shape((1, side, side, 3))[1]
            except ValueError:  # a valid-padding backbone's maps, a pixel short at some sides
                count = None
            if count != self.coder_for(side).num_predictions:
                raise UserError(f"on {side}-pixel canvases the model predicts for {count} anchors but there are "
                                f"{self.coder_for(side).num_predictions}" + (
                                    f": backbone {self.config.model.backbone}'s feature maps do not halve exactly "
                                    "at every side; set data.multi_scale 0 or choose another backbone"
                                    if len(sides) > 1 else ""))
        return model

    def _encode(self, images, truth):
        return images, self.coder.encode(truth["boxes"], truth["labels"])

    def _encode_any_side(self, images, truth):
        """Targets for a batch of any of the training sides, with that side's anchors."""
        sides = self.train_sides
        which = tf.argmax(tf.cast(tf.equal(tf.shape(images)[1], sides), tf.int32), output_type=tf.int32)
        branches = [lambda c=self.coder_for(side): c.encode(truth["boxes"], truth["labels"]) for side in sides]
        return images, tf.switch_case(which, branches)

    def build_dataset(self, split, epoch=0):
        if split == "train" and (self.config.epochs is None or self.config.model.freeze_epochs is None):
            self.config, said = size_defaults(self.config, len(self.splits["train"]))
            if said:
                print(said)
        cfg = self.config
        self._choose_anchors()  # before the coder encodes a box
        if split == "train":
            data = train_epoch(self.splits["train"], cfg.data, cfg.batch_size, cfg.seed, epoch, self.train_sides)
            encode = self._encode_any_side if len(self.train_sides) > 1 else self._encode
            return data.map(encode, num_parallel_calls=2, deterministic=True)
        if self.splits[split] is None:
            return None
        return eval_batches(self.splits[split], cfg.batch_size).map(self._encode)

    def _loss_config(self):
        m = self.config.model
        return {"num_classes": len(self.class_names), "alpha": m.focal_alpha, "gamma": m.focal_gamma,
                "box_weight": m.box_loss_weight, "box_loss": m.box_loss, "normalizer": m.loss_normalizer}

    def compile_defaults(self):
        if self.yolo:
            config = {"num_classes": len(self.class_names), "scale_x_y": self.coder.scale_x_y}
            return {"loss": YoloLoss(**config), "metrics": [LossPart(p, config, "YoloLoss") for p in YoloLoss.PARTS]}
        return {"loss": DetectionLoss(**self._loss_config()),
                "metrics": [LossPart("cls", self._loss_config()), LossPart("box", self._loss_config())]}

    def phases(self):
        return finetune_phases(self.config.model, self.config.epochs, train_only_heads if self.yolo else None)

    def detect_canvases(self, model, canvases, scales, image_hw, batch_size=32):
        """Detections per image in its own pixels: [(boxes yxyx, scores, class ids)]."""
        cfg = self.config

        @tf.function
        def run(x, scale, hw):
            boxes, scores, classes, n = self.coder.detect(model(x, training=False), cfg.score_threshold, cfg.nms_iou,
                                                          cfg.max_detections)
            return canvas_to_image(boxes, scale, hw), scores, classes, n

        out = []
        for start in range(0, len(canvases), batch_size):
            part = slice(start, start + batch_size)
            boxes, scores, classes, n = (t.numpy() for t in run(
                tf.cast(canvases[part], tf.float32), tf.constant(scales[part]), tf.constant(image_hw[part])))
            out.extend((boxes[i, :n[i]], scores[i, :n[i]], classes[i, :n[i]]) for i in range(len(n)))
        return out

    def evaluate(self, model, out_dir):
        test = self.test_split()
        self.refuse_other_classes(test)
        if test.canvas.shape[1] != (model.input_shape[1] or self.image_size):  # None: a multi-scale run's model
            raise UserError(f"data.image_size is {test.canvas.shape[1]} but the model takes "
                            f"{model.input_shape[1] or self.image_size}")
        detections = self.detect_canvases(model, test.canvas, test.scale, test.image_hw)
        truth = list(zip(test.boxes, test.labels, test.crowd))
        report, ev = coco_evaluate(truth, detections, self.class_names, test.image_hw)
        # the detections are cut at score_threshold already: a lower draw_threshold counts at that one
        report["box_errors"] = box_errors(truth, detections, max(self.config.draw_threshold, self.config.score_threshold))
        if ev is not None:
            plot_pr_curves(ev, self.class_names, out_dir / "pr_curve.png")
        examples = out_dir / "examples"
        examples.mkdir(exist_ok=True)
        for i in range(min(EXAMPLES, len(test))):
            boxes, scores, classes = detections[i]
            keep = scores >= self.config.draw_threshold
            h, w = test.image_hw[i]
            image = test.canvas[i][:round(h * test.scale[i][0]), :round(w * test.scale[i][1])]
            draw_detections(np.asarray(tf.image.resize(image, (h, w), antialias=True)), to_xyxy(boxes[keep]),
                            [self.class_names[c] for c in classes[keep]], scores[keep], examples / f"{i:03d}.png",
                            to_xyxy(test.boxes[i]))
        print(f"mAP@0.5 {report['map_50']:.4f}  mAP@[.5:.95] {report['map_50_95']:.4f} on {report['images']} test images")
        print(summary_line(report["box_errors"]))
        return report

    def predict(self, model, inputs):
        paths = image_paths(inputs)
        serving = self.serving_model(model)
        out_dir = self.run_dir / "predictions"
        out_dir.mkdir(parents=True, exist_ok=True)
        pictures = picture_names(paths)
        records = []
        for path, picture_name in zip(paths, pictures):
            data = path.read_bytes()
            try:
                result = {k: v.numpy() for k, v in serving.serve(tf.constant([data])).items()}
                image = decode_image(tf.constant(data), 3).numpy()  # as served: upright (EXIF orientation)
            except tf.errors.InvalidArgumentError as e:
                raise UserError(f"{path}: {refused_because(e, data)}") from None
            refuse_dark_16_bit_png(path, data)
            n = int(result["num_detections"][0])
            keep = result["scores"][0, :n] >= self.config.draw_threshold
            boxes, scores = result["boxes"][0, :n][keep], result["scores"][0, :n][keep]
            names = [s.decode() for s in result["class_names"][0, :n][keep]]
            picture = out_dir / picture_name
            draw_detections(image, boxes, names, scores, picture)
            found = ", ".join(f"{name} {score:.2f} [{', '.join(f'{v:.0f}' for v in box)}]"
                              for name, score, box in zip(names, scores, boxes))
            records.append(f"{path}: {len(names)} object(s){': ' + found if found else ''} -> {picture}")
        return records

    def serving_model(self, model):
        cfg = self.config
        return DetectorServing(model, self.coder, self.class_names, self.image_size, cfg.score_threshold, cfg.nms_iou,
                               cfg.max_detections)


class DetectorServing(tf.Module):
    """Encoded images of any size in; boxes [x_min, y_min, x_max, y_max] in each image's pixels,
    class ids and names, scores and the number of valid rows out (rows past it: id -1, name "").
    The request is checked before decoding (data.images.decode): an image whose header claims more than
    `max_pixels` pixels (None: data.images.decode.MAX_PIXELS, 120 megapixels), or a truncated JPEG/PNG,
    is an INVALID_ARGUMENT naming `images` and its index."""

    def __init__(self, model, coder, class_names, size, score_threshold, iou_threshold, max_detections,
                 max_pixels=None):
        super().__init__()
        self.model = model
        self.coder = coder
        self.class_names = tf.constant(class_names)
        self.size = size
        self.settings = (score_threshold, iou_threshold, max_detections)
        self.max_pixels = max_pixels

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="images")], autograph=False)
    def serve(self, images):
        canvas, scale, image_hw = decode_letterbox_batch(images, self.size, self.max_pixels)
        boxes, scores, classes, n = self.coder.detect(self.model(tf.cast(canvas, tf.float32), training=False),
                                                      *self.settings)
        boxes = canvas_to_image(boxes, scale, image_hw)
        valid = tf.range(tf.shape(scores)[1])[None, :] < n[:, None]
        classes = tf.where(valid, classes, -1)
        return {"boxes": tf.gather(boxes, [1, 0, 3, 2], axis=-1), "scores": scores, "class_ids": classes,
                "class_names": tf.where(valid, tf.gather(self.class_names, tf.maximum(classes, 0)), ""),
                "num_detections": n}
