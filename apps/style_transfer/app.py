"""The neural style-transfer app: Gatys' optimisation, and feed-forward networks trained with fit().

    python -m apps style_transfer predict photo.jpg --style scream          # Gatys (no trained model)
    python -m apps style_transfer train                                     # Johnson net for --style
    python -m apps style_transfer train --model.arch adain --run_dir runs/adain --data.styles paintings/
    python -m apps style_transfer predict photo.jpg                         # the trained network
    python -m apps style_transfer evaluate                                  # losses on held-out photos, sheet
    python -m apps style_transfer export                                    # images -> stylized PNG bytes

Every result is measured the same way, whichever method made it: the content, style and total-variation
terms of the --features loss (Gatys' formulas on the chosen network's layers).
"""
import dataclasses
import hashlib
import json
import time
from pathlib import Path

import numpy as np
import tensorflow as tf

from apps.core.app import App, SmokeExample
from apps.core.errors import UserError
from apps.core.files import atomic_write_text
from apps.core.registry import register_app
from apps.core.splits import SPLIT_RECORD
from apps.style_transfer.config import StyleConfig
from apps.style_transfer.features import smallest_side
from apps.style_transfer.gatys import run_gatys, style_at_area, write_png
from apps.style_transfer.networks import ADAIN_LAYERS, JohnsonLoss, adain_model, transform_net
from apps.style_transfer.pictures import save_loss_curves, save_sheet
from apps.style_transfer.serving import AdaINServing, StylizerServing, adain_pass, stylize_any_size
from data.errors import DataError
from data.images.files import image_paths, picture_names, read_image_file
from data.split_record import read_record, write_record
from data.style.pipeline import (content_source, load_photo_split, load_photos, load_styles, split_record, train_epoch,
                                 val_batches)
from data.style.sources import image_path, read_picture

STRIDE = {"johnson": 4, "adain": 8}  # the networks' downsampling: inputs are padded to a multiple of it
EVAL_SIDE = 512  # evaluate: photos are stylised with this long side (or their own, if smaller)
EVAL_MIN_SIDE = 32  # evaluate: smaller photos are left out (said): SqueezeNet's last pool needs a 3x3 input


@register_app("style_transfer")
class StyleTransfer(App):
    """Neural style transfer: Gatys' pixel optimisation, Johnson's one-style network, AdaIN for any style."""

    Config = StyleConfig
    default_data = ("embedded: 3 photos (dog, horses, person; one held out) and 2 paintings (Starry Night, "
                    "The Scream), public domain")
    predict_inputs = "PHOTO"
    predict_inputs_help = "photos (files or folders) to stylise; --style names the painting (gatys, adain)"

    def __init__(self, config, run_dir=None):
        super().__init__(config, run_dir)
        self._photos, self._styles, self._features, self._split = {}, None, None, None
        self._recorded = False  # whether the run's split record (data/splits.json) holds this split
        self.learned = None  # state.json of a trained run

    @property
    def arch(self):
        return self.config.model.arch

    # ---- data ---------------------------------------------------------------------------------------------

    def split(self):
        """{"train", "val"} photo paths: the run's recorded split, else a fresh one (recorded by state())."""
        if self._split is None:
            data = self.config.data
            record = read_record(self.run_dir / SPLIT_RECORD)
            self._recorded = record is not None and record["source"] == content_source(data.content)
            self._split = load_photo_split(data, self.config.seed, record)
        return self._split

    def photos(self, name):
        if name not in self._photos:
            self._photos[name] = load_photos(self.split()[name], self.config.data)
        return self._photos[name]

    def training_styles(self):
        if self._styles is None:
            self._styles = load_styles(self.config.data)
        return self._styles

    def style_image(self, name_or_path=None, min_side=1):
        """The style as uint8 [h, w, 3], at about the area of a training crop (the Gram matrices are
        normalised by position, so the scale of the strokes is set by this size), its short side at least
        `min_side`: the smallest input of the networks that read it (gatys.style_at_area)."""
        side = self.config.data.image_size
        return style_at_area(read_picture(name_or_path or self.config.style, "style"), side * side, min_side).numpy()

    def state(self):
        """The arch and style, and the split's photos (resolved, for reading: evaluate reads the split record)."""
        split = self.split()
        if not self._recorded:  # the first training: the split is the run's from now on
            write_record(split_record(self.config.data, self.config.seed, split), self.run_dir / SPLIT_RECORD)
            self._recorded = True
        return {"arch": self.arch, "style": _style_key(self.config.style) if self.arch == "johnson" else None,
                "train_photos": [str(Path(p).resolve()) for p in split["train"]],
                "held_out_photos": [str(Path(p).resolve()) for p in split["val"]]}

    def load_state(self, state):
        self.learned = state

    @classmethod
    def smoke_example(cls, folder):
        photo = folder / "photo.png"  # the embedded person, small: the smoke test passes its bytes on a command line
        tf.io.write_file(str(photo), tf.io.encode_png(read_picture("person", "content", long_side=72)))
        flags = ["--model.width", "4", "--model.residual_blocks", "1", "--data.image_size", "64",
                 "--data.crops_per_epoch", "8", "--epochs", "1", "--batch_size", "4", "--verbose", "line"]
        return SmokeExample(flags, str(photo), {"images": [photo.read_bytes()]})

    # ---- training -----------------------------------------------------------------------------------------

    def features(self):
        """The loss network of a one-style model and of every measurement (--features)."""
        if self._features is None:
            self._features = self.config.features.build()
        return self._features

    def adain_features(self):
        cfg = self.config.features
        if cfg.backbone not in ADAIN_LAYERS:
            raise UserError(f"adain has no encoder layers for {cfg.backbone}; choose one of {', '.join(ADAIN_LAYERS)}")
        encoder, style_layers = ADAIN_LAYERS[cfg.backbone]
        return dataclasses.replace(cfg, content_layer=encoder, style_layers=style_layers).build()

    def build_model(self):
        net = self.config.model
        if self.arch == "johnson":
            return transform_net(net.width, net.residual_blocks)
        return adain_model(self.adain_features(), decoder_width=net.decoder_width or None,
                           style_weight=net.style_weight or None)

    def build_dataset(self, split, epoch=0):
        cfg = self.config
        styles = self.training_styles() if self.arch == "adain" else None
        if split == "train":
            return train_epoch(self.photos("train"), cfg.data, cfg.batch_size, cfg.seed, epoch, styles)
        return val_batches(self.photos("val"), cfg.data, cfg.batch_size, styles)

    def compile_defaults(self):
        if self.arch == "adain":
            return {"loss": None}  # the model adds AdaIN's content and style losses itself
        alpha, beta, tv_weight = self.config.features.loss_weights()
        features = self.features()
        return {"loss": JohnsonLoss(features, self.style_image(min_side=features.min_side), alpha, beta, tv_weight)}

    # ---- stylising ----------------------------------------------------------------------------------------

    def stylizer(self, model):
        """stylize(float image [H, W, 3] 0..255, style uint8 or None, strength) -> float [H, W, 3]."""
        arch = (self.learned or {}).get("arch", self.arch)
        if arch == "johnson":
            net = tf.function(lambda batch: model(batch, training=False), reduce_retracing=True)
            return lambda image, style=None, strength=1.0: stylize_any_size(net, image, STRIDE["johnson"]).numpy()
        run = tf.function(adain_pass(model), reduce_retracing=True)

        def stylize(image, style, strength=1.0):
            style = tf.cast(style, tf.float32)[None]  # any size: only its feature statistics are used
            return stylize_any_size(run, image, STRIDE["adain"], style, tf.constant([strength], tf.float32)).numpy()

        return stylize

    def measure(self, content, style, result):
        """{content, style, tv, loss} of a result against its content and style (the --features loss)."""
        f = self.features()
        to_batch = lambda x: tf.cast(x, tf.float32)[None]  # noqa: E731
        style = style_at_area(style, content.shape[0] * content.shape[1], f.min_side)  # as Gatys sizes its target
        parts = f.loss(f(to_batch(content))[f.content_layer], f.style_grams(to_batch(style)), to_batch(result),
                       self.config.features.loss_weights())
        return {k: float(v) for k, v in parts.items()}

    # ---- verbs --------------------------------------------------------------------------------------------

    def uses_trained_model(self, verb):
        return verb != "predict" or self._predict_method() == "model"

    def _predict_method(self):
        method = self.config.method
        if method == "auto":
            method = "model" if (self.run_dir / "model.keras").is_file() else "gatys"
            print(f"method: {method} ({'the run has a trained model' if method == 'model' else 'no trained model in '}"
                  f"{'' if method == 'model' else self.run_dir})")
        return method

    def evaluate(self, model, out_dir):
        cfg = self.config
        listed = []
        if not (self.run_dir / SPLIT_RECORD).is_file():  # older runs: their state.json lists the held-out photos
            named = [Path(p) for p in (self.learned or {}).get("held_out_photos") or []]
            listed = [p for p in named if p.is_file()]
            missing = [p for p in named if not p.is_file()]
            gone = f" ({len(missing)} of {len(named)} gone, e.g. {missing[0]})" if missing else ""
            print(f"note: the run has no split record ({self.run_dir / SPLIT_RECORD}; older runs lack it): " +
                  (f"measured on the {len(listed)} held-out photo(s) its state.json lists{gone}" if listed else
                   f"its held-out photos are split again from the photos present now{gone}"))
        paths = listed or self.split()["val"]
        held_out = bool(paths)
        if not held_out:
            paths = self.split()["train"]
            print("note: the run holds no photo out; measured on its training photos")
        stylize = self.stylizer(model)
        adain = (self.learned or {}).get("arch", self.arch) == "adain"  # measure() enlarges it for the loss network
        style = self.style_image((self.learned or {}).get("style"), smallest_side(model.encoder) if adain else 1)
        rows, measured, seconds, overlap, skipped, small = [], [], [], [], [], []
        for path in paths:
            try:
                content = read_picture(path, "content", long_side=EVAL_SIDE)
            except DataError:
                if not cfg.data.skip_bad_files:  # training skipped it too, and said so
                    raise
                skipped.append(path)
                continue
            if min(content.shape[:2]) < EVAL_MIN_SIDE:
                small.append(path)
                continue
            image = tf.cast(content, tf.float32)
            if not seconds:
                stylize(image, style, cfg.strength)  # untimed: the first call traces the function
            start = time.perf_counter()
            result = stylize(image, style, cfg.strength)
            seconds.append(time.perf_counter() - start)
            measured.append(self.measure(content, style, result))
            overlap.append(overlap_difference(lambda x: stylize(x, style, cfg.strength), image))
            if len(rows) < cfg.examples:
                rows.append([("content: " + path.name, content), ("style", style),
                             (f"{self.arch}", np.clip(np.round(result), 0, 255).astype(np.uint8))])
        if skipped:
            print(f"note: skipped {len(skipped)} unreadable photo(s) (--data.skip_bad_files), e.g. {skipped[0]}")
        if small:
            print(f"note: left out {len(small)} photo(s) under {EVAL_MIN_SIDE} pixels on a side at the {EVAL_SIDE}-pixel "
                  f"evaluation size, too small to measure losses on, e.g. {small[0]}")
        if not measured:
            why = "can be read" if skipped else f"is {EVAL_MIN_SIDE} pixels on a side or more at {EVAL_SIDE} pixels"
            raise UserError(f"none of the run's {len(paths)} photo(s) to measure on {why}, e.g. {(skipped or small)[0]}")
        save_sheet(rows, out_dir / "sheet.png")
        report = {k: float(np.mean([m[k] for m in measured])) for k in measured[0]}
        report.update(photos=len(measured), held_out=held_out, seconds_per_photo=float(np.median(seconds)),
                      overlap_difference=float(np.mean(overlap)), long_side=EVAL_SIDE)
        return report

    def predict(self, model, inputs):
        method = "model" if model is not None else "gatys"
        out_dir = self.run_dir / "predictions"
        out_dir.mkdir(parents=True, exist_ok=True)
        paths = image_paths(inputs)
        style_name = self.config.style
        one_style = method == "model" and (self.learned or {}).get("arch") == "johnson"
        if one_style:
            if _style_key(style_name) != self.learned["style"] and _readable(style_name):
                print(f"note: this network paints one style, {self.learned['style']}; --style {style_name} is for "
                      "gatys (--method gatys) and adain runs")
            style_name = self.learned["style"]
        if one_style and not _readable(style_name):  # the network holds its style: only the sheet shows the file
            print(f"note: the run's style image {style_name} is not found (a run folder copied or a painting "
                  "moved); the stylised images are written, the sheets without the style")
            style = None
        else:
            style = read_picture(style_name, "style")
        style_stem = Path(str(style_name)).stem
        if method == "gatys":  # minutes a photo: a bad file among them stops the command before, not after, hours
            for path in paths:
                read_image_file(path, 3)
        if method == "model":  # one traced network (and the style, which a one-style network ignores) for every photo
            stylize = self.stylizer(model)
            model_style = None if one_style else self.style_image(style_name, smallest_side(model.encoder))
        records = []
        for path, name in zip(paths, picture_names(paths)):
            stem = name[:-len(".png")]
            if method == "gatys":
                result = self._gatys(path, style_name, out_dir / "gatys" / f"{stem}-{style_stem}")
                content = read_image_file(path, 3).numpy()
            else:
                content = read_image_file(path, 3).numpy()
                result = stylize(tf.cast(content, tf.float32), model_style, self.config.strength)
                result = np.clip(np.round(result), 0, 255).astype(np.uint8)
            stylized, sheet = out_dir / f"{stem}_{style_stem}_stylized.png", out_dir / f"{stem}_{style_stem}_sheet.png"
            write_png(stylized, result)  # the style in the name: another --style does not replace this one
            panels = [("content", content)] + ([("style", style)] if style is not None else []) + [(method, result)]
            save_sheet([panels], sheet)
            records.append(f"{path}: {result.shape[0]}x{result.shape[1]} stylised ({method}) -> {stylized}, {sheet}")
        return records

    def _gatys(self, path, style_name, folder):
        """Gatys' optimisation in its own folder of the run directory; a hash of its settings and of the photo's
        and the style's bytes names it, so that the same command resumes (kill -9 included), and other settings
        or another photo of the same name (trip1/IMG_0001.jpg, trip2/IMG_0001.jpg) start their own."""
        cfg = self.config
        settings = {"features": dataclasses.asdict(cfg.features), "seed": cfg.seed,
                    "content": _file_digest(path), "style": _file_digest(image_path(style_name, "style")),
                    "gatys": {k: v for k, v in dataclasses.asdict(cfg.gatys).items()
                              if k not in ("steps", "save_every", "checkpoint_every")}}
        digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:8]
        folder = folder.with_name(f"{folder.name}-{digest}")
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write_text(folder / "settings.json", json.dumps(
            {**settings, "photo": str(path), "style_image": str(style_name), "gatys": dataclasses.asdict(cfg.gatys)},
            indent=2) + "\n")
        print(f"gatys: {cfg.gatys.steps} {cfg.gatys.optimizer} steps in {folder}")
        result = run_gatys(path, read_picture(style_name, "style"), cfg.gatys, folder, cfg.features, cfg.seed,
                           features=self.features())
        save_loss_curves(result.history, folder / "losses.png")
        parts = list(result.history)  # loss, content, style, tv: one value per step, as the curves
        atomic_write_text(folder / "history.csv", "step," + ",".join(parts) + "\n" + "".join(
            f"{i + 1}," + ",".join(f"{result.history[k][i]:.6g}" for k in parts) + "\n"
            for i in range(len(result.history[parts[0]]))))
        return result.image

    def serving_model(self, model):
        if (self.learned or {}).get("arch", self.arch) == "johnson":
            return StylizerServing(model, STRIDE["johnson"])
        return AdaINServing(model, STRIDE["adain"], style_area=self.config.data.image_size ** 2,
                            min_side=smallest_side(model.encoder))



def _file_digest(path):
    """A short hash of a file's bytes."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


def _readable(style):
    """Whether a style names an embedded painting or an image file that exists."""
    try:
        image_path(style, "style")
    except DataError:
        return False
    return True


def _style_key(style):
    """An embedded style's name, or a style file's full path (predict and evaluate may run from elsewhere)."""
    path = Path(str(style))
    return str(path.resolve()) if path.is_file() else str(style)


def overlap_difference(stylize, image, share=0.75):
    """Mean absolute difference (0..255) over the overlap of two crops of `image` stylised apart: the left
    and right `share` of its width. A network whose output depends only on nearby pixels gives ~0; what
    it changes is what flickers when video frames shift."""
    h, w = int(image.shape[0]), int(image.shape[1])
    width = max(1, int(round(w * share)))
    left = stylize(image[:, :width])
    right = stylize(image[:, w - width:])
    begin = w - width  # the overlap: columns begin..width of the image
    return float(np.mean(np.abs(left[:, begin:width] - right[:, :width - begin])))
