"""The one exception type the command line turns into a one-line error and an exit status."""


class PyrtError(Exception):
    """A failure to report as one line (never a traceback) with exit status `status`."""

    def __init__(self, message: str, status: int = 1) -> None:
        super().__init__(message)
        self.status = status
