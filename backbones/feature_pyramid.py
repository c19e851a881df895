"""The feature pyramid (Lin et al. 2017) over a backbone's levels: shared by detection and segmentation."""
import math

import keras


def feature_pyramid(levels, width, size, max_level=None):
    """{level: map} -> {level: `width`-channel map}: lateral 1x1 convs, top-down sums, 3x3 smoothing;
    levels past the backbone's coarsest up to `max_level` come from stride-2 convs (RetinaNet's P6, P7).
    `size` is the input side, so maps a pixel short (valid-padding backbones) are aligned first (None: a model
    for any size, whose maps must align by themselves)."""
    top = max(levels)
    lateral = {}
    for lv, x in levels.items():
        grid = math.ceil(size / 2**lv) if size else None
        if grid and x.shape[1] != grid:
            x = keras.layers.Resizing(grid, grid, name=f"align_c{lv}")(x)
        lateral[lv] = keras.layers.Conv2D(width, 1, name=f"lateral_c{lv}")(x)
    pyramid = {top: lateral[top]}
    for lv in sorted(levels, reverse=True)[1:]:
        up = keras.layers.UpSampling2D(2, name=f"upsample_p{lv + 1}")(pyramid[lv + 1])
        pyramid[lv] = keras.layers.Add(name=f"merge_p{lv}")([lateral[lv], up])
    for lv in list(pyramid):
        pyramid[lv] = keras.layers.Conv2D(width, 3, padding="same", name=f"smooth_p{lv}")(pyramid[lv])
    x = levels[top]
    for lv in range(top + 1, (max_level or top) + 1):
        if lv > top + 1:
            x = keras.layers.ReLU(name=f"relu_p{lv - 1}")(x)
        x = pyramid[lv] = keras.layers.Conv2D(width, 3, strides=2, padding="same", name=f"extra_p{lv}")(x)
    return pyramid
