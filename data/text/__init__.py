"""Text corpora and sentence pairs: streamed corpora, skip-gram windows, subwords, translation pairs."""
