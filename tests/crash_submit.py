"""Submit one action from stdin, and die with SIGKILL right after the executor's call returned,
before the gateway commits the outcome (the worst moment: the email is out, the database does not know).

Used by tests/integration/test_concurrency.py; not a test module itself.
"""
from __future__ import annotations

import json
import os
import signal
import sys

from engine.app import App
from engine.adapters.executors import SandboxExecutor


class DieAfterSend(SandboxExecutor):
    def execute(self, msg):
        delivery = super().execute(msg)  # committed: the message is "out"
        os.kill(os.getpid(), signal.SIGKILL)
        return delivery


def main() -> None:
    app = App()
    ex = DieAfterSend(app.store, app.clock)
    app.gateway.executors = {"email": ex, "crm": ex}
    app.gateway.submit(json.loads(sys.stdin.read()))
    print("unreachable: the process should have been killed", file=sys.stderr)
    sys.exit(1)


if __name__ == "__main__":
    main()
