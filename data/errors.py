"""The one error type data readers raise for a user's bad or missing data, and the checks the training
pipelines share."""


class DataError(ValueError):
    """Bad or missing data: the message names the file, field or data set and how to fix it."""


def check_one_batch(n, batch_size):
    """A training split must fill one batch at least."""
    if n < batch_size:
        raise DataError(f"the training split has {n} images, fewer than one batch of {batch_size}: "
                        "lower --batch_size or add images")
