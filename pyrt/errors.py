"""The one exception type the command line turns into a one-line error and an exit status."""


class PyrtError(Exception):
    """A failure to report as one line (never a traceback) with exit status `status`. Control
    characters and lone surrogates of quoted input (a newline in a field) are escaped: the
    message stays one line of valid UTF-8."""

    def __init__(self, message: str, status: int = 1) -> None:
        if not message.isprintable():
            message = "".join(c if c.isprintable() else repr(c)[1:-1] for c in message)
        super().__init__(message)
        self.status = status
