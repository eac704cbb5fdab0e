"""Errors of the data package (a module of its own: every source module raises them)."""

FOLDER_WAY = "or train on any image folder: --dataset=folder --data_dir=DIR"


class MissingDataError(FileNotFoundError):
    """The requested data is not on this machine and could not be fetched."""


def missing_data(name, split, reason, ways=()):
    """A MissingDataError saying which data is missing, why, and every way to provide it:
    `ways` (the source's own), then training on an image folder."""
    return MissingDataError(f"no data for dataset {name!r} split {split!r} ({reason}). "
                            "Ways to provide it: " + "; ".join([*ways, FOLDER_WAY]))
