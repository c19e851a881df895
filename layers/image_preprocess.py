"""ImagePreprocess: the fixed input scaling a pretrained backbone was trained with, as a layer
(so saved models carry it and load with safe_mode, unlike a Lambda around preprocess_input)."""
import keras
from keras import ops

# The three conventions of keras.applications' preprocess_input.
_CAFFE_BGR_MEAN = (103.939, 116.779, 123.68)
_TORCH_MEAN = (0.485, 0.456, 0.406)
_TORCH_STD = (0.229, 0.224, 0.225)
# dlib's face-recognition ResNet: its mean RGB, then a scale of 1/256 (as face-api feeds it).
_DLIB_RGB_MEAN = (122.782, 117.001, 104.298)


@keras.saving.register_keras_serializable(package="suite")
class ImagePreprocess(keras.layers.Layer):
    """Map RGB pixels in [0, 255] to a backbone's input: `caffe` (BGR, mean subtracted),
    `tf` ([-1, 1]), `torch` (ImageNet mean/std), `dlib` ((RGB - dlib's mean RGB) / 256) or `none`.

    >>> ImagePreprocess("tf")(keras.ops.full((1, 1, 1, 3), 255.0)).numpy().ravel().tolist()
    [1.0, 1.0, 1.0]
    """

    MODES = ("caffe", "tf", "torch", "dlib", "none")

    def __init__(self, mode="caffe", **kwargs):
        super().__init__(**kwargs)
        if mode not in self.MODES:
            raise ValueError(f"ImagePreprocess mode must be one of {self.MODES}; got {mode!r}")
        self.mode = mode

    def call(self, x):
        x = ops.cast(x, self.compute_dtype)
        if self.mode == "caffe":
            return ops.flip(x, axis=-1) - ops.convert_to_tensor(_CAFFE_BGR_MEAN, self.compute_dtype)
        if self.mode == "tf":
            return x / 127.5 - 1.0
        if self.mode == "torch":
            mean = ops.convert_to_tensor(_TORCH_MEAN, self.compute_dtype)
            std = ops.convert_to_tensor(_TORCH_STD, self.compute_dtype)
            return (x / 255.0 - mean) / std
        if self.mode == "dlib":
            return (x - ops.convert_to_tensor(_DLIB_RGB_MEAN, self.compute_dtype)) / 256.0
        return x

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "mode": self.mode}
