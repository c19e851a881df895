"""Fine-tuning reaches the backbone wherever the model holds it."""
import keras
import pytest


def test_fine_tuning_finds_a_backbone_nested_in_keras_hub_deeplab():
    """set_trainable_top reaches the suite backbone inside keras-hub's DeepLabV3Backbone (its image_encoder)."""
    from apps.semantic_segmentation.model import ModelConfig, build_segmenter, encoder_of
    from backbones.finetune import find_backbone, set_trainable_top

    model = build_segmenter(ModelConfig(arch="deeplabv3plus", backbone="resnet", width=4), 3)
    assert find_backbone(model) is encoder_of(model)
    set_trainable_top(model, 0)
    assert not encoder_of(model).trainable_weights and model.trainable_weights
    set_trainable_top(model, "all")
    assert encoder_of(model).trainable_weights
    plain = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    with pytest.raises(ValueError, match="no sub-model named 'backbone'"):
        find_backbone(plain)
