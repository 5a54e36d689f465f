"""A small seccomp agent for the tests (runc's protocol): listen on a unix socket, receive the
container's state JSON with the seccomp notify fd (SCM_RIGHTS), and answer every notification
with an errno, as a real agent (e.g. one that emulates mknod) would answer instead of the kernel."""

from __future__ import annotations

import ctypes
import fcntl
import json
import os
import socket
import struct
import threading

SECCOMP_IOCTL_NOTIF_RECV = 0xC0502100  # _IOWR('!', 0, struct seccomp_notif): 80 bytes
SECCOMP_IOCTL_NOTIF_SEND = 0xC0182101  # _IOWR('!', 1, struct seccomp_notif_resp): 24 bytes


class Agent:
    """Accepts connections on `path` in a thread; `received` holds (state, fd link, fdinfo)
    per connection; notifications are answered with -`errno`; `syscalls` the numbers seen."""

    def __init__(self, path: str, errno: int) -> None:
        self.path, self.errno = path, errno
        self.received: list[tuple[dict, str]] = []
        self.syscalls: list[int] = []
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(path)
        self.sock.listen(4)
        self.threads: list[threading.Thread] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                msg, fds, _, _ = socket.recv_fds(conn, 65536, 4)
            fd = fds[0]
            self.received.append((json.loads(msg), os.readlink(f"/proc/self/fd/{fd}"), len(fds)))
            t = threading.Thread(target=self._serve, args=(fd,), daemon=True)
            t.start()
            self.threads.append(t)

    def _serve(self, fd: int) -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        try:
            while True:
                req = ctypes.create_string_buffer(80)
                if libc.ioctl(fd, SECCOMP_IOCTL_NOTIF_RECV, req) < 0:
                    return  # ENOENT: no process uses the filter any more
                nid, pid, flags, nr = struct.unpack_from("=QIIi", req.raw)
                self.syscalls.append(nr)
                resp = bytearray(struct.pack("=QqiI", nid, 0, -self.errno, 0))
                fcntl.ioctl(fd, SECCOMP_IOCTL_NOTIF_SEND, resp)
        except OSError:
            return
        finally:
            os.close(fd)

    def close(self) -> None:
        self.sock.close()
        for t in self.threads:
            t.join(10)

