"""tf.data pipelines and readers for the suite's data sets; never builds models or imports apps."""
from data.errors import DataError

__all__ = ["DataError"]
