"""Processes released at the same moment: the races between separate runs, not their start-up order."""

from __future__ import annotations

import subprocess
from pathlib import Path

# What a script run by `run_together` says, then waits for, before its contended work.
READY_THEN_WAIT = 'sys.stdout.write("ready\\n"); sys.stdout.flush()\nsys.stdin.readline()'


def run_together(commands: list[list[str]], cwd: Path) -> None:
    """Start every command (a script that prints "ready", then waits for a line on stdin: READY_THEN_WAIT),
    release them all once each is ready, and assert every one exits 0."""
    processes = [subprocess.Popen(command, cwd=cwd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
                 for command in commands]
    for process in processes:
        assert process.stdout is not None and process.stdout.readline() == "ready\n"
    for process in processes:
        assert process.stdin is not None
        process.stdin.write("go\n")
        process.stdin.flush()
    for process in processes:
        assert process.wait(timeout=180) == 0
