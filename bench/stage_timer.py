"""Run `python ARGS...` as a child and log its wall time and peak RSS: bench/run.py's `python` shim.

bench/run.py puts a directory holding a `python` script first on PATH; that script runs
`<venv python> -I -S bench/stage_timer.py ARGS...`. DVC runs each stage's `python -m stages.X`
through it, so every stage of a real `dvc repro` or `dvc exp run` is measured where it runs:
wall from fork to exit, peak RSS from wait4() (the kernel's high-water mark of the stage's
process, no sampling). Standard library only, so the wrapper itself starts in ~15 ms.
"""

import json
import os
import signal
import subprocess
import sys
import time


def main() -> int:
    real_python = os.environ["BENCH_REAL_PYTHON"]
    log = os.environ["BENCH_STAGE_LOG"]
    start = time.time()
    t0 = time.perf_counter()
    child = subprocess.Popen([real_python, *sys.argv[1:]])
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda s, f: child.send_signal(s))
    while True:
        try:
            _, status, usage = os.wait4(child.pid, 0)
            break
        except InterruptedError:
            continue
    wall = time.perf_counter() - t0
    child.returncode = os.waitstatus_to_exitcode(status)  # keep Popen from waiting again
    with open(log, "a") as f:
        f.write(json.dumps({
            "argv": sys.argv[1:],
            "start": start,
            "wall": wall,
            "user": usage.ru_utime,
            "sys": usage.ru_stime,
            "maxrss": usage.ru_maxrss * 1024,  # Linux reports KiB
            "returncode": child.returncode,
        }) + "\n")
    return child.returncode if child.returncode >= 0 else 128 - child.returncode


if __name__ == "__main__":
    sys.exit(main())
