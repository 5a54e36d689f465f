"""What pyrt writes without being asked: `pyrt spec`'s config.json and `pyrt features`."""

from __future__ import annotations

from pyrt import SPEC_VERSION

DEFAULT_CAPS = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
MASKED = ["/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list",
          "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware", "/proc/scsi"]
READONLY = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]


def mounts() -> list[dict]:
    """The standard mounts of a container (the same set runc spec writes)."""
    def m(dest: str, kind: str, source: str, *options: str) -> dict:
        return {"destination": dest, "type": kind, "source": source, "options": list(options)}

    return [
        m("/proc", "proc", "proc"),
        m("/dev", "tmpfs", "tmpfs", "nosuid", "strictatime", "mode=755", "size=65536k"),
        m("/dev/pts", "devpts", "devpts", "nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"),
        m("/dev/shm", "tmpfs", "shm", "nosuid", "noexec", "nodev", "mode=1777", "size=65536k"),
        m("/dev/mqueue", "mqueue", "mqueue", "nosuid", "noexec", "nodev"),
        m("/sys", "sysfs", "sysfs", "nosuid", "noexec", "nodev", "ro"),
        m("/sys/fs/cgroup", "cgroup", "cgroup", "nosuid", "noexec", "nodev", "relatime", "ro"),
    ]


def config() -> dict:
    """A config.json for an interactive `sh` in ./rootfs, as `runc spec` makes it."""
    caps = {k: list(DEFAULT_CAPS) for k in ("bounding", "effective", "permitted", "ambient")}
    return {
        "ociVersion": SPEC_VERSION,
        "process": {
            "terminal": True,
            "user": {"uid": 0, "gid": 0},
            "args": ["sh"],
            "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"],
            "cwd": "/",
            "capabilities": caps,
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": True,
        },
        "root": {"path": "rootfs", "readonly": True},
        "hostname": "pyrt",
        "mounts": mounts(),
        "linux": {
            "resources": {"devices": [{"allow": False, "access": "rwm"}]},
            "namespaces": [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount", "cgroup")],
            "maskedPaths": list(MASKED),
            "readonlyPaths": list(READONLY),
        },
    }


def rootless(config: dict) -> dict:
    """`spec --rootless`, as runc's: a user namespace mapping the caller's uid and gid to root,
    no network namespace (a user gets no link outside), no cgroup namespace nor limits, the
    host's /sys bound (sysfs needs a network namespace of the container's), devpts without gid=5
    (no such group in the namespace)."""
    import os

    lx = config["linux"]
    lx.pop("resources", None)
    lx["uidMappings"] = [{"containerID": 0, "hostID": os.geteuid(), "size": 1}]
    lx["gidMappings"] = [{"containerID": 0, "hostID": os.getegid(), "size": 1}]
    lx["namespaces"] = [{"type": t} for t in ("pid", "ipc", "uts", "mount", "user")]
    for m in config["mounts"]:
        if m["destination"] == "/sys":
            m.update(type="none", source="/sys", options=["rbind", "nosuid", "noexec", "nodev", "ro"])
        elif m["type"] == "devpts":
            m["options"] = [o for o in m["options"] if o != "gid=5"]
    return config


def features() -> dict:
    """The runtime-spec features document: only what this pyrt really does."""
    from pyrt import capabilities, kernel, seccomp, spec

    options = sorted({*kernel.FLAGS, *kernel.PROPAGATION, *kernel.RECURSIVE, "tmpcopyup", "idmap", "ridmap"})
    return {
        "ociVersionMin": "1.0.0",
        "ociVersionMax": "1.3.0",
        "hooks": list(spec.HOOK_KINDS),
        "mountOptions": options,
        "linux": {
            "namespaces": list(spec.NAMESPACES),
            "capabilities": capabilities.all_names(),
            "cgroup": {"v1": True, "v2": True, "systemd": False, "systemdUser": False, "rdma": True},
            "seccomp": {
                "enabled": True,
                "actions": sorted(seccomp.ACTIONS),
                "operators": sorted(seccomp.OPERATORS),
                "archs": sorted(seccomp.usable_archs()),
                "knownFlags": list(seccomp.KNOWN_FLAGS),
                "supportedFlags": list(seccomp.FLAGS),
            },
            "apparmor": {"enabled": False},
            "selinux": {"enabled": False},
            "intelRdt": {"enabled": False},
            "mountExtensions": {"idmap": {"enabled": True}},
            "memoryPolicy": {"modes": sorted(kernel.MPOL_MODES), "flags": sorted(kernel.MPOL_FLAGS)},
            "netDevices": {"enabled": True},
        },
        "annotations": {"org.opencontainers.runc.checkpoint.enabled": "false"},
    }
