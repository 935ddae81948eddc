"""Forks `alpha worker` processes from a process that has imported the engine once (not a test module).

Starting a Python process and importing the engine costs about a second on a busy 2-core machine, which would
be most of a kill trial. This process pays it once; each child is a fork that runs the real CLI entry point
(``engine.entrypoints.cli.main``, what the ``alpha`` script runs) with stdout and stderr in files. Commands, one a line
on stdin, answered on stdout:

    spawn OUT ERR ARG...   ->  the child's pid
    wait PID               ->  its exit code (negative: killed by that signal)
"""
from __future__ import annotations

import os
import sys

import engine.app  # noqa: F401  - the heavy imports, once
import engine.entrypoints.cli
import engine.adapters.ghl_executor  # noqa: F401


def _child(out: str, err: str, argv: list[str]) -> None:
    code = 1
    try:
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644), 1)
        os.dup2(os.open(err, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644), 2)
        try:
            engine.entrypoints.cli.main(argv)
            code = 0
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def main() -> None:
    while True:
        line = sys.stdin.readline()
        if not line:
            return
        cmd, *args = line.split()
        if cmd == "spawn":
            pid = os.fork()
            if pid == 0:
                _child(args[0], args[1], args[2:])
            print(pid, flush=True)
        elif cmd == "wait":
            _, status = os.waitpid(int(args[0]), 0)
            print(os.waitstatus_to_exitcode(status), flush=True)


if __name__ == "__main__":
    main()
