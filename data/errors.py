"""The one error type data readers raise for a user's bad or missing data."""


class DataError(ValueError):
    """Bad or missing data: the message names the file, field or data set and how to fix it."""
