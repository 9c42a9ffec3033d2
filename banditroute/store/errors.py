"""The store's failures, shared by the log (`sqlite.py`) and the judge's queue (`samples.py`)."""


class StoreError(RuntimeError):
    """The log cannot be written or read (disk full, read-only, corrupt, or a newer schema)."""


class PartsLimitReached(Exception):
    """A feedback part was not stored: its event already had `reward.max_parts_per_event` parts when
    the part's transaction counted them. Not a store failure: the client is told 409."""
