"""An image's config → a bundle's config.json, the way `umoci unpack` converts it.

The image says what to run (Entrypoint + Cmd, Env, WorkingDir, User, Labels, ExposedPorts,
Volumes, StopSignal); everything else comes from `pyrt spec`'s defaults (pyrt/defaults.py).
User and group names are looked up in the image's own /etc/passwd and /etc/group, read inside
the unpacked root as the container would see them (symlinks resolved in the root, regular files
only, bounded size). Two deliberate differences from umoci: `process.terminal` is false (a
server image must run without a terminal, as `docker run` without `-t`), and HOME from
/etc/passwd is added only when the image's Env does not set it (as docker and podman do).
"""

from __future__ import annotations

from pyrt import defaults, layers
from pyrt.errors import PyrtError

ANNOTATION = "org.opencontainers.image."
EXPOSED_PORTS = ANNOTATION + "exposedPorts"
MAX_DB = 4 << 20  # the largest /etc/passwd or /etc/group read


def runtime_config(image: dict, root_fd: int) -> dict:
    """config.json for the image whose rootfs is open as `root_fd`."""
    conf = image.get("config") or {}
    if not isinstance(conf, dict):
        raise PyrtError("image config: config is not an object")
    spec = defaults.config()
    process = spec["process"]
    process["terminal"] = False
    spec["root"] = {"path": "rootfs"}  # the image's own copy: writable, as in docker run

    args = _strings(conf, "Entrypoint") + _strings(conf, "Cmd")
    if args:
        process["args"] = args
    env = {}
    for item in process["env"] + _strings(conf, "Env"):
        name, eq, _ = item.partition("=")
        if not eq or not name:
            raise PyrtError(f"image config: Env entry {item!r} is not NAME=VALUE")
        env[name] = item
    workdir = conf.get("WorkingDir") or "/"
    if not isinstance(workdir, str):
        raise PyrtError("image config: WorkingDir is not a string")
    process["cwd"] = workdir if workdir.startswith("/") else "/" + workdir

    user = conf.get("User") or ""
    if not isinstance(user, str):
        raise PyrtError("image config: User is not a string")
    uid, gid, groups, home = resolve_user(user, root_fd)
    process["user"] = {"uid": uid, "gid": gid, **({"additionalGids": groups} if groups else {})}
    env.setdefault("HOME", f"HOME={home}")
    process["env"] = list(env.values())

    annotations = {}
    labels = conf.get("Labels") or {}
    if not isinstance(labels, dict):
        raise PyrtError("image config: Labels is not an object")
    annotations.update({k: v for k, v in labels.items() if isinstance(v, str)})
    ports = conf.get("ExposedPorts") or {}
    if not isinstance(ports, dict):
        raise PyrtError("image config: ExposedPorts is not an object")
    for key, value in (("os", image.get("os")), ("architecture", image.get("architecture")),
                       ("author", image.get("author")), ("created", image.get("created")),
                       ("stopSignal", conf.get("StopSignal")), ("exposedPorts", ",".join(sorted(ports)))):
        if value and isinstance(value, str):
            annotations[ANNOTATION + key] = value
    if annotations:
        spec["annotations"] = annotations

    volumes = conf.get("Volumes") or {}
    if not isinstance(volumes, dict):
        raise PyrtError("image config: Volumes is not an object")
    for path in sorted(volumes):  # anonymous volumes: an empty tmpfs each, as umoci does
        spec["mounts"].append({"destination": path, "type": "tmpfs", "source": "none",
                               "options": ["rw", "nosuid", "nodev", "noexec", "relatime"]})
    return spec


def _strings(conf: dict, key: str) -> list[str]:
    value = conf.get(key) or []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise PyrtError(f"image config: {key} is not a list of strings")
    return value


def _db(root_fd: int, path: str) -> list[list[str]]:
    """The colon-separated records of /etc/passwd or /etc/group (none if the image has no file)."""
    data = layers.open_in_root(root_fd, path, MAX_DB)
    if data is None:
        return []
    lines = data.decode(errors="replace").splitlines()
    return [line.split(":") for line in lines if line and not line.startswith("#")]


def _id(text: str) -> int | None:
    return int(text) if text.isascii() and text.isdigit() and int(text) < 1 << 32 else None


def resolve_user(spec: str, root_fd: int) -> tuple[int, int, list[int], str]:
    """`user[:group]` (names or ids) → (uid, gid, supplementary gids, home), as runc's libcontainer
    and umoci resolve it: a user found by name or id gives its gid, home and the groups listing it
    as a member; an explicit group replaces the gid (and then no supplementary groups)."""
    user, _, group = spec.partition(":")
    passwd = [r for r in _db(root_fd, "/etc/passwd") if len(r) >= 7]
    uid, gid, home, matched = 0, 0, "/", ""
    want_uid = _id(user)
    for r in passwd:
        if (r[0] == user) if user and want_uid is None else (_id(r[2]) == (want_uid or 0)):
            if _id(r[2]) is None or _id(r[3]) is None:
                continue
            matched, uid, gid, home = r[0], _id(r[2]), _id(r[3]), r[5] or "/"
            break
    else:
        if user and want_uid is None:
            raise PyrtError(f"image config: User {spec!r}: no user {user!r} in the image's /etc/passwd")
        uid = want_uid or 0
    groups: list[int] = []
    if group or matched:
        records = [r for r in _db(root_fd, "/etc/group") if len(r) >= 4 and _id(r[2]) is not None]
        if group:
            want_gid = _id(group)
            found = [r for r in records if (_id(r[2]) == want_gid if want_gid is not None else r[0] == group)]
            if found:
                gid = _id(found[0][2])
            elif want_gid is not None:
                gid = want_gid
            else:
                raise PyrtError(f"image config: User {spec!r}: no group {group!r} in the image's /etc/group")
        else:
            groups = [_id(r[2]) for r in records if matched in r[3].split(",")]
    return uid, gid, groups, home


def exposed_ports(annotations: dict[str, str]) -> list[str]:
    """`pyrt run -P`: every port the image exposes, published on the same host port."""
    ports = [p.strip() for p in annotations.get(EXPOSED_PORTS, "").split(",") if p.strip()]
    if not ports:
        raise PyrtError(f"-P: config.json exposes no ports (annotation {EXPOSED_PORTS})")
    out = []
    for port in ports:
        number, _, proto = port.partition("/")
        out.append(f"{number}:{number}/{proto or 'tcp'}")
    return out
