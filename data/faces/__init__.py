"""Faces by identity: readers (embedded AT&T, identity folders, tfds lfw, LFW pairs.txt) and P x K pipelines."""
