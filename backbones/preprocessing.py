"""Each backbone's input preprocessing, as a layer inside the model (so exports carry it)."""
import keras

from backbones.registry import get_backbone
from layers import ImagePreprocess


def preprocessing_layer(name, stats=None):
    """RGB pixels 0..255 -> what backbone `name` was built for. Zoo networks ("standardize") take the
    training data's (mean, variance) per channel when given, else a fixed scaling to [-1, 1]."""
    mode = get_backbone(name).preprocessing
    if mode != "standardize":
        return ImagePreprocess(mode, name="preprocess")
    if stats is None:
        return ImagePreprocess("tf", name="preprocess")
    mean, variance = stats
    return keras.layers.Normalization(mean=mean, variance=variance, name="normalize")
