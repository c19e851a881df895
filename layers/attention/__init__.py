"""Attention masks for sequence models (functions, not layers): True where a query may attend to a key."""
