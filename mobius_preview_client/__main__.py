"""``python -m mobius_preview_client validate FILE…``: check payload files against the job contract.

The same check as ``python -m worker validate`` (exit 0 valid, 1 invalid, 2 unreadable), with the
inline cap of ``--max-inline-bytes`` (default the worker's largest automatic cap).
"""

from __future__ import annotations

import argparse

from mobius_preview_client import names
from mobius_preview_client.contract.files import validate_files


def _cap(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= names.INLINE_BYTES_MAX:
        raise argparse.ArgumentTypeError(f"must be an integer from 1 to {names.INLINE_BYTES_MAX}")
    return int(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mobius_preview_client")
    commands = parser.add_subparsers(dest="command", required=True)
    check = commands.add_parser("validate", help="check payload files (- for stdin) against the job contract")
    check.add_argument("files", nargs="+")
    check.add_argument("--max-inline-bytes", type=_cap, default=names.INLINE_BYTES_MAX_DEFAULT)
    args = parser.parse_args(argv)
    return validate_files(args.files, args.max_inline_bytes)


if __name__ == "__main__":
    raise SystemExit(main())
