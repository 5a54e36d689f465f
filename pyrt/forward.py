"""The foreground of `run` and `exec`: signals sent to pyrt go to the container's process, as
with runc, and pyrt waits for that process to exit (relaying its terminal, if any).

A Forwarder is made before the process exists, so no signal to pyrt is lost: signals are
queued by a handler and sent from the loop, through the process's pidfd once it is known.
"""

from __future__ import annotations

import _signal as signal  # the C module: `signal` only adds enums, ~5 ms of imports
import os

#: What is forwarded (SIGWINCH resizes the relayed terminal instead, when there is one).
FORWARD = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2,
           signal.SIGWINCH, signal.SIGCONT, signal.SIGALRM)


class Forwarder:
    """Catches the signals to forward (and SIGCHLD, to wake up) until restore()."""

    def __init__(self) -> None:
        self.pidfd = -1
        self.pending: list[int] = []
        self.rfd, self.wfd = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        self.old_wakeup = signal.set_wakeup_fd(self.wfd, warn_on_full_buffer=False)
        self.old = {s: signal.signal(s, self._on) for s in (*FORWARD, signal.SIGCHLD)}

    def _on(self, sig: int, frame: object) -> None:
        if sig != signal.SIGCHLD:
            self.pending.append(sig)

    def flush(self, relay=None) -> None:
        while self.pending:
            sig = self.pending.pop(0)
            if sig == signal.SIGWINCH and relay:
                relay.resize()
            elif self.pidfd >= 0:
                try:
                    signal.pidfd_send_signal(self.pidfd, sig)
                except ProcessLookupError:
                    pass

    def wait_exit(self, pid: int, relay=None) -> int:
        """Forward signals until `pid` (our child) exits; its exit status (128+N if killed by
        signal N). Also reaps what it left us (we are a subreaper in `run`)."""
        import select

        while True:
            self.flush(relay)
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                while True:
                    try:
                        if os.waitpid(-1, os.WNOHANG)[0] == 0:
                            break
                    except ChildProcessError:
                        break
                if relay:
                    relay.drain()
                code = os.waitstatus_to_exitcode(status)
                return 128 - code if code < 0 else code
            fds = [self.rfd] + (relay.fds() if relay else [])
            try:
                ready, _, _ = select.select(fds, [], [])
            except InterruptedError:
                continue
            if self.rfd in ready:
                try:
                    os.read(self.rfd, 512)
                except BlockingIOError:
                    pass
            if relay:
                relay.pump(ready)

    def restore(self) -> None:
        for s, handler in self.old.items():
            signal.signal(s, handler)
        signal.set_wakeup_fd(self.old_wakeup)
        os.close(self.rfd)
        os.close(self.wfd)
