"""`pyrt run` with a terminal and no --console-socket: receive the pty master from the init
(runc's console-socket protocol, over a socketpair) and relay it to our own terminal."""

from __future__ import annotations

import array
import fcntl
import os
import socket
import termios

from pyrt.errors import PyrtError
from pyrt.spawn import above


def receive_pty(sock: socket.socket) -> tuple[int, str]:
    """One message of runc's protocol: the pty master as SCM_RIGHTS, the pty name as data."""
    fds = array.array("i")
    msg, anc, _, _ = sock.recvmsg(1024, socket.CMSG_SPACE(fds.itemsize), socket.MSG_CMSG_CLOEXEC)
    for level, kind, data in anc:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(data[: len(data) - len(data) % fds.itemsize])
    if not fds:
        raise PyrtError("console socket: no terminal received")
    for extra in fds[1:]:
        os.close(extra)
    return fds[0], msg.decode(errors="replace")


class Relay:
    def __init__(self, floor: int) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock = ours
        self.child_fd = above(theirs.detach(), floor)
        self.master = -1
        self.saved: list | None = None
        self.stdin_open = True

    def receive(self) -> None:
        os.close(self.child_fd)
        self.child_fd = -1
        self.master, _ = receive_pty(self.sock)
        self.sock.close()
        # as runc: the container's "\n" reaches us as "\n" (our own terminal, raw below, and a
        # pipe or file get what the program wrote), not the pty's default "\r\n"
        mode = termios.tcgetattr(self.master)
        mode[1] &= ~termios.ONLCR
        termios.tcsetattr(self.master, termios.TCSANOW, mode)
        os.set_blocking(self.master, False)
        if os.isatty(0):
            self.saved = termios.tcgetattr(0)
            mode = termios.tcgetattr(0)
            # raw input, as cfmakeraw(3): the container's terminal does the line editing; output
            # processing stays (as runc), our terminal turns the program's "\n" into "\r\n"
            mode[0] &= ~(termios.IGNBRK | termios.BRKINT | termios.PARMRK | termios.ISTRIP | termios.INLCR
                         | termios.IGNCR | termios.ICRNL | termios.IXON)
            mode[3] &= ~(termios.ECHO | termios.ECHONL | termios.ICANON | termios.ISIG | termios.IEXTEN)
            mode[2] = (mode[2] & ~(termios.CSIZE | termios.PARENB)) | termios.CS8
            termios.tcsetattr(0, termios.TCSANOW, mode)
            self.resize()

    def resize(self) -> None:
        if self.master >= 0 and os.isatty(0):
            size = fcntl.ioctl(0, termios.TIOCGWINSZ, b"\0" * 8)
            fcntl.ioctl(self.master, termios.TIOCSWINSZ, size)

    def fds(self) -> list[int]:
        return ([0] if self.stdin_open else []) + ([self.master] if self.master >= 0 else [])

    def pump(self, ready: list[int]) -> None:
        if 0 in ready and self.stdin_open:
            data = os.read(0, 65536)
            if data:
                _write_all(self.master, data)
            else:
                self.stdin_open = False
        if self.master in ready:
            self._copy_out()

    def _copy_out(self) -> bool:
        try:
            data = os.read(self.master, 65536)
        except (BlockingIOError, InterruptedError):
            return True
        except OSError:  # EIO: every slave is closed
            return False
        if data:
            _write_all(1, data)
        return bool(data)

    def drain(self) -> None:
        if self.master >= 0:
            while self._copy_out():
                import select

                if not select.select([self.master], [], [], 0.05)[0]:
                    break

    def close(self) -> None:
        if self.saved is not None:
            termios.tcsetattr(0, termios.TCSANOW, self.saved)
            self.saved = None
        for fd in (self.master, self.child_fd):
            if fd >= 0:
                os.close(fd)
        self.master = self.child_fd = -1
        self.sock.close()


def _write_all(fd: int, data: bytes) -> None:
    import select

    view = memoryview(data)
    while view:
        try:
            view = view[os.write(fd, view):]
        except BlockingIOError:
            select.select([], [fd], [])
