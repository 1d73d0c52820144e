"""Fashion-MNIST study as a DVC pipeline: one module per stage, run as `python -m stages.<name>`."""

import sys


def _quiet_interrupt(kind: type[BaseException], value: BaseException, traceback: object) -> None:
    # Ctrl-C while a stage still imports its libraries (before stages.cli.run takes over) would
    # print a traceback of NumPy's or TensorFlow's import machinery; nothing has been written yet.
    if issubclass(kind, KeyboardInterrupt):
        print("interrupted: nothing was written", file=sys.stderr)
    else:
        sys.__excepthook__(kind, value, traceback)


sys.excepthook = _quiet_interrupt
