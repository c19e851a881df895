"""Perceptual losses for neural style transfer: Gatys et al.'s content and Gram-matrix style losses, total
variation, and Huang & Belongie's AdaIN with its losses.

Activations are channels-last [B, H, W, C] from a fixed feature network (VGG, say); "generated" means
the image being optimised (or a decoder's output). With nH, nW, nC a layer's size:

- content_loss = 1 / (4 nH nW nC) * sum (a(C) - a(G))^2 on one layer.
- style_layer_loss = 1 / (4 nC^2 (nH nW)^2) * ||Gram(S) - Gram(G)||_F^2, Gram = A^T A with A the
  (nH nW, nC) unrolled activations; style_loss = sum over layers of lambda_l * style_layer_loss.
- total_variation_loss: squared (default) or absolute differences of neighbouring pixels, per pixel.
- perceptual_loss = alpha * content + beta * style + tv_weight * total variation, with the parts.
- adain (Huang & Belongie 2017): content features with each channel's mean and std replaced by the
  style's; adain_content_loss and adain_style_loss train a decoder to invert it.

Every loss is a scalar, the mean over the batch of each image's loss (a generated batch may share one
content or style target of batch 1: it broadcasts). Half-precision inputs are computed in float32 (a
Gram matrix sums nH nW products and overflows float16); float64 stays float64.

    style_grams = {name: gram_matrix(f) for name, f in style_features.items()}  # once per style image
    parts = perceptual_loss(content_features, style_grams, features_of(image), alpha=10, beta=40,
                            tv_weight=1, images=image, content_layer="block4_conv2",
                            style_layers_weights={"block1_conv1": 0.5, "block2_conv1": 0.5})
    parts["loss"]  # what the optimiser minimises; parts["content"], parts["style"], parts["tv"]
"""
from collections.abc import Mapping

from keras import ops

TV_VARIANTS = ("squared", "absolute")


def _float(x):
    """x as a tensor of float32 at least (float64 kept, for gradient checks)."""
    x = ops.convert_to_tensor(x)
    return x if x.dtype in ("float32", "float64") else ops.cast(x, "float32")


def _positions(features):
    """nH * nW of [B, H, W, C] features, as a float of their dtype (known only when called, in a graph)."""
    shape = ops.shape(features)
    return ops.cast(shape[1] * shape[2], features.dtype)


def gram_matrix(features, normalize=False):
    """The channel correlations of activations [B, H, W, C] -> [B, C, C]: Gram = A^T A, A the
    (H W, C) unrolled map of one image, so Gram[c, d] = sum over positions of a[c] * a[d].

    normalize=False gives the plain sum of the definition (the Gatys / course formula, whose style loss
    divides by (nH nW)^2 itself). normalize=True divides by H * W: the mean over positions, which does
    not grow with the image, so a style image of any size can be compared with a generated one (the
    feed-forward and AdaIN modes, where style and generated sizes differ). A bare [H, W, C] map is
    taken as a batch of one.

    >>> a = ops.reshape(ops.arange(1.0, 9.0), (1, 2, 2, 2))  # A = [[1, 2], [3, 4], [5, 6], [7, 8]]
    >>> ops.convert_to_numpy(gram_matrix(a)).tolist()
    [[[84.0, 100.0], [100.0, 120.0]]]
    """
    features = _float(features)
    if len(features.shape) == 3:
        features = features[None]
    if len(features.shape) != 4:
        raise ValueError(f"gram_matrix takes activations [B, H, W, C]; got shape {features.shape}")
    gram = ops.einsum("bhwc,bhwd->bcd", features, features)
    return gram / _positions(features) if normalize else gram


def content_loss(content_features, generated_features):
    """1 / (4 nH nW nC) * sum (a(C) - a(G))^2 per image, averaged over the batch: the mean squared
    difference / 4. `content_features` may be of batch 1 for a batch of generated images.

    >>> float(content_loss(ops.zeros((1, 2, 2, 1)), ops.ones((1, 2, 2, 1))))
    0.25
    """
    content, generated = _float(content_features), _float(generated_features)
    return ops.mean(ops.square(ops.cast(content, generated.dtype) - generated)) / 4.0


def style_layer_loss(style_gram_or_features, generated_features, normalized=False):
    """1 / (4 nC^2 (nH nW)^2) * ||Gram(S) - Gram(G)||_F^2 for one layer, per image, averaged over the batch.

    `style_gram_or_features` is either the style image's activations [B, H, W, C] (rank 4) or their
    Gram matrices [B, C, C] / [C, C] (rank 3 or 2), precomputed once for an optimisation:
    - Grams from gram_matrix(style) (normalized=False): the formula as written, which assumes the style
      image has the generated image's nH x nW (its Gram is divided by the generated nH nW);
    - Grams from gram_matrix(style, normalize=True) (pass normalized=True): any style image size;
    - activations: each side's Gram divided by its own nH nW, so any size too.
    The two coincide when the sizes match: the formula equals ||Gram(S) / nHnW - Gram(G) / nHnW||_F^2
    / (4 nC^2), the mean over the C x C entries of the squared difference of normalised Grams, / 4. That
    is how it is computed (values stay small in float32).
    """
    generated = _float(generated_features)
    if len(generated.shape) != 4:
        raise ValueError(f"generated activations are [B, H, W, C]; got shape {generated.shape}")
    generated_gram = gram_matrix(generated, normalize=True)
    style = _float(style_gram_or_features)
    style = ops.cast(style, generated.dtype)
    if len(style.shape) == 4:
        style_gram = gram_matrix(style, normalize=True)
    elif len(style.shape) in (2, 3):
        style_gram = style if normalized else style / _positions(generated)
    else:
        raise ValueError(f"style targets are activations [B, H, W, C] or Grams [B, C, C]; got shape {style.shape}")
    return ops.mean(ops.square(style_gram - generated_gram)) / 4.0


def style_loss(style_grams, generated_features, layer_weights=None, normalized=False):
    """sum over layers l of lambda_l * style_layer_loss(style_grams[l], generated_features[l]).

    `style_grams` and `generated_features` are lists in the same layer order (Grams or activations, as
    style_layer_loss takes them); `layer_weights` the lambda_l, by default 1 / L each, so that the sum
    of the weights, and with it the meaning of the style weight beta, does not change with the number of
    layers (the course's five layers at 0.2 each).
    """
    if len(style_grams) != len(generated_features):
        raise ValueError(f"{len(style_grams)} style targets for {len(generated_features)} generated layers")
    if not style_grams:
        raise ValueError("style_loss needs at least one layer")
    if layer_weights is None:
        layer_weights = [1.0 / len(style_grams)] * len(style_grams)
    if len(layer_weights) != len(style_grams):
        raise ValueError(f"{len(layer_weights)} layer weights for {len(style_grams)} layers")
    losses = [float(w) * style_layer_loss(s, g, normalized) for s, g, w in zip(style_grams, generated_features,
                                                                                layer_weights)]
    return sum(losses[1:], losses[0])


def total_variation_loss(images, variant="squared"):
    """Differences between vertically and horizontally neighbouring pixels of images [B, H, W, C],
    summed and divided by B * H * W * C: a per-pixel (per-value) mean, so that a weight chosen for one
    image size means the same at another (the sum grows with the number of pixels).

    variant="squared" (default): (x[i+1, j] - x[i, j])^2 + (x[i, j+1] - x[i, j])^2 terms, the beta = 2
    total variation of Mahendran & Vedaldi 2015 and of Johnson et al.'s fast-neural-style (its TV
    gradient is the differences themselves). Smooth: its gradient shrinks as neighbours agree, so the
    optimiser smooths away the high-frequency noise pixel optimisation makes without the constant push
    and the kink at zero of the absolute value.
    variant="absolute": |differences|, tf.image.total_variation's anisotropic TV (here divided by
    H * W * C and averaged over the batch). It preserves edges better (a step costs its height, not
    its square) but pulls every pixel with the same force however small the difference.

    >>> image = ops.reshape(ops.convert_to_tensor([1.0, 2.0, 4.0, 8.0]), (1, 2, 2, 1))
    >>> float(total_variation_loss(image)), float(total_variation_loss(image, "absolute"))  # (9+36+1+16)/4, 14/4
    (15.5, 3.5)
    """
    if variant not in TV_VARIANTS:
        raise ValueError(f"unknown total variation variant {variant!r}; choose one of {', '.join(TV_VARIANTS)}")
    x = _float(images)
    if len(x.shape) != 4:
        raise ValueError(f"total_variation_loss takes images [B, H, W, C]; got shape {x.shape}")
    penalty = ops.square if variant == "squared" else ops.abs
    vertical = ops.sum(penalty(x[:, 1:, :, :] - x[:, :-1, :, :]))
    horizontal = ops.sum(penalty(x[:, :, 1:, :] - x[:, :, :-1, :]))
    return (vertical + horizontal) / ops.cast(ops.size(x), x.dtype)


def perceptual_loss(content_targets, style_grams, generated_features, alpha=10.0, beta=40.0, tv_weight=0.0,
                    images=None, content_layer=None, style_layers_weights=None, normalized_grams=False,
                    tv_variant="squared"):
    """J(G) = alpha * J_content + beta * J_style + tv_weight * TV, and its parts, as a dict of scalars:
    {"loss": J, "content": J_content, "style": J_style, "tv": TV} (the parts unweighted, for progress
    bars; "tv" is 0 without images).

    - generated_features: {layer name: activations [B, H, W, C]} of the generated images.
    - content_targets: the content image's activations on `content_layer`, or a dict of activations by
      layer name from which that layer is taken.
    - style_grams: {layer name: Gram or activations} of the style image (see style_layer_loss;
      `normalized_grams` says whether the Grams were made with normalize=True).
    - style_layers_weights: {layer name: lambda_l}, or (name, lambda_l) pairs as the course's
      STYLE_LAYERS; by default every layer of style_grams at 1 / L.
    - content_layer: required when content_targets is a dict of several layers.
    - images: the generated images [B, H, W, C] for the total variation term (`tv_variant`); required
      when tv_weight is not 0.
    alpha = 10 and beta = 40 are the course's defaults for these normalisations.
    """
    if isinstance(content_targets, Mapping):
        if content_layer is None:
            if len(content_targets) != 1:
                raise ValueError(f"content targets for {len(content_targets)} layers: name the content_layer")
            content_layer = next(iter(content_targets))
        content_targets = content_targets[content_layer]
    if content_layer is None:
        raise ValueError("name the content_layer of generated_features the content targets belong to")
    if style_layers_weights is None:
        style_layers_weights = {name: 1.0 / len(style_grams) for name in style_grams}
    weights = dict(style_layers_weights)
    missing = [n for n in [content_layer, *weights] if n not in generated_features]
    missing += [n for n in weights if n not in style_grams and n not in missing]
    if missing:
        raise ValueError(f"no activations for layer(s) {', '.join(map(repr, missing))}: generated features have "
                         f"{', '.join(map(repr, generated_features))}; style targets {', '.join(map(repr, style_grams))}")
    if tv_weight and images is None:
        raise ValueError("tv_weight is not 0: pass the generated images for the total variation term")
    content = content_loss(content_targets, generated_features[content_layer])
    style = style_loss([style_grams[n] for n in weights], [generated_features[n] for n in weights],
                       list(weights.values()), normalized_grams)
    tv = ops.zeros((), content.dtype) if images is None else ops.cast(total_variation_loss(images, tv_variant),
                                                                      content.dtype)
    total = float(alpha) * content + float(beta) * ops.cast(style, content.dtype) + float(tv_weight) * tv
    return {"loss": total, "content": content, "style": style, "tv": tv}


def channel_mean_std(features, epsilon=1e-5):
    """(mean, std) of each channel of activations [B, H, W, C] over the positions, each [B, 1, 1, C];
    std = sqrt(variance + epsilon), the population variance (pytorch-AdaIN uses torch's unbiased one:
    its std is sqrt(n / (n - 1)) larger, which cancels in adain when both maps have the same size)."""
    features = _float(features)
    mean = ops.mean(features, axis=(1, 2), keepdims=True)
    variance = ops.mean(ops.square(features - mean), axis=(1, 2), keepdims=True)
    return mean, ops.sqrt(variance + epsilon)


def adain(content_features, style_features, epsilon=1e-5):
    """Adaptive instance normalisation (Huang & Belongie 2017): each channel of each content map
    normalised to mean 0 and std 1, then given the style map's mean and std,
    sigma(s) * (c - mu(c)) / sigma(c) + mu(s). The maps may differ in size (statistics are over each
    one's positions); a style batch of 1 serves every content image. Returned in the content's dtype.
    The layer form is layers.AdaIN.

    >>> content = ops.reshape(ops.convert_to_tensor([0.0, 1.0, 2.0]), (1, 1, 3, 1))  # mean 1, std 0.816
    >>> style = ops.reshape(ops.convert_to_tensor([1.0, 3.0]), (1, 1, 2, 1))  # mean 2, std 1
    >>> [round(v, 3) for v in ops.convert_to_numpy(adain(content, style)).ravel().tolist()]
    [0.775, 2.0, 3.225]
    """
    dtype = ops.convert_to_tensor(content_features).dtype
    content = _float(content_features)
    content_mean, content_std = channel_mean_std(content, epsilon)
    style_mean, style_std = channel_mean_std(ops.cast(_float(style_features), content.dtype), epsilon)
    return ops.cast(style_std * (content - content_mean) / content_std + style_mean, dtype)


def adain_content_loss(adain_target, decoded_features):
    """Huang & Belongie's content loss: the mean squared difference between the features of the decoded
    image (the encoder applied to decoder(t)) and the AdaIN output t it was decoded from (the target is
    held fixed: wrap it in stop_gradient if it came from a differentiable path)."""
    target, decoded = _float(adain_target), _float(decoded_features)
    return ops.mean(ops.square(ops.cast(target, decoded.dtype) - decoded))


def adain_style_loss(style_features, decoded_features, layer_weights=None, epsilon=1e-5):
    """Huang & Belongie's style loss: sum over layers of MSE(mu(decoded), mu(style)) + MSE(sigma(decoded),
    sigma(style)), channel statistics as channel_mean_std, mean over batch and channels. Lists of
    activations in the same layer order; `layer_weights` (default 1 each: the paper's plain sum)."""
    if len(style_features) != len(decoded_features):
        raise ValueError(f"{len(style_features)} style layers for {len(decoded_features)} decoded layers")
    if layer_weights is None:
        layer_weights = [1.0] * len(style_features)
    if len(layer_weights) != len(style_features):
        raise ValueError(f"{len(layer_weights)} layer weights for {len(style_features)} layers")
    total = None
    for style, decoded, weight in zip(style_features, decoded_features, layer_weights):
        decoded = _float(decoded)
        decoded_mean, decoded_std = channel_mean_std(decoded, epsilon)
        style_mean, style_std = channel_mean_std(ops.cast(_float(style), decoded.dtype), epsilon)
        layer = ops.mean(ops.square(decoded_mean - style_mean)) + ops.mean(ops.square(decoded_std - style_std))
        total = float(weight) * layer if total is None else total + float(weight) * layer
    if total is None:
        raise ValueError("adain_style_loss needs at least one layer")
    return total
