"""privserve: private models behind an OpenAI-compatible API."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("privserve")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"
