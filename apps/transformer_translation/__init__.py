"""Transformer translation: encoder-decoder Transformer, beam search, sacreBLEU (see app.py)."""
