"""Project exceptions: user errors that the CLI reports as one clear line, never a traceback."""


class UebaError(Exception):
    """Base class of every error caused by input, config or environment rather than a bug."""


class InputError(UebaError):
    """Bad or missing input data: names the file, line or key."""
