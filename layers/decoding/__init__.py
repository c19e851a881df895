"""Decoding of sequence models in graph ops: greedy and beam search over any step function."""
