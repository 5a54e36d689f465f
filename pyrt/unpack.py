"""`pyrt unpack IMAGE BUNDLE_DIR`: an image (layout directory, oci-archive or docker-archive) →
a bundle (rootfs/ + config.json) that `pyrt run` runs.

All or nothing: the bundle is built in a temporary directory beside BUNDLE_DIR (same filesystem)
and renamed into place at the end; any error, Ctrl-C or SIGTERM removes it. The bundle directory
is mode 0700, as umoci makes it: the rootfs may hold setuid programs no host user should reach.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import time
from collections.abc import Callable

from pyrt import image, imageconfig, jsonio, layers, tarstream
from pyrt.errors import PyrtError

PROGRESS_MIN = 1 << 20  # layers smaller than this get no progress bar


class Progress:
    """A one-line progress bar on stderr for a large layer, only when stderr is a terminal."""

    def __init__(self, label: str, total: int, enabled: bool) -> None:
        self.label, self.total, self.done = label, total, 0
        self.enabled = enabled and total >= PROGRESS_MIN
        self._last = 0.0

    def __call__(self, n: int) -> None:
        if not n:
            return
        self.done += n
        now = time.monotonic()
        if self.enabled and (now - self._last >= 0.1 or self.done >= self.total):
            self._last = now
            width = 30
            filled = width * self.done // max(self.total, 1)
            sys.stderr.write(f"\r{self.label} [{'#' * filled}{'.' * (width - filled)}] "
                             f"{self.done / 1e6:.1f}/{self.total / 1e6:.1f} MB")
            sys.stderr.flush()

    def close(self) -> None:
        if self.enabled:
            sys.stderr.write("\n")
            sys.stderr.flush()


class Interrupted(PyrtError):
    """SIGTERM or SIGHUP: unwinds like an error (the temporary bundle is removed), status 128+N."""


_pending: list[int] = []


def _note_signal(signum: int, frame) -> None:
    """Only note the signal: raising here could land between an os.close and the line that forgets
    the fd, and the cleanup would then close it twice (EBADF instead of a clean unwind)."""
    _pending.append(signum)


def _check_interrupted() -> None:
    """Unwind at a safe point (a read of the layer stream, the end of the build) if a signal came."""
    if _pending:
        raise Interrupted(f"unpack interrupted by signal {_pending[0]}", 128 + _pending[0])


def _checked(read: Callable[[], bytes]) -> Callable[[], bytes]:
    def read_checked() -> bytes:
        _check_interrupted()
        return read()
    return read_checked


def main(g, opts: dict, args: list[str]) -> int:
    src, target = args
    target = os.path.abspath(target)
    if os.path.lexists(target) and (not os.path.isdir(target) or os.path.islink(target) or os.listdir(target)):
        raise PyrtError(f"{target}: exists and is not an empty directory")
    parent = os.path.dirname(target)
    if not os.path.isdir(parent):
        raise PyrtError(f"{parent}: no such directory")
    source = image.open_source(src)
    try:
        img = image.select(source, opts["ref"] or None)
        for sig in (signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, _note_signal)
        tmp = os.path.join(parent, f".{os.path.basename(target)}.unpack-{os.urandom(4).hex()}")
        os.mkdir(tmp, 0o700)
        try:
            _build(source, img, tmp, sys.stderr.isatty())
            _check_interrupted()
            try:
                os.rename(tmp, target)  # atomic; replaces an empty directory, fails on anything else
            except OSError as e:
                raise PyrtError(f"{target}: {os.strerror(e.errno).lower()}") from None
        except BaseException:
            for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
                signal.signal(sig, signal.SIG_IGN)  # a second signal must not interrupt the cleanup
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    finally:
        source.close()
    return 0


def _build(source: image.Source, img: image.Image, bundle: str, tty: bool) -> None:
    rootfs = os.path.join(bundle, "rootfs")
    os.mkdir(rootfs, 0o755)
    root_fd = os.open(rootfs, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    old_umask = os.umask(0)  # modes exactly as the layers say
    try:
        applier = layers.Applier(root_fd)
        for i, layer in enumerate(img.layers, 1):
            progress = None
            try:
                stream = image.LayerStream(source, layer)
                progress = stream.progress = Progress(f"layer {i}/{len(img.layers)} {layer.label}", stream.total, tty)
                reader = tarstream.TarReader(_checked(stream.chunk))
                applier.apply(reader)
                reader.drain()
                stream.verify()
            except Interrupted:
                raise
            except PyrtError as e:
                raise PyrtError(f"layer {i} ({layer.label}): {e}") from None
            finally:
                if progress is not None:
                    progress.close()
        config = imageconfig.runtime_config(img.config, root_fd)
    finally:
        os.umask(old_umask)
        os.close(root_fd)
    jsonio.write_atomic(os.path.join(bundle, "config.json"), jsonio.pretty(config, indent="\t").encode() + b"\n",
                        0o644)
