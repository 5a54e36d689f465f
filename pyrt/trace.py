"""`--trace[=FILE]` on run, create and exec: every step as it happens, with its duration, then
where the time went (longest first, as `systemd-analyze blame`).

Two clocks, one timeline. pyrt times its own steps (the parent's plan, parent_plan.py, plus the
gate and the planning before it) with time.monotonic_ns(). pyrt-init times its steps itself:
when the plan starts with the `trace` step, it sends `STEP INDEX NS` before each step
(protocol.py), NS read from CLOCK_MONOTONIC, the same clock. A child step lasts until the next
one starts; the last one until pyrt hears the end (READY, the failure, or end-of-file: the
execve). pyrt-init's steps run while pyrt waits in one of its own (spawn, hooks, ready, start):
the total is pyrt's, from the start of the trace to the execve (or to `create`'s return).

Imported only with --trace: without it nothing here runs, and pyrt-init's plan has no `trace`
step, so the child makes no extra system call.
"""

from __future__ import annotations

import os
import time

from pyrt.errors import PyrtError

HEADER = "   start     took  who   step"


def _ms(ns: int) -> str:
    return f"{ns / 1e6:8.3f}"


class Tracer:
    """One command's trace, written line by line to `fd` (stderr, or the --trace file)."""

    def __init__(self, fd: int, command: str) -> None:
        self.fd, self.command, self.t0 = fd, command, time.monotonic_ns()
        self.parent: list[tuple[str, int]] = []  # (name, ns) of pyrt's steps
        self.child: list[tuple[str, int]] = []  # (name, ns) of pyrt-init's steps
        self.steps: list = []  # the child's plan (to name its steps)
        self.open: tuple[int, int] | None = None  # (index, start) of the child step under way
        self.ready = 0  # when pyrt heard READY: the end of `ready` if no later step is heard
        self.shift_after, self.shift = 0, 0  # see attach()
        self.done = False
        self._write(f"pyrt trace of {command} (ms since the trace began; pyrt: on the host, "
                    "init N: pyrt-init's step N, in the container)\n" + HEADER)

    @classmethod
    def open_file(cls, where: str, command: str, floor: int) -> Tracer:
        """`where`: "-" for stderr, else a file (created or truncated), its fd kept above the
        fds the container is given (`floor`)."""
        if where == "-":
            return cls(2, command)
        from pyrt.spawn import above

        try:
            fd = os.open(where, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
        except OSError as e:
            raise PyrtError(f"--trace {where}: {os.strerror(e.errno).lower()}") from None
        return cls(above(fd, floor), command)

    def _write(self, text: str) -> None:
        try:
            os.write(self.fd, (text + "\n").encode("utf-8", "replace"))
        except OSError:
            pass  # a trace that cannot be written must not change what the command does

    def _line(self, start: int, took: int | None, who: str, name: str, text: str) -> None:
        took_s = _ms(took) if took is not None else "       -"
        self._write(f"{_ms(start - self.t0)} {took_s}  {who:<5} {name:<17} {text}")

    # ------------------------------------------------------------------------- pyrt's steps

    def run(self, name: str, text: str, fn, *args):
        """Do one of pyrt's steps, `fn(*args)`, and trace it (failed too: then it re-raises)."""
        start = time.monotonic_ns()
        try:
            result = fn(*args)
        except BaseException as e:
            took = time.monotonic_ns() - start
            self.parent.append((name, took))
            self._line(start, took, "pyrt", name, f"FAILED: {text}: {e}")
            raise
        took = time.monotonic_ns() - start
        self.parent.append((name, took))
        self._line(start, took, "pyrt", name, text)
        return result

    # ------------------------------------------------------------------------- pyrt-init's steps

    def attach(self, init) -> None:
        """Follow the steps of this pyrt-init (spawn.Init reports its messages here)."""
        self.steps, init.tracer = init.steps, self
        # after the fork into a new time namespace with offsets, CLOCK_MONOTONIC is offset too
        self.shift_after, self.shift = len(self.steps), 0
        offsets = next((s for s in self.steps if s.name == "time-offsets"), None)
        if offsets is not None:
            self.shift = offsets["monotonic_s"] * 1_000_000_000 + offsets["monotonic_ns"]
            self.shift_after = next((i for i, s in enumerate(self.steps) if s.name == "fork"), len(self.steps))

    def child_step(self, index: int, ns: int) -> None:
        """STEP INDEX NS: step `index` starts at `ns`; the one before it ends there. A time the
        trace cannot place (a joined time namespace's offset) is taken as when pyrt heard it."""
        if index > self.shift_after:
            ns -= self.shift
        now = time.monotonic_ns()
        if not (self.open[1] if self.open else self.t0) <= ns <= now:
            ns = now
        self._close(ns)
        self.open = (index, ns)

    def child_ready(self) -> None:
        """READY: `ready` ends when the next step starts (run), else when pyrt heard it (create)."""
        self.ready = time.monotonic_ns()

    def child_end(self, failed: int | None = None, why: str = "") -> None:
        """The step under way ended now (end-of-file: the execve), or failed (ERROR: `failed` is
        its index, -1 before any step; pyrt-init's words `why`)."""
        now = time.monotonic_ns()
        if failed is not None and (self.open is None or self.open[0] != failed):
            self._close(now)
            self.open = (failed, now)  # it failed before it could report its start (the plan's check)
        self._close(now, why if failed is not None else None)

    def _close(self, end: int, failure: str | None = None) -> None:
        if self.open is None:
            return
        index, start = self.open
        self.open = None
        step = self.steps[index] if 0 <= index < len(self.steps) else None
        name = step.name if step else "start"
        text = step.describe() if step else "start pyrt-init"
        self.child.append((f"{index} {name}", end - start))
        if failure is not None:
            text = f"FAILED: {failure.removeprefix('unable to start container process: ')}"
        self._line(start, end - start, "init", f"{index:>3d} {name}", text)

    # ------------------------------------------------------------------------- the summary

    def note(self, text: str) -> None:
        self._write(f"{' ' * 18}{text}")

    def finish(self, end: str = "") -> None:
        """Where the time went: every step, longest first, and the total (once)."""
        if self.done:
            return
        self.done = True
        if self.ready:
            self._close(self.ready)
        total = time.monotonic_ns() - self.t0
        mine = sum(ns for _, ns in self.parent)
        theirs = sum(ns for _, ns in self.child)
        lines = ["where the time went (longest first):"]
        rows = [(ns, "pyrt", name) for name, ns in self.parent] + [(ns, "init", name) for name, ns in self.child]
        lines += [f"  {_ms(ns)} ms  {who:<5} {name}" for ns, who, name in sorted(rows, key=lambda r: -r[0])]
        lines.append(f"total {_ms(total).strip()} ms{end}: pyrt's {len(self.parent)} steps "
                     f"{_ms(mine).strip()} ms + {_ms(total - mine).strip()} ms between them; "
                     f"pyrt-init's {len(self.child)} steps {_ms(theirs).strip()} ms of it, while pyrt waited")
        self._write("\n".join(lines))
        if self.fd != 2:
            os.close(self.fd)
            self.fd = -1

