"""``python -m worker run|api|redrive|sweep|health|validate``."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

import uvloop

from worker import logs
from worker.process import secret_files
from worker.settings import load_or_exit


def main(argv: list[str] | None = None) -> int:
    """Parse the command, load settings (exit 2 if invalid) and run it."""
    parser = argparse.ArgumentParser(prog="python -m worker", description="Preview worker.")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("run", help="consume the preview queue")
    sub.add_parser("api", help="serve the job API")
    sub.add_parser("redrive", help="move every dead-lettered job back to the queue")
    sub.add_parser("sweep", help="delete artifact sets older than PREVIEW_RETENTION_DAYS")
    probe = sub.add_parser("health", help="exit 0 if the local worker is ready, else 1")
    probe.add_argument("--live", action="store_true", help="check liveness instead of readiness")
    check_files = sub.add_parser(
        "validate", help="check payload files against the job contract (exit 1 if any is invalid)"
    )
    check_files.add_argument("files", nargs="+", metavar="FILE", help="a JSON payload file, or - for stdin")
    args = parser.parse_args(argv)
    from_files = secret_files.overlay_environ()  # PREVIEW_SECRETS_DIR's files, before settings are read
    settings = load_or_exit()
    if args.command == "validate":
        from mobius_preview_client.contract.files import validate_files

        return validate_files(args.files, settings.inline_bytes)
    logs.setup(settings.log_level)

    if args.command == "run":
        from worker.process.lifecycle import run_consumer
        from worker.process.supervisor import supervise

        single = settings.worker_processes == 1
        main_coro = run_consumer(settings, serve_health=True) if single else supervise(settings)
        watcher = secret_files.start_watcher(from_files)
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            status = runner.run(main_coro)
        if secret_files.rotated(watcher):  # drained like on SIGTERM: start afresh
            secret_files.reexec()
        return status
    if args.command == "api":
        from worker.api.app import AuthNotConfiguredError, create_app
        from worker.api.server import serve

        try:
            app = create_app(settings)
        except AuthNotConfiguredError as err:
            print(f"refusing to start: {err}", file=sys.stderr)
            return 2
        watcher = secret_files.start_watcher(from_files)
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(serve(app, settings))
        if secret_files.rotated(watcher):  # requests in flight finished
            secret_files.reexec()
        return 0
    if args.command == "redrive":
        from worker.queue.queues import Queues, redis_client

        async def redrive() -> list[str]:
            queues = Queues(settings, redis_client(settings.redis_url))
            try:
                return await queues.redrive()
            finally:
                await queues.close()

        moved = asyncio.run(redrive())
        print(json.dumps({"redriven": len(moved), "jobIds": moved}))
        return 0
    if args.command == "sweep":
        from worker.process.signals import StopSignals
        from worker.store import retention

        StopSignals().install_sync()  # the first signal lets the sweep finish; a second ends it
        return retention.main(settings)
    from worker import constants as c
    from worker.process.health import probe as check

    path = c.LIVENESS_PATH if args.live else c.READINESS_PATH
    return 0 if check(settings.metrics_port, path, host=settings.metrics_host) else 1


if __name__ == "__main__":
    sys.exit(main())
