"""The exception types the CLI turns into a one-line message and a non-zero exit."""


class CuratorError(Exception):
    """A problem with the user's input or project, explained in one line."""

    exit_code = 1


class InterruptedRun(CuratorError):
    """An analyze run stopped by the user; finished work is kept."""

    exit_code = 130


class DamagedProject(CuratorError):
    """A project file (database, manifest or array) that cannot be read as what it should be."""


class ReadOnlyProject(CuratorError):
    """A project that ``analyze`` cannot write to (read-only folder, mount or file)."""


class ProjectBusy(CuratorError):
    """Another ``analyze`` holds the project's lock."""


class NotEnoughSpace(CuratorError):
    """The disk holding the project is (or would be) full."""
