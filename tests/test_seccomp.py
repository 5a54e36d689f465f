"""linux.seccomp: filters applied for real on the real kernel, through the command line.

Shared tests hold for runc 1.5 too (PYRT_BIN=runc); pyrt-only ones cover what runc 1.5 does
differently (errnoRet on an action without an errno, the archs in features;
docs/runc-differences.md) and pyrt's own promises (the program saved for exec,
libseccomp loaded only when needed).
"""

from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path

import pytest
from conftest import IS_RUNC

# podman 4.3's config.json for `podman run` on x86_64 (its seccomp.json, as podman converts it):
# ERRNO(ENOSYS) by default, an allow list, conditions on personality(2), EPERM for privileged calls.
PODMAN_ALLOW = """
_llseek _newselect accept accept4 access adjtimex alarm bind brk capget capset chdir chmod chown chown32
clock_adjtime clock_adjtime64 clock_getres clock_getres_time64 clock_gettime clock_gettime64 clock_nanosleep
clock_nanosleep_time64 clone clone3 close close_range connect copy_file_range creat dup dup2 dup3 epoll_create
epoll_create1 epoll_ctl epoll_ctl_old epoll_pwait epoll_pwait2 epoll_wait epoll_wait_old eventfd eventfd2 execve
execveat exit exit_group faccessat faccessat2 fadvise64 fadvise64_64 fallocate fanotify_mark fchdir fchmod
fchmodat fchown fchown32 fchownat fcntl fcntl64 fdatasync fgetxattr flistxattr flock fork fremovexattr fsconfig
fsetxattr fsmount fsopen fspick fstat fstat64 fstatat64 fstatfs fstatfs64 fsync ftruncate ftruncate64 futex
futex_time64 futimesat get_mempolicy get_robust_list get_thread_area getcpu getcwd getdents getdents64 getegid
getegid32 geteuid geteuid32 getgid getgid32 getgroups getgroups32 getitimer getpeername getpgid getpgrp getpid
getppid getpriority getrandom getresgid getresgid32 getresuid getresuid32 getrlimit getrusage getsid getsockname
getsockopt gettid gettimeofday getuid getuid32 getxattr inotify_add_watch inotify_init inotify_init1
inotify_rm_watch io_cancel io_destroy io_getevents io_setup io_submit ioctl ioprio_get ioprio_set ipc keyctl
kill landlock_add_rule landlock_create_ruleset landlock_restrict_self lchown lchown32 lgetxattr link linkat
listen listxattr llistxattr lremovexattr lseek lsetxattr lstat lstat64 madvise mbind membarrier memfd_create
memfd_secret mincore mkdir mkdirat mknod mknodat mlock mlock2 mlockall mmap mmap2 mount mount_setattr move_mount
mprotect mq_getsetattr mq_notify mq_open mq_timedreceive mq_timedreceive_time64 mq_timedsend mq_timedsend_time64
mq_unlink mremap msgctl msgget msgrcv msgsnd msync munlock munlockall munmap name_to_handle_at nanosleep
newfstatat open open_tree openat openat2 pause pidfd_getfd pidfd_open pidfd_send_signal pipe pipe2 pivot_root
pkey_alloc pkey_free pkey_mprotect poll ppoll ppoll_time64 prctl pread64 preadv preadv2 prlimit64
process_mrelease process_vm_readv process_vm_writev pselect6 pselect6_time64 ptrace pwrite64 pwritev pwritev2
read readahead readdir readlink readlinkat readv reboot recv recvfrom recvmmsg recvmmsg_time64 recvmsg
remap_file_pages removexattr rename renameat renameat2 restart_syscall rmdir rseq rt_sigaction rt_sigpending
rt_sigprocmask rt_sigqueueinfo rt_sigreturn rt_sigsuspend rt_sigtimedwait rt_sigtimedwait_time64
rt_tgsigqueueinfo sched_get_priority_max sched_get_priority_min sched_getaffinity sched_getattr sched_getparam
sched_getscheduler sched_rr_get_interval sched_rr_get_interval_time64 sched_setaffinity sched_setattr
sched_setparam sched_setscheduler sched_yield seccomp select semctl semget semop semtimedop semtimedop_time64
send sendfile sendfile64 sendmmsg sendmsg sendto set_mempolicy set_robust_list set_thread_area set_tid_address
setfsgid setfsgid32 setfsuid setfsuid32 setgid setgid32 setgroups setgroups32 setitimer setns setpgid
setpriority setregid setregid32 setresgid setresgid32 setresuid setresuid32 setreuid setreuid32 setrlimit setsid
setsockopt setuid setuid32 setxattr shmat shmctl shmdt shmget shutdown sigaction sigaltstack signal signalfd
signalfd4 sigpending sigprocmask sigreturn sigsuspend socketcall socketpair splice stat stat64 statfs statfs64
statx symlink symlinkat sync sync_file_range syncfs syscall sysinfo syslog tee tgkill time timer_create
timer_delete timer_getoverrun timer_gettime timer_gettime64 timer_settime timer_settime64 timerfd timerfd_create
timerfd_gettime timerfd_gettime64 timerfd_settime timerfd_settime64 times tkill truncate truncate64 ugetrlimit
umask umount umount2 uname unlink unlinkat unshare utime utimensat utimensat_time64 utimes vfork wait4 waitid
waitpid write writev
""".split()  # noqa: SIM905 (a word list)


def podman_profile() -> dict:
    def rule(names: str, action: str, **kw) -> dict:
        return {"names": names.split(), "action": action, **kw}

    def personality(value: int) -> dict:
        return rule("personality", "SCMP_ACT_ALLOW", args=[{"index": 0, "value": value, "op": "SCMP_CMP_EQ"}])

    eperm = {"errnoRet": 1}
    return {
        "defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 38,
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [
            rule("bdflush io_pgetevents kexec_file_load kexec_load migrate_pages move_pages nfsservctl nice oldfstat "
                 "oldlstat oldolduname oldstat olduname pciconfig_iobase pciconfig_read pciconfig_write sgetmask "
                 "ssetmask swapcontext swapoff swapon sysfs uselib userfaultfd ustat vm86 vm86old vmsplice",
                 "SCMP_ACT_ERRNO", **eperm),
            {"names": list(PODMAN_ALLOW), "action": "SCMP_ACT_ALLOW"},
            *(personality(v) for v in (0, 8, 131072, 131080, 4294967295)),
            rule("arch_prctl", "SCMP_ACT_ALLOW"),
            rule("modify_ldt", "SCMP_ACT_ALLOW"),
            rule("open_by_handle_at", "SCMP_ACT_ERRNO", **eperm),
            rule("bpf fanotify_init lookup_dcookie perf_event_open quotactl setdomainname sethostname setns",
                 "SCMP_ACT_ERRNO", **eperm),
            rule("chroot", "SCMP_ACT_ALLOW"),
            rule("delete_module finit_module init_module query_module", "SCMP_ACT_ERRNO", **eperm),
            rule("acct", "SCMP_ACT_ERRNO", **eperm),
            rule("kcmp process_madvise", "SCMP_ACT_ERRNO", **eperm),
            rule("ioperm iopl", "SCMP_ACT_ERRNO", **eperm),
            rule("clock_settime clock_settime64 settimeofday stime", "SCMP_ACT_ERRNO", **eperm),
            rule("vhangup", "SCMP_ACT_ERRNO", **eperm),
            rule("socket", "SCMP_ACT_ALLOW"),
        ],
    }


def deny(names: str, action: str = "SCMP_ACT_ERRNO", default: str = "SCMP_ACT_ALLOW", **kw) -> dict:
    return {"defaultAction": default, "syscalls": [{"names": names.split(), "action": action, **kw}]}


def run(rt, bundle, profile: dict, script: str, nnp: bool = True) -> subprocess.CompletedProcess:
    bundle.config["linux"]["seccomp"] = profile
    bundle.process["noNewPrivileges"] = nnp
    bundle.args("sh", "-c", script).write()
    return rt("run", "--bundle", str(bundle.path), rt.new_id())


# ----------------------------------------------------------------------------- actions


@pytest.mark.parametrize("nnp", [True, False], ids=["noNewPrivileges", "privileged-load"])
@pytest.mark.parametrize("errno_ret, message", [(None, "Operation not permitted"), (28, "No space left on device")])
def test_errno_action(rt, bundle, nnp, errno_ret, message):
    extra = {} if errno_ret is None else {"errnoRet": errno_ret}
    r = run(rt, bundle, deny("mkdir mkdirat", **extra), "mkdir /tmp/d; echo rc=$?; grep ^Seccomp: /proc/self/status",
            nnp)
    assert r.returncode == 0, r.stderr
    assert "rc=1" in r.stdout and message in r.stderr
    assert r.stdout.split()[-2:] == ["Seccomp:", "2"]  # filter mode, inherited by every process


@pytest.mark.parametrize("action", ["SCMP_ACT_KILL", "SCMP_ACT_KILL_THREAD", "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_TRAP"])
def test_killing_actions(rt, bundle, action):
    r = run(rt, bundle, deny("mkdir mkdirat", action), "mkdir /tmp/d; echo status=$?; ls -d /tmp/d")
    assert "status=159" in r.stdout, r.stderr  # 128 + SIGSYS
    assert r.returncode == 1  # and the directory was never made


@pytest.mark.parametrize("profile", [deny("mkdir", "SCMP_ACT_LOG"), deny("mkdir", "SCMP_ACT_ALLOW")],
                         ids=["log-rule", "allow-rule-like-default"])
def test_passing_actions(rt, bundle, profile):
    r = run(rt, bundle, profile, "mkdir /tmp/d && echo made")
    assert (r.returncode, r.stdout) == (0, "made\n"), r.stderr


def test_privileged_load_with_openat2_and_close_range_denied(rt, bundle):
    """Without noNewPrivileges the filter is loaded before the last steps of setup; an allow list
    without openat2 and close_range (older profiles) must still start the process in its cwd."""
    bundle.process["cwd"] = "/tmp"
    r = run(rt, bundle, deny("openat2 close_range", errnoRet=1), "pwd; ls /proc/self/fd", nnp=False)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.split()
    assert lines[0] == "/tmp"
    assert sorted(lines[1:]) == ["0", "1", "2", "3"]  # stdio, and ls's own directory fd


def test_log_as_default_action(rt, bundle):
    r = run(rt, bundle, deny("mkdir", default="SCMP_ACT_LOG"), "mkdir /tmp/d; echo rc=$?; echo still running")
    assert r.stdout == "rc=1\nstill running\n", r.stderr


# ----------------------------------------------------------------------------- arguments


KILLS = "trap : USR1; kill -0 $$; echo zero=$?; kill -CONT $$; echo cont=$?; kill -USR1 $$; echo usr1=$?"


@pytest.mark.parametrize("args, expect", [
    ([{"index": 1, "value": 0, "op": "SCMP_CMP_EQ"}], "zero=1 cont=0 usr1=0"),
    ([{"index": 1, "value": 0, "op": "SCMP_CMP_NE"}], "zero=0 cont=1 usr1=1"),
    ([{"index": 1, "value": 15, "op": "SCMP_CMP_GT"}], "zero=0 cont=1 usr1=0"),
    ([{"index": 1, "value": 10, "op": "SCMP_CMP_GE"}], "zero=0 cont=1 usr1=1"),
    ([{"index": 1, "value": 10, "op": "SCMP_CMP_LT"}], "zero=1 cont=0 usr1=0"),
    ([{"index": 1, "value": 10, "op": "SCMP_CMP_LE"}], "zero=1 cont=0 usr1=1"),
    # (sig & 0x10) == 0x10: SIGCONT is 18
    ([{"index": 1, "value": 0x10, "valueTwo": 0x10, "op": "SCMP_CMP_MASKED_EQ"}], "zero=0 cont=1 usr1=0"),
    # two checks of one argument are two rules (runc's reading): either one denies
    ([{"index": 1, "value": 0, "op": "SCMP_CMP_EQ"}, {"index": 1, "value": 10, "op": "SCMP_CMP_EQ"}],
     "zero=1 cont=0 usr1=1"),
    # checks of different arguments must all hold (the shell is pid 1)
    ([{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"}, {"index": 1, "value": 18, "op": "SCMP_CMP_EQ"}],
     "zero=0 cont=1 usr1=0"),
], ids=["eq", "ne", "gt", "ge", "lt", "le", "masked-eq", "same-arg-twice", "two-args"])
def test_argument_conditions(rt, bundle, args, expect):
    r = run(rt, bundle, deny("kill", errnoRet=13, args=args), KILLS)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == expect.split()


def test_64_bit_argument_values(rt, bundle):
    """A value above 2^32 must not match its low 32 bits (personality(0xffffffff) queries)."""
    args = [{"index": 0, "value": (1 << 32) | 8, "op": "SCMP_CMP_EQ"}]
    r = run(rt, bundle, deny("personality", args=args), "linux32 uname -m")
    assert (r.returncode, r.stdout) == (0, "i686\n"), r.stderr


# ----------------------------------------------------------------------------- real profiles


@pytest.mark.parametrize("nnp", [False, True], ids=["podman-default", "noNewPrivileges"])
def test_podman_profile_runs_a_shell(rt, bundle, nnp):
    script = ("set -e; mkdir -p /tmp/d/e; echo hello > /tmp/d/e/f; cat /tmp/d/e/f; ls / | grep -c '^proc$'; "
              "echo $(( 6 * 7 )) | tr 2 3; sleep 0.05 & wait; ps -o comm | grep -x ps; "
              "linux32 uname -m; linux64 uname -m; grep ^Seccomp: /proc/self/status")
    r = run(rt, bundle, podman_profile(), script, nnp)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["hello", "1", "43", "ps", "i686", "x86_64", "Seccomp:", "2"]


def test_podman_profile_default_is_enosys(rt, bundle):
    """What the profile does not allow fails with its defaultErrnoRet (38): here personality(2)
    with a value none of the conditional rules allows any more."""
    profile = podman_profile()
    profile["syscalls"] = [r for r in profile["syscalls"] if r.get("args", [{}])[0].get("value") != 8]  # PER_LINUX32
    r = run(rt, bundle, profile, "linux32 uname -m")
    assert r.returncode != 0
    assert "Function not implemented" in r.stderr


# Every syscall of the podman allow list numbered from syncfs (306) up on x86_64 (setns is 308).
NEWER = set("""
clone3 close_range copy_file_range epoll_pwait2 execveat faccessat2 fsconfig fsmount fsopen fspick getcpu getrandom
landlock_add_rule landlock_create_ruleset landlock_restrict_self membarrier memfd_create memfd_secret mlock2
mount_setattr move_mount open_tree openat2 pidfd_getfd pidfd_open pidfd_send_signal pkey_alloc pkey_free
pkey_mprotect preadv2 process_mrelease process_vm_readv process_vm_writev pwritev2 renameat2 rseq sched_getattr
sched_setattr seccomp sendmmsg setns statx syncfs
""".split())  # noqa: SIM905


@pytest.mark.pyrt_only  # runc 1.5 calls statx itself after loading the filter: this profile's ENOSYS fails runc init
def test_syscalls_newer_than_the_profile_get_enosys(rt, bundle):
    """runc's rule: with a denying default, a syscall numbered above every syscall the profile
    names is answered ENOSYS (so programs fall back to older calls); older unnamed ones get
    the default action."""
    allow = [n for n in PODMAN_ALLOW if n not in NEWER and n not in ("mkdir", "mkdirat")] + ["arch_prctl"]
    profile = {"defaultAction": "SCMP_ACT_ERRNO", "architectures": ["SCMP_ARCH_X86_64"],
               "syscalls": [{"names": allow, "action": "SCMP_ACT_ALLOW"}]}
    r = run(rt, bundle, profile, "mkdir /tmp/d; nsenter -t 1 -u true; echo done")
    assert r.stdout == "done\n", r.stderr
    mkdir_err, setns_err = r.stderr.splitlines()
    assert "Operation not permitted" in mkdir_err
    assert "setns" in setns_err and "Function not implemented" in setns_err


def test_unknown_syscall_names_are_ignored(rt, bundle):
    """As runc: a name this kernel's tables lack (a newer or another OS's call) is skipped."""
    r = run(rt, bundle, deny("pyrt_no_such_syscall mkdir mkdirat"), "mkdir /tmp/d; echo rc=$?")
    assert (r.returncode, r.stdout) == (0, "rc=1\n"), r.stderr


def test_absent_default_action_and_rules_mean_no_filter(rt, bundle):
    r = run(rt, bundle, {}, "grep ^Seccomp: /proc/self/status")
    assert r.stdout.split() == ["Seccomp:", "0"], r.stderr


@pytest.mark.pyrt_only  # runc (1.5 too) lists every arch libseccomp knows, big-endian ones it cannot add here too
def test_every_architecture_in_features(rt, bundle):
    """features lists what a filter here can hold: the little-endian ABIs (libseccomp cannot mix byte orders)."""
    archs = json.loads(rt.ok("features").stdout)["linux"]["seccomp"]["archs"]
    assert {"SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32", "SCMP_ARCH_AARCH64",
            "SCMP_ARCH_RISCV64"} <= set(archs)
    assert "SCMP_ARCH_S390X" not in archs
    r = run(rt, bundle, {**deny("mkdir mkdirat"), "architectures": archs}, "mkdir /tmp/d; echo rc=$?")
    assert (r.returncode, r.stdout) == (0, "rc=1\n"), r.stderr


@pytest.mark.not_runc_1_1  # runc 1.1 refuses every flag
def test_flags(rt, bundle):
    profile = {**deny("mkdir mkdirat"), "flags": ["SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG",
                                                  "SECCOMP_FILTER_FLAG_SPEC_ALLOW"]}
    r = run(rt, bundle, profile, "mkdir /tmp/d; echo rc=$?")
    assert (r.returncode, r.stdout) == (0, "rc=1\n"), r.stderr


# ----------------------------------------------------------------------------- bad input


def create_fails(rt, bundle, profile: object) -> str:
    """create must fail: exit 1, one line on stderr, nothing left behind. Returns the line."""
    bundle.config["linux"]["seccomp"] = profile
    bundle.write()
    cid = rt.new_id()
    with open(bundle.path / "out", "w") as out, open(bundle.path / "err", "w+") as err:
        r = subprocess.run(rt.cmd("create", "--bundle", str(bundle.path), cid), stdin=subprocess.DEVNULL,
                           stdout=out, stderr=err, timeout=30)
        err.seek(0)
        lines = err.read().strip().splitlines()
    assert r.returncode == 1, lines
    assert len(lines) == 1 and "Traceback" not in lines[0], lines
    assert rt("state", cid).returncode == 1
    assert not (rt.root / cid).exists()
    return lines[0]


def rule(**kw) -> dict:
    return {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", **kw}]}


def arg(**kw) -> dict:
    return rule(args=[{"index": 1, "value": 0, "op": "SCMP_CMP_EQ", **kw}])


BAD = {
    "unknown-default-action": ({"defaultAction": "SCMP_ACT_FOO"}, 'linux.seccomp.defaultAction: unknown action'),
    "unknown-action": ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"], "action": "KILL"}]},
                       "linux.seccomp.syscalls[0].action: unknown action"),
    "missing-action": ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"]}]},
                       "linux.seccomp.syscalls[0].action: is required"),
    "rules-without-default": ({"syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}]},
                              "linux.seccomp.defaultAction: is required"),
    "unknown-arch": ({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_Z80"]},
                     "linux.seccomp.architectures[1]: unknown architecture"),
    "other-byte-order": ({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_S390X"]},
                         "linux.seccomp.architectures[0]: SCMP_ARCH_S390X is not little-endian"),
    "empty-name": (rule(names=[""]), "linux.seccomp.syscalls[0].names[0]: must not be empty"),
    "unknown-operator": (arg(op="SCMP_CMP_APPROX"), "linux.seccomp.syscalls[0].args[0].op: unknown operator"),
    "missing-operator": (rule(args=[{"index": 1, "value": 0}]), "linux.seccomp.syscalls[0].args[0].op: is required"),
    "index-7": (arg(index=7), "linux.seccomp.syscalls[0].args[0].index: must be between 0 and 5"),
    "negative-value": (arg(value=-1), "linux.seccomp.syscalls[0].args[0].value: must be between 0 and"),
    "args-not-array": (rule(args={"index": 1}), "linux.seccomp.syscalls[0].args: must be an array"),
    "errno-too-big": (rule(errnoRet=5000), "linux.seccomp.syscalls[0].errnoRet: must be an errno between 0 and 4095"),
    "unknown-flag": ({"defaultAction": "SCMP_ACT_ALLOW", "flags": ["SECCOMP_FILTER_FLAG_FAST"]},
                     "linux.seccomp.flags[0]: unknown flag"),
    "not-an-object": ([], "linux.seccomp: must be an object"),
}


@pytest.mark.parametrize("name", BAD)
def test_bad_profile(rt, bundle, name):
    """Refused by both: exit 1, one line; pyrt's line names the field (runc's names the value)."""
    profile, message = BAD[name]
    line = create_fails(rt, bundle, profile)
    if not IS_RUNC:
        assert f"config.json: {message}" in line


PYRT_ONLY_BAD = {  # runc 1.5 accepts these: it ignores the errno of a KILL or ALLOW, and a rule without
    # names (docs/runc-differences.md)
    "errno-on-kill": (rule(action="SCMP_ACT_KILL", errnoRet=1),
                      "linux.seccomp.syscalls[0].errnoRet: SCMP_ACT_KILL takes no errno"),
    "default-errno-on-allow": ({"defaultAction": "SCMP_ACT_ALLOW", "defaultErrnoRet": 1},
                               "linux.seccomp.defaultErrnoRet: SCMP_ACT_ALLOW takes no errno"),
    "missing-names": ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"action": "SCMP_ACT_ERRNO"}]},
                      "linux.seccomp.syscalls[0].names: is required"),
}


@pytest.mark.pyrt_only
@pytest.mark.parametrize("name", PYRT_ONLY_BAD)
def test_bad_profile_pyrt(rt, bundle, name):
    profile, message = PYRT_ONLY_BAD[name]
    assert f"config.json: {message}" in create_fails(rt, bundle, profile)


# ----------------------------------------------------------------------------- pyrt's promises


@pytest.mark.pyrt_only
def test_program_saved_for_exec(rt, bundle):
    """<state dir>/seccomp.bpf: the struct sock_filter[] exec loads, flags in state.json."""
    bundle.config["linux"]["seccomp"] = {**podman_profile(), "flags": ["SECCOMP_FILTER_FLAG_LOG"]}
    cid = rt.create(bundle.args("true"))
    program = (rt.root / cid / "seccomp.bpf").read_bytes()
    record = json.loads((rt.root / cid / "state.json").read_text())
    rt.ok("delete", "--force", cid)
    assert len(program) % 8 == 0 and 300 < len(program) // 8 <= 4096
    assert program[:8] == bytes.fromhex("2000000004000000")  # ld [4]: every filter checks the arch first
    assert record["seccomp_flags"] == 2

    del bundle.config["linux"]["seccomp"]
    plain = rt.create(bundle.copy("plain"))
    assert not (rt.root / plain / "seccomp.bpf").exists()
    rt.ok("delete", "--force", plain)


def test_exec_gets_the_container_filter(rt, bundle):
    bundle.config["linux"]["seccomp"] = deny("mkdir mkdirat", errnoRet=28)
    cid = rt.create(bundle.args("sleep", "30"))
    rt.ok("start", cid)
    r = rt("exec", cid, "sh", "-c", "mkdir /tmp/d; echo rc=$?; grep ^Seccomp: /proc/self/status")
    rt.ok("delete", "--force", cid)
    assert r.stdout.split() == ["rc=1", "Seccomp:", "2"], r.stderr
    assert "No space left on device" in r.stderr


CACHE = Path("/var/cache/pyrt/seccomp")


@pytest.mark.pyrt_only
def test_compiled_programs_are_cached(rt, bundle):
    """A profile seen before is not compiled again: its program comes from the cache (shown by
    planting another program there), and a cache directory others could write is not used."""
    profile = deny(f"mkdir mkdirat pyrt_cache_test_{uuid.uuid4().hex}")  # unknown name: a key of its own
    before = set(CACHE.iterdir()) if CACHE.exists() else set()
    first = bundle.copy("first")
    first.config["linux"]["seccomp"] = profile
    cid = rt.create(first.args("true"))
    program = (rt.root / cid / "seccomp.bpf").read_bytes()
    rt.ok("delete", "--force", cid)
    entry = [p for p in set(CACHE.iterdir()) - before if p.read_bytes() == program]
    assert len(entry) == 1
    other = bundle.copy("other")
    other.config["linux"]["seccomp"] = deny("swapoff")
    cid = rt.create(other.args("true"))
    allow_mkdir = (rt.root / cid / "seccomp.bpf").read_bytes()
    rt.ok("delete", "--force", cid)
    mode = CACHE.stat().st_mode & 0o7777
    try:
        entry[0].write_bytes(allow_mkdir)
        assert run(rt, bundle.copy("planted"), profile, "mkdir /tmp/d && echo made").stdout == "made\n"
        CACHE.chmod(0o777)
        assert run(rt, bundle.copy("untrusted"), profile, "mkdir /tmp/d; echo rc=$?").stdout == "rc=1\n"
    finally:
        CACHE.chmod(mode)
        entry[0].unlink()


@pytest.mark.pyrt_only
@pytest.mark.parametrize("nnp", [True, False])
def test_filter_placement_in_the_plan(rt, bundle, nnp):
    """With noNewPrivileges the filter comes last before the exec fifo, as in runc (the
    startContainer hooks run under it; then only the wait for `start` and execve); without,
    before the capabilities are dropped (it needs CAP_SYS_ADMIN)."""
    bundle.config["linux"]["seccomp"] = deny("mkdir")
    bundle.process["noNewPrivileges"] = nnp
    bundle.write()
    out = rt.ok("plan", str(bundle.path)).stdout
    assert "keep the seccomp program" in out.split("pyrt-init, the container's first process:")[0]
    lines = out.split("pyrt-init, the container's first process:")[1].splitlines()
    at = [i for i, line in enumerate(lines) if "seccomp" in line]
    assert len(at) == 1
    if nnp:
        assert "tell the parent" in lines[at[0] + 1] and "exec fifo" in lines[at[0] + 2]
    else:
        assert "bounding set" in lines[at[0] + 1]


@pytest.mark.pyrt_only
def test_libseccomp_only_loaded_for_a_profile(rt, bundle):
    """The start path of a container without seccomp must not pay for libseccomp."""
    maps = {}
    for name, profile in (("plain", None), ("filtered", deny("mkdir"))):
        b = bundle.copy(name).args("sleep", "30")
        if profile:
            b.config["linux"]["seccomp"] = profile
        b.write()
        cid = rt.new_id()
        proc = subprocess.Popen(rt.cmd("run", "--bundle", str(b.path), cid), stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            rt.wait_status(cid, "running")
            with open(f"/proc/{proc.pid}/maps") as f:
                maps[name] = f.read()
        finally:
            rt("kill", cid, "KILL")
            proc.wait(timeout=10)
    assert "libseccomp" not in maps["plain"] and "_seccomp" not in maps["plain"]
    assert "libseccomp" in maps["filtered"]


def test_features(rt):
    seccomp = json.loads(rt.ok("features").stdout)["linux"]["seccomp"]
    assert seccomp["enabled"] is True
    assert {"SCMP_ACT_ERRNO", "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_LOG", "SCMP_ACT_ALLOW",
            "SCMP_ACT_NOTIFY"} <= set(seccomp["actions"])
    if not IS_RUNC:  # runc 1.5's libseccomp (2.5) lacks it; pyrt sets the flag itself
        assert "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV" in seccomp["supportedFlags"]
    assert set(seccomp["operators"]) == {"SCMP_CMP_NE", "SCMP_CMP_LT", "SCMP_CMP_LE", "SCMP_CMP_EQ", "SCMP_CMP_GE",
                                         "SCMP_CMP_GT", "SCMP_CMP_MASKED_EQ"}
    assert {"SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"} <= set(seccomp["archs"])
