"""The exported feed-forward stylisers: encoded images (any size) in, PNG bytes of the stylised images at
each input's own size out; decoding, padding to the network's stride, and encoding are inside.

Requests are checked before decoding (data.images.decode): not an image, truncated, or a header claiming
more than `max_pixels` pixels is an INVALID_ARGUMENT naming the input and its index.
"""
import tensorflow as tf

from apps.style_transfer.gatys import style_at_area
from data.images.decode import check_encoded_images
from data.images.files import decode_image
from data.tensors import forget_shape


MIN_SIDE = 32  # smaller inputs are padded up to it: the networks' reflection pads and pools need a few pixels


def pad_to_stride(image, stride):
    """[H, W, 3] -> ([H', W', 3] with H', W' the next multiples of `stride` (MIN_SIDE at least), edge pixels
    repeated; (H, W)). Repeating the edge (not zeros) keeps a dark frame out of the result; it works for any
    size, where reflection needs the image to be larger than the padding."""
    h, w = tf.shape(image)[0], tf.shape(image)[1]
    rows = tf.minimum(tf.range(tf.maximum(-(-h // stride) * stride, MIN_SIDE)), h - 1)
    cols = tf.minimum(tf.range(tf.maximum(-(-w // stride) * stride, MIN_SIDE)), w - 1)
    return tf.gather(tf.gather(image, rows, axis=0), cols, axis=1), (h, w)


def stylize_any_size(stylize, image, stride, *args):
    """`stylize(batch [1, H', W', 3] float 0..255, *args)` on one float image of any size, cropped back."""
    padded, (h, w) = pad_to_stride(image, stride)
    return stylize(padded[None], *args)[0, :h, :w]


def to_png(image):
    return tf.io.encode_png(tf.cast(tf.clip_by_value(tf.round(image), 0.0, 255.0), tf.uint8))


def adain_pass(model):
    """(content [1, H, W, 3], style [1, h, w, 3], strength [1]) -> stylised [1, H, W, 3]: the AdaIN model's
    inference pass, the content already padded to its stride."""
    return lambda content, style, strength: model({"content": content, "style": style, "strength": strength},
                                                  training=False)


class StylizerServing(tf.Module):
    """One-style network (Johnson et al.): `serve(images)` -> {"stylized": PNG bytes}."""

    def __init__(self, net, stride, max_pixels=None):
        super().__init__()
        self.net = net
        self.stride = int(stride)
        self.max_pixels = max_pixels

    def _stylize(self, batch):
        return self.net(batch, training=False)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="images")], autograph=False)
    def serve(self, images):
        images = check_encoded_images(images, self.max_pixels)
        return {"stylized": tf.map_fn(
            lambda b: to_png(stylize_any_size(self._stylize, tf.cast(decode_image(b, 3), tf.float32), self.stride)),
            images, fn_output_signature=tf.string)}


class AdaINServing(tf.Module):
    """Arbitrary style (AdaIN): `serve(images, styles, strength)` -> {"stylized": PNG bytes}. `styles` and
    `strength` hold one entry per image, or one for all of them; strength 0 keeps the content, 1 is the
    full style. A style image is resized to about `style_area` pixels with its own aspect, and enlarged where
    its short side would be under `min_side` (the encoder's smallest input; a style longer than 16:1 keeps its
    centre part), as the app's predict resizes it (the scale of the strokes follows the style's size)."""

    def __init__(self, model, stride, style_area, min_side=1, max_pixels=None):
        super().__init__()
        self.model = model  # {"content" [1, H, W, 3], "style" [1, h, w, 3], "strength" [1]} -> [1, H, W, 3]
        self.stride = int(stride)
        self.style_area = float(style_area)
        self.min_side = int(min_side)
        self.max_pixels = max_pixels

    def _stylize(self, content, style, strength):
        return adain_pass(self.model)(content, style, strength)

    def _style(self, encoded):
        """The style as predict resizes it (gatys.style_at_area), to the pixel."""
        return tf.cast(style_at_area(decode_image(encoded, 3), self.style_area, self.min_side), tf.float32)[None]

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="images"),
                                  tf.TensorSpec([None], tf.string, name="styles"),
                                  tf.TensorSpec([None], tf.float32, name="strength")], autograph=False)
    def serve(self, images, styles, strength):
        images = check_encoded_images(images, self.max_pixels)
        styles = check_encoded_images(styles, self.max_pixels, name="styles")
        n = tf.size(images)
        strength = forget_shape(strength)  # its rank as sent, not as declared
        checks = [tf.debugging.assert_less_equal(tf.rank(strength), 1, message="`strength` must be one number, or a "
                                                 "1-D batch of one per image")]
        with tf.control_dependencies(checks):
            strength = tf.reshape(strength, [-1])  # a scalar is one entry for every image
        checks += [tf.debugging.assert_equal(tf.logical_or(tf.size(values) == 1, tf.size(values) == n), True,
                                            message=f"{name} must hold one entry, or one per image")
                  for name, values in (("styles", styles), ("strength", strength))]
        checks.append(tf.debugging.assert_equal(tf.reduce_all((strength >= 0.0) & (strength <= 1.0)), True,
                                                message="strength must lie in 0..1"))
        with tf.control_dependencies(checks):  # one entry, or n already
            styles, strength = tf.broadcast_to(styles, [n]), tf.broadcast_to(strength, [n])

        def one(args):
            encoded, style, alpha = args
            image = tf.cast(decode_image(encoded, 3), tf.float32)
            return to_png(stylize_any_size(self._stylize, image, self.stride, self._style(style), alpha[None]))

        return {"stylized": tf.map_fn(one, (images, styles, strength), fn_output_signature=tf.string)}
