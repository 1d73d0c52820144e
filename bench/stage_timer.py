"""Run `python ARGS...` as a child and log its wall time, CPU and peak RSS: bench.run's shim.

Standard library only, so that it starts in about 15 ms."""

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
