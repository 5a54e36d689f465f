"""Bad input: each a one-line error naming what is wrong, exit status 1, no traceback, and
nothing left behind (the autouse leak check looks for state, cgroups, mounts and processes).
The shape is checked against runc too; pyrt's own wording (naming the field) is pyrt_only where
runc 1.5 words it otherwise."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest


def attempt(rt, bundle, command: str = "create", *extra: str, cid: str | None = None) -> subprocess.CompletedProcess:
    """`create`/`run` with stdio on files (a container that did start must not hold our pipes)."""
    cid = cid if cid is not None else rt.new_id()
    with open(bundle.path / "out", "w+") as out, open(bundle.path / "err", "w+") as err:
        r = subprocess.run(rt.cmd(command, "--bundle", str(bundle.path), *extra, cid), stdin=subprocess.DEVNULL,
                           stdout=out, stderr=err, timeout=30)
        out.seek(0)
        err.seek(0)
        return subprocess.CompletedProcess(r.args, r.returncode, out.read(), err.read())


def message(line: str) -> str:
    """The msg of a text log line (`time=... level=error msg="..."`, Go-quoted)."""
    at = line.find('msg="')
    return json.JSONDecoder().raw_decode(line, at + 4)[0] if at >= 0 else line


def one_line_error(r: subprocess.CompletedProcess, rt) -> str:
    """The message of the failure's single stderr line; nothing in the state dir."""
    assert r.returncode == 1, (r.returncode, r.stderr)
    assert "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert not rt.root.exists() or not any(rt.root.iterdir()), list(rt.root.iterdir())
    return message(lines[0])


def without_ns(config: dict, kind: str) -> None:
    config["linux"]["namespaces"] = [n for n in config["linux"]["namespaces"] if n["type"] != kind]


def add_mount(config: dict, dest: str, kind: str, source: str, *options: str) -> None:
    config["mounts"].append({"destination": dest, "type": kind, "source": source, "options": list(options)})


def read(path: str) -> str:
    """A host sysctl's current value: a config that wrongly got through would change nothing."""
    return Path(path).read_text().strip()


RAW = object()  # the case writes config.json itself

# name -> (change to the config, or (RAW, text), words pyrt's message has, words runc's has too)
CASES = {
    "invalid-json": ((RAW, '{"ociVersion": '), "invalid JSON", None),
    "empty-config": ((RAW, ""), "config.json is empty", None),
    "not-an-object": ((RAW, "[1, 2]"), "must be an object", None),
    "missing-config": ((RAW, None), "config.json: no such file or directory", "config.json"),
    "missing-rootfs": (lambda c: c["root"].update(path="/nonexistent-rootfs"), "root.path", "/nonexistent-rootfs"),
    "rootfs-is-a-file": (lambda c: c["root"].update(path="/etc/passwd"), "root.path", "not a directory"),
    "no-process": (lambda c: c.pop("process"), "process", "process"),
    "empty-args": (lambda c: c["process"].update(args=[]), "process.args", "args"),
    "relative-cwd": (lambda c: c["process"].update(cwd="here"), "process.cwd", "bsolute"),
    "unknown-namespace": (lambda c: c["linux"]["namespaces"].append({"type": "foo"}),
                          'linux.namespaces[5].type: unknown namespace type "foo"', '"foo"'),
    "duplicate-namespace": (lambda c: c["linux"]["namespaces"].append({"type": "pid"}),
                            'namespace "pid" is listed twice', "pid"),
    "missing-namespace-path": (lambda c: (without_ns(c, "ipc"), c["linux"]["namespaces"].append(
        {"type": "ipc", "path": "/nonexistent-ns"})), "open /nonexistent-ns: no such file or directory",
                               "/nonexistent-ns: no such file or directory"),
    "bad-mount-type": (lambda c: add_mount(c, "/tmp/m", "nosuchfs", "x"), "on /tmp/m: no such device",
                       "no such device"),
    "bad-mount-option": (lambda c: add_mount(c, "/tmp/m", "tmpfs", "tmpfs", "bogus=1"), "on /tmp/m",
                         "invalid argument"),
    "missing-bind-source": (lambda c: add_mount(c, "/tmp/m", "bind", "/nonexistent-src", "bind"), "/nonexistent-src",
                            "/nonexistent-src: no such file or directory"),
    "unknown-rlimit": (lambda c: c["process"]["rlimits"].append({"type": "RLIMIT_FOO", "soft": 1, "hard": 1}),
                       'process.rlimits[1].type: unknown rlimit "RLIMIT_FOO"', "RLIMIT_FOO"),
    "rlimit-soft-above-hard": (lambda c: c["process"].update(rlimits=[{"type": "RLIMIT_NOFILE", "soft": 10,
                                                                      "hard": 5}]),
                               "soft limit 10 is above the hard limit 5", None),
    "rlimit-above-this-machine": (lambda c: c["process"].update(rlimits=[{"type": "RLIMIT_NOFILE", "soft": 30000,
                                                                         "hard": 30000}]),
                                  "error setting rlimit type 7: operation not permitted",
                                  "error setting rlimit type 7: operation not permitted"),
    "host-sysctl": (lambda c: c["linux"].update(sysctl={"vm.swappiness": read("/proc/sys/vm/swappiness")}),
                    'linux.sysctl: "vm.swappiness"', '"vm.swappiness"'),
    "net-sysctl-in-host-netns": (lambda c: (without_ns(c, "network"), c["linux"].update(sysctl={
        "net.ipv4.ip_forward": read("/proc/sys/net/ipv4/ip_forward")})),
                                 'linux.sysctl: "net.ipv4.ip_forward"', '"net.ipv4.ip_forward"'),
    # the host's own name: a runtime that wrongly set it would change nothing
    "hostname-without-uts": (lambda c: (without_ns(c, "uts"), c.update(hostname=os.uname().nodename)), "hostname",
                             "hostname"),
    "bad-device-type": (lambda c: c["linux"].update(devices=[{"path": "/dev/x", "type": "x", "major": 1,
                                                               "minor": 3}]),
                        'linux.devices[0].type: unknown device type "x"', '"x"'),
    "missing-executable": (lambda c: c["process"].update(args=["/nonexistent"]),
                           'exec: "/nonexistent": stat /nonexistent: no such file or directory',
                           'exec: "/nonexistent": stat /nonexistent: no such file or directory'),
    "executable-not-in-path": (lambda c: c["process"].update(args=["nosuchcmd"]),
                               'exec: "nosuchcmd": executable file not found in $PATH',
                               'exec: "nosuchcmd": executable file not found in $PATH'),
    "executable-in-relative-path-entry": (lambda c: c["process"].update(args=["busybox"], cwd="/bin",
                                                                      env=["PATH=/nonexistent:."]),
                                          'exec: "busybox": cannot run executable found relative to current '
                                          "directory",
                                          'exec: "busybox": cannot run executable found relative to current '
                                          "directory"),
    "not-executable": (lambda c: c["process"].update(args=["/etc/passwd"]), 'exec: "/etc/passwd": permission denied',
                       'exec: "/etc/passwd": permission denied'),
    "directory-as-executable": (lambda c: c["process"].update(args=["/etc"]), 'exec: "/etc": is a directory',
                                'exec: "/etc": is a directory'),
    "args-not-strings": (lambda c: c["process"].update(args=["sh", 3]), "process.args", "process.args"),
    "negative-uid": (lambda c: c["process"]["user"].update(uid=-1), "process.user.uid", "process.user.uid"),
}
#: case -> marks: runc 1.5 says what an execve of a directory failed on (runc 1.1: permission denied)
MARKS = {"directory-as-executable": [pytest.mark.not_runc_1_1]}


def cases(names) -> list:
    return [pytest.param(name, marks=MARKS.get(name, [])) for name in sorted(names)]

# Where pyrt is stricter than runc 1.5 (runc starts these containers) or words it otherwise (the
# differences are rows of tests/test_diff_*.py and docs/runc-differences.md)
STRICTER = {
    "namespace-path-of-another-type": (lambda c: (without_ns(c, "ipc"), c["linux"]["namespaces"].append(
        {"type": "ipc", "path": "/proc/self/ns/net"})), 'is not a "ipc" namespace'),
    "unknown-capability": (lambda c: c["process"]["capabilities"]["bounding"].append("CAP_FOO"),
                           'process.capabilities.bounding: unknown capability "CAP_FOO"'),
    "unsupported-version": (lambda c: c.update(ociVersion="2.0.0"), 'ociVersion: unsupported version "2.0.0"'),
    "unknown-bind-option": (lambda c: add_mount(c, "/tmp/m", "bind", "/etc", "rbind", "bogus"),
                            'mounts[7]: unknown mount option "bogus" for a bind mount'),
    "remount-option": (lambda c: add_mount(c, "/tmp/m", "tmpfs", "tmpfs", "remount"), '"remount" is not allowed'),
    "env-without-equals": (lambda c: c["process"]["env"].append("NOEQUALS"), "process.env[2]"),
    "umask-out-of-range": (lambda c: c["process"]["user"].update(umask=0o1000), "process.user.umask"),
    "oom-score-out-of-range": (lambda c: c["process"].update(oomScoreAdj=1001), "process.oomScoreAdj"),
    "device-outside-dev": (lambda c: c["linux"].update(devices=[{"path": "/etc/x", "type": "c", "major": 1,
                                                                  "minor": 3}]), "linux.devices[0].path"),
    "unknown-root-propagation": (lambda c: c["linux"].update(rootfsPropagation="sideways"),
                                 'linux.rootfsPropagation: unknown propagation "sideways"'),
    "user-namespace-without-mappings": (lambda c: c["linux"]["namespaces"].append({"type": "user"}),
                                        "linux.uidMappings: a new user namespace needs mappings"),
    "time-offsets-without-namespace": (lambda c: c["linux"].update(timeOffsets={"boottime": {"secs": 1}}),
                                       "linux.timeOffsets: time namespace offsets specified"),
}


def prepare(bundle, change) -> None:
    if isinstance(change, tuple) and change[0] is RAW:
        bundle.path.mkdir(parents=True, exist_ok=True)
        if change[1] is not None:
            (bundle.path / "config.json").write_text(change[1])
        return
    change(bundle.config)
    bundle.write()


@pytest.mark.parametrize("command", ["create", "run"])
@pytest.mark.parametrize("case", cases(CASES))
def test_bad_config_fails_cleanly(rt, bundle, case, command):
    change, _, common = CASES[case]
    prepare(bundle, change)
    line = one_line_error(attempt(rt, bundle, command), rt)
    if common:
        assert common in line


@pytest.mark.pyrt_only  # the cases whose words runc 1.5 does not share (the others: test_bad_config_fails_cleanly)
@pytest.mark.parametrize("case", cases(c for c, (_, words, common) in CASES.items() if words not in (common or "")))
def test_bad_config_message_names_the_field(rt, bundle, case):
    change, words, _ = CASES[case]
    prepare(bundle, change)
    line = one_line_error(attempt(rt, bundle), rt)
    assert words in line, line


@pytest.mark.pyrt_only
@pytest.mark.parametrize("case", sorted(STRICTER))
def test_pyrt_refuses_what_it_cannot_honour(rt, bundle, case):
    change, words = STRICTER[case]
    prepare(bundle, change)
    line = one_line_error(attempt(rt, bundle), rt)
    assert words in line, line


def test_failed_create_leaves_no_process_or_mount_behind(rt, bundle, tmp_path):
    """A failure late in the plan (after namespaces, mounts and /dev exist): nothing survives."""
    src = tmp_path / "vol"
    src.mkdir()
    add_mount(bundle.config, "/tmp/vol", "bind", str(src), "rbind")
    bundle.args("/nonexistent").write()
    cid = rt.new_id()
    one_line_error(attempt(rt, bundle, cid=cid), rt)
    for pid in (p for p in Path("/proc").iterdir() if p.name.isdigit()):
        try:
            assert cid not in (pid / "cgroup").read_text()
        except FileNotFoundError:
            pass
    assert not any(str(src) in line for line in Path("/proc/self/mountinfo").read_text().splitlines())


def test_error_goes_to_the_json_log_as_one_record(rt, bundle, tmp_path):
    """podman reads a failed create's --log file as one JSON object; containerd's shim takes the
    last error record."""
    bundle.args("/nonexistent").write()
    log = tmp_path / "oci-log"
    r = subprocess.run(rt.cmd("--log", str(log), "--log-format", "json", "create", "--bundle", str(bundle.path),
                              rt.new_id()), stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30)
    assert r.returncode == 1
    record = json.loads(log.read_text())
    assert record["level"] == "error" and "no such file or directory" in record["msg"]
    assert record["time"].endswith("Z")


@pytest.mark.parametrize("cid", ["a/b", "..", "a b", "é", ""])
def test_invalid_container_ids(rt, bundle, cid):
    bundle.write()
    one_line_error(attempt(rt, bundle, cid=cid), rt)
    for command in ("state", "start", "kill", "delete"):
        r = rt(command, cid)
        assert r.returncode == 1 and "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1


@pytest.mark.pyrt_only
@pytest.mark.parametrize("cid", ["x..y", "../x", "."])
def test_ids_with_dot_dot_are_refused(rt, bundle, cid):
    """runc accepts "x..y"; pyrt refuses any "..", so an id can never name a path outside --root."""
    bundle.write()
    assert "invalid container id" in one_line_error(attempt(rt, bundle, cid=cid), rt)


def test_duplicate_id_leaves_the_first_container_alone(rt, bundle):
    cid = rt.create(bundle.args("sleep", "100"))
    first = rt.state(cid)
    r = attempt(rt, bundle, cid=cid)
    assert r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1
    assert "exists" in r.stderr
    assert rt.state(cid) == first
    rt.ok("delete", "--force", cid)


def test_start_running_and_kill_stopped_are_one_line_errors(rt, bundle):
    cid = rt.create(bundle.args("sleep", "100"))
    rt.ok("start", cid)
    r = rt("start", cid)
    assert (r.returncode, len(r.stderr.strip().splitlines())) == (1, 1)
    assert "cannot start an already running container" in r.stderr
    rt.ok("kill", cid, "KILL")
    rt.wait_status(cid, "stopped")
    for args, words in ((("kill", cid, "KILL"), "container not running"), (("kill", cid), "container not running"),
                        (("start", cid), "cannot start a container that has stopped")):
        r = rt(*args)
        assert (r.returncode, len(r.stderr.strip().splitlines())) == (1, 1), r.stderr
        assert words in r.stderr and "Traceback" not in r.stderr
    rt.ok("delete", cid)


def test_unknown_signal(rt, bundle):
    cid = rt.create(bundle.args("sleep", "100"))
    r = rt("kill", cid, "SIGNOPE")
    assert (r.returncode, len(r.stderr.strip().splitlines())) == (1, 1)
    assert rt.state(cid)["status"] == "created"
    rt.ok("delete", "--force", cid)


def test_terminal_without_console_socket_for_create(rt, bundle):
    bundle.process["terminal"] = True
    bundle.write()
    one_line_error(attempt(rt, bundle), rt)


def test_console_socket_that_does_not_exist(rt, bundle, tmp_path):
    bundle.process["terminal"] = True
    bundle.write()
    line = one_line_error(attempt(rt, bundle, "create", "--console-socket", str(tmp_path / "nope.sock")), rt)
    assert "nope.sock" in line


@pytest.mark.pyrt_only
def test_negative_preserve_fds(rt, bundle):
    bundle.write()
    assert "--preserve-fds" in one_line_error(attempt(rt, bundle, "create", "--preserve-fds", "-1"), rt)


def test_capabilities_the_kernel_refuses_fail_create(rt, bundle):
    """An effective capability that is not permitted: capset(2) refuses it. As runc does,
    credentials and capabilities are applied before `create` returns, so `create` fails (pyrt
    applied them after the exec fifo: `create` and `start` succeeded and the container exited 1
    with nothing on its stderr)."""
    bundle.process["capabilities"]["effective"] = ["CAP_KILL", "CAP_SYS_ADMIN"]
    bundle.write()
    assert "operation not permitted" in one_line_error(attempt(rt, bundle), rt)


@pytest.mark.pyrt_only
def test_a_failure_after_the_exec_fifo_fails_start_and_reaches_stderr(rt, bundle, tmp_path):
    """What fails once `start` let the init go (here the execve: a file that is executable but
    no program) fails `start` with the reason, and the container's stderr has it too. runc 1.5
    writes it to the container's stderr and its `start` exits 0."""
    program = tmp_path / "not-a-program"
    program.write_text("garbage\n")
    program.chmod(0o755)
    add_mount(bundle.config, "/tmp/x", "bind", str(program), "bind")
    cid = rt.create(bundle.args("/tmp/x"))
    r = rt("start", cid)
    assert (r.returncode, len(r.stderr.strip().splitlines())) == (1, 1), r.stderr
    assert message(r.stderr) == 'unable to start container process: exec: "/tmp/x": exec format error'
    rt.wait_status(cid, "stopped")
    assert (bundle.path / "stderr").read_text() == 'pyrt-init: exec: "/tmp/x": exec format error\n'
    rt.ok("delete", cid)
