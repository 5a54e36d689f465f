"""Differential rows, runtime-spec `root`, `mounts`, `hostname`/`domainname` and `hooks`: each
field (each mount type and option) run by pyrt and by runc 1.5, compared on the container's
normalized /proc/self/mountinfo and what the process sees (tests/differential.py). A row marked
xfail is a difference pyrt has today (docs/runc-differences.md); the fix removes the mark."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from differential import Scenario, compare, edit, row, with_env

pytestmark = pytest.mark.differential


def mount(dest: str, kind: str, source: str, *options: str, **more):
    """A scenario edit that appends one mount; a source starting with `@` names a directory
    made in the bundle (a host volume); EXTRA shows the mount point."""
    def fn(config: dict, bundle: Path) -> None:
        src = source
        if source.startswith("@"):
            src = str(bundle / source[1:])
            os.makedirs(src, exist_ok=True)
            Path(src, "file").write_text("data\n")
        config["mounts"].append({"destination": dest, "type": kind, "source": src, "options": list(options), **more})
        with_env(config, EXTRA=f"stat -c '%a %u:%g %F' {dest}; ls {dest} | grep -v '^[0-9]' | head -5")
    return fn


def mounts_of(*entries: tuple):
    """Several mounts: (dest, type, source, *options) each."""
    def fn(config: dict, bundle: Path) -> None:
        for dest, kind, source, *options in entries:
            mount(dest, kind, source, *options)(config, bundle)
    return fn


def bind(dest: str, *options: str):
    return Scenario(f"bind {dest} {' '.join(options)}", mount(dest, "bind", "@vol", "bind", *options))


def tmpfs(dest: str, *options: str, name: str | None = None, rootfs=None):
    return Scenario(name or f"tmpfs {dest} {' '.join(options)}", mount(dest, "tmpfs", "tmpfs", *options), rootfs=rootfs)


def mkdir(path: str, mode: int):
    def fn(rootfs: Path) -> None:
        (rootfs / path.lstrip("/")).mkdir(parents=True, exist_ok=True)
        (rootfs / path.lstrip("/")).chmod(mode)
    return fn


def symlink(link: str, target: str, *dirs: str):
    def fn(rootfs: Path) -> None:
        for d in dirs:
            (rootfs / d.lstrip("/")).mkdir(parents=True, exist_ok=True)
        (rootfs / link.lstrip("/")).symlink_to(target)
    return fn


#: The state a hook reads, with its id and ociVersion made constant (rows of their own).
STATE_SED = r's/"id":"[^"]*"/"id":"ID"/; s/"ociVersion":"[^"]*"/"ociVersion":"V"/'


def hook_writer(kind: str, path: str = "/bin/sh"):
    """A hook of `kind` that writes what it sees (its cwd, the state on stdin, its environment,
    its namespaces as host/new) to hooks/KIND in the bundle (host side) or /tmp/KIND."""
    def fn(config: dict, bundle: Path) -> None:
        out = bundle / "hooks"
        out.mkdir(exist_ok=True)
        target = f"/tmp/{kind}" if kind == "startContainer" else str(out / kind)
        # (startContainer runs in the container, where the host's namespaces cannot be named)
        mnt = "container" if kind == "startContainer" else "$(readlink /proc/self/ns/mnt)"
        script = (f"{{ echo cwd=$(pwd); echo env=$(env | grep -v '^PWD=\\|^SHLVL=' | sort | tr '\\n' ' ');"
                  f" echo mnt={mnt}; echo root=$(ls / | tr '\\n' ' ');"
                  f" echo state=$(sed '{STATE_SED}'); }}"
                  f" > {target} 2>&1")
        config.setdefault("hooks", {}).setdefault(kind, []).append(
            {"path": path, "args": ["sh", "-c", script], "env": ["HOOKVAR=1"]})
        if kind == "startContainer":
            with_env(config, EXTRA="cat /tmp/startContainer")
    return fn


def hook_report(bundle: Path) -> dict:
    """The hooks' reports, normalized: namespaces as host/new, the state's fields as names."""
    host_mnt = os.readlink("/proc/self/ns/mnt")
    out = {}
    for f in sorted((bundle / "hooks").glob("*")):
        lines = []
        for line in f.read_text().splitlines():
            key, _, val = line.partition("=")
            if key == "mnt":
                val = "host" if val == host_mnt else "new"
            elif key == "state":
                try:
                    state = json.loads(val)
                    val = json.dumps({k: (v if k == "status" else type(v).__name__) for k, v in sorted(state.items())})
                except ValueError:
                    pass
            lines.append(f"{key}={val}".replace(str(bundle), "<bundle>"))
        out[f.name] = "\n".join(lines)
    return {"hooks": json.dumps(out, indent=1, sort_keys=True)}


def hook(kind: str, path: str = "/bin/sh"):
    return Scenario(f"hook {kind} {path}", hook_writer(kind, path), deleted=hook_report)


def failing_hook(kind: str):
    def fn(config: dict) -> None:
        config["hooks"] = {kind: [{"path": "/bin/sh", "args": ["sh", "-c", "echo hook-out; exit 3"]}]}
    return Scenario(f"failing hook {kind}", edit(fn))


HOOKS = ("prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop")
HOOK_DIFFERS = {
    "startContainer": "kept: the state a startContainer hook reads has the host's pid (the runtime-spec: the pid "
                      "\"as seen by the host\"); runc 1.5 gives the pid in the container (1)",
}

FAILING_DIFFERS = {
    "startContainer": "kept: a failing startContainer hook fails start (as any failure after the exec fifo); "
                      "runc 1.5's start exits 0, the error only on the container's stderr",
}


def bind_file(config: dict, bundle: Path) -> None:
    """A bind mount of a host file onto a path the rootfs lacks."""
    Path(bundle, "f").write_text("x\n")
    config["mounts"].append({"destination": "/etc/hostfile", "type": "bind", "source": str(bundle / "f"),
                             "options": ["bind"]})
    with_env(config, EXTRA="cat /etc/hostfile; stat -c %F /etc/hostfile")


def overlay(config: dict, bundle: Path) -> None:
    for d in ("lower", "upper", "work"):
        os.makedirs(bundle / d)
    Path(bundle, "lower", "l").write_text("l")
    mount("/mnt/o", "overlay", "overlay", f"lowerdir={bundle}/lower", f"upperdir={bundle}/upper",
          f"workdir={bundle}/work")(config, bundle)


def flagged_source(*options: str):
    """A bind of a host tmpfs mounted ro,nosuid,nodev,noexec,noatime, with `options`."""
    def fn(config: dict, bundle: Path) -> None:
        src = bundle / "flagged"
        src.mkdir()
        subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,nosuid,nodev,noexec,noatime,size=16k", "flagged", str(src)],
                       check=True)
        config["mounts"].append({"destination": "/mnt/f", "type": "bind", "source": str(src),
                                 "options": ["bind", *options]})
    return fn


def unmount_source(bundle: Path) -> dict:
    subprocess.run(["umount", str(bundle / "flagged")], check=True)
    return {}


def hostname_in_joined_uts(config: dict, bundle: Path) -> None:
    """Join the UTS namespace of a process started here (never the host's) and name it."""
    holder = subprocess.Popen(["unshare", "--uts", "sleep", "60"])
    (bundle / "holder").write_text(str(holder.pid))
    for _ in range(100):
        if os.readlink(f"/proc/{holder.pid}/ns/uts") != os.readlink("/proc/self/ns/uts"):
            break
        time.sleep(0.01)
    without_ns("uts")(config)
    config["linux"]["namespaces"].append({"type": "uts", "path": f"/proc/{holder.pid}/ns/uts"})
    config["hostname"] = "joined.example"


def stop_uts_holder(bundle: Path) -> dict:
    pid = int((bundle / "holder").read_text())
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    return {}


def without_ns(kind: str):
    def fn(config: dict) -> None:
        config["linux"]["namespaces"] = [n for n in config["linux"]["namespaces"] if n["type"] != kind]
    return fn


ROWS = [
    # root
    row("root.readonly/true", Scenario("base"), "mounts"),
    row("root.readonly/false", Scenario("root-rw", edit(lambda c: c["root"].update(readonly=False))), "mounts"),
    row("root.path/absolute", Scenario("root-abs", lambda c, b: c["root"].update(path=str(b / "rootfs"))), "cwd"),
    row("root.path/missing", Scenario("root-missing", edit(lambda c: c["root"].update(path="nosuch"))), "error"),
    row("root.path/a-file", Scenario("root-file", edit(lambda c: c["root"].update(path="rootfs/bin/busybox"))),
        "error"),
    # mounts: each type
    row("mounts/bind-directory", bind("/mnt/vol"), "extra", "mounts"),
    row("mounts/bind-file", Scenario("bind-file", bind_file), "extra", "mounts"),
    row("mounts/rbind", Scenario("rbind", mount("/mnt/vol", "none", "@vol", "rbind")), "extra", "mounts"),
    row("mounts/bind-without-type", Scenario("bind-no-type", mount("/mnt/vol", "", "@vol", "bind")), "extra", "mounts"),
    row("mounts/tmpfs", tmpfs("/mnt/t"), "extra", "mounts"),
    row("mounts/tmpfs-size-mode", tmpfs("/mnt/t", "size=1m", "mode=700", "uid=1", "gid=2"), "extra", "mounts"),
    row("mounts/tmpfs-without-mode-takes-the-mount-point's", tmpfs("/mnt/t", rootfs=mkdir("/mnt/t", 0o711),
                                                                   name="tmpfs-mode-of-dir"), "extra", "mounts"),
    row("mounts/tmpfs-mode-given-over-a-directory", tmpfs("/mnt/t", "mode=700", rootfs=mkdir("/mnt/t", 0o711),
                                                          name="tmpfs-mode-given"), "extra", "mounts"),
    row("mounts/proc-second", Scenario("proc2", mount("/mnt/proc", "proc", "proc")), "extra", "mounts"),
    row("mounts/sysfs-second", Scenario("sysfs2", mount("/mnt/sys", "sysfs", "sysfs", "ro")), "extra", "mounts"),
    row("mounts/mqueue", Scenario("mqueue2", mount("/mnt/mq", "mqueue", "mqueue")), "extra", "mounts"),
    row("mounts/devpts-options", Scenario("devpts-opts", edit(lambda c: c["mounts"][2].update(
        options=["nosuid", "noexec", "newinstance", "ptmxmode=0600", "mode=0600"]))), "mounts"),
    row("mounts/cgroup", Scenario("cgroup-mount", mount("/sys/fs/cgroup", "cgroup", "cgroup", "ro")), "extra", "mounts",
        differs="a cgroup mount on this hybrid host: a read-only tmpfs (source cgroup) plus the cgroup2 hierarchy at "
                "/sys/fs/cgroup/unified, the cgroups under /pyrt/ID; runc 1.5: a rw nosuid,nodev,noexec tmpfs, the v1 "
                "hierarchies only, the cgroups at /ID"),
    row("mounts/overlay", Scenario("overlay", overlay), "extra", "mounts"),
    row("mounts/unknown-type", Scenario("nosuchfs", mount("/mnt/x", "nosuchfs", "x")), "error"),
    # mounts: options on a bind mount
    *(row(f"mounts/bind-{opt}", bind("/mnt/vol", opt), "extra", "mounts") for opt in
      ("ro", "nosuid", "nodev", "noexec", "noatime", "nodiratime", "strictatime", "relatime", "nosymfollow",
       "rro", "rnosuid", "rnoexec", "rnodev", "rnoatime", "rprivate", "rshared", "rslave", "runbindable", "private",
       "shared", "slave", "unbindable")),
    row("mounts/bind-rw-under-a-ro-bind", Scenario("bind-ro-rw", mounts_of(
        ("/mnt/a", "bind", "@vol", "bind", "ro"), ("/mnt/a/sub", "bind", "@vol", "bind", "rw"))), "error"),
    row("mounts/bind-options-clear-the-source's-flags", Scenario("bind-clear", flagged_source(
        "rw", "suid", "dev", "exec", "atime"), deleted=unmount_source), "mounts"),
    row("mounts/bind-data-options-refused", bind("/mnt/vol", "mode=755", "size=1k"), "error"),
    row("mounts/bind-unknown-option", bind("/mnt/vol", "bogus"), "error"),
    row("mounts/tmpfs-options", tmpfs("/mnt/t", "ro", "nosuid", "nodev", "noexec", "noatime", "sync", "dirsync"),
        "extra", "mounts"),
    row("mounts/tmpfs-bad-data", tmpfs("/mnt/t", "bogus=1"), "error"),
    row("mounts/tmpcopyup", Scenario("tmpcopyup", mount("/etc", "tmpfs", "tmpfs", "tmpcopyup")), "extra", "mounts"),
    row("mounts/remount-option", tmpfs("/mnt/t", "remount"), "stage"),
    # mounts: destinations
    row("mounts/destination-nested-missing", bind("/a/b/c"), "extra", "mounts"),
    row("mounts/destination-relative", Scenario("dest-relative", mount("mnt/rel", "tmpfs", "tmpfs")), "extra",
        "mounts"),
    row("mounts/destination-through-symlink", Scenario("dest-symlink", mount("/link/x", "tmpfs", "tmpfs"),
                                                       rootfs=symlink("/link", "/real", "/real")), "extra", "mounts"),
    row("mounts/destination-absolute-symlink-escape", Scenario("dest-escape", mount("/esc/x", "tmpfs", "tmpfs"),
                                                               rootfs=symlink("/esc", "/../../../../tmp")), "stage"),
    row("mounts/destination-with-rootfs-path-prefix", Scenario("dest-rootfs-prefix", lambda c, b: mount(
        str(b / "rootfs" / "mnt" / "p"), "tmpfs", "tmpfs")(c, b)), "stage", "mountinfo"),
    row("mounts/over-/dev-ro-then-/dev/pts", Scenario("dev-ro", edit(lambda c: c["mounts"][1]["options"].append("ro"))),
        "stage", "mounts"),
    row("mounts/bind-missing-source", Scenario("bind-missing", mount("/mnt/x", "bind", "/nosuch", "bind")), "error"),
    row("mounts/uidMappings-idmapped", Scenario("idmap", mount("/mnt/vol", "bind", "@vol", "bind",
                                                               uidMappings=[{"containerID": 0, "hostID": 1000,
                                                                             "size": 1}],
                                                               gidMappings=[{"containerID": 0, "hostID": 1000,
                                                                             "size": 1}])), "stage", "extra"),
    row("create --no-pivot", Scenario("no-pivot", create_args=("--no-pivot",)), "stage", "mounts"),
    # hostname, domainname
    row("hostname", Scenario("hostname", edit(lambda c: c.update(hostname="h.example"))), "uts"),
    row("domainname", Scenario("domainname", edit(lambda c: c.update(domainname="example.org"))), "uts"),
    row("hostname/none-keeps-the-host's", Scenario("no-hostname", edit(lambda c: c.pop("hostname"))), "stage"),
    # (the host's own name: were it accepted, the host's hostname would not change)
    row("hostname/without-uts-namespace", Scenario("hostname-no-uts", edit(lambda c: (without_ns("uts")(c), c.update(
        hostname=os.uname().nodename)))), "error"),
    row("hostname/joined-uts-namespace", Scenario("hostname-joined-uts", hostname_in_joined_uts,
                                                  deleted=stop_uts_holder),
        "stage", "uts"),
    # hooks: where and with what each kind runs
    *(row(f"hooks.{kind}", hook(kind), "host.hooks", "extra", differs=HOOK_DIFFERS.get(kind)) for kind in HOOKS),
    *(row(f"hooks.{kind}/failing", failing_hook(kind), "error", f"words:error running {kind} hook #0",
          differs=FAILING_DIFFERS.get(kind)) for kind in HOOKS),
    row("hooks/timeout", Scenario("hook-timeout", edit(lambda c: c.update(hooks={"createRuntime": [
        {"path": "/bin/sh", "args": ["sh", "-c", "sleep 5"], "timeout": 1}]}))), "error",
        "words:error running createRuntime hook #0: hook ran past specified timeout of 1.0s"),
    row("hooks/missing-path", Scenario("hook-missing", edit(lambda c: c.update(hooks={"prestart": [
        {"path": "/nosuch"}]}))), "error", "words:error running prestart hook #0"),
]


@pytest.mark.parametrize(("scenario", "keys"), ROWS)
def test_mounts_hooks(differ, scenario, keys):
    compare(differ(scenario), keys)
