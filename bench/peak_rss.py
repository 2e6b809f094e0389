"""``python -m bench.peak_rss CMD...``: run a command on cue and report its peak RSS.

Linux starts a forked child's peak RSS at its parent's RSS and keeps it across ``exec``, so
``wait4`` in the benchmark (hundreds of MiB after scoring renditions) would report the benchmark,
not the command. This small process runs the command instead: it prints ``ready``, waits for a
line on stdin (so its own start-up is not timed), runs CMD, and prints one JSON line with CMD's
exit status and the largest peak RSS (KiB) of CMD and every process CMD waited for. The floor of
that number is this process's own RSS (about 10 MiB) at the time it forks.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys


def main(argv: list[str]) -> int:
    """Run ``argv`` when told to; report its status and peak RSS on stdout."""
    if not argv:
        print("usage: python -m bench.peak_rss CMD [ARG...]", file=sys.stderr)
        return 2
    print("ready", flush=True)
    sys.stdin.readline()
    status = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, check=False).returncode
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    print(json.dumps({"status": status, "rss_peak_kb": peak}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
