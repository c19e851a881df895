"""Object detection: a single-stage anchor-based detector (RetinaNet family)."""
