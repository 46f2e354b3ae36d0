"""What `recsys-eval run` says on stderr while it works: one line per stage, a live progress line
for the long stages on a terminal, nothing with --quiet (errors still print, from cli.main)."""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from collections.abc import Iterator
from typing import TextIO

PREFIX = "recsys-eval: "


class StageLog:
    """`mode`: "tty" (stage lines plus live progress), "plain" (stage lines only, for logs and
    pipes) or "quiet" (nothing)."""

    def __init__(self, mode: str, stream: TextIO | None = None) -> None:
        if mode not in ("tty", "plain", "quiet"):
            raise ValueError(f"unknown stage log mode {mode!r}")
        self.mode = mode
        self._stream = stream
        self._lock = threading.Lock()
        self._live = False  # a progress line is on screen (tty)
        self._last_bar = 0.0

    @classmethod
    def for_stderr(cls, quiet: bool) -> StageLog:
        if quiet:
            return cls("quiet")
        try:
            tty = sys.stderr.isatty()
        except (AttributeError, ValueError):
            tty = False
        return cls("tty" if tty else "plain")

    @property
    def stream(self) -> TextIO:
        return self._stream if self._stream is not None else sys.stderr

    @property
    def live(self) -> bool:
        """Whether live progress (bars, elapsed seconds) is shown."""
        return self.mode == "tty"

    def line(self, text: str) -> None:
        """One stage line, `recsys-eval: <text>` (a live progress line is cleared first)."""
        if self.mode == "quiet":
            return
        with self._lock:
            self._clear()
            self.stream.write(PREFIX + text + "\n")
            self.stream.flush()

    def progress(self, label: str, done: int, total: int, force: bool = False) -> None:
        """A live `label: [#####     ] done/total` line, at most 10 times a second (tty only)."""
        if not self.live:
            return
        now = time.monotonic()
        if not force and done < total and now - self._last_bar < 0.1:
            return
        self._last_bar = now
        width = 30
        filled = int(width * done / total) if total else width
        bar = "#" * filled + " " * (width - filled)
        with self._lock:
            self.stream.write(f"\r{label}: [{bar}] {done}/{total}\033[K")
            self.stream.flush()
            self._live = True

    @contextlib.contextmanager
    def ticker(self, label: str) -> Iterator[None]:
        """A live `label: N s` line updated every second while the block runs (tty only)."""
        if not self.live:
            yield
            return
        stop = threading.Event()
        start = time.monotonic()

        def tick() -> None:
            while not stop.wait(1.0):
                with self._lock:
                    self.stream.write(f"\r{label}: {time.monotonic() - start:.0f} s\033[K")
                    self.stream.flush()
                    self._live = True

        thread = threading.Thread(target=tick, name="recsys-eval-ticker", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()
            with self._lock:
                self._clear()

    def clear(self) -> None:
        with self._lock:
            self._clear()

    def _clear(self) -> None:
        if self._live:
            self.stream.write("\r\033[K")
            self.stream.flush()
            self._live = False


class Timer:
    """Seconds per stage (`load_s`, `models_s`, ...) for the report's `timings`."""

    def __init__(self) -> None:
        self.start = time.monotonic()
        self.timings: dict[str, float] = {}

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        began = time.monotonic()
        try:
            yield
        finally:
            self.timings[f"{name}_s"] = round(time.monotonic() - began, 3)

    def seconds(self, name: str) -> float:
        return self.timings.get(f"{name}_s", 0.0)

    def total(self) -> dict[str, float]:
        """The stage timings plus `total_s` (from the start of the run to now)."""
        return {**self.timings, "total_s": round(time.monotonic() - self.start, 3)}


class BuildProgress:
    """What `dbt_runner.build` reports while the models build: the replayed plan's steps
    (`step`), or the dbt subprocess (`dbt()`, a context manager); `via` says which ran."""

    def __init__(self, log: StageLog) -> None:
        self.log = log
        self.via: str | None = None  # "plan" (replayed compiled SQL) or "dbt"
        self.steps = 0

    def step(self, done: int, total: int) -> None:
        self.via, self.steps = "plan", total
        self.log.progress("models", done, total, force=done in (0, total))

    def dbt(self) -> contextlib.AbstractContextManager[None]:
        self.via = "dbt"
        self.log.line("building models with dbt (no replayable plan cached for this build)")
        return self.log.ticker("building models with dbt")
