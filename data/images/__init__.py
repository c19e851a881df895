"""Images and their folders: decoding bytes, class folders, IDX files, classification pipelines."""
