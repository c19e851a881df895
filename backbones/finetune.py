"""Which backbone layers train while fine-tuning: every vision app uses this one mechanism."""
import keras


def set_trainable_top(model, n_layers):
    """Freeze the sub-model named "backbone", then unfreeze its top `n_layers` ("all": every layer).
    BatchNorm layers stay frozen: the apps call a backbone with loaded weights with training=False,
    so its statistics are the pretrained ones throughout."""
    backbone = find_backbone(model)
    backbone.trainable = True
    layers = backbone.layers
    top = layers if n_layers == "all" else (layers[-int(n_layers):] if int(n_layers) else [])
    for layer in layers:
        layer.trainable = False
    for layer in top:
        if not isinstance(layer, keras.layers.BatchNormalization):
            layer.trainable = True


def find_backbone(model):
    """The sub-model named "backbone": a layer of `model`, or nested in one (keras-hub's DeepLabV3Backbone
    holds it as its `image_encoder`)."""
    found = _search(model)
    if found is None:
        raise ValueError(f"model {model.name} has no sub-model named 'backbone' to fine-tune")
    return found


def _search(model):
    for layer in model.layers:
        if layer.name == "backbone":
            return layer
    for layer in model.layers:
        inner = getattr(layer, "image_encoder", layer)
        if isinstance(inner, keras.Model):
            found = inner if inner.name == "backbone" else _search(inner)
            if found is not None:
                return found
    return None
