"""``make ui``: ``dagster dev`` with SIGINT and SIGTERM that work, wherever it was started from.

Why: a program started in the background by a non-interactive shell (``make ui &``, a service script) inherits
SIGINT as *ignored*, and ``dagster dev`` gives SIGTERM the same handler as SIGINT, so it then ignores both and
only SIGKILL stops it, leaving the webserver and daemon behind. This resets both signals to their defaults and
replaces itself with ``dagster dev`` (same process id: a supervisor's signals reach it directly). Dagster's notice
that ``dagster dev`` is superseded by ``dg dev`` (a CLI this project does not install) is silenced: it is the
command this project runs on purpose, and a newcomer would read the notice as something to fix.

    python -m mm_assets.dev_ui -w workspace.yaml -h 127.0.0.1 -p 3000
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

# a -W filter: the start of Dagster's message, and its category (dagster's SupersessionWarning is a FutureWarning)
SUPERSEDED_NOTICE = "ignore:Function `dev_command` is superseded:FutureWarning"


def main(argv: list[str]) -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.environ["PYTHONWARNINGS"] = ",".join(filter(None, [os.environ.get("PYTHONWARNINGS"), SUPERSEDED_NOTICE]))
    dagster = str(Path(sys.executable).with_name("dagster"))
    os.execv(dagster, [dagster, "dev", *argv])


if __name__ == "__main__":
    main(sys.argv[1:])
