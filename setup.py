"""Builds the native parts: the cffi modules pyrt._native and pyrt._seccomp, and the pyrt-init executable."""

import glob
import os
import sysconfig

from setuptools import setup
from setuptools.command.build_ext import build_ext


class BuildWithInit(build_ext):
    """build_ext that also links native/init/*.c into pyrt/pyrt-init (static: it runs inside the
    container before the root changes and after, so it must not need the host's libraries)."""

    def run(self) -> None:
        super().run()
        out_dir = os.path.join("pyrt" if self.inplace else os.path.join(self.build_lib, "pyrt"))
        os.makedirs(out_dir, exist_ok=True)
        cc = os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc"
        target = os.path.join(out_dir, "pyrt-init")
        sources = " ".join(sorted(glob.glob("native/init/*.c")))
        cmd = f"{cc.split()[0]} -O2 -Wall -Wextra -static -o {target} {sources}"
        self.announce(cmd, level=2)
        if os.system(cmd) != 0:
            raise SystemExit("building pyrt-init failed (needs gcc and the static C library, libc6-dev)")


setup(cffi_modules=["native/build_native.py:ffi", "native/seccomp/build_seccomp.py:ffi"],
      cmdclass={"build_ext": BuildWithInit})
