"""Boxes on images: box geometry and letterboxing, VOC/COCO/tfds readers, detection pipelines."""
