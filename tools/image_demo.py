"""`make image-demo`: the seed's `docker build` + `docker run -p 8080:8080`, offline, two ways.

    podman build  bundles/hello-world/Containerfile  -> localhost/hello-world
    1. podman save -> pyrt unpack -> pyrt run -p 8080:8080           (pyrt's own bridge)
    2. podman --runtime pyrt run -p 8080:8080 localhost/hello-world  (podman's network)

podman runs with a private store, config and cgroup parent (tests/engines.py's Podman) and a
network of its own (tests/images.py's CniNetwork); everything is removed at the end, whatever
happens. Run as root from the repository: python3 tools/image_demo.py [--pyrt BIN] [--port N]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))


def step(text: str) -> None:
    print(f"\n==> {text}", flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pyrt", default="/usr/local/bin/pyrt")
    ap.add_argument("--port", type=int, default=8080)
    args = ap.parse_args()
    os.environ["ENGINE_RUNTIME"] = args.pyrt  # read by tests/engines.py at import
    import engines
    from images import CniNetwork

    work = Path(tempfile.mkdtemp(prefix="pyrt-image-demo-"))
    podman = engines.Podman(work / "podman")
    net = CniNetwork(work / "podman", "pyrt-demo", "pyrt-demo0", "10.89.64.0/24")
    url = f"http://127.0.0.1:{args.port}/"
    cid = ""
    try:
        step("podman build -t localhost/hello-world -f bundles/hello-world/Containerfile bundles/hello-world")
        r = podman("build", "-t", "localhost/hello-world", "-f", str(REPO / "bundles/hello-world/Containerfile"),
                   str(REPO / "bundles/hello-world"), timeout=300)
        print(r.stdout + r.stderr, end="")
        if r.returncode:
            return 1

        step("podman save --format oci-archive -o hello-world.tar localhost/hello-world")
        podman.ok("save", "--format", "oci-archive", "-o", str(work / "hello-world.tar"), "localhost/hello-world")
        step("pyrt unpack hello-world.tar bundle")
        subprocess.run([args.pyrt, "unpack", str(work / "hello-world.tar"), str(work / "bundle")], check=True)
        print(subprocess.run(["find", str(work / "bundle")], capture_output=True, text=True).stdout, end="")
        step(f"pyrt run -d -p {args.port}:8080 bundle; curl {url}")
        with open(work / "id", "w+") as out:  # a file: the container inherits it (a pipe would never close)
            subprocess.run([args.pyrt, "run", "-d", "-p", f"{args.port}:8080", str(work / "bundle")], stdout=out,
                           stderr=subprocess.DEVNULL, check=True)
            out.seek(0)
            cid = out.read().strip()
        print(engines.http_get(url), end="")
        subprocess.run([args.pyrt, "delete", "--force", cid], check=True)
        cid = ""

        step(f"podman --runtime {args.pyrt} run -d -p {args.port}:8080 localhost/hello-world; curl {url}")
        podman.ok("run", "-d", "--name", "hello", "--network", "pyrt-demo", "-p", f"{args.port}:8080",
                  "localhost/hello-world")
        print(engines.http_get(url), end="")
        podman.ok("rm", "--force", "--time", "0", "hello")
        step("both answered; cleaning up")
        return 0
    finally:
        if cid:
            subprocess.run([args.pyrt, "delete", "--force", cid], capture_output=True)
        left = podman.close() + net.close()
        shutil.rmtree(work, ignore_errors=True)
        for line in left:
            print(f"left behind: {line}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
