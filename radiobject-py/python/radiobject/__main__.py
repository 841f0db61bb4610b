"""``python -m radiobject``: the same command line as the ``radiobject`` binary (ingest, verify,
info, bench-loader)."""

from __future__ import annotations

import sys

from radiobject._radiobject import cli_main


def main(argv: list[str] | None = None) -> int:
    """Runs the command line; returns its exit code (0 ok, 1 verification problems, 2 error)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["bench-loader"]:
        # Needs torch and measures torch worker processes: runs in Python (radiobject.ml.bench).
        from radiobject.ml.bench import main as bench_main

        return bench_main(args[1:])
    return cli_main(args)


if __name__ == "__main__":
    sys.exit(main())
