"""config.json: read and validate it once into plain typed data.

Everything later (the plan, cgroups, hooks, networking) reads these objects, never the JSON.
Every error names the file and the field: `config.json: process.args: must be ...`.
Fields pyrt cannot honour are refused here, never ignored.
"""

from __future__ import annotations

import os

from pyrt import jsonio
from pyrt.errors import PyrtError

#: Versions of the runtime-spec whose configs pyrt accepts.
MIN_VERSION, MAX_VERSION = (1, 0, 0), (1, 3)

NAMESPACES = ("pid", "network", "mount", "ipc", "uts", "cgroup", "user", "time")


class ConfigError(PyrtError):
    pass


class Mount:
    __slots__ = ("destination", "type", "source", "options")

    def __init__(self, destination: str, type: str, source: str, options: list[str]) -> None:
        self.destination, self.type, self.source, self.options = destination, type, source, options


class Device:
    __slots__ = ("path", "type", "major", "minor", "file_mode", "uid", "gid")

    def __init__(self, path: str, type: str, major: int, minor: int, file_mode: int, uid: int, gid: int) -> None:
        self.path, self.type, self.major, self.minor = path, type, major, minor
        self.file_mode, self.uid, self.gid = file_mode, uid, gid


class Hook:
    __slots__ = ("path", "args", "env", "timeout")

    def __init__(self, path: str, args: list[str], env: list[str], timeout: int | None) -> None:
        self.path, self.args, self.env, self.timeout = path, args, env, timeout


class Process:
    __slots__ = (
        "terminal", "console_size", "args", "env", "cwd", "uid", "gid", "umask", "additional_gids",
        "capabilities", "rlimits", "no_new_privileges", "oom_score_adj",
    )

    def __init__(self) -> None:
        self.terminal = False
        self.console_size: tuple[int, int] = (0, 0)  # rows, columns
        self.args: list[str] = []
        self.env: list[str] = []
        self.cwd = "/"
        self.uid = self.gid = 0
        self.umask: int | None = None
        self.additional_gids: list[int] = []
        #: set name ("bounding", "effective", ...) -> capability names; absent set = empty
        self.capabilities: dict[str, list[str]] = {}
        self.rlimits: list[tuple[str, int, int]] = []
        self.no_new_privileges = False
        self.oom_score_adj: int | None = None


class Spec:
    """A validated config.json. Paths are absolute (root.path resolved against the bundle)."""

    __slots__ = (
        "bundle", "oci_version", "root", "root_readonly", "hostname", "domainname", "process",
        "mounts", "hooks", "annotations", "namespaces", "uid_mappings", "gid_mappings", "devices",
        "cgroups_path", "resources", "rootfs_propagation", "masked_paths", "readonly_paths",
        "sysctl", "seccomp", "personality",
    )

    def __init__(self) -> None:
        self.bundle = self.oci_version = self.root = ""
        self.root_readonly = False
        self.hostname: str | None = None
        self.domainname: str | None = None
        self.process: Process | None = None
        self.mounts: list[Mount] = []
        self.hooks: dict[str, list[Hook]] = {}
        self.annotations: dict[str, str] = {}
        #: namespace type -> path to join, or None for a new one
        self.namespaces: dict[str, str | None] = {}
        self.uid_mappings: list[tuple[int, int, int]] = []
        self.gid_mappings: list[tuple[int, int, int]] = []
        self.devices: list[Device] = []
        self.cgroups_path: str | None = None
        #: linux.resources as given; pyrt.resources validates it and the cgroup applies it
        self.resources: dict = {}
        self.rootfs_propagation: str | None = None
        self.masked_paths: list[str] = []
        self.readonly_paths: list[str] = []
        self.sysctl: dict[str, str] = {}
        self.seccomp: dict | None = None
        self.personality: dict | None = None


# ----------------------------------------------------------------------------- field readers


class _Reader:
    """Typed access to one JSON object, with errors naming `file: path.to.field`."""

    def __init__(self, obj: object, where: str, file: str = "config.json") -> None:
        self.file, self.where = file, where
        if not isinstance(obj, dict):
            self.fail("must be an object")
        self.obj: dict = obj

    def fail(self, msg: str, key: str | None = None) -> None:
        field = f"{self.where}.{key}" if key and self.where else key or self.where
        raise ConfigError(f"{self.file}: {field}: {msg}" if field else f"{self.file}: {msg}")

    def child(self, key: str, required: bool = False) -> _Reader | None:
        if key not in self.obj or self.obj[key] is None:
            if required:
                self.fail("is required", key)
            return None
        return _Reader(self.obj[key], f"{self.where}.{key}" if self.where else key, self.file)

    def get(self, key: str, kind: type | tuple, default: object = None, required: bool = False):
        value = self.obj.get(key)
        if value is None:
            if required:
                self.fail("is required", key)
            return default
        if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
            self.fail("must be an integer", key)
        if not isinstance(value, kind):
            names = {str: "a string", bool: "true or false", list: "an array", dict: "an object"}
            self.fail(f"must be {names.get(kind, 'a number')}", key)
        return value

    def strings(self, key: str, required: bool = False, nonempty: bool = False) -> list[str]:
        value = self.get(key, list, [], required)
        if not all(isinstance(v, str) for v in value) or (nonempty and not value):
            self.fail("must be " + ("a non-empty " if nonempty else "an ") + "array of strings", key)
        return value

    def uint(self, key: str, default: int = 0, bits: int = 32) -> int:
        value = self.get(key, int, default)
        if not 0 <= value < 1 << bits:
            self.fail(f"must be between 0 and {(1 << bits) - 1}", key)
        return value

    def items(self, key: str) -> list[_Reader]:
        value = self.get(key, list, [])
        base = f"{self.where}.{key}" if self.where else key
        return [_Reader(v, f"{base}[{i}]", self.file) for i, v in enumerate(value)]

    def refuse(self, key: str, what: str) -> None:
        """Refuse a field pyrt does not implement, unless it is empty."""
        if self.obj.get(key) not in (None, "", [], {}):
            self.fail(f"{what} is not supported by pyrt", key)


# ----------------------------------------------------------------------------- loading


def load(bundle: str) -> Spec:
    """Read `<bundle>/config.json` and validate it."""
    bundle = os.path.abspath(bundle)
    try:
        obj = jsonio.load_file(os.path.join(bundle, "config.json"))
    except PyrtError as e:
        raise ConfigError(str(e)) from None
    return parse(obj, bundle)


def _version(r: _Reader) -> str:
    v = r.get("ociVersion", str, required=True)
    core = v.split("-")[0].split("+")[0].split(".")
    try:
        nums = tuple(int(x) for x in core)
    except ValueError:
        nums = ()
    if len(nums) != 3 or not nums >= MIN_VERSION or nums[:2] > MAX_VERSION:
        r.fail(f'unsupported version "{v}" (pyrt accepts 1.0.0 up to 1.3.x)', "ociVersion")
    return v


def parse(obj: object, bundle: str) -> Spec:
    r = _Reader(obj, "")
    s = Spec()
    s.bundle = bundle
    s.oci_version = _version(r)

    root = r.child("root", required=True)
    path = root.get("path", str, required=True)
    if not path:
        root.fail("must not be empty", "path")
    s.root = os.path.normpath(os.path.join(bundle, path))
    s.root_readonly = root.get("readonly", bool, False)
    if not os.path.isdir(s.root):
        why = "not a directory" if os.path.lexists(s.root) else "no such file or directory"
        root.fail(f"{s.root}: {why}", "path")

    s.hostname = r.get("hostname", str)
    s.domainname = r.get("domainname", str)
    proc = r.child("process")
    s.process = _process(proc) if proc else None
    s.mounts = [_mount(m) for m in r.items("mounts")]
    s.hooks = _hooks(r)
    ann = r.get("annotations", dict, {})
    if not all(isinstance(v, str) for v in ann.values()):
        r.fail("values must be strings", "annotations")
    s.annotations = ann
    linux = r.child("linux")
    if linux:
        _linux(linux, s)
    for key in ("solaris", "windows", "vm", "zos"):
        r.refuse(key, f"the {key} platform")
    return s


def load_process(obj: object, file: str) -> Process:
    """A process object outside config.json (`exec`'s process.json), validated the same way;
    errors name `file`."""
    return _process(_Reader(obj, "", file))


def _process(p: _Reader) -> Process:
    proc = Process()
    proc.terminal = p.get("terminal", bool, False)
    size = p.child("consoleSize")
    if size:
        proc.console_size = (size.uint("height"), size.uint("width"))
    proc.args = p.strings("args", required=True, nonempty=True)
    proc.env = p.strings("env")
    for i, e in enumerate(proc.env):
        if "=" not in e:
            p.fail(f'"{e}" is not KEY=VALUE', f"env[{i}]")
    proc.cwd = p.get("cwd", str, required=True)
    if not proc.cwd.startswith("/"):
        p.fail("must be an absolute path", "cwd")
    user = p.child("user")
    if user:
        proc.uid, proc.gid = user.uint("uid"), user.uint("gid")
        proc.umask = user.get("umask", int)
        if proc.umask is not None and not 0 <= proc.umask <= 0o777:
            user.fail("must be between 0 and 0777", "umask")
        gids = user.get("additionalGids", list, [])
        if not all(isinstance(g, int) and not isinstance(g, bool) and 0 <= g < 1 << 32 for g in gids):
            user.fail("must be an array of group ids", "additionalGids")
        proc.additional_gids = gids
        user.refuse("username", "process.user.username (Windows)")
    caps = p.child("capabilities")
    if caps:
        from pyrt import capabilities

        for kind in capabilities.SETS:
            names = caps.strings(kind)
            for name in names:
                if capabilities.number(name) is None:
                    caps.fail(f'unknown capability "{name}"', kind)
            proc.capabilities[kind] = names
    for rl in p.items("rlimits"):
        kind = rl.get("type", str, required=True)
        from pyrt import process

        if kind not in process.RLIMITS:
            rl.fail(f'unknown rlimit "{kind}"', "type")
        proc.rlimits.append((kind, rl.uint("soft", bits=64), rl.uint("hard", bits=64)))
    proc.no_new_privileges = p.get("noNewPrivileges", bool, False)
    proc.oom_score_adj = p.get("oomScoreAdj", int)
    if proc.oom_score_adj is not None and not -1000 <= proc.oom_score_adj <= 1000:
        p.fail("must be between -1000 and 1000", "oomScoreAdj")
    p.refuse("apparmorProfile", "AppArmor")
    p.refuse("selinuxLabel", "SELinux")
    p.refuse("ioPriority", "process.ioPriority")
    p.refuse("scheduler", "process.scheduler")
    p.refuse("execCPUAffinity", "process.execCPUAffinity")
    return proc


def _mount(m: _Reader) -> Mount:
    dest = m.get("destination", str, required=True)
    if not dest:
        m.fail("must not be empty", "destination")
    mount = Mount(os.path.normpath("/" + dest.lstrip("/")), m.get("type", str, ""), m.get("source", str, ""),
                  m.strings("options"))
    m.refuse("uidMappings", "idmapped mounts")
    m.refuse("gidMappings", "idmapped mounts")
    return mount


HOOK_KINDS = ("prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop")


def _hooks(r: _Reader) -> dict[str, list[Hook]]:
    hooks = r.child("hooks")
    if not hooks:
        return {}
    out = {}
    for kind in hooks.obj:
        if kind not in HOOK_KINDS:
            hooks.fail(f'unknown hook kind "{kind}"')
        items = []
        for h in hooks.items(kind):
            path = h.get("path", str, required=True)
            if not path.startswith("/"):
                h.fail("must be an absolute path", "path")
            timeout = h.get("timeout", int)
            if timeout is not None and timeout <= 0:
                h.fail("must be a positive number of seconds", "timeout")
            items.append(Hook(path, h.strings("args"), h.strings("env"), timeout))
        out[kind] = items
    return out


PROPAGATIONS = ("private", "rprivate", "slave", "rslave", "shared", "rshared", "unbindable", "runbindable")


#: The st_mode file type bits of each linux.devices type.
_S_IFMT = {"c": 0o020000, "u": 0o020000, "b": 0o060000, "p": 0o010000}


def _linux(lx: _Reader, s: Spec) -> None:
    for ns in lx.items("namespaces"):
        kind = ns.get("type", str, required=True)
        if kind not in NAMESPACES:
            ns.fail(f'unknown namespace type "{kind}"', "type")
        if kind in s.namespaces:
            ns.fail(f'namespace "{kind}" is listed twice', "type")
        s.namespaces[kind] = ns.get("path", str) or None
    for key, out in (("uidMappings", s.uid_mappings), ("gidMappings", s.gid_mappings)):
        for m in lx.items(key):
            out.append((m.uint("containerID"), m.uint("hostID"), m.uint("size")))
    for d in lx.items("devices"):
        path = d.get("path", str, required=True)
        kind = d.get("type", str, required=True)
        if kind not in ("c", "b", "u", "p"):
            d.fail(f'unknown device type "{kind}"', "type")
        if not path.startswith("/dev/") or ".." in path.split("/"):
            d.fail("must be a path under /dev", "path")
        mode = d.get("fileMode", int, 0o666)
        if mode >= 0 and mode & 0o170000 == _S_IFMT[kind]:
            mode &= 0o7777  # podman sends the whole st_mode (S_IFCHR|0620): runc accepts it
        if not 0 <= mode <= 0o7777:
            d.fail("must be a permission mode (file type bits, if any, matching the type)", "fileMode")
        major = d.get("major", int, 0 if kind == "p" else None, required=kind != "p")
        minor = d.get("minor", int, 0 if kind == "p" else None, required=kind != "p")
        s.devices.append(Device(path, "c" if kind == "u" else kind, major, minor, mode, d.uint("uid"), d.uint("gid")))
    s.cgroups_path = lx.get("cgroupsPath", str) or None
    s.resources = lx.get("resources", dict, {})
    prop = lx.get("rootfsPropagation", str)
    if prop and prop not in PROPAGATIONS:
        lx.fail(f'unknown propagation "{prop}"', "rootfsPropagation")
    s.rootfs_propagation = prop or None
    s.masked_paths = lx.strings("maskedPaths")
    s.readonly_paths = lx.strings("readonlyPaths")
    sysctl = lx.get("sysctl", dict, {})
    for key, value in sysctl.items():
        if not isinstance(value, str) or not key or ".." in key or key.startswith(("/", ".")):
            lx.fail(f'bad sysctl "{key}"', "sysctl")
    s.sysctl = sysctl
    s.seccomp = lx.get("seccomp", dict)
    s.personality = lx.get("personality", dict)
    lx.refuse("intelRdt", "Intel RDT")
    lx.refuse("mountLabel", "SELinux")
    lx.refuse("timeOffsets", "the time namespace")
    lx.refuse("netDevices", "linux.netDevices")
    lx.refuse("memoryPolicy", "linux.memoryPolicy")
