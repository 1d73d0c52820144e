"""TEMP shim, drop at merge: the names the stages branch moves into stages/data.py."""

from stages.artifacts import RAW_DIR  # noqa: F401
from stages.dataset import FILES  # noqa: F401
from stages.files import atomic_path  # noqa: F401
