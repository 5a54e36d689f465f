"""cffi build script (API, out-of-line mode) for pyrt._native.

Every native/*.c is compiled into the module (pyrt-init, a separate executable, is native/init/);
every native/*.h declares what Python may call (plain C declarations only).
"""

import glob
import os

from cffi import FFI

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCES = sorted(glob.glob(os.path.join(HERE, "*.c")))
HEADERS = sorted(glob.glob(os.path.join(HERE, "*.h")))

ffi = FFI()
for header in HEADERS:
    with open(header) as f:
        ffi.cdef("".join(line for line in f if not line.lstrip().startswith(("/*", "*", "#"))))
ffi.set_source(
    "pyrt._native",
    "".join(f'#include "{os.path.basename(h)}"\n' for h in HEADERS),
    sources=[os.path.relpath(p) for p in SOURCES],
    include_dirs=[os.path.relpath(HERE)],
    extra_compile_args=["-O2", "-Wall"],
)

if __name__ == "__main__":
    ffi.compile(verbose=True)
