"""Word embeddings: skip-gram / CBOW with negative sampling (see app.py)."""
