"""banditroute: a learning LLM router. `banditroute.__version__` is the installed distribution's version."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("banditroute")
except PackageNotFoundError:  # run from a checkout that was never installed
    __version__ = "unknown"
