"""Gatys et al.'s style transfer by optimisation: the pixels of one image are optimised so that its
features match a content image's on one layer and its Gram matrices a style image's on several.

    features = FeatureConfig(backbone="VGG16", weights="vgg16_notop.weights.h5")
    image, history = run_gatys("dog.jpg", "starry_night.jpg", GatysConfig(steps=200), "runs/style", features)
    # image: uint8 [H, W, 3], also runs/style/result.png; history["loss"|"content"|"style"|"tv"]: one per step

J(G) = alpha J_content + beta J_style + tv_weight TV (layers.losses.style.perceptual_loss) on float RGB
pixels 0..255, with the backbone's preprocessing inside the feature model (StyleFeatures).

- Optimisers: Adam (keras.optimizers.Adam on a tf.Variable image, one tf.function step, pixels clipped
  to 0..255 after each step) or L-BFGS (scipy's L-BFGS-B, bounds 0..255; one step = one L-BFGS iteration,
  which may evaluate the loss more than once; it may stop before `steps` when it has converged).
- Sizes: the content is resized so that its long side is `image_size` (aspect kept); the style image to
  the same area, with its own aspect (the Grams are normalised by the positions, so sizes may differ), and
  enlarged where its short side would be under the network's smallest input (StyleFeatures.min_side); a style
  longer than 16:1 keeps its centre 16:1 part (style_at_area).
- Coarse-to-fine: `scales="128,256"` optimises at a long side of 128, upsamples the result (bilinear)
  and continues at 256 (image_size is always the last scale). `steps` is the total, split equally
  across the scales (the remainder to the last ones), each scale with a fresh optimiser.
- preserve_colors: the outputs keep the result's luminance and the content's chroma (YUV), the usual
  colour-preserving post-process (the optimisation itself is unchanged).
- Files in out_dir: steps/step_00100.png every save_every steps, checkpoints/state.npz every
  checkpoint_every steps (and at the end), result.png at the end.
- Resume: called again with the same out_dir, inputs and config (steps may grow), it continues from the
  last checkpoint. Adam resumes exactly (image, optimiser slots and step counter are saved), so the final
  image equals an uninterrupted run's; L-BFGS-B's iteration memory cannot be saved through scipy, so it
  restarts from the saved image (the same objective, a slightly different path).
"""
import dataclasses
import hashlib
import io
import json
import os
from pathlib import Path
from typing import Callable, NamedTuple, Optional

import keras
import numpy as np
import tensorflow as tf

from apps.core.config import check_config, field
from apps.core.errors import UserError
from apps.core.files import atomic_write_bytes, os_error_message, remove_leftovers, run_lock
from apps.style_transfer.features import FeatureConfig
from data.errors import DataError
from data.images.files import read_image_file, resize_uint8

PARTS = ("loss", "content", "style", "tv")
CHECKPOINT = Path("checkpoints") / "state.npz"
# Fields that only say how often to write or how long to run: a resumed run may change them.
_FREE_FIELDS = ("steps", "save_every", "checkpoint_every")


@dataclasses.dataclass
class GatysConfig:
    steps: int = field(200, "optimisation steps in all (Adam steps or L-BFGS iterations), split across scales", min=1)
    optimizer: str = field("adam", "pixel optimiser", ["adam", "lbfgs"])
    learning_rate: float = field(10.0, "Adam's learning rate, on pixels 0..255", min=0.0, min_exclusive=True)
    lbfgs_memory: int = field(10, "L-BFGS: the correction pairs it keeps (scipy's default 10; Gatys' Torch code kept "
                                  "100, which here took fewer iterations but longer: see bench/README.md)", min=1)
    init: str = field("content", "starting image", ["content", "noise"])
    image_size: int = field(256, "long side of the result in pixels (the content's aspect is kept)", min=16)
    scales: Optional[str] = field(None, "coarse-to-fine long sides, e.g. '128,256' (image_size is always the last)")
    preserve_colors: bool = field(False, "keep the content's colours: the result's luminance, the content's chroma")
    save_every: int = field(50, "write steps/step_NNNNN.png every N steps (0: never)", min=0)
    checkpoint_every: int = field(10, "save image and optimiser state every N steps for resume (0: at the end only)",
                                  min=0)

    def check(self, prefix=""):
        scales = len(scale_sizes(self))
        if scales > self.steps:
            raise ValueError(f"config key '{prefix}steps' ({self.steps}) must be at least the number of scales "
                             f"({scales})")


class GatysResult(NamedTuple):
    image: np.ndarray  # uint8 [H, W, 3]
    history: dict  # {"loss" | "content" | "style" | "tv": [one float per step]}


def scale_sizes(cfg):
    """The long sides to optimise at, ascending, ending with image_size."""
    sizes = []
    for item in (cfg.scales or "").split(","):
        if item.strip():
            try:
                sizes.append(int(item))
            except ValueError:
                raise ValueError(f"scales {cfg.scales!r}: {item.strip()!r} is not a whole number of pixels") from None
    if sizes and sizes[-1] == cfg.image_size:
        sizes.pop()
    if any(b <= a for a, b in zip(sizes, sizes[1:])) or any(s < 16 or s >= cfg.image_size for s in sizes):
        raise ValueError(f"scales {cfg.scales!r} must rise, from at least 16 px, to image_size ({cfg.image_size})")
    return sizes + [cfg.image_size]


def scale_steps(cfg):
    """Steps at each scale: `steps` split equally, the remainder going to the last scales."""
    n = len(scale_sizes(cfg))
    return [cfg.steps // n + (1 if i >= n - cfg.steps % n else 0) for i in range(n)]


def size_for_long_side(shape, long_side):
    """(h, w) with the long side `long_side` and the aspect of `shape` (h, w, ...)."""
    h, w = shape[:2]
    ratio = long_side / max(h, w)
    return max(1, round(h * ratio)), max(1, round(w * ratio))


MAX_STYLE_ASPECT = 16  # a style longer than this (long side : short side) keeps its centre part of this aspect


def style_at_area(image, area, min_side=1):
    """uint8 [h, w, 3] style resized to about `area` pixels with its own aspect, enlarged where needed so that its
    short side is at least `min_side` (a loss network's smallest input: a long, narrow style stays usable), after
    cropping a style longer than MAX_STYLE_ASPECT : 1 to its centre part of that aspect: enlarged whole to a
    network's smallest side, a long banner would grow without bound. In TensorFlow ops, so that predict (eagerly)
    and the AdaIN export (in its graph) resize styles alike."""
    image = tf.convert_to_tensor(image)
    h, w = tf.shape(image)[0], tf.shape(image)[1]
    keep_h, keep_w = tf.minimum(h, MAX_STYLE_ASPECT * w), tf.minimum(w, MAX_STYLE_ASPECT * h)
    image = tf.image.crop_to_bounding_box(image, (h - keep_h) // 2, (w - keep_w) // 2, keep_h, keep_w)
    size = tf.cast(tf.stack([keep_h, keep_w]), tf.float64)
    ratio = tf.maximum(tf.sqrt(area / (size[0] * size[1])), min_side / tf.reduce_min(size))
    return resize_uint8(image, tf.maximum(min_side, tf.cast(tf.round(size * ratio), tf.int32)))


def load_rgb(image, what):
    """A path or an array -> uint8 [H, W, 3]; a DataError names `what` and the file."""
    if isinstance(image, (str, os.PathLike)):
        if not Path(image).is_file():
            raise DataError(f"{what} image not found: {image}")
        return read_image_file(image, 3).numpy()
    array = np.asarray(image)
    if array.ndim == 2:
        array = np.repeat(array[..., None], 3, axis=-1)
    if array.ndim != 3 or array.shape[-1] != 3 or min(array.shape[:2]) < 1:
        raise DataError(f"{what} image must be an RGB array [H, W, 3]; got shape {array.shape}")
    if array.dtype != np.uint8:
        array = np.clip(np.round(array.astype(np.float64)), 0, 255).astype(np.uint8)
    return array


def keep_colors(stylised, content):
    """The stylised image's luminance (Y of YUV) with the content's chroma (U, V); both RGB 0..255 of
    one size. Returns uint8 (a chroma that leaves the RGB gamut at the new luminance is clipped)."""
    y = tf.image.rgb_to_yuv(tf.cast(stylised, tf.float32) / 255.0)[..., :1]
    uv = tf.image.rgb_to_yuv(tf.cast(content, tf.float32) / 255.0)[..., 1:]
    rgb = tf.image.yuv_to_rgb(tf.concat([y, uv], axis=-1)) * 255.0
    return tf.cast(tf.clip_by_value(tf.round(rgb), 0, 255), tf.uint8).numpy()


def _to_uint8(image):
    return np.clip(np.round(np.asarray(image, np.float32)), 0, 255).astype(np.uint8)


def write_png(path, image):
    data = tf.io.encode_png(_to_uint8(image)).numpy()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, data)


def _fingerprint(cfg, feature_cfg, features, seed, content, style):
    """What a checkpoint must share with the run resuming it: the config (but steps and how often to
    write), the loss (network, layers, weights), the seed and the two input images."""
    settings = {k: v for k, v in dataclasses.asdict(cfg).items() if k not in _FREE_FIELDS}
    settings.update(zip(("alpha", "beta", "tv_weight"), feature_cfg.loss_weights()), backbone=feature_cfg.backbone,
                    weights=str(feature_cfg.weights), content_layer=features.content_layer,
                    style_layers=features.style_weights, seed=seed)
    digest = {what: hashlib.sha256(np.ascontiguousarray(a).tobytes() + str(a.shape).encode()).hexdigest()[:16]
              for what, a in (("content", content), ("style", style))}
    return json.dumps({"config": settings, "images": digest}, sort_keys=True)


class _Checkpoint:
    """One file, checkpoints/state.npz, replaced atomically: the image, the optimiser's variables, the
    step, the scale and the loss history. One file for all of it, so no pair of files can disagree
    after a kill; npz rather than tf.train.Checkpoint because the image changes shape between scales
    (a Checkpoint restores into variables already of the saved shape) and the history is plain arrays."""

    def __init__(self, out_dir, fingerprint):
        self.path = Path(out_dir) / CHECKPOINT
        self.fingerprint = fingerprint

    def load(self):
        if not self.path.is_file():
            return None
        try:
            with np.load(self.path, allow_pickle=False) as saved:
                state = {k: saved[k] for k in saved.files}
        except (OSError, ValueError, EOFError) as e:
            raise UserError(f"checkpoint {self.path} cannot be read ({e}); delete it to start over") from None
        if str(state["fingerprint"]) != self.fingerprint:
            raise UserError(f"{self.path} belongs to a run with other inputs or settings (only steps, save_every "
                            "and checkpoint_every may change on resume); use another output folder, or delete it "
                            "to start over")
        return state

    def save(self, image, optimizer_values, step, scale, history):
        arrays = {"image": np.asarray(image, np.float32), "step": np.int64(step), "scale": np.int64(scale),
                  "fingerprint": np.array(self.fingerprint),
                  **{f"history_{k}": np.asarray(v, np.float64) for k, v in history.items()},
                  **{f"optimizer_{i}": np.asarray(v) for i, v in enumerate(optimizer_values)}}
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(self.path, buffer.getvalue())


def run_gatys(content_image, style_image, cfg: GatysConfig, out_dir, feature_cfg: Optional[FeatureConfig] = None,
              seed=0, progress=True, features=None, on_step: Optional[Callable] = None):
    """Stylise `content_image` after `style_image` (paths or uint8 RGB arrays) by optimising pixels.

    Returns GatysResult(image uint8 [H, W, 3], history {part: [float per step]}) and writes result.png,
    intermediate steps/step_NNNNN.png and checkpoints/state.npz in `out_dir`; a second call with the same
    out_dir resumes (see the module's docstring). `feature_cfg`: the loss's network, layers and weights
    (default FeatureConfig()); `features`: its StyleFeatures built beforehand; `seed`: of the noise start. `on_step(step, parts)` is called after each step (1-based) with
    that step's losses, after its files are written; an exception it raises stops the run.
    """
    check_config(cfg, where="GatysConfig")
    content = load_rgb(content_image, "content")
    style = load_rgb(style_image, "style")
    feature_cfg = feature_cfg or FeatureConfig()
    check_config(feature_cfg, where="FeatureConfig")
    if features is None:
        features = feature_cfg.build()
    elif features.backbone_name != feature_cfg.backbone:
        raise UserError(f"the features given are {features.backbone_name}'s, the config's backbone "
                        f"{feature_cfg.backbone}")
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(os_error_message(e, "create")) from None
    with run_lock(out_dir):
        remove_leftovers(out_dir, folders=("", "checkpoints", "steps"))
        checkpoint = _Checkpoint(out_dir, _fingerprint(cfg, feature_cfg, features, seed, content, style))
        return _Run(content, style, cfg, out_dir, progress, features, feature_cfg.loss_weights(), seed, checkpoint,
                    on_step).run()


class _Run:
    def __init__(self, content, style, cfg, out_dir, progress, features, weights, seed, checkpoint, on_step):
        self.content, self.style, self.cfg, self.out_dir = content, style, cfg, out_dir
        self.features, self.weights, self.seed, self.checkpoint, self.on_step = features, weights, seed, checkpoint, on_step
        self.sizes, self.steps = scale_sizes(cfg), scale_steps(cfg)
        self.ends = list(np.cumsum(self.steps))
        self.history = {k: [] for k in PARTS}
        self.bar = keras.utils.Progbar(cfg.steps, stateful_metrics=[*PARTS, "scale"]) if progress else None

    # --- the objective at one scale

    def _targets(self, scale):
        """(content at this scale float [1, h, w, 3], loss function of images [1, h, w, 3])."""
        h, w = size_for_long_side(self.content.shape, self.sizes[scale])
        f = self.features
        if min(h, w) < f.min_side:
            raise UserError(f"the content is {h}x{w} pixels (height x width) at scale {self.sizes[scale]}, and "
                            f"{f.backbone_name} needs at least {f.min_side} on each side (its pooling shrinks smaller "
                            "images to nothing): raise image_size or the smallest of scales, or crop the photo to a "
                            "less elongated shape")
        content = tf.cast(resize_uint8(self.content, (h, w)), tf.float32)[None]
        style = tf.cast(style_at_area(self.style, h * w, f.min_side), tf.float32)[None]
        content_target = f(content)[f.content_layer]
        grams = f.style_grams(style)
        return content, lambda images: f.loss(content_target, grams, images, self.weights)

    def _start_image(self, content):
        if self.cfg.init == "content":
            return content[0].numpy()
        rng = np.random.default_rng(self.seed)
        return rng.uniform(0.0, 255.0, content.shape[1:]).astype(np.float32)

    # --- the loop

    def run(self):
        state = self.checkpoint.load()
        step, scale, image, slots = 0, 0, None, None
        if state is not None:
            step, scale = int(state["step"]), int(state["scale"])
            self.history = {k: [float(v) for v in state[f"history_{k}"]] for k in PARTS}
            image = state["image"]
            slots = [state[k] for k in sorted((k for k in state if k.startswith("optimizer_")),
                                              key=lambda k: int(k.split("_")[1]))]
            print(f"resuming from step {step} of {self.cfg.steps} ({self.checkpoint.path})")
            begin = self.ends[scale - 1] if scale else 0
            if not begin <= step <= self.ends[scale]:
                raise UserError(f"{self.checkpoint.path} stopped at step {step} of scale {self.sizes[scale]}, "
                                f"which ends at step {self.ends[scale]} with steps={self.cfg.steps}: resume with "
                                "the steps it was started with, or start over in another folder")
        if self.bar is not None and step:
            self.bar.update(step)
        while True:
            content, loss_of = self._targets(scale)
            if image is None:
                image = self._start_image(content)
            elif image.shape[:2] != tuple(content.shape[1:3]):  # a coarser scale's result: upsample it
                image = tf.image.resize(image, content.shape[1:3], method="bilinear").numpy()
                image = np.clip(image, 0.0, 255.0)
            if step < self.ends[scale]:
                optimise = self._adam if self.cfg.optimizer == "adam" else self._lbfgs
                image = optimise(image, loss_of, step, scale, slots, content)
            slots = None
            step = self.ends[scale]
            if scale + 1 == len(self.sizes):
                break
            scale += 1
        result = _to_uint8(image)
        if self.cfg.preserve_colors:
            result = keep_colors(result, content[0])
        write_png(self.out_dir / "result.png", result)
        return GatysResult(result, {k: list(v) for k, v in self.history.items()})

    def _after_step(self, step, scale, parts, image, optimizer_values, content):
        """Record one step's losses, write its files, call the hook."""
        values = {k: float(parts[k]) for k in PARTS}
        for k in PARTS:
            self.history[k].append(values[k])
        if self.bar is not None:
            self.bar.update(step, [*values.items(), ("scale", self.sizes[scale])])
        cfg = self.cfg
        if cfg.save_every and step % cfg.save_every == 0:
            picture = _to_uint8(image())
            write_png(self.out_dir / "steps" / f"step_{step:05d}.png",
                      keep_colors(picture, content[0]) if cfg.preserve_colors else picture)
        if (cfg.checkpoint_every and step % cfg.checkpoint_every == 0) or step == self.ends[scale]:
            self.checkpoint.save(image(), optimizer_values(), step, scale, self.history)
        if self.on_step is not None:
            self.on_step(step, values)

    def _adam(self, start, loss_of, step, scale, slots, content):
        image = tf.Variable(start, dtype=tf.float32, name="image")
        optimizer = keras.optimizers.Adam(float(self.cfg.learning_rate))
        optimizer.build([image])
        if slots is not None:  # resume: the moments and the iteration count, so the next step is the same
            if len(slots) != len(optimizer.variables):
                raise UserError(f"{self.checkpoint.path} holds {len(slots)} optimiser variables, Adam has "
                                f"{len(optimizer.variables)}; delete it to start over")
            for variable, value in zip(optimizer.variables, slots):
                variable.assign(value)

        @tf.function
        def update():
            with tf.GradientTape() as tape:
                parts = loss_of(image[None])
            optimizer.apply_gradients([(tape.gradient(parts["loss"], image), image)])
            image.assign(tf.clip_by_value(image, 0.0, 255.0))
            return parts

        for step in range(step + 1, self.ends[scale] + 1):
            parts = update()
            self._after_step(step, scale, parts, image.numpy, lambda: [v.numpy() for v in optimizer.variables],
                             content)
        return image.numpy()

    def _lbfgs(self, start, loss_of, step, scale, slots, content):
        # The standard, well-kept choice: scipy.optimize.minimize(method="L-BFGS-B") (scipy's C translation
        # of Byrd, Lu, Nocedal & Zhu's L-BFGS-B 3.0; scipy is installed with scikit-image) on the flattened
        # pixels, with the box 0..255 as its bounds, and a tf.function giving the loss and its gradient in one
        # pass (jac=True). L-BFGS is what Gatys et al. optimised with. TensorFlow Probability's
        # lbfgs_minimize would stay in the graph, but it is not a dependency of the suite and takes no bounds.
        from scipy.optimize import Bounds, minimize

        shape = start.shape

        @tf.function(input_signature=[tf.TensorSpec(shape, tf.float32)])
        def value_and_gradient(x):
            with tf.GradientTape() as tape:
                tape.watch(x)
                parts = loss_of(x[None])
            return parts, tape.gradient(parts["loss"], x)

        last = {}

        def evaluate(x):
            parts, gradient = value_and_gradient(tf.constant(x.reshape(shape), tf.float32))
            last.update(x=x.copy(), parts=parts)
            return float(parts["loss"]), gradient.numpy().astype(np.float64).ravel()

        counter = {"step": step}

        def callback(intermediate_result):
            x = intermediate_result.x
            if "x" not in last or not np.array_equal(x, last["x"]):
                evaluate(x)  # the last evaluation was a line-search trial, not the accepted iterate
            counter["step"] += 1
            image = lambda: x.reshape(shape).astype(np.float32)  # noqa: E731
            self._after_step(counter["step"], scale, last["parts"], image, lambda: [], content)

        remaining = self.ends[scale] - step
        result = minimize(evaluate, start.astype(np.float64).ravel(), jac=True, method="L-BFGS-B",
                          bounds=Bounds(0.0, 255.0), callback=callback,
                          options={"maxiter": remaining, "maxfun": 20 * remaining + 20, "ftol": 0.0, "gtol": 0.0,
                                   "maxcor": self.cfg.lbfgs_memory})
        final = result.x.reshape(shape).astype(np.float32)
        if counter["step"] < self.ends[scale]:  # converged early: the state at the scale's end, for resume
            self.checkpoint.save(final, [], self.ends[scale], scale, self.history)
        return final
