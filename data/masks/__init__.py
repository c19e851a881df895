"""Images with per-pixel class masks: readers (mask PNGs, VOC segmentation, tfds) and the segmentation pipeline."""
