"""The store's one failure, shared by the log (`sqlite.py`) and the judge's queue (`samples.py`)."""


class StoreError(RuntimeError):
    """The log cannot be written or read (disk full, read-only, corrupt, or a newer schema)."""
