"""cffi build script (API, out-of-line mode) for pyrt._native: see spawn.c."""

import os

from cffi import FFI

HERE = os.path.dirname(os.path.abspath(__file__))

ffi = FFI()
with open(os.path.join(HERE, "spawn.h")) as f:
    ffi.cdef("".join(line for line in f if not line.startswith("/*")))
ffi.set_source(
    "pyrt._native",
    '#include "spawn.h"',
    sources=[os.path.relpath(os.path.join(HERE, "spawn.c"))],
    include_dirs=[os.path.relpath(HERE)],
    extra_compile_args=["-O2", "-Wall"],
)

if __name__ == "__main__":
    ffi.compile(verbose=True)
