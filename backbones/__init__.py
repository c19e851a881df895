"""Backbones every vision app shares: the CNN zoo and pretrained networks, one registry, named
pyramid levels and feature layers, their preprocessing and weights, the feature pyramid and the
fine-tuning switch. Imports only `layers` and `data` (for embedded weights).

    >>> from backbones import build_backbone
    >>> net = build_backbone("resnet", (32, 32, 3))
    >>> sorted(net.pyramid_outputs)
    ['P0', 'P1', 'P2']
"""
# Importing a definition registers it; this order is the order of the --model.arch choices.
from backbones import zoo  # noqa: F401,I001
from backbones import squeezenet  # noqa: F401
from backbones import efficientnet_lite  # noqa: F401
from backbones import dlib_face  # noqa: F401
from backbones import keras_applications  # noqa: F401
from backbones.feature_pyramid import feature_pyramid
from backbones.finetune import set_trainable_top
from backbones.preprocessing import preprocessing_layer
from backbones.registry import (BackboneError, BackboneOptions, backbone_names, build_backbone, feature_extractor,
                                get_backbone, pyramid_levels, register_backbone)

__all__ = ["BackboneError", "BackboneOptions", "backbone_names", "build_backbone", "feature_extractor",
           "feature_pyramid", "get_backbone", "preprocessing_layer", "pyramid_levels", "register_backbone",
           "set_trainable_top"]
