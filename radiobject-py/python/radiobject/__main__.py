"""``python -m radiobject``: the same command line as the ``radiobject`` binary (ingest, verify, info)."""

from __future__ import annotations

import sys

from radiobject._radiobject import cli_main


def main(argv: list[str] | None = None) -> int:
    """Runs the command line; returns its exit code (0 ok, 1 verification problems, 2 error)."""
    return cli_main(list(sys.argv[1:] if argv is None else argv))


if __name__ == "__main__":
    sys.exit(main())
