"""Keep a stage's libraries from reading or writing the user's home.

Keras reads and, on first import, writes ~/.keras/keras.json (which can change the backend or the
float type); Matplotlib reads ~/.config/matplotlib and writes a font cache to ~/.cache/matplotlib.
Experiments run in parallel by `dvc queue start -j N` would all share those files. So both get
directories of the workspace (STAGE_HOME, git-ignored under .dvc/tmp; each queued experiment runs
in its own copy), and the variables that would change what a stage computes are set or cleared.
"""

import atexit
import os
import shutil
import tempfile
from pathlib import Path

STAGE_HOME = Path(".dvc/tmp/stage-home")  # relative to the workspace, where dvc runs the stages

# Read at import: each would make the result depend on something outside params.yaml.
OVERRIDES = {
    "KERAS_BACKEND": "tensorflow",  # the stages use TensorFlow directly
    "KERAS_MAX_EPOCHS": None,  # caps `epochs` silently
    "KERAS_MAX_STEPS_PER_EPOCH": None,
    "MATPLOTLIBRC": None,
}

_home: Path | None = None


def stage_home() -> Path:
    """STAGE_HOME in a DVC workspace; elsewhere (or if it can't be made) a directory of this process."""
    global _home
    if _home is None:
        try:
            if not Path(".dvc").is_dir():
                raise OSError("not a DVC workspace")
            STAGE_HOME.mkdir(parents=True, exist_ok=True)
            _home = STAGE_HOME.resolve()
        except OSError:
            _home = Path(tempfile.mkdtemp(prefix="stage-home-"))
            atexit.register(shutil.rmtree, _home, ignore_errors=True)
    return _home


def isolate() -> None:
    """Point Keras and Matplotlib at the stage home and fix the variables they read at import."""
    home = stage_home()
    os.environ["KERAS_HOME"] = str(home / "keras")
    os.environ["MPLCONFIGDIR"] = str(home / "matplotlib")
    for name, value in OVERRIDES.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
