"""Whole-image inference at any size, shared by evaluate, predict and the export.

A fully convolutional network takes any H x W that is a multiple of its stride: each image is padded
(bottom and right, with zeros as training crops are) to the next multiple, run alone, and its logits
cropped back to the image. Optional test-time augmentation averages the probabilities of the four 90°
rotations of the image and of its mirror (8 passes). A run trained with --data.max_side N shrinks a larger
image to a long side of N, as training read its images, and resizes the probabilities back (bilinear)
before the argmax, so masks always come at the input's own size.

The export (`SegmenterServing`) answers a batch of encoded images of different sizes with one padded
batch: `masks` (uint8 class ids, 255 outside an image's own `mask_sizes` [height, width]) and, in the
`probabilities` signature, per-class probabilities (0 outside). A client crops `masks[i, :h, :w]`.
"""
import tensorflow as tf

from data.images.decode import check_encoded_images
from data.images.files import decode_image, fit_within, resize_uint8

PAD_ID = 255  # mask value outside an image (as the ignore label in training)


def pad_to_stride(image, stride):
    """(H, W, C) -> (ceil(H/stride)*stride, ceil(W/stride)*stride, C), zero-padded bottom and right."""
    hw = tf.shape(image)[:2]
    target = -(-hw // stride) * stride
    return tf.pad(image, [[0, target[0] - hw[0]], [0, target[1] - hw[1]], [0, 0]])


def _transforms(image):
    """The 8 dihedral views of an (H, W, C) image, and the function that maps each view's output back."""
    views, undo = [], []
    for flip in (False, True):
        base = tf.image.flip_left_right(image) if flip else image
        for k in range(4):
            views.append(tf.image.rot90(base, k))
            undo.append(lambda y, k=k, flip=flip: _undo(y, k, flip))
    return views, undo


def _undo(output, k, flip):
    output = tf.image.rot90(output, -k % 4)
    return tf.image.flip_left_right(output) if flip else output


@tf.autograph.experimental.do_not_convert  # Python loops over the 8 views only: nothing to convert
def image_probabilities(model, image, stride, tta=False, max_side=None):
    """Softmax probabilities (H, W, C) float32 of one float32 (H, W, 3) image of any size; with `max_side`, the
    network sees it shrunk to that long side (as training did) and the probabilities are resized back."""
    if not max_side:
        return _probabilities_at_size(model, image, stride, tta)
    size = tf.shape(image)[:2]
    small = fit_within(size, max_side)
    return tf.cond(tf.reduce_all(small == size), lambda: _probabilities_at_size(model, image, stride, tta),
                   lambda: tf.image.resize(_probabilities_at_size(model, tf.cast(resize_uint8(image, small), tf.float32),
                                                                  stride, tta), size, method="bilinear"))


@tf.autograph.experimental.do_not_convert
def _probabilities_at_size(model, image, stride, tta):
    def run(view):
        logits = model(pad_to_stride(view, stride)[None], training=False)[0]
        return tf.nn.softmax(logits[:tf.shape(view)[0], :tf.shape(view)[1]], axis=-1)

    if not tta:
        return run(image)
    views, undo = _transforms(image)
    total = tf.add_n([back(run(view)) for view, back in zip(views, undo)])
    return total / len(views)  # each view is cropped to the image and turned back: (H, W, C)


class SegmenterServing(tf.Module):
    """Encoded images (any sizes) in; class-id masks at each image's own size out, padded to the batch's
    largest image. The request is checked before decoding (data.images.decode): not an image, truncated,
    or a header claiming more than `max_pixels` pixels (None: 120 megapixels) is an INVALID_ARGUMENT naming
    `images` and its index. An empty batch is refused the same way."""

    def __init__(self, model, class_names, stride, tta=False, max_pixels=None, max_side=None):
        super().__init__()
        self.max_side = max_side
        self.model = model
        self.class_names = tf.constant(class_names)
        self.num_classes = len(class_names)
        self.stride = int(stride)
        self.tta = bool(tta)
        self.max_pixels = max_pixels

    def _probabilities(self, images):
        images = check_encoded_images(images, self.max_pixels)
        n = tf.size(images)
        maps = tf.TensorArray(tf.float32, size=n, infer_shape=False, element_shape=[None, None, self.num_classes])
        sizes = tf.TensorArray(tf.int32, size=n, element_shape=[2])
        for i in tf.range(n):
            image = tf.cast(decode_image(images[i], 3), tf.float32)
            maps = maps.write(i, image_probabilities(self.model, image, self.stride, self.tta, self.max_side))
            sizes = sizes.write(i, tf.shape(image)[:2])
        sizes = sizes.stack()
        largest = tf.reduce_max(sizes, axis=0)
        padded = tf.TensorArray(tf.float32, size=n, element_shape=[None, None, self.num_classes])
        for i in tf.range(n):
            m = maps.read(i)
            padded = padded.write(i, tf.pad(m, [[0, largest[0] - tf.shape(m)[0]], [0, largest[1] - tf.shape(m)[1]], [0, 0]]))
        return padded.stack(), sizes

    def _inside(self, probabilities, sizes):
        rows = tf.range(tf.shape(probabilities)[1])[None, :, None] < sizes[:, 0, None, None]
        cols = tf.range(tf.shape(probabilities)[2])[None, None, :] < sizes[:, 1, None, None]
        return tf.logical_and(rows, cols)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="images")])
    def serve(self, images):
        probabilities, sizes = self._probabilities(images)
        ids = tf.cast(tf.argmax(probabilities, axis=-1), tf.uint8)
        masks = tf.where(self._inside(probabilities, sizes), ids, tf.constant(PAD_ID, tf.uint8))
        return {"masks": masks, "mask_sizes": sizes, "class_names": self.class_names}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="images")])
    def probabilities(self, images):
        probabilities, sizes = self._probabilities(images)
        return {"probabilities": probabilities, "mask_sizes": sizes, "class_names": self.class_names}
