"""ser_utils: support package for ser-book."""

from importlib.metadata import PackageNotFoundError, version

try:
    #: The installed distribution's version (``pyproject.toml``), so a wheel and a checkout agree.
    __version__ = version("ser-utils")
except PackageNotFoundError:  # a checkout on PYTHONPATH that was never pip-installed
    __version__ = "0+unknown"
