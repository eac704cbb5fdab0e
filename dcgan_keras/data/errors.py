"""Errors of the data package (a module of its own: every source module raises them)."""


class MissingDataError(FileNotFoundError):
    """The requested data is not on this machine and could not be fetched."""
