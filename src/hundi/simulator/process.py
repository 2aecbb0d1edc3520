"""Run ``hundi simulate <venue>`` as a subprocess and learn its URLs (for tests and benches)."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from types import TracebackType
from typing import IO


class SimulatorProcess:
    """``with SimulatorProcess(["--rate", "500"]) as sim: sim.ws_url, sim.rest_url``.

    ``args`` are the options of ``hundi simulate <venue>``; the process is started with the
    current interpreter (``python -m hundi.simulator <venue>``) and stopped with SIGTERM. Any
    registered venue with a simulator works; the default stays the first simulator the project
    had, so existing callers keep working.
    """

    def __init__(
        self, args: Sequence[str] = (), startup_timeout: float = 20.0, venue: str = "binance"
    ) -> None:
        self.args = list(args)
        self.venue = venue
        self.startup_timeout = startup_timeout
        self.ws_url = ""
        self.rest_url = ""
        self.proc: subprocess.Popen[str] | None = None
        # stderr goes to a file, not a pipe: nobody reads a pipe while the simulator runs, and a
        # full one would block it; the file's tail explains a failure (stderr_tail).
        self._stderr: IO[str] | None = None

    def start(self) -> SimulatorProcess:
        cmd = [sys.executable, "-m", "hundi.simulator", self.venue, *self.args]
        self._stderr = tempfile.TemporaryFile("w+", prefix="hundi-simulator-")  # noqa: SIM115
        self.proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=self._stderr, text=True, env=dict(os.environ)
        )
        assert self.proc.stdout is not None
        lines: queue.Queue[str] = queue.Queue()
        # a thread drains stdout so the child never blocks on a full pipe
        threading.Thread(target=_pump, args=(self.proc.stdout, lines), daemon=True).start()
        deadline = time.monotonic() + self.startup_timeout
        while not (self.ws_url and self.rest_url):
            try:
                line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                self.stop()
                raise TimeoutError("simulator did not print its URLs in time") from None
            if not line:
                self.proc.wait()
                raise RuntimeError(
                    f"simulator exited before printing its URLs: {self.stderr_tail().strip()}"
                )
            key, _, value = line.strip().partition("=")
            if key == "ws_url":
                self.ws_url = value
            elif key == "rest_url":
                self.rest_url = value
        return self

    def stop(self, timeout: float = 10.0) -> int:
        """SIGTERM, wait; returns the exit code."""
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        return self.proc.returncode

    def stderr_tail(self, chars: int = 4000) -> str:
        """The last ``chars`` characters the simulator wrote to stderr."""
        if self._stderr is None:
            return ""
        self._stderr.flush()
        self._stderr.seek(0)
        return self._stderr.read()[-chars:]

    def __enter__(self) -> SimulatorProcess:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _pump(stream: IO[str], lines: queue.Queue[str]) -> None:
    """Forward the child's stdout lines; an empty string marks its end."""
    for line in stream:
        lines.put(line)
    lines.put("")
    stream.close()
