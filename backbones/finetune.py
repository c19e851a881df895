"""Which backbone layers train while fine-tuning: every vision app uses this one mechanism."""
import keras


def set_trainable_top(model, n_layers):
    """Freeze the sub-model named "backbone", then unfreeze its top `n_layers` ("all": every layer).
    BatchNorm layers stay frozen: the apps call a backbone with loaded weights with training=False,
    so its statistics are the pretrained ones throughout."""
    backbone = model.get_layer("backbone")
    backbone.trainable = True
    layers = backbone.layers
    top = layers if n_layers == "all" else (layers[-int(n_layers):] if int(n_layers) else [])
    for layer in layers:
        layer.trainable = False
    for layer in top:
        if not isinstance(layer, keras.layers.BatchNormalization):
            layer.trainable = True
