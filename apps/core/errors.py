"""User-facing errors: the CLI prints these as one line, without a traceback."""


class UserError(Exception):
    """A mistake the user can fix (bad flag, missing file, wrong shape...)."""


class TrainingDiverged(UserError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""
