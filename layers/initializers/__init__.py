"""Keras initializers of the suite, registered for serialisation."""
from layers.initializers.bilinear import BilinearUpsampling

__all__ = ["BilinearUpsampling"]
