"""AdaIN: adaptive instance normalisation, content feature maps given a style's channel means and stds."""
import keras

from layers.losses.style import adain


@keras.saving.register_keras_serializable(package="suite")
class AdaIN(keras.layers.Layer):
    """[content [B, H, W, C], style [B or 1, H', W', C]] -> [B, H, W, C]: each content channel normalised
    to mean 0 and std 1 over its positions, then scaled and shifted to the style channel's std and mean,
    sigma(s) * (c - mu(c)) / sigma(c) + mu(s), with sigma = sqrt(variance + epsilon) (Huang & Belongie
    2017, "Arbitrary Style Transfer in Real-time with Adaptive Instance Normalization"). No weights: the
    affine parameters of instance normalisation come from the style input. The style maps may be of
    another size than the content's; a style batch of 1 serves the whole content batch. The function
    form, and the losses that train a decoder to invert it, are in layers.losses.style.

    >>> content, style = keras.ops.ones((2, 4, 4, 3)), keras.ops.zeros((1, 6, 6, 3))
    >>> tuple(AdaIN()([content, style]).shape)
    (2, 4, 4, 3)
    """

    def __init__(self, epsilon=1e-5, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = float(epsilon)

    def call(self, inputs):
        content, style = inputs
        return adain(content, style, self.epsilon)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[0])

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon}
