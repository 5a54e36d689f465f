"""Issue 8, holes and bad input: ids that would leave a process root, a domainname that would
rename the host, inputs that were unbounded work or an `internal error`, and configs pyrt used to
refuse or silently ignore where runc runs them. Each through the command line; the autouse leak
check looks for state, cgroups, mounts and processes left behind.

Tests shared with runc (1.5) check what both do: exit status, one line, the effect. Where pyrt
is stricter (runc accepts the value, or reads /dev/zero until memory runs out), `pyrt_only`.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest
from conftest import IS_RUNC
from test_errors import attempt, message, one_line_error

MAX_ID = 2147483647
ID_RANGE = "uids and gids must be in range 0-2147483647"


def without_ns(config: dict, kind: str) -> None:
    config["linux"]["namespaces"] = [n for n in config["linux"]["namespaces"] if n["type"] != kind]


def ran(rt, bundle, *extra: str) -> str:
    """`run` the bundle (stdio on files); its stdout, after checking it succeeded."""
    r = attempt(rt, bundle, "run", *extra)
    assert r.returncode == 0, r.stderr
    return r.stdout


def clean_error(r: subprocess.CompletedProcess, rt) -> str:
    """A failure's one line (exit 1, nothing left in the state dir), which is not a crash."""
    line = one_line_error(r, rt)
    assert "internal error" not in line, line
    return line


def refused(rt, bundle, *extra: str, command: str = "create") -> str:
    """The one-line error of a create (or run) of the bundle as it is now."""
    bundle.write()
    return clean_error(attempt(rt, bundle, command, *extra), rt)


@pytest.fixture
def running(rt, bundle):
    """A started container (a long sleep): its id."""
    cid = rt.create(bundle.args("sleep", "1000"))
    rt.ok("start", cid)
    yield cid
    rt("delete", "--force", cid)


def exec_error(r: subprocess.CompletedProcess) -> str:
    """An `exec` that failed as runc's does: exit 255, one line."""
    assert r.returncode == 255 and "Traceback" not in r.stderr and "internal error" not in r.stderr, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    return message(lines[0])


# ----------------------------------------------------------------------------- 1.1 ids


@pytest.mark.parametrize("user", [{"uid": 4294967295, "gid": 0}, {"uid": 0, "gid": 4294967295},
                                  {"uid": 4294967295, "gid": 4294967295}, {"uid": 0, "gid": 0,
                                                                           "additionalGids": [4294967295]}],
                         ids=["uid", "gid", "both", "additionalGids"])
def test_id_minus_one_never_runs_as_root(rt, bundle, user):
    """4294967295 is (uid_t)-1: setresuid(-1) keeps the old id, root. (runc fails too.)"""
    bundle.process["user"] = user
    bundle.args("id")
    refused(rt, bundle, command="run")


@pytest.mark.pyrt_only
@pytest.mark.parametrize("field,user", [("uid", {"uid": 4294967295}), ("gid", {"gid": 4294967295}),
                                        ("uid", {"uid": MAX_ID + 1}), ("gid", {"gid": -1}),
                                        ("additionalGids", {"additionalGids": [5, MAX_ID + 1]})])
def test_ids_outside_runcs_range_are_named(rt, bundle, field, user):
    bundle.process["user"] = {"uid": 0, "gid": 0, **user}
    assert f"process.user.{field}: {ID_RANGE}" in refused(rt, bundle)


@pytest.mark.pyrt_only
def test_device_owner_minus_one_is_refused(rt, bundle):
    """chown(-1) leaves the owner as it is: a device node meant for uid 4294967295 would stay root's."""
    bundle.config["linux"]["devices"] = [{"path": "/dev/xx", "type": "c", "major": 1, "minor": 3, "uid": 4294967295}]
    assert f"linux.devices[0].uid: {ID_RANGE}" in refused(rt, bundle)


def test_more_groups_than_the_kernel_takes_fail(rt, bundle):
    """65537 additional gids: pyrt used to drop the last silently (runc: setgroups fails)."""
    bundle.process["user"] = {"uid": 0, "gid": 0, "additionalGids": list(range(1, 65538))}
    bundle.args("id")
    refused(rt, bundle, command="run")


def test_as_many_groups_as_the_kernel_takes(rt, bundle):
    bundle.process["user"] = {"uid": 0, "gid": 0, "additionalGids": list(range(1, 65537))}
    bundle.args("sh", "-c", "grep Groups: /proc/self/status | wc -w").write()
    assert ran(rt, bundle).strip() == "65537"  # "Groups:" and 65536 gids


@pytest.mark.parametrize("args", [("-u", "4294967295"), ("-u", "0:4294967295"), ("--additional-gids", "4294967295")])
def test_exec_ids_minus_one_are_refused(rt, running, args):
    line = exec_error(rt("exec", *args, running, "id"))
    if not IS_RUNC:
        assert ID_RANGE in line, line


@pytest.mark.pyrt_only
@pytest.mark.parametrize("args,words", [(("-u", f"{MAX_ID + 1}"), ID_RANGE), (("-u", "1:x"), 'bad gid "x"'),
                                        (("-u", "²"), 'bad uid "²"'), (("--additional-gids", "-1"), ID_RANGE)])
def test_exec_user_flags(rt, running, args, words):
    assert words in exec_error(rt("exec", *args, running, "id"))


def test_exec_process_json_id_minus_one(rt, running, tmp_path):
    path = tmp_path / "process.json"
    path.write_text('{"args": ["id"], "cwd": "/", "user": {"uid": 4294967295, "gid": 0}}')
    line = exec_error(rt("exec", "--process", str(path), running))
    if not IS_RUNC:
        assert f"process.json: user.uid: {ID_RANGE}" in line, line


def test_exec_ids_in_range_still_work(rt, running):
    r = rt.ok("exec", "-u", f"{MAX_ID}:{MAX_ID}", "--additional-gids", "7", running, "id")
    assert r.stdout.split()[:3] == [f"uid={MAX_ID}", f"gid={MAX_ID}", "groups=7"]


# ----------------------------------------------------------------------------- 1.4 domainname


@pytest.fixture
def host_domainname():
    """The host's domainname: the test fails if it changed (and puts it back)."""
    path = Path("/proc/sys/kernel/domainname")
    before = path.read_text()
    yield before
    after = path.read_text()
    if after != before:
        path.write_text(before)
    assert after == before, "the host's domainname changed"


@pytest.mark.not_runc_1_1
def test_domainname_without_a_uts_namespace_is_refused(rt, bundle, host_domainname):
    without_ns(bundle.config, "uts")
    bundle.config.pop("hostname")
    bundle.config["domainname"] = "pyrt-test.invalid"
    bundle.args("true")
    assert "unable to set domainname without a private UTS namespace" in refused(rt, bundle, command="run")


@pytest.mark.not_runc_1_1
def test_domainname_in_a_new_uts_namespace(rt, bundle, host_domainname):
    bundle.config["domainname"] = "pyrt-test.invalid"
    bundle.args("cat", "/proc/sys/kernel/domainname").write()
    assert ran(rt, bundle) == "pyrt-test.invalid\n"


@pytest.mark.not_runc_1_1
@pytest.mark.parametrize("key", ["domainname", "hostname"])
def test_names_for_a_joined_uts_namespace(rt, bundle, host_domainname, key):
    """As runc 1.5: the hostname and domainname of a joined uts namespace (another container's)
    are set; the host's and the host's names stay as they were."""
    other = subprocess.Popen(["unshare", "--uts", "sleep", "100"])
    try:
        for _ in range(100):  # until unshare has made it
            if os.readlink(f"/proc/{other.pid}/ns/uts") != os.readlink("/proc/self/ns/uts"):
                break
            time.sleep(0.01)
        without_ns(bundle.config, "uts")
        bundle.config["linux"]["namespaces"].append({"type": "uts", "path": f"/proc/{other.pid}/ns/uts"})
        bundle.config.pop("hostname")
        bundle.config[key] = "renamed"
        bundle.args("cat", f"/proc/sys/kernel/{key}").write()
        assert ran(rt, bundle) == "renamed\n"
        inside = subprocess.run(["nsenter", "-t", str(other.pid), "--uts", "cat", f"/proc/sys/kernel/{key}"],
                                capture_output=True, text=True, check=True).stdout
        assert inside == "renamed\n"
        assert Path(f"/proc/sys/kernel/{key}").read_text() != "renamed\n"
    finally:
        other.kill()
        other.wait()


@pytest.mark.pyrt_only
@pytest.mark.parametrize("key", ["domainname", "hostname"])
@pytest.mark.parametrize("path", ["/proc/self/ns/uts", "/proc/thread-self/ns/uts"])
def test_no_names_for_the_hosts_uts_namespace(rt, bundle, host_domainname, key, path):
    """runc 1.5 renames the host when the joined uts namespace is the host's: pyrt refuses."""
    before = Path(f"/proc/sys/kernel/{key}").read_text()
    without_ns(bundle.config, "uts")
    bundle.config["linux"]["namespaces"].append({"type": "uts", "path": path})
    bundle.config.pop("hostname")
    bundle.config[key] = "renamed"
    assert f"{key}: the joined uts namespace is the host's" in refused(rt, bundle)
    assert Path(f"/proc/sys/kernel/{key}").read_text() == before


# ----------------------------------------------------------------------------- 3 input files


@pytest.mark.pyrt_only
@pytest.mark.parametrize("target", ["/dev/zero", "/dev/urandom", "fifo", "dir"])
def test_config_json_must_be_a_regular_file(rt, bundle, target):
    """runc reads a config.json linked to /dev/zero until memory runs out."""
    bundle.path.mkdir(parents=True, exist_ok=True)
    if target == "fifo":
        os.mkfifo(bundle.path / "config.json")
    elif target == "dir":
        (bundle.path / "config.json").mkdir()
    else:
        (bundle.path / "config.json").symlink_to(target)
    assert clean_error(attempt(rt, bundle), rt).endswith("config.json: not a regular file")


@pytest.mark.pyrt_only
def test_config_json_size_is_capped(rt, bundle):
    bundle.path.mkdir(parents=True, exist_ok=True)
    with open(bundle.path / "config.json", "w") as f:
        f.write(" " * (32 << 20) + "{}")
    assert clean_error(attempt(rt, bundle), rt).endswith("config.json: larger than 32 MiB")


def test_deeply_nested_json(rt, bundle):
    bundle.path.mkdir(parents=True, exist_ok=True)
    (bundle.path / "config.json").write_text("[" * 100000)
    clean_error(attempt(rt, bundle), rt)


@pytest.mark.pyrt_only
@pytest.mark.parametrize("source", ["/dev/zero", "fifo"])
def test_exec_process_file_must_be_regular(rt, running, tmp_path, source):
    path = tmp_path / "process.json"
    if source == "fifo":
        os.mkfifo(path)
    else:
        path.symlink_to(source)
    assert exec_error(rt("exec", "--process", str(path), running, timeout=20)).endswith("not a regular file")


@pytest.mark.pyrt_only
def test_update_resources_file_and_stdin_are_bounded(rt, running):
    r = rt("update", "-r", "/dev/zero", running)
    assert (r.returncode, message(r.stderr.strip())) == (1, "update --resources /dev/zero: not a regular file")
    with open("/dev/zero") as zero:
        r = rt("update", "-r", "-", running, stdin=zero)
    assert (r.returncode, message(r.stderr.strip())) == (1, "update --resources -: larger than 32 MiB")
    r = rt("update", "-r", "-", running, input='{"cpu": {"cpus": "0\\u0000"}}')
    assert (r.returncode, message(r.stderr.strip())) == (1, "update --resources -: cpu.cpus: must not contain a "
                                                            "NUL byte")


# ----------------------------------------------------------------------------- 3 NUL bytes


NUL_FIELDS = {
    "namespace-path": lambda c: (without_ns(c, "ipc"), c["linux"]["namespaces"].append(
        {"type": "ipc", "path": "/proc/self/ns/ipc\0x"})),
    "cgroupsPath": lambda c: c["linux"].update(cgroupsPath="/pyrt-nul\0x"),
    "hook-path": lambda c: c.update(hooks={"prestart": [{"path": "/bin/true\0x"}]}),
    "args": lambda c: c["process"].update(args=["ec\0ho", "x"]),
    "env": lambda c: c["process"].update(env=["A=\0"]),
    "mount-destination": lambda c: c["mounts"].append({"destination": "/tmp/a\0b", "type": "tmpfs",
                                                        "source": "tmpfs"}),
    "cwd": lambda c: c["process"].update(cwd="/\0"),
}


@pytest.mark.parametrize("case", sorted(NUL_FIELDS))
def test_nul_bytes_fail_cleanly(rt, bundle, case):
    """A NUL byte reaches no system call: Python raised `ValueError: embedded null byte`."""
    NUL_FIELDS[case](bundle.config)
    bundle.write()
    r = attempt(rt, bundle)
    assert r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "Traceback" not in r.stderr and "internal error" not in r.stderr and not any(rt.root.glob("*"))
    if not IS_RUNC:
        assert "must not contain a NUL byte" in r.stderr, r.stderr


# ----------------------------------------------------------------------------- 3 flags


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "-5", "10x"])
def test_update_memory_flag_is_a_size(rt, running, value):
    r = rt("update", "--memory", value, running)
    assert r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1 and "internal error" not in r.stderr, r.stderr


@pytest.mark.pyrt_only
@pytest.mark.parametrize("value", ["1e3", "1_000", "99999999999999999999999999999999999999999999"])
def test_update_memory_flag_digits_only(rt, running, value):
    """runc 1.5 takes 1e30 as a float and writes -9223372036854775808; pyrt takes digits."""
    r = rt("update", "--memory", value, running)
    assert (r.returncode, message(r.stderr.strip())) == (1, f"update --memory: {value!r} is not a size (bytes, or "
                                                            "with k, m, g, t)")


def test_update_memory_flag_exactly(rt, running):
    """Sizes are computed exactly (1.5g, 9223372036854771712 = the largest page-aligned limit)."""
    from cgroupfs import CgFiles

    files = CgFiles(rt.state(running)["pid"])
    largest = "9223372036854771712"
    for value, limits in (("1.5g", {str(3 << 29)}), (largest, {largest, "max"})):  # v2 reads it back as max
        rt.ok("update", "--memory", value, running)
        assert files.read("memory", "memory.limit_in_bytes", "memory.max") in limits, value


@pytest.mark.parametrize("flag", ["--cpu-period", "--cpu-quota", "--cpu-rt-runtime"])
def test_update_number_flags(rt, running, flag):
    for value in ("nan", "1e3", "99999999999999999999"):
        r = rt("update", flag, value, running)
        assert r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1, r.stderr
        assert "internal error" not in r.stderr, r.stderr


@pytest.mark.parametrize("command", ["create", "run"])
@pytest.mark.parametrize("n", ["2000", "100000"])
def test_preserve_fds_that_do_not_exist(rt, bundle, command, n):
    line = refused(rt, bundle, "--preserve-fds", n, command=command)
    assert "unable to stat preserved-fd" in line and f"(of {n})" in line, line


def test_console_socket_path_longer_than_af_unix_takes(rt, bundle):
    """sun_path holds 107 bytes: Python's connect raised an OSError without errno (internal error)."""
    bundle.process["terminal"] = True
    assert "invalid argument" in refused(rt, bundle, "--console-socket", "/" + "s" * 200)


def test_exec_console_socket_path_longer_than_af_unix_takes(rt, running):
    assert "invalid argument" in exec_error(rt("exec", "-t", "-d", "--console-socket", "/" + "s" * 200, running,
                                               "true"))


def test_exec_preserve_fds_that_do_not_exist(rt, running):
    assert "unable to stat preserved-fd" in exec_error(rt("exec", "--preserve-fds", "100000", running, "true"))


@pytest.mark.parametrize("args", [("create", "--bundle", "{bundle}", "c1"), ("run", "--bundle", "{bundle}", "c1"),
                                  ("state", "c1"), ("list",), ("delete", "c1"), ("delete", "--force", "c1"),
                                  ("kill", "c1"), ("start", "c1")])
def test_root_that_is_a_file(rt, bundle, tmp_path, args):
    bundle.write()
    root = tmp_path / "root-file"
    root.write_text("not a directory\n")
    r = subprocess.run([rt.binary, "--root", str(root), *(a.format(bundle=bundle.path) for a in args)],
                       stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30)
    assert r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1, (r.returncode, r.stderr)
    assert "not a directory" in r.stderr and "internal error" not in r.stderr
    assert root.read_text() == "not a directory\n"


# ----------------------------------------------------------------------------- 3 limits of the plan


def test_rlimits_above_2_to_the_63(rt, bundle):
    bundle.process["rlimits"] = [{"type": "RLIMIT_CORE", "soft": 2**63, "hard": 2**64 - 1},
                                 {"type": "RLIMIT_CPU", "soft": 2**64 - 2, "hard": 2**64 - 2}]
    bundle.args("sh", "-c", "grep -e 'core file' -e 'cpu time' /proc/self/limits").write()
    lines = [line.split()[-3:-1] for line in ran(rt, bundle).splitlines()]
    assert lines == [[str(2**64 - 2), str(2**64 - 2)], [str(2**63), "unlimited"]]


def test_ten_thousand_mounts(rt, bundle):
    bundle.config["mounts"] += [{"destination": f"/tmp/m{i}", "type": "tmpfs", "source": "tmpfs"}
                                for i in range(10000)]
    bundle.args("sh", "-c", "grep -c ' /tmp/m' /proc/self/mounts").write()
    assert ran(rt, bundle) == "10000\n"


def test_five_thousand_masked_paths(rt, bundle):
    bundle.config["linux"]["maskedPaths"] += [f"/proc/none{i}" for i in range(4999)] + ["/etc/passwd"]
    bundle.args("sh", "-c", "wc -c < /etc/passwd").write()
    assert ran(rt, bundle) == "0\n"


def test_ten_thousand_env_entries(rt, bundle):
    bundle.process["env"] += [f"V{i}={i}" for i in range(10000)]
    bundle.args("sh", "-c", "echo $V9999; env | grep -c ^V").write()
    assert ran(rt, bundle).split() == ["9999", "10000"]


# ----------------------------------------------------------------------------- 3 personality, mappings


@pytest.mark.not_runc_1_1
def test_personality_linux32(rt, bundle):
    bundle.config["linux"]["personality"] = {"domain": "LINUX32"}
    bundle.args("sleep", "1000")
    cid = rt.create(bundle)
    rt.ok("start", cid)
    assert rt.ok("exec", cid, "uname", "-m").stdout == "i686\n"  # exec too, as runc
    assert rt.ok("exec", cid, "cat", "/proc/1/personality").stdout == "00000008\n"
    rt.ok("delete", "--force", cid)


def test_personality_linux(rt, bundle):
    bundle.config["linux"]["personality"] = {"domain": "LINUX"}
    bundle.args("uname", "-m").write()
    assert ran(rt, bundle) == f"{os.uname().machine}\n"


@pytest.mark.not_runc_1_1
@pytest.mark.parametrize("personality", [{"domain": "FOO"}, {"domain": ""}, {}])
def test_unknown_personality_domain(rt, bundle, personality):
    bundle.config["linux"]["personality"] = personality
    assert "invalid personality domain" in refused(rt, bundle)


@pytest.mark.pyrt_only
def test_personality_flags_are_refused(rt, bundle):
    """The runtime spec defines no flags: runc warns and ignores them; pyrt ignores nothing."""
    bundle.config["linux"]["personality"] = {"domain": "LINUX32", "flags": ["ADDR_NO_RANDOMIZE"]}
    assert "linux.personality.flags: personality flags are not supported by pyrt" in refused(rt, bundle)


@pytest.mark.pyrt_only
@pytest.mark.parametrize("key", ["uidMappings", "gidMappings"])
def test_id_mappings_without_a_user_namespace(rt, bundle, key):
    """runc 1.5 ignores them: the container would not run with the ids it asked for."""
    bundle.config["linux"][key] = [{"containerID": 0, "hostID": 1000, "size": 1}]
    assert f"linux.{key}: mappings without a user namespace" in refused(rt, bundle)


# ----------------------------------------------------------------------------- 3 kernel bounds


def test_names_longer_than_the_kernel_takes(rt, bundle):
    bundle.config["hostname"] = "h" * 65
    line = refused(rt, bundle)
    if not IS_RUNC:
        assert "hostname: longer than the kernel's 64 bytes" in line


@pytest.mark.not_runc_1_1
@pytest.mark.parametrize("major,minor", [(4096, 1), (1, 1 << 20)])
def test_device_numbers_beyond_the_kernels(rt, bundle, major, minor):
    bundle.config["linux"]["devices"] = [{"path": "/dev/xx", "type": "c", "major": major, "minor": minor}]
    line = refused(rt, bundle)
    if not IS_RUNC:
        assert "must be between 0 and" in line, line


@pytest.mark.pyrt_only
def test_console_size_is_a_winsize(rt, bundle):
    bundle.process["consoleSize"] = {"height": 65536, "width": 80}
    assert "process.consoleSize.height: must be between 0 and 65535" in refused(rt, bundle)


@pytest.mark.pyrt_only
def test_hook_timeout_fits_an_int(rt, bundle):
    bundle.config["hooks"] = {"createContainer": [{"path": "/bin/true", "timeout": 2**32 + 1}]}
    assert "hooks.createContainer[0].timeout: must be a positive number of seconds" in refused(rt, bundle)


def test_unwritable_log_file_still_one_line(rt):
    """The record falls back to stderr: it was printed there twice (record and plain line)."""
    r = rt("--log", "/nonexistent/dir/log", "state", "nope")
    assert r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1, r.stderr


@pytest.mark.not_runc_1_1
def test_unwritable_log_file_and_a_usage_error(rt):
    """Usage text on stderr starts with the usage error (the log record is for the log only)."""
    r = rt("--log", "/nonexistent/dir/log", "kill", "--bogus", "c1")
    assert r.returncode == 1 and r.stderr.startswith("Incorrect Usage: flag provided but not defined: -bogus")
