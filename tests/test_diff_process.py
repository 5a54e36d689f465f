"""Differential rows, runtime-spec `process`: each field run by pyrt and by runc 1.5, compared on
what the process sees of itself (tests/differential.py). A row marked xfail is a difference
pyrt has today (docs/runc-differences.md); the fix removes the mark."""

from __future__ import annotations

import pytest
from differential import Scenario, compare, edit, row, with_env

pytestmark = pytest.mark.differential

ALL_CAPS = ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_KILL", "CAP_SETUID", "CAP_SETGID", "CAP_NET_RAW",
            "CAP_SYS_ADMIN", "CAP_SYS_NICE"]


def proc(**fields):
    """A scenario edit that sets process fields."""
    return edit(lambda c: c["process"].update(fields))


def user(**fields):
    return edit(lambda c: c["process"]["user"].update(fields))


NOBODY = {"uid": 65534, "gid": 65534}
NICE = {k: ["CAP_SYS_NICE"] for k in ("bounding", "effective", "permitted")}

#: process.scheduler values beyond the rows above: each compared on where it stops and what the
#: shell's scheduling looks like
SCHEDULERS = {
    "SCHED_DEADLINE": {"policy": "SCHED_DEADLINE", "runtime": 1000000, "deadline": 10000000, "period": 10000000},
    "SCHED_OTHER-nice--5": {"policy": "SCHED_OTHER", "nice": -5},
    "SCHED_BATCH-reset-on-fork": {"policy": "SCHED_BATCH", "nice": 3, "flags": ["SCHED_FLAG_RESET_ON_FORK"]},
}
#: ... and values that fail create (the gate's, runc's validation's or the kernel's refusal)
BAD_SCHEDULERS = {
    "SCHED_RR-reset-on-fork-without-rt-runtime": {"policy": "SCHED_RR", "priority": 1,
                                                  "flags": ["SCHED_FLAG_RESET_ON_FORK"]},
    "SCHED_DEADLINE-runtime-above-deadline": {"policy": "SCHED_DEADLINE", "runtime": 20000000, "deadline": 10000000,
                                             "period": 10000000},
    "nice-out-of-range": {"policy": "SCHED_OTHER", "nice": 30},
    "priority-for-SCHED_BATCH": {"policy": "SCHED_BATCH", "priority": 5},
    "runtime-for-SCHED_OTHER": {"policy": "SCHED_OTHER", "runtime": 1000},
    "unknown-policy": {"policy": "SCHED_NOSUCH"},
    "no-policy": {"nice": 1},
    "unknown-flag": {"policy": "SCHED_OTHER", "flags": ["SCHED_FLAG_NOSUCH"]},
}
IO_PRIORITIES = {
    "realtime-0": {"class": "IOPRIO_CLASS_RT", "priority": 0},
}
BAD_IO_PRIORITIES = {
    "priority-8": {"class": "IOPRIO_CLASS_BE", "priority": 8},
    "unknown-class": {"class": "IOPRIO_CLASS_NOSUCH", "priority": 1},
}


def caps(**sets):
    return edit(lambda c: c["process"].__setitem__("capabilities", sets))


def extra(script: str, **fields):
    """The probe, plus `script` run in its `extra` section."""
    def fn(c):
        c["process"].update(fields)
        with_env(c, EXTRA=script)
    return edit(fn)


def args(*argv: str, **fields):
    return proc(args=list(argv), **fields)


def rlimit(*limits: tuple[str, int, int]):
    return edit(lambda c: c["process"].__setitem__("rlimits", [{"type": t, "soft": s, "hard": h}
                                                               for t, s, h in limits]))


BASE = Scenario("base")

ROWS = [
    # the base config: what every other row changes one field of
    row("base/credentials+capabilities", BASE, "status"),
    row("base/limits", BASE, "limits"),
    row("base/env", BASE, "env"),
    row("base/cwd", BASE, "cwd"),
    row("base/fds", BASE, "fds"),
    row("base/oomScoreAdj", BASE, "oom"),
    row("base/sched", BASE, "sched"),
    row("base/exit", BASE, "rc", "stderr"),
    # process.args
    row("args/argv", Scenario("args", args("echo", "a  b", "", "c")), "rc", "stdout"),
    row("args/exit-status", Scenario("exit-3", args("sh", "-c", "exit 3")), "rc"),
    row("args/killed-by-signal", Scenario("self-kill", args("sh", "-c", "kill -9 $$")), "rc"),
    row("args/not-found", Scenario("not-found", args("nosuch")), "error", "message"),
    row("args/absolute-missing", Scenario("abs-missing", args("/nosuch")), "error", "message"),
    row("args/directory", Scenario("dir-exec", args("/bin")), "error", "message"),
    row("args/not-executable", Scenario("not-exec", args("/etc/passwd")), "error", "message"),
    row("args/relative-with-slash", Scenario("relative", args("bin/echo", "x")), "rc", "stdout"),
    row("args/empty", Scenario("no-args", args()), "error"),
    row("args/PATH-from-env", Scenario("path-env", proc(args=["echo", "x"], env=["PATH=/nosuch"])), "error"),
    # process.env
    row("env/duplicate-key", Scenario("env-dup", proc(env=["A=1", "A=2", "PATH=/bin"])), "env"),
    row("env/duplicate-keys-order", Scenario("env-dup-order", proc(env=["A=1", "B=2", "PATH=/bin", "A=3", "B=4",
                                                                        "C=5"])), "env"),
    row("env/HOME-empty", Scenario("env-home-empty", proc(env=["HOME=", "PATH=/bin"])), "env"),
    row("env/HOME-empty-between", Scenario("env-home-between", proc(env=["A=1", "HOME=", "PATH=/bin"], user=NOBODY)),
        "env"),
    row("env/HOME-from-passwd-for-uid", Scenario("env-home-nobody", proc(env=["PATH=/bin"], user=NOBODY)), "env"),
    row("env/no-PATH", Scenario("env-no-path", proc(env=["A=1"], args=["/bin/sh", "-c", "tr '\\0' '\\n' "
                                                                     "</proc/$$/environ"])), "rc", "stdout"),
    row("env/not-KEY=VALUE", Scenario("env-bad", proc(env=["JUSTKEY"])), "error"),
    # keys in another letter case (Go's JSON decoder matches them; the spec names them exactly)
    row("keys-in-other-case", Scenario("key-case", edit(lambda c: c["process"].update(Cwd=c["process"].pop("cwd")))),
        "stage", "cwd", differs='kept (README): a key in another letter case ("Cwd") is an unknown property, '
                               "ignored as the spec says (process.cwd is then missing); runc 1.5 takes it"),
    # process.cwd
    row("cwd/tmp", Scenario("cwd-tmp", proc(cwd="/tmp")), "cwd"),
    row("cwd/missing-is-created", Scenario("cwd-missing", proc(cwd="/tmp/a/b")), "cwd"),
    row("cwd/relative", Scenario("cwd-relative", proc(cwd="tmp")), "error"),
    row("cwd/a-file", Scenario("cwd-file", proc(cwd="/etc/passwd")), "error"),
    row("cwd/root-only-dir-as-nobody", Scenario("cwd-root-only", extra("", cwd="/root", user=NOBODY),
                                                rootfs=lambda r: (r / "root").chmod(0o700)), "rc", "cwd"),
    # process.user
    row("user/uid+gid", Scenario("uid-gid", user(uid=1000, gid=1000)), "status"),
    row("user/additionalGids", Scenario("gids", user(uid=1000, gid=1000, additionalGids=[10, 20, 1000])), "status"),
    row("user/umask", Scenario("umask", user(umask=0o027)), "status"),
    row("user/no-umask", BASE, "status"),
    row("user/username-ignored", Scenario("username", user(username="ignored")), "status",
        differs="process.user.username (Windows) is refused; runc 1.5 ignores it"),
    row("user/uid-without-passwd-entry", Scenario("uid-nopasswd", user(uid=4242, gid=4242)), "status", "env"),
    # process.capabilities
    row("capabilities/bounding-only", Scenario("cap-bounding", caps(bounding=ALL_CAPS)), "status"),
    row("capabilities/effective+permitted", Scenario("cap-eff", caps(bounding=ALL_CAPS, effective=ALL_CAPS,
                                                                      permitted=ALL_CAPS)), "status"),
    row("capabilities/inheritable", Scenario("cap-inh", caps(bounding=ALL_CAPS, permitted=ALL_CAPS,
                                                              inheritable=ALL_CAPS)), "status"),
    row("capabilities/ambient", Scenario("cap-amb", caps(bounding=ALL_CAPS, permitted=ALL_CAPS, inheritable=ALL_CAPS,
                                                          effective=ALL_CAPS, ambient=["CAP_KILL", "CAP_NET_RAW"])),
        "status"),
    row("capabilities/ambient-as-nobody", Scenario("cap-amb-user", edit(lambda c: c["process"].update(
        user={"uid": 65534, "gid": 65534}, capabilities={k: ["CAP_KILL", "CAP_NET_RAW"] for k in
                                                         ("bounding", "permitted", "inheritable", "effective",
                                                          "ambient")}))), "status"),
    row("capabilities/none", Scenario("cap-none", caps()), "status"),
    row("capabilities/unknown-name", Scenario("cap-unknown", caps(bounding=["CAP_NOSUCH", "CAP_KILL"])),
        "stage", "status", differs="kept (README): an unknown capability name is refused; runc 1.5 warns (ignoring "
                                   "unknown or unavailable capabilities) and runs"),
    row("capabilities/lower-case-name", Scenario("cap-lower", caps(bounding=["cap_kill"])), "stage"),
    # process.rlimits
    row("rlimits/several", Scenario("rlimits", rlimit(("RLIMIT_NOFILE", 512, 1024), ("RLIMIT_CORE", 0, 4096),
                                                     ("RLIMIT_NPROC", 100, 200), ("RLIMIT_STACK", 1 << 20, 1 << 22))),
        "limits"),
    row("rlimits/none", Scenario("rlimits-none", rlimit()), "limits"),
    row("rlimits/unknown-type", Scenario("rlimit-unknown", rlimit(("RLIMIT_NOSUCH", 1, 1))), "error"),
    row("rlimits/soft-above-hard", Scenario("rlimit-soft-hard", rlimit(("RLIMIT_NOFILE", 2048, 1024))), "error"),
    row("rlimits/duplicate-type", Scenario("rlimit-dup", rlimit(("RLIMIT_NOFILE", 200, 200),
                                                               ("RLIMIT_NOFILE", 100, 100))), "limits"),
    row("rlimits/above-the-host-hard-limit", Scenario("rlimit-too-high", rlimit(("RLIMIT_NOFILE", 1 << 20, 1 << 20))),
        "error", "words:error setting rlimit type 7: operation not permitted"),
    # process.noNewPrivileges
    row("noNewPrivileges/false", Scenario("nnp-false", proc(noNewPrivileges=False)), "status"),
    # process.oomScoreAdj
    row("oomScoreAdj/500", Scenario("oom-500", proc(oomScoreAdj=500)), "oom"),
    row("oomScoreAdj/-500-without-CAP_SYS_RESOURCE", Scenario("oom-minus", proc(oomScoreAdj=-500)), "error"),
    row("oomScoreAdj/out-of-range", Scenario("oom-range", proc(oomScoreAdj=5000)), "stage"),
    # process.apparmorProfile, selinuxLabel (no LSM of either kind on this host)
    row("apparmorProfile", Scenario("apparmor", proc(apparmorProfile="unconfined")), "stage"),
    row("selinuxLabel", Scenario("selinux", proc(selinuxLabel="system_u:system_r:container_t:s0")), "stage"),
    # process.scheduler, ioPriority, execCPUAffinity (runtime-spec 1.2/1.3)
    row("scheduler/SCHED_BATCH-nice", Scenario("sched-batch", proc(scheduler={"policy": "SCHED_BATCH", "nice": 5},
                                                                              capabilities=NICE)),
        "sched"),
    row("scheduler/SCHED_IDLE", Scenario("sched-idle", proc(scheduler={"policy": "SCHED_IDLE"})), "sched"),
    row("scheduler/SCHED_FIFO-without-rt-runtime", Scenario("sched-fifo", proc(scheduler={"policy": "SCHED_FIFO",
                                                                                          "priority": 10},
                                                                               capabilities=NICE)),
        "error", "words:error setting scheduler: operation not permitted"),
    row("ioPriority/best-effort-3", Scenario("ioprio", proc(ioPriority={"class": "IOPRIO_CLASS_BE", "priority": 3})),
        "sched"),
    *(row(f"scheduler/{name}", Scenario(f"sched-{name}", proc(scheduler=sched, capabilities=NICE)), "stage", "sched")
      for name, sched in SCHEDULERS.items()),
    *(row(f"scheduler/{name}", Scenario(f"sched-{name}", proc(scheduler=sched, capabilities=NICE)), "error")
      for name, sched in BAD_SCHEDULERS.items()),
    *(row(f"ioPriority/{name}", Scenario(f"ioprio-{name}", proc(ioPriority=io)), "stage", "sched")
      for name, io in IO_PRIORITIES.items()),
    *(row(f"ioPriority/{name}", Scenario(f"ioprio-{name}", proc(ioPriority=io)), "error")
      for name, io in BAD_IO_PRIORITIES.items()),
    row("ioPriority/idle", Scenario("ioprio-idle", proc(ioPriority={"class": "IOPRIO_CLASS_IDLE"})), "sched"),
    row("execCPUAffinity/final", Scenario("affinity", proc(execCPUAffinity={"initial": "0", "final": "1"})),
        "status"),
    row("cpus/not-inherited-from-the-runtime", Scenario("taskset", cpus={0}), "status"),
    row("execCPUAffinity/bad", Scenario("affinity-bad", proc(execCPUAffinity={"final": "nosuch"})), "error"),
    # process.consoleSize without a terminal: ignored
    row("consoleSize-without-terminal", Scenario("console-size", proc(consoleSize={"height": 10, "width": 40})),
        "stage"),
]


@pytest.mark.parametrize(("scenario", "keys"), ROWS)
def test_process(differ, scenario, keys):
    compare(differ(scenario), keys)
