"""User namespaces, the parent's half: the id maps of a new one, the check of a joined one.

A new user namespace comes with clone3 (the kernel makes it first, and owns the container's other
new namespaces by it). Its child starts with no ids in it: before it becomes pyrt-init it waits
in native/spawn.c for the parent to write /proc/PID/uid_map and gid_map (only a process outside
the namespace with CAP_SETUID/CAP_SETGID over it can map other ids than its own) and to say so
(protocol.MAPPED); it then becomes the namespace's root (setresgid, setresuid 0) so that its
execve keeps the full capabilities it has there.
"""

from __future__ import annotations

import os

from pyrt import protocol
from pyrt.errors import PyrtError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pyrt.spec import Spec

#: (containerID, hostID, size) triples, as nsgate.mappings reads them
Mappings = list

def map_text(maps: Mappings) -> bytes:
    """A uid_map/gid_map as the kernel takes it: all lines in one write."""
    return "".join(f"{c} {h} {n}\n" for c, h, n in maps).encode()


def how(uid_maps: Mappings, gid_maps: Mappings) -> str:
    """How the maps get written. "write": by root, with setgroups kept (the container's process
    needs it for its additionalGids). Run by a user: "deny" when they map only its own uid and gid
    (the kernel lets a user write that, once setgroups is denied); else "helpers": the setuid
    newuidmap and newgidmap (Debian's uidmap) write them, within the user's /etc/subuid and
    /etc/subgid ranges."""
    if os.geteuid() == 0:
        return "write"
    own = len(uid_maps) == len(gid_maps) == 1 and uid_maps[0][1:] == (os.geteuid(), 1) \
        and gid_maps[0][1:] == (os.getegid(), 1)
    return "deny" if own else "helpers"


def write_maps(pid: int, sock: int, uid_maps: Mappings, gid_maps: Mappings, way: str) -> None:
    """Map the ids of the new user namespace of the child `pid` (waiting in spawn.c) the `way`
    how() says, then let it go on by `sock`, its sync socket."""
    proc = f"/proc/{pid}"
    if way == "helpers":
        _helpers(pid, uid_maps, gid_maps)
    writes = [] if way == "helpers" else [("uid_map", map_text(uid_maps))]
    if way == "deny":
        writes.append(("setgroups", b"deny"))
    if way != "helpers":
        writes.append(("gid_map", map_text(gid_maps)))
    for name, data in writes:
        try:
            fd = os.open(f"{proc}/{name}", os.O_WRONLY | os.O_CLOEXEC)
            try:
                os.write(fd, data)
            finally:
                os.close(fd)
        except OSError as e:
            raise PyrtError(f"write {proc}/{name}: {os.strerror(e.errno).lower()}") from None
    try:
        os.write(sock, protocol.MAPPED)
    except OSError as e:
        raise PyrtError(f"unable to start container process: {os.strerror(e.errno).lower()}") from None


def _helpers(pid: int, uid_maps: Mappings, gid_maps: Mappings) -> None:
    import subprocess

    for tool, maps in (("newuidmap", uid_maps), ("newgidmap", gid_maps)):
        argv = [tool, str(pid), *(str(x) for m in maps for x in m)]
        try:
            r = subprocess.run(argv, capture_output=True, text=True, timeout=30)
        except OSError as e:
            raise PyrtError(f"{tool}: {os.strerror(e.errno).lower()} (Debian's uidmap package maps ids for a user)") \
                from None
        if r.returncode != 0:
            why = (r.stderr.strip().splitlines() or [f"exit status {r.returncode}"])[-1]
            raise PyrtError(f"{tool}: {why}")


def read_maps(fd: int) -> tuple[Mappings, Mappings]:
    """The uid and gid maps of the user namespace behind `fd`, read by a child that joins it
    (a namespace's maps are seen through a process inside it)."""
    r, w = os.pipe2(os.O_CLOEXEC)
    pid = os.fork()
    if pid == 0:  # pragma: no cover (the child)
        try:
            import ctypes  # os.setns is Python 3.12's

            from pyrt.kernel import CLONE

            os.close(r)
            if ctypes.CDLL(None, use_errno=True).setns(fd, CLONE["user"]) < 0:
                os._exit(1)
            data = b""
            for name in ("uid_map", "gid_map"):
                with open(f"/proc/self/{name}", "rb") as f:
                    data += f.read() + b"\0"
            os.write(w, data)
            os._exit(0)
        except BaseException:
            os._exit(1)
    os.close(w)
    chunks = []
    while True:
        chunk = os.read(r, 65536)
        if not chunk:
            break
        chunks.append(chunk)
    os.close(r)
    _, status = os.waitpid(pid, 0)
    if status != 0:
        raise PyrtError("config.json: linux.namespaces: cannot read the mappings of the user namespace")
    uid, gid = b"".join(chunks).split(b"\0")[:2]
    return _parse(uid), _parse(gid)


def _parse(text: bytes) -> Mappings:
    return [tuple(int(x) for x in line.split()) for line in text.decode().splitlines() if line.strip()]


def check_joined(spec: Spec, fd: int) -> None:
    """As runc: mappings given with a joined user namespace must be the namespace's own (in any
    order); none given is fine."""
    if not spec.uid_mappings and not spec.gid_mappings:
        return
    uid, gid = read_maps(fd)
    for key, want, have in (("uidMappings", spec.uid_mappings, uid), ("gidMappings", spec.gid_mappings, gid)):
        if want and sorted(want) != sorted(have):
            raise PyrtError(f"config.json: linux.{key}: do not match the mappings of the joined user namespace "
                            f"{spec.namespaces['user']}")


def mapping_ns(uid_maps: Mappings, gid_maps: Mappings) -> int:
    """An fd of a new user namespace with these maps (for idmapped mounts): a child unshares it
    and waits; we map it, keep its namespace by fd, and let the child go."""
    import ctypes  # os.unshare is Python 3.12's; only idmapped mounts come here

    from pyrt.kernel import CLONE

    ready_r, ready_w = os.pipe2(os.O_CLOEXEC)
    hold_r, hold_w = os.pipe2(os.O_CLOEXEC)
    pid = os.fork()
    if pid == 0:  # pragma: no cover (the child)
        try:
            os.close(ready_r)
            os.close(hold_w)
            if ctypes.CDLL(None, use_errno=True).unshare(CLONE["user"]) == 0:
                os.write(ready_w, b"1")
                os.read(hold_r, 1)  # until the parent has the namespace
            os._exit(0)
        except BaseException:
            os._exit(1)
    os.close(ready_w)
    os.close(hold_r)
    try:
        if os.read(ready_r, 1) != b"1":
            raise PyrtError("make a user namespace for an idmapped mount: unshare failed")
        for name, maps in (("uid_map", uid_maps), ("gid_map", gid_maps)):
            fd = os.open(f"/proc/{pid}/{name}", os.O_WRONLY | os.O_CLOEXEC)
            try:
                os.write(fd, map_text(maps))
            finally:
                os.close(fd)
        return os.open(f"/proc/{pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
    except OSError as e:
        raise PyrtError(f"make a user namespace for an idmapped mount: {os.strerror(e.errno).lower()}") from None
    finally:
        os.close(ready_r)
        os.close(hold_w)
        os.waitpid(pid, 0)


def idmapped_trees(trees: list) -> dict[str, int]:
    """The detached idmapped binds (parent_plan.idmapped_trees: index, source, uid maps, gid maps,
    rbind, ridmap), by fd slot (mounts.idmap_slot): one user namespace per set of maps."""
    from pyrt import mounts

    try:
        from pyrt._native import lib
    except ImportError as e:
        raise PyrtError(f"load pyrt's native module: {e}") from None
    out: dict[str, int] = {}
    namespaces: dict[tuple, int] = {}
    try:
        for i, source, uid_maps, gid_maps, rbind, ridmap in trees:
            key = (tuple(uid_maps), tuple(gid_maps))
            if key not in namespaces:
                namespaces[key] = mapping_ns(uid_maps, gid_maps)
            fd = lib.pyrt_idmapped_tree(os.fsencode(source), rbind, ridmap, namespaces[key])
            if fd < 0:
                why = os.strerror(-fd).lower()
                if -fd == 22:  # EINVAL
                    why = "its filesystem does not support idmapped mounts (or it is idmapped already)"
                raise PyrtError(f"config.json: mounts[{i}]: idmapped mount of {source}: {why}")
            out[mounts.idmap_slot(i)] = fd
        return out
    except BaseException:
        for fd in out.values():
            os.close(fd)
        raise
    finally:
        for fd in namespaces.values():
            os.close(fd)


def check_host_devices(devices: list) -> None:
    """In a user namespace the container's device nodes are the host's, bound (devices.steps): each
    must exist on the host as the node config.json describes (type, major, minor), or a config
    could name /dev/x and get whatever the host has there."""
    import stat

    for d in devices:
        try:
            st = os.stat(d.path)
        except OSError as e:
            raise PyrtError(f"config.json: linux.devices: {d.path}: {os.strerror(e.errno).lower()} on the host (in a "
                            "user namespace the host's node is bound in)") from None
        kind = "c" if stat.S_ISCHR(st.st_mode) else "b" if stat.S_ISBLK(st.st_mode) else "p" \
            if stat.S_ISFIFO(st.st_mode) else "?"
        have = (kind, os.major(st.st_rdev), os.minor(st.st_rdev)) if kind != "p" else ("p", 0, 0)
        if have != (d.type, d.major, d.minor):
            raise PyrtError(f"config.json: linux.devices: {d.path} on the host is {have[0]} {have[1]}:{have[2]}, not "
                            f"{d.type} {d.major}:{d.minor} (in a user namespace the host's node is bound in)")
