"""Attention for sequence models: masks (functions, not layers: True where a query may attend to a key) and
the recurrent encoder-decoder attention layers (Bahdanau's additive, Luong's multiplicative scores)."""
from layers.attention.recurrent_attention import BahdanauAttention, LuongAttention

__all__ = ["BahdanauAttention", "LuongAttention"]
