"""Decoding of sequence models in graph ops: greedy and beam search over any step function (search.py),
and the exported strings-in, strings-out translator built on them (translator.py)."""
