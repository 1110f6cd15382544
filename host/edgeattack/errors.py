"""One exception type for every user-facing failure: the CLI prints its message as one line."""


class EdgeAttackError(Exception):
    """A failure the user can act on. `str(err)` names the culprit and the fix.

    exit_code 1 is a failure, 2 a usage error (bad argument or input file), following the CLI contract.
    """

    def __init__(self, message: str, exit_code: int = 1):
        super().__init__(message)
        self.exit_code = exit_code


class UsageError(EdgeAttackError):
    """Bad input given by the user (a file, a value, a flag): exit code 2."""

    def __init__(self, message: str):
        super().__init__(message, exit_code=2)


class DeviceError(EdgeAttackError):
    """A device did not answer, answered wrongly, or reported an error."""
