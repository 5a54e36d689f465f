"""The differential harness: one scenario (a config.json) run by pyrt and by runc 1.5, each in a
fresh bundle with its own copy of the busybox rootfs, and what the kernel shows of it reduced to
observations that compare equal when the runtimes behave alike.

A scenario is a name and a function that edits conftest.base_config(); by default the process
is PROBE, a shell script that prints the process's view of itself (credentials, capabilities,
limits, mounts, namespaces...) in `== section` blocks. Each runtime runs it as an engine does:
`create` (stdio on files), the host-side look (state JSON, cgroup files, namespaces), `start`,
wait for the exit, `delete`. Observations are cached per scenario for the session, so the rows
(one per spec field or CLI flag, in tests/test_diff_*.py) that share a scenario share its runs.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from cgroupfs import UNIFIED, v1_mounts
from conftest import BINARY, BUSYBOX_ROOTFS, RUNC_1_5, base_config

#: What the container's process prints of itself, one `== name` block per observable. $$ is
#: the shell the runtime started (pid 1 of a new pid namespace): /proc/$$ shows the process as
#: the runtime left it, before the shell changed anything.
PROBE = r"""
echo "== status"; grep -E "^($STATUS):" /proc/$$/status
echo "== limits"; cat /proc/$$/limits
echo "== oom"; cat /proc/$$/oom_score_adj
echo "== sched"; awk '{print "nice", $19, "policy", $41, "rtprio", $40}' /proc/$$/stat; ionice -p $$
echo "== cwd"; readlink /proc/$$/cwd
echo "== env"; tr '\0' '\n' < /proc/$$/environ
echo "== uts"; cat /proc/sys/kernel/hostname /proc/sys/kernel/domainname
echo "== personality"; uname -m
echo "== mountinfo"; cat /proc/$$/mountinfo
echo "== cgroup"; cat /proc/$$/cgroup
echo "== ns"; ls -l /proc/$$/ns | sed -n 's/.* \([a-z_]*\) -> \(.*\)/\1 \2/p'
echo "== fds"; ls -C /proc/$$/fd
echo "== dev"; ls -lan /dev | sed 1d | awk '{print $1, $3, $4, $5, $6, $NF}' | grep -v ' [.]*$'
echo "== sysctl"; for k in $SYSCTLS; do echo "$k=$(cat /proc/sys/$(echo $k | tr . /) 2>&1)"; done
echo "== extra"; [ -z "$EXTRA" ] || eval "$EXTRA" 2>&1
echo "== end"
"""

#: Seconds a command line call may take (a hang is a finding, not a stuck suite).
CALL_TIMEOUT = 10
_LINUX = base_config()["linux"]
MASKED = set(_LINUX["maskedPaths"] + _LINUX["readonlyPaths"])

#: The /proc/PID/status lines the probe shows.
STATUS = ("Uid|Gid|Groups|CapInh|CapPrm|CapEff|CapBnd|CapAmb|NoNewPrivs|Seccomp|Seccomp_filters|Umask|"
          "Cpus_allowed_list|Mems_allowed_list")
#: The base scenario's process: the probe, with the variables it reads.
PROBE_ARGS = ["sh", "-c", f"STATUS='{STATUS}'\n{PROBE}"]
HOST_NS = {p.name: os.readlink(p) for p in Path("/proc/self/ns").iterdir()}


@dataclass
class Observation:
    """What one runtime did with one scenario, normalized."""

    stage: str  # where it ended: "create" or "start" (that command failed) or "exited"
    rc: int  # the failing command's exit status, or the container process's
    stdout: str  # the container's stdout (the failing command's when stage is create/start)
    stderr: str
    sections: dict[str, str] = field(default_factory=dict)  # the probe's blocks, normalized
    state: dict = field(default_factory=dict)  # `state` right after create
    host: dict = field(default_factory=dict)  # what the scenario's host probe read
    leaks: list[str] = field(default_factory=list)  # what the runtime left after delete --force

    def error(self) -> tuple:
        """The class of a failure: stage, exit status, the number of lines and whether it is a
        runc-style `level=error msg=...` line (what scripts and engines parse)."""
        lines = self.stderr.splitlines()
        return self.stage, self.rc, len(lines), all("level=error" in line for line in lines)

    def message(self) -> str:
        """The error message (the msg="..." of the last line, unquoted), lowercased, without the
        context runc puts before it (`runc create failed: unable to start container process:
        error during container init: `): the words scripts match are at the end."""
        line = (self.stderr.strip().splitlines() or [""])[-1]
        m = re.search(r'msg="((?:[^"\\]|\\.)*)"', line)
        msg = (m.group(1).replace('\\"', '"') if m else line).lower()
        context = r"^(runc \w+ failed: )?(unable to start container process: )?(error during container init: )?"
        return re.sub(context, "", msg)


#: The runtime's command line, bound to one state root: run("exec", cid, ...) -> CompletedProcess;
#: run.bundle is the bundle's path.
Run = Callable[..., subprocess.CompletedProcess]


@dataclass
class Scenario:
    """A config (base_config() edited by `edit(config, bundle)`, the rootfs copy prepared by
    `rootfs(path)`), and what to look at from the host: `created(run, cid, state)` between create
    and start, `running(run, cid, state)` after start (the process is killed after it, if still
    there), `deleted(bundle)` after delete. Their dicts make Observation.host."""

    name: str
    edit: Callable[[dict, Path], None] = lambda config, bundle: None
    rootfs: Callable[[Path], None] | None = None
    create_args: tuple[str, ...] = ()
    created: Callable[[Run, str, dict], dict] | None = None
    running: Callable[[Run, str, dict], dict] | None = None
    deleted: Callable[[Path], dict] | None = None
    timeout: float = 20  # seconds for create, and for the process to exit
    cpus: set[int] | None = None  # the CPUs the runtime's commands run on (as under `taskset -c`)


def normalize_mountinfo(text: str, bundle: Path) -> str:
    """Mount ids, device numbers of anonymous filesystems and peer group numbers renamed in
    order of appearance; the bundle's path becomes <bundle>."""
    groups: dict[str, str] = {}
    out = []
    for line in text.splitlines():
        fields, _, right = line.partition(" - ")
        f = fields.split()
        if len(f) < 6:
            continue
        major, minor = f[2].split(":")
        dev = "0:x" if major == "0" else f"{major}:{minor}"
        opt = [re.sub(r"\d+", lambda m: groups.setdefault(m.group(0), f"g{len(groups)}"), o) for o in f[6:]]
        out.append(" ".join([dev, f[3], f[4], f[5], *opt, "-", right]))
    return "\n".join(out).replace(str(bundle), "<bundle>")


def _sections(text: str, bundle: Path) -> dict[str, str]:
    out, name = {}, None
    for line in text.splitlines():
        if line.startswith("== "):
            name = line[3:]
            out[name] = []
        elif name:
            out[name].append(line)
    sections = {k: "\n".join(v) for k, v in out.items()}
    if "mountinfo" in sections:
        sections["mountinfo"] = normalize_mountinfo(sections["mountinfo"], bundle)
    if "ns" in sections:  # which namespaces are the host's
        sections["ns"] = "\n".join(f"{k} {'host' if HOST_NS.get(k) == v else 'new'}"
                                   for k, v in (line.split() for line in sections["ns"].splitlines()))
    if "cgroup" in sections:  # the container's own cgroup path differs by name: keep its shape
        sections["cgroup"] = "\n".join(line.split(":", 2)[1] for line in sections["cgroup"].splitlines())
    return {k: v.replace(str(bundle), "<bundle>") for k, v in sections.items()}


def _wait_exit(pid: int, timeout: float) -> int:
    """The exit status of the container's init, which the test process adopts (a subreaper).
    Other adopted children are reaped too: an exec'd process of the container that died is a
    zombie of ours, and the kernel keeps a killed init until its namespace is empty."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            done, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:  # nothing of ours: wait for the init to go
            done = 0
            if not os.path.exists(f"/proc/{pid}"):
                return -1
        if done == pid:
            return os.waitstatus_to_exitcode(status) % 256 if os.WIFEXITED(status) else 128 + os.WTERMSIG(status)
        if not done:
            time.sleep(0.01)
    os.kill(pid, 9)
    raise AssertionError(f"container process {pid} did not exit in {timeout} s")


def observe(binary: str, workdir: Path, scenario: Scenario) -> Observation:
    """Run one scenario under one runtime in `workdir` (bundle, rootfs copy, state root)."""
    timeout = scenario.timeout
    bundle, state_root = workdir / "bundle", workdir / "state"
    shutil.rmtree(workdir, ignore_errors=True)
    bundle.mkdir(parents=True)
    rootfs = bundle / "rootfs"
    shutil.copytree(BUSYBOX_ROOTFS, rootfs, symlinks=True)
    if scenario.rootfs:
        scenario.rootfs(rootfs)
    config = base_config(list(PROBE_ARGS))
    config["root"]["path"] = "rootfs"
    config["process"]["env"] += ["SYSCTLS=", "EXTRA="]
    scenario.edit(config, bundle)
    (bundle / "config.json").write_text(json.dumps(config, indent=1))
    cid = "d" + uuid.uuid4().hex[:10]
    rt = [binary, "--root", str(state_root)]

    hung: list[str] = []
    pin = (lambda: os.sched_setaffinity(0, scenario.cpus)) if scenario.cpus else None

    def run(*args: str, input: str | None = None) -> subprocess.CompletedProcess:
        """The runtime's command line; output through files (a container that inherits a pipe
        would hold it open), the bundle path replaced by <bundle>. A call that hangs is killed
        and answers exit status -1 and "timed out"."""
        with open(workdir / "out", "w+") as out, open(workdir / "err", "w+") as err:
            try:
                r = subprocess.run([*rt, *args], stdout=out, stderr=err, timeout=CALL_TIMEOUT, cwd="/",
                                   input=input.encode() if input is not None else None,
                                   stdin=subprocess.DEVNULL if input is None else None, preexec_fn=pin)
            except subprocess.TimeoutExpired:
                hung.append(" ".join(args))
                return subprocess.CompletedProcess(args, -1, "", f"timed out: {' '.join(args)}")
            out.seek(0), err.seek(0)
            r.stdout, r.stderr = (f.read().replace(str(bundle), "<bundle>") for f in (out, err))
        return r

    run.bundle = bundle  # type: ignore[attr-defined]  # for arguments that name a file in it
    host: dict = {}
    obs = None
    try:
        with open(bundle / "stdout", "w") as out, open(bundle / "stderr", "w+") as err:
            try:
                r = subprocess.run([*rt, "create", "--bundle", str(bundle), *scenario.create_args, cid],
                                   stdin=subprocess.DEVNULL, stdout=out, stderr=err, timeout=timeout, cwd="/",
                                   preexec_fn=pin)
            except subprocess.TimeoutExpired:
                hung.append("create")
                r = subprocess.CompletedProcess([], -1)
                err.write("timed out: create")
            err.seek(0)
            create_err = err.read()
        if r.returncode != 0:
            obs = Observation("create", r.returncode, "", create_err.replace(str(bundle), "<bundle>"))
            return obs
        state = json.loads(run("state", cid).stdout)
        if scenario.created:
            host.update(scenario.created(run, cid, state))
        r = run("start", cid)
        if r.returncode != 0:
            obs = Observation("start", r.returncode, r.stdout, r.stderr, state=state, host=host)
            return obs
        if scenario.running:
            host.update(scenario.running(run, cid, state))
            if hung:
                _thaw(state["pid"])
            if os.path.exists(f"/proc/{state['pid']}"):
                run("kill", cid, "KILL")
        rc = _wait_exit(state["pid"], timeout)
        stdout, stderr = (bundle / "stdout").read_text(), (bundle / "stderr").read_text()
        obs = Observation("exited", rc, stdout, stderr.replace(str(bundle), "<bundle>"),
                          _sections(stdout, bundle), state, host)
        return obs
    finally:
        if hung and obs and obs.state:  # a call hung on a frozen cgroup: thaw what the runtime froze
            _thaw(obs.state["pid"])
        run("delete", "--force", cid)
        if obs and obs.state:
            _reap(obs.state["pid"])
        if scenario.deleted:  # also after a failure: it may have host-side things to undo
            host.update(scenario.deleted(bundle))
        leaks = _leftovers(workdir, cid)
        if obs:
            obs.leaks = leaks + [f"hung: {h}" for h in hung]
        shutil.rmtree(bundle, ignore_errors=True)


def _thaw(pid: int) -> None:
    """Thaw the container's v1 freezer cgroup and its cgroup2 one: a hung call of the runtime
    (a process it put into the frozen cgroup) can then die and the container be deleted."""
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines() if os.path.exists(f"/proc/{pid}") else ():
        hid, controllers, path = line.split(":", 2)
        with contextlib.suppress(OSError):
            if "freezer" in controllers.split(",") and "freezer" in v1_mounts():
                (v1_mounts()["freezer"] / path.lstrip("/") / "freezer.state").write_text("THAWED")
            elif hid == "0":
                (UNIFIED / path.lstrip("/") / "cgroup.freeze").write_text("0")
    time.sleep(0.2)


def _reap(pid: int) -> None:
    """Reap the container's init if it is a zombie of ours (a row that killed it before start)."""
    with contextlib.suppress(ChildProcessError):
        for _ in range(50):
            if os.waitpid(pid, os.WNOHANG)[0]:
                return
            time.sleep(0.01)


def _leftovers(workdir: Path, cid: str) -> list[str]:
    """What is left of the container: state, a mount below the workdir, a cgroup, a process
    (killed here, so that nothing outlives the row)."""
    from conftest import _leaks, reap

    deadline = time.monotonic() + 5
    while (leaks := _leaks(workdir, {cid})) and time.monotonic() < deadline:
        reap()  # processes of the container we adopted and that died are zombies of ours
        time.sleep(0.05)
    for line in leaks:
        if line.startswith("process left"):
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(line.split()[2]), 9)
    if any(line.startswith("state left") for line in leaks):
        shutil.rmtree(workdir / "state", ignore_errors=True)
    time.sleep(0.1 if leaks else 0)
    for line in leaks:  # the container's own cgroups, empty now
        if line.startswith("cgroup left: "):
            with contextlib.suppress(OSError):
                os.rmdir(line.removeprefix("cgroup left: "))
    return leaks


class Differ:
    """Runs scenarios under pyrt and runc 1.5, once each per session."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.cache: dict[str, tuple[Observation, Observation]] = {}
        self.scenarios: dict[str, Scenario] = {}

    def __call__(self, scenario: Scenario) -> tuple[Observation, Observation]:
        """(pyrt's observation, runc 1.5's). A name is one scenario: the rows that share it share
        its runs."""
        assert self.scenarios.setdefault(scenario.name, scenario) == scenario, f"two scenarios named {scenario.name}"
        if scenario.name not in self.cache:
            self.cache[scenario.name] = tuple(observe(binary, self.base / who, scenario)
                                              for who, binary in (("pyrt", BINARY), ("runc", str(RUNC_1_5))))
        return self.cache[scenario.name]


def edit(fn: Callable[[dict], None]) -> Callable[[dict, Path], None]:
    """A scenario edit that needs only the config."""
    return lambda config, bundle: fn(config)


def with_env(config: dict, **env: str) -> None:
    config["process"]["env"] = [e for e in config["process"]["env"] if e.split("=")[0] not in env]
    config["process"]["env"] += [f"{k}={v}" for k, v in env.items()]


def value(obs: Observation, key: str):
    """One observable of an observation: a probe section, "mounts" (the mountinfo without the
    base config's masked and read-only paths), "masked:PATH" (the mountinfo line of PATH),
    "error" (the failure's class), "message" (its text), "words:TEXT" (whether the message has
    TEXT), "rc", "stdout", "stderr", "stage" or "host.NAME"."""
    if key == "error":
        return obs.error()
    if key in ("rc", "stdout", "stderr", "stage"):
        return getattr(obs, key)
    if key == "message":
        return obs.message()
    if key.startswith("words:"):  # whether the message has these words (runc's, that scripts match)
        return key[6:].lower() in obs.message()
    if key.startswith("host."):
        return obs.host.get(key[5:], "<missing>")
    if obs.stage != "exited":
        return f"<{obs.stage} failed: {obs.stderr.strip()}>"
    if key.startswith("masked:"):  # the mountinfo line(s) of one path
        return "\n".join(line for line in obs.sections.get("mountinfo", "").splitlines()
                         if line.split()[2] == key[7:])
    if key == "mounts":  # the mountinfo without the masked and read-only paths (rows of their own)
        return "\n".join(line for line in obs.sections.get("mountinfo", "").splitlines()
                         if line.split()[2] not in MASKED)
    return obs.sections.get(key, "<missing>")


def compare(observations: tuple[Observation, Observation], keys: tuple[str, ...]) -> None:
    """Assert pyrt's observation equals runc 1.5's on each key (the stage first: a failure on
    one side only says more than the first differing section)."""
    ours, runc = observations
    assert not ours.leaks, f"pyrt left {ours.leaks} (runc 1.5 left {runc.leaks})"
    for key in ("stage", *keys):
        a, b = value(ours, key), value(runc, key)
        if a != b:
            if isinstance(a, str) and isinstance(b, str) and "\n" in a + b:
                import difflib

                diff = "\n".join(difflib.unified_diff(b.splitlines(), a.splitlines(), "runc 1.5", "pyrt", lineterm=""))
                raise AssertionError(f"{key} differs:\n{diff}\n(pyrt stderr: {ours.stderr.strip()!r}; "
                                     f"runc stderr: {runc.stderr.strip()!r})")
            raise AssertionError(f"{key} differs: pyrt {a!r}, runc 1.5 {b!r} (pyrt stderr: {ours.stderr.strip()!r}; "
                                 f"runc stderr: {runc.stderr.strip()!r})")


def row(name: str, scenario: Scenario, *keys: str, differs: str | None = None):
    """One row of a differential table: `scenario`'s observations compared on `keys`; `differs`
    says how pyrt differs today (the row is then an expected failure until pyrt is fixed)."""
    marks = [pytest.mark.xfail(strict=True, reason=f"pyrt differs: {differs}")] if differs else []
    return pytest.param(scenario, keys, id=name, marks=marks)
