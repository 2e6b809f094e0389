"""Asks a job API for health every ``EVERY`` seconds on a fresh connection, as a probe does, from a
process of its own (so the test's event loop, busy sending bodies, cannot delay a probe), until
its stdin closes. It prints ``polling`` once the first probe is answered and, at the end, one
JSON list of ``[started, seconds, status, error, api_waited, own_waited, stolen]`` per probe
(``error``: the answer's ``redis.error``, if any).

``api_waited`` and ``own_waited`` are the seconds the API's event-loop thread and this process
spent runnable but not running during the probe, from the kernel's ``schedstat`` (the run
queue's delay); ``stolen`` is the most steal time any CPU accrued during the probe, from
``/proc/stat`` (in 10 ms ticks): the hypervisor running something else while the guest thinks a
thread is running, which no run queue shows. Both are what a busy machine, not the API, added to
the answer's time.

    python health_poller.py PORT API_PID
"""

from __future__ import annotations

import json
import os
import select
import socket
import sys
import time

EVERY = 0.01
TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")
PATH = "/api/preview/worker/health"


def waited(path: str) -> float:
    """Seconds the thread whose ``schedstat`` is at ``path`` has waited in the run queue so far."""
    with open(path) as stat:
        return int(stat.read().split()[1]) / 1e9


def steal() -> list[int]:
    """Each CPU's steal time so far, in clock ticks (``/proc/stat``'s ``cpuN`` lines, field 8)."""
    with open("/proc/stat") as stat:
        return [int(line.split()[8]) for line in stat if line[:3] == "cpu" and line[3].isdigit()]


def probe(port: int) -> tuple[int, str | None]:
    """One health request on a new connection: the status (0: no answer) and ``redis.error``."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(f"GET {PATH} HTTP/1.1\r\nHost: api\r\nConnection: close\r\n\r\n".encode())
        answer = b""
        while chunk := conn.recv(65536):
            answer += chunk
    if not answer:
        return 0, None
    body = json.loads(answer.partition(b"\r\n\r\n")[2])
    return int(answer.split(b" ", 2)[1]), body.get("redis", {}).get("error")


def main(port: int, api_pid: int) -> None:
    api_stat, own_stat = f"/proc/{api_pid}/task/{api_pid}/schedstat", "/proc/thread-self/schedstat"
    probes = []
    while not select.select([sys.stdin], [], [], 0)[0]:  # stdin closed (or written): stop
        api_before, own_before, steal_before = waited(api_stat), waited(own_stat), steal()
        started = time.monotonic()
        try:
            status, error = probe(port)
        except OSError as err:
            status, error = -1, type(err).__name__
        took = time.monotonic() - started
        api_waited, own_waited = waited(api_stat) - api_before, waited(own_stat) - own_before
        stolen = max((after - before for before, after in zip(steal_before, steal(), strict=True)), default=0)
        probes.append([started, took, status, error, api_waited, own_waited, stolen / TICKS_PER_SECOND])
        if len(probes) == 1:
            print("polling", flush=True)
        time.sleep(max(0.0, EVERY - took))
    print(json.dumps(probes))


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]))
