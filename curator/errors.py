"""The one exception type the CLI turns into a one-line message and a non-zero exit."""


class CuratorError(Exception):
    """A problem with the user's input or project, explained in one line."""

    exit_code = 1


class InterruptedRun(CuratorError):
    """An analyze run stopped by the user; finished work is kept."""

    exit_code = 130
