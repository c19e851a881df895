"""Perceptual losses: each against the formula written in NumPy, hand examples (a Gram matrix, a 2x2 total
variation), zeros where there is nothing to penalise, invariance of the style loss to where things are,
numerical gradients in float64, AdaIN's statistics and losses, and the AdaIN layer saved and reloaded."""
import doctest

import keras
import numpy as np
import pytest
import tensorflow as tf

import layers.ada_in
import layers.losses.style
from layers import AdaIN
from layers.losses.style import (adain, adain_content_loss, adain_style_loss, channel_mean_std, content_loss,
                                 gram_matrix, perceptual_loss, style_layer_loss, style_loss, total_variation_loss)


def _maps(seed, shape=(2, 3, 4, 5), scale=1.0, shift=0.0):
    return (np.random.default_rng(seed).normal(size=shape) * scale + shift).astype("float32")


def numpy_gram(f):
    """Gram = A^T A per image, A the (nH nW, nC) unrolled activations."""
    a = f.astype(np.float64).reshape(f.shape[0], -1, f.shape[-1])
    return np.einsum("bpc,bpd->bcd", a, a)


def numpy_content(c, g):
    _, h, w, ch = g.shape
    per_image = ((c.astype(np.float64) - g) ** 2).reshape(len(g), -1).sum(1) / (4 * h * w * ch)
    return per_image.mean()


def numpy_style_layer(style_gram, g):
    """The course's formula, literally: 1 / (4 nC^2 (nH nW)^2) ||Gram(S) - Gram(G)||_F^2, mean over images."""
    _, h, w, ch = g.shape
    diff = style_gram - numpy_gram(g)
    return ((diff ** 2).reshape(len(g), -1).sum(1) / (4 * ch ** 2 * (h * w) ** 2)).mean()


def numpy_tv(x, variant="squared"):
    x = x.astype(np.float64)
    f = np.square if variant == "squared" else np.abs
    total = f(np.diff(x, axis=1)).sum() + f(np.diff(x, axis=2)).sum()
    return total / x.size


def numpy_mean_std(f, eps=1e-5):
    f = f.astype(np.float64)
    return f.mean((1, 2)), np.sqrt(f.var((1, 2)) + eps)


def test_docstring_examples():
    for module in (layers.losses.style, layers.ada_in):
        result = doctest.testmod(module, extraglobs={"keras": keras})
        assert result.attempted > 0 and result.failed == 0, module.__name__


def test_gram_matrix_hand_example():
    a = np.arange(1, 9, dtype="float32").reshape(1, 2, 2, 2)  # A = [[1, 2], [3, 4], [5, 6], [7, 8]]
    expected = np.array([[[1 + 9 + 25 + 49, 2 + 12 + 30 + 56], [2 + 12 + 30 + 56, 4 + 16 + 36 + 64]]])
    np.testing.assert_array_equal(gram_matrix(a).numpy(), expected)
    np.testing.assert_array_equal(gram_matrix(a, normalize=True).numpy(), expected / 4)
    np.testing.assert_array_equal(gram_matrix(a[0]).numpy(), expected)  # [H, W, C]: a batch of one


def test_gram_matrix_random_symmetric():
    f = _maps(0)
    g = gram_matrix(f).numpy()
    assert g.shape == (2, 5, 5)
    np.testing.assert_allclose(g, numpy_gram(f), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(g, np.swapaxes(g, 1, 2), rtol=1e-6)
    np.testing.assert_allclose(gram_matrix(f, normalize=True).numpy(), numpy_gram(f) / 12, rtol=1e-5, atol=1e-6)


def test_content_loss_formula():
    c, g = _maps(1), _maps(2)
    np.testing.assert_allclose(float(content_loss(c, g)), numpy_content(c, g), rtol=1e-5)
    assert float(content_loss(g, g)) == 0.0
    # per image, then the mean over the batch; one content target of batch 1 serves a batch
    per_image = [numpy_content(c[:1], g[i:i + 1]) for i in range(2)]
    np.testing.assert_allclose(float(content_loss(c[:1], g)), np.mean(per_image), rtol=1e-5)


def test_style_layer_loss_formula_with_grams_and_features():
    s, g = _maps(3, scale=2.0), _maps(4)
    expected = numpy_style_layer(numpy_gram(s), g)
    assert expected > 0
    # the style image's raw Grams, precomputed once (as the optimisation does), or its activations
    np.testing.assert_allclose(float(style_layer_loss(gram_matrix(s), g)), expected, rtol=1e-5)
    np.testing.assert_allclose(float(style_layer_loss(s, g)), expected, rtol=1e-5)
    np.testing.assert_allclose(float(style_layer_loss(gram_matrix(s, normalize=True), g, normalized=True)), expected,
                               rtol=1e-5)
    # one style target, as [C, C] or [1, C, C], against a batch: broadcast, mean over the batch
    one = numpy_gram(s[:1])
    np.testing.assert_allclose(float(style_layer_loss(one[0].astype("float32"), g)), numpy_style_layer(one, g),
                               rtol=1e-5)
    np.testing.assert_allclose(float(style_layer_loss(one.astype("float32"), g)), numpy_style_layer(one, g), rtol=1e-5)
    assert float(style_layer_loss(g, g)) == 0.0


def test_style_image_of_another_size():
    """Activations or normalised Grams compare per-position correlations, whatever the style's size."""
    s, g = _maps(5, shape=(1, 7, 6, 5)), _maps(6)
    expected = ((numpy_gram(s) / 42 - numpy_gram(g) / 12) ** 2).sum((1, 2)).mean() / (4 * 5 ** 2)
    np.testing.assert_allclose(float(style_layer_loss(s, g)), expected, rtol=1e-5)
    np.testing.assert_allclose(float(style_layer_loss(gram_matrix(s, normalize=True), g, normalized=True)), expected,
                               rtol=1e-5)
    # the style image tiled 2 x 2 has the same normalised Gram: no style loss between the two
    tiled = np.tile(s, (1, 2, 2, 1))
    np.testing.assert_allclose(float(style_layer_loss(s, tiled)), 0.0, atol=1e-6)


def test_style_loss_ignores_positions():
    """Grams sum over positions: shuffling the generated map's positions (the same way in every channel)
    leaves the style loss unchanged, while the content loss sees the change."""
    s, g = _maps(7), _maps(8)
    perm = np.random.default_rng(9).permutation(12)
    shuffled = g.reshape(2, 12, 5)[:, perm].reshape(g.shape)
    np.testing.assert_allclose(float(style_layer_loss(s, shuffled)), float(style_layer_loss(s, g)), rtol=1e-5)
    assert float(style_layer_loss(g, shuffled)) < 1e-10
    assert float(content_loss(g, shuffled)) > 0.1


def test_style_loss_weighted_sum_of_layers():
    shapes = [(2, 6, 6, 3), (2, 3, 3, 4), (2, 2, 2, 6)]
    styles = [_maps(10 + i, shape) for i, shape in enumerate(shapes)]
    generated = [_maps(20 + i, shape) for i, shape in enumerate(shapes)]
    grams = [gram_matrix(s) for s in styles]
    per_layer = [numpy_style_layer(numpy_gram(s), g) for s, g in zip(styles, generated)]
    weights = [0.5, 0.3, 0.2]
    np.testing.assert_allclose(float(style_loss(grams, generated, weights)), np.dot(weights, per_layer), rtol=1e-5)
    np.testing.assert_allclose(float(style_loss(grams, generated)), np.mean(per_layer), rtol=1e-5)  # 1/L each
    with pytest.raises(ValueError, match="2 layer weights for 3 layers"):
        style_loss(grams, generated, [0.5, 0.5])
    with pytest.raises(ValueError, match="3 style targets for 2 generated layers"):
        style_loss(grams, generated[:2])


def test_total_variation_hand_examples():
    image = np.array([[1.0, 2.0], [4.0, 8.0]], "float32").reshape(1, 2, 2, 1)
    # vertical differences 3 and 6, horizontal 1 and 4; 4 pixel values
    assert float(total_variation_loss(image)) == (9 + 36 + 1 + 16) / 4
    assert float(total_variation_loss(image, "absolute")) == (3 + 6 + 1 + 4) / 4
    constant = np.full((2, 5, 7, 3), 0.7, "float32")
    assert float(total_variation_loss(constant)) == 0.0
    assert float(total_variation_loss(constant, "absolute")) == 0.0
    with pytest.raises(ValueError, match="unknown total variation variant"):
        total_variation_loss(image, "l1")


@pytest.mark.parametrize("variant", ["squared", "absolute"])
def test_total_variation_random(variant):
    x = _maps(30, (2, 5, 7, 3))
    np.testing.assert_allclose(float(total_variation_loss(x, variant)), numpy_tv(x, variant), rtol=1e-5)


def test_absolute_total_variation_is_tf_image_per_pixel():
    x = _maps(31, (3, 6, 4, 3))
    per_image = tf.image.total_variation(tf.constant(x)).numpy() / (6 * 4 * 3)
    np.testing.assert_allclose(float(total_variation_loss(x, "absolute")), per_image.mean(), rtol=1e-5)


def test_total_variation_does_not_grow_with_the_image():
    """The same noise at 16 x 16 and 64 x 64: nearly the same per-pixel value (the sum would be 16 x)."""
    small, large = (_maps(32 + i, (1, n, n, 3), scale=0.1) for i, n in enumerate((16, 64)))
    ratio = float(total_variation_loss(large)) / float(total_variation_loss(small))
    assert 0.9 < ratio < 1.2, ratio


def _numerical_gradient_error(f, x):
    theoretical, numerical = tf.test.compute_gradient(f, [tf.constant(x, tf.float64)], delta=1e-6)
    return max(np.abs(t - n).max() for t, n in zip(theoretical, numerical))


def test_gradients_match_finite_differences():
    rng = np.random.default_rng(40)
    c, s, g = (rng.normal(size=(2, 3, 3, 4)) for _ in range(3))
    small_style = rng.normal(size=(1, 4, 2, 4))
    checks = {
        "content": (lambda t: content_loss(c, t), g),
        "style (raw Grams)": (lambda t: style_layer_loss(numpy_gram(s), t), g),
        "style (activations of another size)": (lambda t: style_layer_loss(small_style, t), g),
        "style of the style side": (lambda t: style_layer_loss(t, g), small_style),
        "tv squared": (lambda t: total_variation_loss(t), g),
        "tv absolute": (lambda t: total_variation_loss(t, "absolute"), g),  # no difference is 0 here
        "adain": (lambda t: adain(t, small_style), g),
        "adain style input": (lambda t: adain(g, t), small_style),
        "adain content loss": (lambda t: adain_content_loss(c, t), g),
        "adain style loss": (lambda t: adain_style_loss([small_style], [t]), g),
    }
    for name, (f, x) in checks.items():
        error = _numerical_gradient_error(f, x)
        assert error < 1e-6, f"{name}: gradient error {error}"
    # float64 stays float64 (that is what makes the check above meaningful)
    assert content_loss(c, g).dtype == "float64" and total_variation_loss(g).dtype == "float64"


def test_gradients_finite_at_zero_loss():
    g = tf.constant(_maps(41))
    constant = tf.constant(np.ones((1, 4, 4, 3), "float32"))
    with tf.GradientTape(persistent=True) as tape:
        tape.watch([g, constant])
        losses = [content_loss(g, g), style_layer_loss(g, g), total_variation_loss(constant),
                  adain_style_loss([constant], [constant])]
    for loss, x in zip(losses, [g, g, constant, constant]):
        grad = tape.gradient(loss, x)
        assert grad is not None and np.isfinite(grad.numpy()).all() and np.abs(grad.numpy()).max() == 0.0


def test_half_precision_is_computed_in_float32():
    big = _maps(42, (1, 32, 32, 8), scale=30.0)  # a float16 Gram would overflow (sums of ~1e6)
    gram = gram_matrix(big.astype("float16"))
    assert gram.dtype == "float32" and np.isfinite(gram.numpy()).all()
    np.testing.assert_allclose(float(style_layer_loss(big.astype("float16"), big[..., ::-1].astype("float16"))),
                               float(style_layer_loss(big, big[..., ::-1])), rtol=1e-2)


def test_unknown_sizes_in_a_graph():
    f = tf.function(lambda s, g, x: (style_layer_loss(s, g), content_loss(g, g), total_variation_loss(x)),
                    input_signature=[tf.TensorSpec((None, None, None, 4))] * 3)
    s, g, x = _maps(43, (1, 5, 3, 4)), _maps(44, (2, 3, 3, 4)), _maps(45, (2, 4, 6, 4))
    style, content, tv = f(s, g, x)
    np.testing.assert_allclose(float(style), float(style_layer_loss(s, g)), rtol=1e-6)
    np.testing.assert_allclose(float(tv), numpy_tv(x), rtol=1e-5)
    assert float(content) == 0.0


def _features(seed, batch=1):
    shapes = {"conv1": (batch, 8, 8, 3), "conv2": (batch, 4, 4, 5), "conv3": (batch, 2, 2, 6)}
    return {name: _maps(seed + i, shape) for i, (name, shape) in enumerate(shapes.items())}


def test_perceptual_loss_total_and_parts():
    content, style, generated = _features(50), _features(60), _features(70)
    images = _maps(80, (1, 8, 8, 3))
    grams = {name: gram_matrix(f) for name, f in style.items()}
    weights = {"conv1": 0.6, "conv2": 0.4}
    parts = perceptual_loss(content, grams, generated, alpha=10.0, beta=40.0, tv_weight=2.0, images=images,
                            content_layer="conv3", style_layers_weights=weights)
    assert set(parts) == {"loss", "content", "style", "tv"}
    expected = {"content": numpy_content(content["conv3"], generated["conv3"]),
                "style": sum(w * numpy_style_layer(numpy_gram(style[n]), generated[n]) for n, w in weights.items()),
                "tv": numpy_tv(images)}
    for key, value in expected.items():
        np.testing.assert_allclose(float(parts[key]), value, rtol=1e-5, err_msg=key)
    np.testing.assert_allclose(float(parts["loss"]), 10 * expected["content"] + 40 * expected["style"] + 2 * expected["tv"],
                               rtol=1e-5)
    # the course's STYLE_LAYERS pairs, the content layer's activations alone, and no TV term
    same = perceptual_loss(content["conv3"], grams, generated, 10.0, 40.0, content_layer="conv3",
                           style_layers_weights=[("conv1", 0.6), ("conv2", 0.4)])
    np.testing.assert_allclose(float(same["loss"]), 10 * expected["content"] + 40 * expected["style"], rtol=1e-5)
    assert float(same["tv"]) == 0.0
    # default style weights: every style layer at 1/3
    default = perceptual_loss(content, grams, generated, 1.0, 1.0, content_layer="conv3")
    mean_style = np.mean([numpy_style_layer(numpy_gram(style[n]), generated[n]) for n in style])
    np.testing.assert_allclose(float(default["style"]), mean_style, rtol=1e-5)


def test_perceptual_loss_errors_name_what_is_missing():
    content, generated = _features(50), _features(70)
    grams = {"conv1": gram_matrix(_features(60)["conv1"])}
    with pytest.raises(ValueError, match="name the content_layer"):
        perceptual_loss(content, grams, generated)
    with pytest.raises(ValueError, match="'conv9'"):
        perceptual_loss(content, grams, generated, content_layer="conv1", style_layers_weights={"conv9": 1.0})
    with pytest.raises(ValueError, match="'conv2'"):  # a style layer without a style target
        perceptual_loss(content, grams, generated, content_layer="conv1", style_layers_weights={"conv2": 1.0})
    with pytest.raises(ValueError, match="pass the generated images"):
        perceptual_loss(content, grams, generated, content_layer="conv1", tv_weight=1.0)


def test_perceptual_loss_optimises_an_image():
    """A few Adam steps on the pixels lower the total (the way the optimisation mode uses it)."""
    extractor = keras.Sequential([keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="a"),
                                  keras.layers.Conv2D(6, 3, strides=2, padding="same", activation="relu", name="b")])
    extractor.build((None, 16, 16, 3))
    features = keras.Model(extractor.inputs[0], {"a": extractor.get_layer("a").output,
                                              "b": extractor.get_layer("b").output})
    content_image, style_image = _maps(90, (1, 16, 16, 3)), _maps(91, (1, 16, 16, 3), scale=2.0)
    content_targets = features(content_image)
    grams = {name: gram_matrix(f) for name, f in features(style_image).items()}
    image = tf.Variable(content_image + _maps(92, (1, 16, 16, 3), scale=0.3))
    optimizer = keras.optimizers.Adam(0.05)
    totals = []
    for _ in range(15):
        with tf.GradientTape() as tape:
            parts = perceptual_loss(content_targets, grams, features(image), 1.0, 10.0, 0.1, image,
                                    content_layer="b", style_layers_weights={"a": 0.5, "b": 0.5})
        optimizer.apply_gradients([(tape.gradient(parts["loss"], image), image)])
        totals.append(float(parts["loss"]))
    assert totals[-1] < 0.7 * totals[0], totals


def test_adain_takes_the_style_statistics():
    content = _maps(100, (2, 6, 5, 4), scale=3.0, shift=-1.0)
    style = _maps(101, (1, 4, 7, 4), scale=np.array([0.5, 1.0, 2.0, 4.0]), shift=np.array([-2.0, 0.0, 1.0, 5.0]))
    out = adain(content, style).numpy()
    assert out.shape == content.shape and out.dtype == np.float32
    out_mean, out_std = numpy_mean_std(out)
    style_mean, style_std = numpy_mean_std(style)
    np.testing.assert_allclose(out_mean, np.broadcast_to(style_mean, out_mean.shape), atol=1e-5)
    np.testing.assert_allclose(out_std, np.broadcast_to(style_std, out_std.shape), rtol=1e-4)
    # the formula itself, and the normalised content's pattern kept
    c_mean, c_std = numpy_mean_std(content)
    expected = style_std[:, None, None] * (content - c_mean[:, None, None]) / c_std[:, None, None] + style_mean[:, None, None]
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)
    mean, std = channel_mean_std(style)
    assert tuple(mean.shape) == tuple(std.shape) == (1, 1, 1, 4)


def test_adain_losses_formulas():
    rng = np.random.default_rng(110)
    target, decoded = rng.normal(size=(2, 4, 4, 6)), rng.normal(size=(2, 4, 4, 6))
    np.testing.assert_allclose(float(adain_content_loss(target, decoded)), ((target - decoded) ** 2).mean(), rtol=1e-5)
    styles = [rng.normal(size=(1, 8, 8, 3)) * 2 + 1, rng.normal(size=(1, 4, 4, 6))]
    decodeds = [rng.normal(size=(2, 8, 8, 3)), rng.normal(size=(2, 4, 4, 6))]
    per_layer = []
    for s, d in zip(styles, decodeds):
        (sm, ss), (dm, ds) = numpy_mean_std(s), numpy_mean_std(d)
        per_layer.append(((dm - sm) ** 2).mean() + ((ds - ss) ** 2).mean())
    np.testing.assert_allclose(float(adain_style_loss(styles, decodeds)), sum(per_layer), rtol=1e-5)
    np.testing.assert_allclose(float(adain_style_loss(styles, decodeds, [0.25, 2.0])),
                               0.25 * per_layer[0] + 2.0 * per_layer[1], rtol=1e-5)
    # the decoder inverts AdaIN exactly: no style loss
    t = adain(decodeds[0], styles[0])
    assert float(adain_style_loss([styles[0]], [t])) < 1e-8


def test_adain_layer_and_save_reload(tmp_path):
    content_in, style_in = keras.Input((None, None, 4)), keras.Input((None, None, 4))
    layer = AdaIN(epsilon=1e-3, name="adain")
    model = keras.Model([content_in, style_in], layer([content_in, style_in]))
    assert layer.get_config()["epsilon"] == 1e-3 and not layer.weights
    assert layer.compute_output_shape(((None, 6, 5, 4), (None, 3, 3, 4))) == (None, 6, 5, 4)
    x = [_maps(120, (2, 6, 5, 4)), _maps(121, (2, 3, 3, 4), scale=2.0, shift=1.0)]
    np.testing.assert_allclose(model(x), adain(*x, epsilon=1e-3), rtol=1e-6)
    model.save(tmp_path / "adain.keras")
    reloaded = keras.saving.load_model(tmp_path / "adain.keras", safe_mode=True)
    assert type(reloaded.get_layer("adain")) is AdaIN
    assert reloaded.get_layer("adain").get_config() == layer.get_config()
    np.testing.assert_allclose(model(x), reloaded(x), rtol=1e-6)
