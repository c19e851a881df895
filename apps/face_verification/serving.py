"""The exported face model: encoded face images in, embeddings out; a `verify` signature for pairs.

    serving_default(images)          -> embeddings (n, dim) float32, unit length
    verify(images_a, images_b)       -> distances (n,) squared Euclidean, same (n,) bool = distance <= threshold,
                                        probability (n,) = sigmoid(slope * distance + intercept), threshold ()

A run trained with the binary loss compares faces with its pair head: its distances are the head's negated
logit, -(w . |a - b| + b0) (verification.pair_distances), any real number, lower likelier the same.

Faces are decoded (JPEG/PNG/GIF/BMP/WebP/binary PGM), turned RGB, made square as in training (--data.square)
and resized to the model's size inside; a run with --flip_test exports the flip-averaged embedder (embedder_of).
The threshold and the logistic calibration are the run's (evaluate or calibrate), baked in as constants.
Bad requests are refused as the other exports refuse them: an INVALID_ARGUMENT naming the input.
"""
import tensorflow as tf

from data.images.decode import decode_image_batch


class FaceServing(tf.Module):
    def __init__(self, embedder, size, calibration, square="stretch", max_pixels=None, head=None):
        super().__init__()
        self.embedder = embedder
        self.size = int(size)
        self.square = square
        self.threshold = tf.constant(calibration["threshold"], tf.float32)
        self.slope = tf.constant(calibration["slope"], tf.float32)
        self.intercept = tf.constant(calibration["intercept"], tf.float32)
        self.max_pixels = max_pixels
        self.head = None if head is None else (tf.constant(head[0], tf.float32), tf.constant(head[1], tf.float32))

    def _embed(self, images, name="images"):
        faces = decode_image_batch(images, (self.size, self.size), 3, self.max_pixels, name, self.square)
        return self.embedder(tf.cast(faces, tf.float32), training=False)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="images")], autograph=False)
    def serve(self, images):
        return {"embeddings": self._embed(images)}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="images_a"),
                                  tf.TensorSpec([None], tf.string, name="images_b")], autograph=False)
    def verify(self, images_a, images_b):
        check = tf.debugging.assert_equal(tf.size(images_a), tf.size(images_b),
                                          message="`images_a` and `images_b` must hold the same number of images (pairs)")
        with tf.control_dependencies([check]):
            a, b = self._embed(images_a, "images_a"), self._embed(images_b, "images_b")
        if self.head is None:
            distances = tf.reduce_sum(tf.square(a - b), axis=-1)
        else:
            distances = -(tf.linalg.matvec(tf.abs(a - b), self.head[0]) + self.head[1])
        return {"distances": distances, "same": distances <= self.threshold,
                "probability": tf.sigmoid(self.slope * distances + self.intercept), "threshold": self.threshold}
