"""Keep a stage's libraries away from the user's home, through their documented variables.

Keras reads and, on first import, writes ~/.keras/keras.json (which can change the backend or the
float type); Matplotlib reads ~/.config/matplotlib and writes a font cache to ~/.cache/matplotlib.
Experiments run in parallel by `dvc queue start -j N` would all share those files. So KERAS_HOME
and MPLCONFIGDIR point into the workspace (git-ignored under .dvc/tmp; each queued experiment
runs in its own copy), and the variables that would change what a stage computes are set or
cleared.
"""

import os
from pathlib import Path

STAGE_HOME = Path(".dvc/tmp/stage-home")  # relative to the workspace, where dvc runs the stages

# Read at import: each would make the result depend on something outside params.yaml.
OVERRIDES = {
    "KERAS_BACKEND": "tensorflow",  # the stages use TensorFlow directly
    "KERAS_MAX_EPOCHS": None,  # caps `epochs` silently
    "KERAS_MAX_STEPS_PER_EPOCH": None,
    "MATPLOTLIBRC": None,
}


def isolate() -> None:
    """Point Keras and Matplotlib at STAGE_HOME and fix the variables they read at import."""
    home = STAGE_HOME.resolve()
    os.environ["KERAS_HOME"] = str(home / "keras")
    os.environ["MPLCONFIGDIR"] = str(home / "matplotlib")
    for name, value in OVERRIDES.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
