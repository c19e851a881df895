"""Keras losses and metrics that are not layers: padding-masked sequence loss and token accuracy."""
