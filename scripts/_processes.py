"""Child processes of the demo (settlement nodes, meter oracles): started with their own log
file, waited for until their health URL answers, stopped with SIGTERM (SIGKILL after a grace)."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ManagedProcess:
    def __init__(self, name: str, argv: list[str], log: Path, health_url: str | None = None) -> None:
        self.name, self.argv, self.log, self.health_url = name, argv, log, health_url
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 30.0) -> "ManagedProcess":
        env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen([sys.executable, *self.argv], stdout=self.log.open("a"),
                                     stderr=subprocess.STDOUT, env=env, cwd=ROOT)
        if self.health_url:
            deadline = time.time() + timeout
            while True:
                self.check()
                try:
                    httpx.get(self.health_url, timeout=1.0)
                    break
                except httpx.HTTPError:
                    if time.time() > deadline:
                        raise RuntimeError(f"{self.name} did not answer at {self.health_url} (log: {self.log})")
                    time.sleep(0.2)
        return self

    def check(self) -> None:
        """Raises if the process has died, naming its log."""
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"{self.name} exited with status {self.proc.returncode}; see {self.log}")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
