"""The trainable style-transfer networks (apps/style_transfer/networks.py) on tiny images with SqueezeNet's
embedded weights: transform_net keeps sizes and range and uses instance norms; JohnsonLoss is
perceptual_loss batched and trains the net; the AdaIN model stylises, trains only its decoder through
fit() on dicts, reports validation losses, computes the losses it says, and survives save and load."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from apps.style_transfer.features import StyleFeatures
from apps.style_transfer.networks import ADAIN_LAYERS, AdaINModel, JohnsonLoss, adain_features, adain_model, transform_net
from apps.style_transfer.serving import stylize_any_size
from layers import ReflectionPad2D
from layers.losses.style import adain, adain_content_loss, adain_style_loss, gram_matrix, perceptual_loss
from tests.conftest import compile_built


def pictures(n, h, w, seed):
    """Smooth colour pictures with some noise, float RGB 0..255 [n, h, w, 3]: what photos give features."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w] / max(h, w)
    phase = rng.uniform(0, 6, (n, 1, 1, 3))
    base = np.sin(np.stack([6 * x, 5 * y, 4 * (x + y)], -1)[None] + phase)
    return np.clip(127.5 + 90 * base + rng.normal(0, 20, (n, h, w, 3)), 0, 255).astype(np.float32)


@pytest.fixture(scope="module")
def features():
    return StyleFeatures("squeezenet", "imagenet")


@pytest.fixture(scope="module")
def encoder_features():
    return adain_features("squeezenet", "imagenet")


# --- transform_net

def test_transform_net_sizes_range_and_instance_norms():
    keras.utils.set_random_seed(0)
    net = transform_net(width=4, residual_blocks=2)
    for h, w in ((16, 16), (32, 20), (24, 44)):
        out = net(pictures(2, h, w, seed=h).astype(np.float32) * 3 - 200)  # out-of-range input too
        assert out.shape == (2, h, w, 3)
        assert float(tf.reduce_min(out)) >= 0.0 and float(tf.reduce_max(out)) <= 255.0
    norms = [layer for layer in net.layers if isinstance(layer, keras.layers.GroupNormalization)]
    assert len(norms) == 3 + 2 * 2 + 2  # every conv but the last: 3 down, 2 per residual block, 2 up
    assert all(layer.groups == layer.input.shape[-1] for layer in norms)
    convs = [layer for layer in net.layers if isinstance(layer, keras.layers.Conv2D)]
    assert len(convs) == len(norms) + 1 and all(layer.padding == "valid" for layer in convs)
    assert sum(isinstance(layer, ReflectionPad2D) for layer in net.layers) == len(convs)  # reflection instead
    assert not any(isinstance(layer, keras.layers.Conv2DTranspose) for layer in net.layers)


def test_transform_net_weights_get_gradients():
    net = transform_net(width=4, residual_blocks=1)
    images = tf.constant(pictures(2, 16, 16, seed=3))
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(tf.square(net(images) - images[::-1]))
    grads = tape.gradient(loss, net.trainable_weights)
    assert net.trainable_weights and all(g is not None and np.isfinite(g.numpy()).all() for g in grads)
    kernels = [g for g, w in zip(grads, net.trainable_weights) if "kernel" in w.path or "gamma" in w.path]
    assert all(float(tf.reduce_max(tf.abs(g))) > 0 for g in kernels)


# --- JohnsonLoss

def test_johnson_loss_is_perceptual_loss_averaged_over_the_batch(features):
    style = pictures(1, 40, 36, seed=9)[0]
    loss = JohnsonLoss(features, style, alpha=2.0, beta=3.0, tv_weight=0.5)
    content, generated = pictures(2, 32, 32, seed=1), pictures(2, 32, 32, seed=2)
    maps = features(style)
    grams = {n: gram_matrix(maps[n], normalize=True) for n in features.style_layers}
    expected = perceptual_loss(features(content[:1])[features.content_layer], grams, features(generated[:1]),
                               alpha=2.0, beta=3.0, tv_weight=0.5, images=generated[:1],
                               content_layer=features.content_layer, style_layers_weights=features.style_weights,
                               normalized_grams=True)["loss"]
    single = [float(loss(content[i:i + 1], generated[i:i + 1])) for i in range(2)]
    np.testing.assert_allclose(single[0], float(expected), rtol=1e-5)
    np.testing.assert_allclose(float(loss(content, generated)), np.mean(single), rtol=1e-4)
    assert (loss.alpha, loss.beta, loss.tv_weight) == (2.0, 3.0, 0.5)
    assert (JohnsonLoss(features, style).alpha, JohnsonLoss(features, style).beta) == (1.0, 5e-3)  # the defaults


def test_johnson_loss_trains_the_net_and_the_compiled_net_saves(features, tmp_path):
    keras.utils.set_random_seed(1)
    net = transform_net(width=4, residual_blocks=1)
    compile_built(net, optimizer=keras.optimizers.Adam(1e-2), loss=JohnsonLoss(features, pictures(1, 32, 32, seed=5)[0]))
    photos = tf.data.Dataset.from_tensor_slices(pictures(2, 32, 32, seed=6)).map(lambda x: (x, x)).batch(2)
    before = net.evaluate(photos, verbose=0)
    net.fit(photos.repeat(6), verbose=0)
    assert net.evaluate(photos, verbose=0) < before
    net.save(tmp_path / "johnson.keras")
    loaded = keras.saving.load_model(tmp_path / "johnson.keras", safe_mode=True, compile=False)
    images = pictures(1, 24, 28, seed=7)
    np.testing.assert_array_equal(loaded(images).numpy(), net(images).numpy())


# --- AdaIN

def batch(n=2, size=(32, 32), strength=(1.0, 0.5), seed=0):
    return {"content": pictures(n, *size, seed=seed), "style": pictures(n, 40, 36, seed=seed + 100),
            "strength": np.asarray(strength, np.float32)}


def test_adain_layers_and_model_shapes(encoder_features):
    assert (encoder_features.content_layer, encoder_features.style_layers) == ("fire4", ["conv1", "fire2", "fire4"])
    assert set(ADAIN_LAYERS) == {"VGG19", "VGG16", "squeezenet"}
    model = adain_model(encoder_features, decoder_width=8)
    assert model.stride == 8 and model.style_weight == 3.0
    assert model(batch()).shape == (2, 32, 32, 3)
    assert model(batch(size=(48, 64))).shape == (2, 48, 64, 3)
    one = batch(1, strength=[1.0])
    zero = {**one, "strength": np.zeros(1, np.float32)}
    assert float(tf.reduce_max(tf.abs(model(one) - model(zero)))) > 1e-3
    assert [w.path for w in model.trainable_weights] == [w.path for w in model.get_layer("decoder").trainable_weights]
    assert not model.encoder.trainable_weights
    stylize = lambda c, s, a: model({"content": c, "style": s, "strength": a})  # noqa: E731
    out = stylize_any_size(stylize, tf.constant(pictures(1, 37, 50, seed=3)[0]), model.stride,
                           pictures(1, 24, 24, seed=4), tf.constant([0.7]))
    assert out.shape == (37, 50, 3)  # padded to the stride, cropped back


def test_adain_loss_parts_are_the_losses_of_the_paper_and_the_parts_stylise(encoder_features):
    model = adain_model(encoder_features, decoder_width=8, style_weight=3.0)
    x, encoder, layer = batch(seed=4), encoder_features.model, "fire4"
    maps, style_maps = encoder(x["content"])[layer], encoder(x["style"])
    strength = x["strength"][:, None, None, None]
    t = strength * adain(maps, style_maps[layer]) + (1 - strength) * maps
    image = model(x)
    np.testing.assert_allclose(model.decode(t, (32, 32)).numpy(), image.numpy(), atol=1e-3)  # serving from parts
    decoded = encoder(image)
    layers = ["conv1", "fire2", "fire4"]
    content = float(adain_content_loss(t, decoded[layer]))
    style = float(adain_style_loss([style_maps[n] for n in layers], [decoded[n] for n in layers]))
    calls, call = [], model.encoder.call
    model.encoder.call = lambda *args, **kwargs: calls.append(1) or call(*args, **kwargs)
    parts = model.loss_parts(x)
    model.encoder.call = call
    assert len(calls) == 3  # content, style and output: one encoder pass each
    np.testing.assert_allclose([float(parts["content"]), float(parts["style"])], [content, style], rtol=1e-5)
    np.testing.assert_allclose(float(parts["loss"]), content + 3.0 * style, rtol=1e-5)
    model.compile(optimizer="adam")
    logs = model.evaluate(tf.data.Dataset.from_tensors(x), return_dict=True, verbose=0)
    np.testing.assert_allclose(logs["content"], content, rtol=1e-4)


def test_adain_fit_trains_only_the_decoder_and_round_trips(encoder_features, tmp_path):
    keras.utils.set_random_seed(2)
    model = adain_model(encoder_features, decoder_width=8)
    data = tf.data.Dataset.from_tensor_slices(batch(4, strength=[1.0, 1.0, 0.5, 0.0], seed=8)).batch(2)
    encoder_before = [w.numpy().copy() for w in model.encoder.weights]
    decoder_before = [w.numpy().copy() for w in model.decoder.weights]
    compile_built(model, optimizer=keras.optimizers.Adam(1e-3))
    history = model.fit(data, validation_data=data.take(1), epochs=1, verbose=0).history
    assert {"loss", "content", "style", "val_loss", "val_content", "val_style"} <= set(history)
    assert all(np.isfinite(v[0]) for v in history.values())
    assert all(np.array_equal(a, w.numpy()) for a, w in zip(encoder_before, model.encoder.weights))
    assert all(not np.array_equal(a, w.numpy()) for a, w in zip(decoder_before, model.decoder.weights))

    model.save(tmp_path / "adain.keras")
    loaded = keras.saving.load_model(tmp_path / "adain.keras", safe_mode=True, compile=False)
    assert isinstance(loaded, AdaINModel) and loaded.stride == 8 and loaded.style_layers == model.style_layers
    x = batch(2, size=(40, 32), seed=11)
    np.testing.assert_array_equal(loaded(x).numpy(), model(x).numpy())
    assert len(loaded.trainable_weights) == len(loaded.get_layer("decoder").trainable_weights)
