"""``casework`` and ``python -m casework``: the server's command line, which needs ``casework[server]``."""

from __future__ import annotations

import sys


def main() -> None:
    try:
        from casework.cli import app
    except ModuleNotFoundError as exc:  # the SDK alone (`pip install casework`) has no server
        print(
            f"The casework command runs the server, which needs more than the SDK ({exc.name} is missing): "
            "pip install 'casework[server]'",
            file=sys.stderr,
        )
        raise SystemExit(1) from exc
    app()


if __name__ == "__main__":
    main()
