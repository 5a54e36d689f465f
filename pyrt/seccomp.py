"""linux.seccomp: validate the profile (at the gate), compile it to the classic-BPF program
pyrt-init loads (while the parent's plan is made: before any side effect).

Compiled with libseccomp (pyrt._seccomp, cffi), the compiler runc uses: it knows every
architecture's syscall table (x86_64, the i386 and x32 compat ABIs, i386's socketcall
multiplexing), checks 64-bit arguments on 32-bit ABIs correctly, and so gives a profile the same
meaning it has under runc. Like runc, pyrt ignores syscall names libseccomp does not know (older
tables, other kernels) and puts a stub in front that answers ENOSYS for syscalls newer than any
the profile names, so programs fall back to older calls instead of meeting the default action.

The program lives in a memfd passed to pyrt-init (`seccomp FD FLAGS`, native/init.c), and a copy
is kept for `pyrt exec` at `<state dir>/seccomp.bpf`: raw `struct sock_filter[]` (8 bytes per
instruction, host byte order), with the seccomp(2) flags in the state record as "seccomp_flags"
(`save()` for create, `for_exec()`).
"""

from __future__ import annotations

import os
import sys

from pyrt import jsonio, log
from pyrt.errors import PyrtError
from pyrt.kernel import SECCOMP_FILTER_FLAG_NEW_LISTENER
from pyrt.reader import Reader

#: OCI action -> SECCOMP_RET_* (errno, for the two that take one, in the low 16 bits)
ACTIONS = {
    "SCMP_ACT_KILL": 0, "SCMP_ACT_KILL_THREAD": 0, "SCMP_ACT_KILL_PROCESS": 0x80000000,
    "SCMP_ACT_TRAP": 0x00030000, "SCMP_ACT_ERRNO": 0x00050000, "SCMP_ACT_TRACE": 0x7FF00000,
    "SCMP_ACT_LOG": 0x7FFC0000, "SCMP_ACT_ALLOW": 0x7FFF0000, "SCMP_ACT_NOTIFY": 0x7FC00000,
}
TAKES_ERRNO = ("SCMP_ACT_ERRNO", "SCMP_ACT_TRACE")
#: actions that let a syscall run (a tracer handles new syscalls itself)
PASSING = (ACTIONS["SCMP_ACT_ALLOW"], ACTIONS["SCMP_ACT_LOG"], ACTIONS["SCMP_ACT_TRACE"])
#: OCI operator -> libseccomp's enum scmp_compare
OPERATORS = {"SCMP_CMP_NE": 1, "SCMP_CMP_LT": 2, "SCMP_CMP_LE": 3, "SCMP_CMP_EQ": 4, "SCMP_CMP_GE": 5,
             "SCMP_CMP_GT": 6, "SCMP_CMP_MASKED_EQ": 7}
#: every architecture of the runtime-spec; libseccomp's name is the lower-case suffix
ARCHS = tuple("SCMP_ARCH_" + a for a in (
    "X86", "X86_64", "X32", "ARM", "AARCH64", "MIPS", "MIPS64", "MIPS64N32", "MIPSEL", "MIPSEL64", "MIPSEL64N32",
    "PPC", "PPC64", "PPC64LE", "S390", "S390X", "PARISC", "PARISC64", "RISCV64"))
#: libseccomp cannot mix byte orders in one filter: only the host's can be used
BIG_ENDIAN = {"SCMP_ARCH_" + a for a in ("MIPS", "MIPS64", "MIPS64N32", "PPC", "PPC64", "S390", "S390X", "PARISC",
                                         "PARISC64")}
#: OCI flag -> seccomp(2) flag. WAIT_KILLABLE_RECV only means something with a notify listener.
FLAGS = {"SECCOMP_FILTER_FLAG_TSYNC": 1, "SECCOMP_FILTER_FLAG_LOG": 2, "SECCOMP_FILTER_FLAG_SPEC_ALLOW": 4,
         "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV": 32}
KNOWN_FLAGS = tuple(FLAGS)
#: added when a rule is SCMP_ACT_NOTIFY: seccomp(2) returns the filter's listener fd, for the agent
NEW_LISTENER = SECCOMP_FILTER_FLAG_NEW_LISTENER
SUN_PATH_MAX = 107  # bytes of a unix socket's path (sun_path, without its NUL)

EPERM, EEXIST, ENOSYS, MAX_ERRNO = 1, 17, 38, 4095
BPF_MAXINSNS = 4096
SAVED = "seccomp.bpf"
LISTENER = "seccomp.listener"  # {"path", "metadata"} of the agent, for exec


class Rule:
    """One syscall name of one `syscalls[]` entry (runc's unit); `index` is the entry, for errors."""

    __slots__ = ("index", "name", "action", "args")

    def __init__(self, index: int, name: str, action: int, args: list[tuple[int, int, int, int]]) -> None:
        self.index, self.name, self.action, self.args = index, name, action, args  # args: (arg, op, a, b)


class Profile:
    """A validated linux.seccomp."""

    def __init__(self, default: int, archs: list[str], flags: int, rules: list[Rule], listener: str | None = None,
                 metadata: str = "") -> None:
        self.default, self.archs, self.flags, self.rules = default, archs, flags, rules
        #: the agent's socket when a rule notifies (flags then has NEW_LISTENER); its metadata
        self.listener, self.metadata = listener, metadata


# ----------------------------------------------------------------------------- validation


def parse(r: Reader) -> Profile | None:
    """linux.seccomp (at the gate: config.py) -> Profile; None when it asks for nothing (no
    defaultAction and no syscalls: runc then installs no filter)."""
    entries = r.items("syscalls")
    if not r.get("defaultAction", str) and not entries:
        return None
    default = _action(r, "defaultAction", "defaultErrnoRet")
    if default == ACTIONS["SCMP_ACT_NOTIFY"]:  # runc's words; pyrt-init itself would wait for the agent
        r.fail("SCMP_ACT_NOTIFY cannot be used as default action", "defaultAction")
    archs = r.strings("architectures")
    for i, arch in enumerate(archs):
        if arch not in ARCHS:
            r.fail(f'unknown architecture "{arch}"', f"architectures[{i}]")
        if arch not in usable_archs():
            r.fail(f"{arch} is not {sys.byteorder}-endian like this machine: one filter cannot hold both",
                   f"architectures[{i}]")
    flags = 0
    for i, flag in enumerate(r.strings("flags")):
        if flag not in KNOWN_FLAGS:
            r.fail(f'unknown flag "{flag}"', f"flags[{i}]")
        flags |= FLAGS[flag]
    rules = []
    for i, s in enumerate(entries):
        names = s.strings("names", required=True, nonempty=True)
        for j, name in enumerate(names):
            if not name:
                s.fail("must not be empty", f"names[{j}]")
        action = _action(s, "action", "errnoRet")
        args = [_arg(a) for a in s.items("args")]
        if action == ACTIONS["SCMP_ACT_NOTIFY"]:
            for name in ("write", "sendmsg"):  # runc refuses write; pyrt-init sends the listener with sendmsg:
                if name in names:               # notified, it would wait for an agent that has no fd yet
                    s.fail(f"SCMP_ACT_NOTIFY cannot be used for the {name} syscall", "names")
        rules += [Rule(i, name, action, args) for name in names]
    listener, metadata = r.get("listenerPath", str), r.get("listenerMetadata", str) or ""
    if any(rule.action == ACTIONS["SCMP_ACT_NOTIFY"] for rule in rules):
        if not listener:
            r.fail("SCMP_ACT_NOTIFY needs a seccomp agent: seccomp listenerPath is not set", "listenerPath")
        if len(listener.encode()) > SUN_PATH_MAX:
            r.fail(f"longer than a unix socket path ({SUN_PATH_MAX} bytes)", "listenerPath")
        flags |= NEW_LISTENER
    elif flags & FLAGS["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"]:  # the kernel's EINVAL, said before
        r.fail("SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV needs a rule with SCMP_ACT_NOTIFY", "flags")
    else:
        listener = None  # as runc: no rule notifies, no listener fd, nothing sent
    return Profile(default, [a[len("SCMP_ARCH_"):].lower() for a in archs], flags, rules, listener, metadata)


def usable_archs() -> list[str]:
    """The architectures a filter on this machine can include (what `pyrt features` lists)."""
    return [a for a in ARCHS if (a in BIG_ENDIAN) == (sys.byteorder == "big")]


def _action(r: Reader, key: str, errno_key: str) -> int:
    name = r.get(key, str, required=True)
    if name not in ACTIONS:
        r.fail(f'unknown action "{name}"', key)
    errno = r.get(errno_key, int)
    if errno is None:
        return ACTIONS[name] | (EPERM if name in TAKES_ERRNO else 0)
    if name not in TAKES_ERRNO:
        r.fail(f"{name} takes no errno (only SCMP_ACT_ERRNO and SCMP_ACT_TRACE do)", errno_key)
    if not 0 <= errno <= MAX_ERRNO:
        r.fail(f"must be an errno between 0 and {MAX_ERRNO}", errno_key)
    return ACTIONS[name] | errno


def _arg(a: Reader) -> tuple[int, int, int, int]:
    index = a.get("index", int, required=True)
    if not 0 <= index <= 5:
        a.fail("must be between 0 and 5 (a syscall has six arguments)", "index")
    a.get("value", int, required=True)  # uint() alone would take a missing value as 0
    value, value_two = a.uint("value", bits=64), a.uint("valueTwo", bits=64)
    op = a.get("op", str, required=True)
    if op not in OPERATORS:
        a.fail(f'unknown operator "{op}"', "op")
    return index, OPERATORS[op], value, value_two  # MASKED_EQ: (arg & value) == valueTwo, as libseccomp's a, b


# ----------------------------------------------------------------------------- compiling


def program(p: Profile) -> bytes:
    """The BPF program of `p`: from the cache if this libseccomp and this module made it
    before, else compiled (about 15 ms for podman's profile) and cached."""
    from pyrt._seccomp import ffi, lib

    key = _cache_key(lib, p)
    code = _cached(key)
    if code is None:
        code = _compile(ffi, lib, p)
        _cache(key, code)
    return code


def _compile(ffi, lib, p: Profile) -> bytes:
    ctx = lib.seccomp_init(p.default)
    if ctx == ffi.NULL:
        raise PyrtError("seccomp: libseccomp cannot make a filter")
    try:
        for arch in p.archs:
            rc = lib.seccomp_arch_add(ctx, lib.seccomp_arch_resolve_name(arch.encode()))
            if rc < 0 and rc != -EEXIST:  # the native arch is always there
                raise PyrtError(f"config.json: linux.seccomp.architectures: {arch}: {os.strerror(-rc).lower()}")
        # Rules that repeat the default action are skipped (as runc: libseccomp refuses them). No
        # binary-tree option either: the program is runc's, and the kernel's per-syscall cache
        # skips the filter for always-allowed syscalls anyway.
        for rule in p.rules:
            if rule.action != p.default:
                _add(ffi, lib, ctx, rule)
        fd = os.memfd_create("pyrt-seccomp", os.MFD_CLOEXEC)
        try:
            rc = lib.seccomp_export_bpf(ctx, fd)
            if rc < 0:
                raise PyrtError(f"seccomp: export the filter: {os.strerror(-rc).lower()}")
            code = _enosys_stub(lib, p) + os.pread(fd, os.fstat(fd).st_size, 0)
        finally:
            os.close(fd)
    finally:
        lib.seccomp_release(ctx)
    if len(code) // 8 > BPF_MAXINSNS:
        raise PyrtError(f"config.json: linux.seccomp: the filter is {len(code) // 8} BPF instructions long, "
                        f"more than the kernel's {BPF_MAXINSNS}")
    return code


def _add(ffi, lib, ctx, rule: Rule) -> None:
    """Add one rule as runc does: skip names this libseccomp does not know, and turn several
    checks of one argument into one rule each."""
    nr = lib.seccomp_syscall_resolve_name(rule.name.encode())
    if nr == -1:  # __NR_SCMP_ERROR
        log.debug(f'seccomp: unknown syscall "{rule.name}" ignored')
        return
    indexes = [arg[0] for arg in rule.args]
    groups = [[arg] for arg in rule.args] if len(set(indexes)) < len(indexes) else [rule.args]
    for args in groups:
        cmp = ffi.new("struct scmp_arg_cmp[]", len(args) or 1)
        for k, (index, op, a, b) in enumerate(args):
            cmp[k].arg, cmp[k].op, cmp[k].datum_a, cmp[k].datum_b = index, op, a, b
        rc = lib.seccomp_rule_add_array(ctx, rule.action, nr, len(args), cmp)
        if rc < 0:
            raise PyrtError(f"config.json: linux.seccomp.syscalls[{rule.index}]: {rule.name}: "
                            f"{os.strerror(-rc).lower()}")


# classic BPF, as seccomp sees it: struct seccomp_data { int nr; __u32 arch; ... }
_LD_ABS, _JA, _JEQ, _JGT, _JSET, _RET = 0x20, 0x05, 0x15, 0x25, 0x45, 0x06
_NR, _ARCH = 0, 4
_X32_BIT = 0x40000000
_X32, _X86_64 = 0x4000003E, 0xC000003E  # libseccomp arch tokens; x32 shares x86_64's AUDIT_ARCH


def _enosys_stub(lib, p: Profile) -> bytes:
    """runc's patch in front of the filter: for each listed architecture, a syscall numbered
    above the highest the profile names there gets ENOSYS. Not added when the default action
    lets syscalls through or is already ENOSYS (the stub would change nothing)."""
    if p.default & 0xFFFF0000 in PASSING or p.default == ACTIONS["SCMP_ACT_ERRNO"] | ENOSYS:
        return b""
    last: dict[int, dict[int, int]] = {}  # AUDIT_ARCH -> arch token -> highest syscall number
    for arch in dict.fromkeys(p.archs):
        token = lib.seccomp_arch_resolve_name(arch.encode())
        top = max((lib.seccomp_syscall_resolve_name_arch(token, r.name.encode()) for r in p.rules), default=0)
        if top > 0:
            last.setdefault(_X86_64 if token == _X32 else token, {})[token] = top
    if not last:
        return b""
    code: list = [(_LD_ABS, None, None, _ARCH)]
    code += [(_JEQ, f"arch{audit:x}", None, audit) for audit in last]
    code.append((_JA, None, None, "filter"))
    for audit, tops in last.items():
        code += [f"arch{audit:x}", (_LD_ABS, None, None, _NR)]
        if len(tops) == 2:  # x86_64 and x32: the x32 bit in the number tells them apart
            code += [(_JSET, "x32", None, _X32_BIT), (_JGT, "enosys", "filter", tops[_X86_64]),
                     "x32", (_JGT, "enosys", "filter", tops[_X32])]
        else:
            code.append((_JGT, "enosys", "filter", next(iter(tops.values()))))
    code += ["enosys", (_RET, None, None, ACTIONS["SCMP_ACT_ERRNO"] | ENOSYS), "filter"]
    return _assemble(code)


def _assemble(code: list) -> bytes:
    """Instructions (op, jt, jf, k) whose jump targets are labels (strings in the list)."""
    import struct

    labels, insns = {}, []
    for item in code:
        if isinstance(item, str):
            labels[item] = len(insns)
        else:
            insns.append(item)

    def rel(label: str | None, i: int) -> int:
        return 0 if label is None else labels[label] - i - 1

    return b"".join(struct.pack("=HBBI", op, rel(jt, i), rel(jf, i), rel(k, i) if op == _JA else k)
                    for i, (op, jt, jf, k) in enumerate(insns))


# ----------------------------------------------------------------------------- the cache

#: Compiled programs by content: engines send the same profile for container after container.
#: Only root writes here, and a directory anyone else could write to is not trusted.
CACHE = "/var/cache/pyrt/seccomp"


def _cache_key(lib, p: Profile) -> str:
    """Everything the program depends on: libseccomp's version, this module, the profile."""
    from _blake2 import blake2b  # what hashlib.blake2b is, without hashlib loading OpenSSL (2 ms)

    v = lib.seccomp_version()
    h = blake2b(f"{v.major}.{v.minor}.{v.micro}".encode(), digest_size=20)
    h.update(_read(__file__))
    h.update(repr((p.default, p.archs, [(r.name, r.action, r.args) for r in p.rules])).encode())
    return h.hexdigest()


def _cached(key: str) -> bytes | None:
    try:
        d = os.open(CACHE, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        st = os.fstat(d)
        if st.st_uid != os.geteuid() or st.st_mode & 0o022:
            return None
        code = _read(key, d)
    except OSError:
        return None
    finally:
        os.close(d)
    return code if code and len(code) % 8 == 0 and len(code) // 8 <= BPF_MAXINSNS else None


def _cache(key: str, code: bytes) -> None:
    """Best effort: a cache that cannot be written only costs the next create a compile."""
    try:
        os.makedirs(CACHE, 0o700, exist_ok=True)
        d = os.open(CACHE, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return
    try:
        jsonio.write_atomic(key, code, dir_fd=d)
    except OSError:
        pass
    finally:
        os.close(d)


def _read(name: str, dir_fd: int | None = None) -> bytes:
    fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
    try:
        return os.pread(fd, os.fstat(fd).st_size, 0)
    finally:
        os.close(fd)


# ----------------------------------------------------------------------------- create and exec


def save(code: bytes, dir_fd: int, floor: int, p: Profile) -> int:
    """For create: keep a copy of the program (and where its agent listens) in the state
    directory (`dir_fd`) for exec, and return a memfd at or above `floor` holding it, for
    pyrt-init's seccomp step."""
    try:
        jsonio.write_atomic(SAVED, code, dir_fd=dir_fd)
        if p.listener:
            jsonio.write_atomic(LISTENER, jsonio.dumps({"path": p.listener, "metadata": p.metadata}).encode(),
                                dir_fd=dir_fd)
    except OSError as e:
        raise PyrtError(f"save the seccomp program in the state directory: {os.strerror(e.errno).lower()}") from None
    from pyrt.spawn import above

    fd = above(os.memfd_create("pyrt-seccomp", os.MFD_CLOEXEC), floor)
    try:
        os.write(fd, code)
    except BaseException:
        os.close(fd)
        raise
    return fd


def for_exec(state_dir_fd: int) -> int | None:
    """For exec: the container's program (an O_CLOEXEC fd for the `seccomp` step: move it above
    the preserved fds, close it after spawning); None if the container has no filter."""
    try:
        return os.open(SAVED, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=state_dir_fd)
    except FileNotFoundError:
        return None


def listener_of(state_dir_fd: int) -> tuple[str, str]:
    """For exec: the container's agent (path, metadata), saved by create."""
    try:
        saved = jsonio.loads(_read(LISTENER, state_dir_fd))
    except OSError as e:
        raise PyrtError(f"read {LISTENER} in the state directory: {os.strerror(e.errno).lower()}") from None
    return saved["path"], saved["metadata"]


def send_listener(path: str, metadata: str, fd: int, pid: int, state: dict) -> None:
    """Hand a filter's listener fd to the agent listening on `path`, as runc does: one message on
    a new connection, runc's ContainerProcessState JSON with the fd (SCM_RIGHTS). `pid` is the
    process whose filter it is; `state` the container's. The caller closes `fd`."""
    import socket

    from pyrt import SPEC_VERSION

    msg = {"ociVersion": SPEC_VERSION, "fds": ["seccompFd"], "pid": pid, "metadata": metadata, "state": state}
    if not metadata:
        del msg["metadata"]
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC) as s:
        try:
            s.connect(path)
        except OSError as e:
            raise PyrtError(f"failed to connect with seccomp agent specified in the seccomp profile: {path}: "
                            f"{os.strerror(e.errno).lower()}") from None
        try:
            socket.send_fds(s, [jsonio.dumps(msg).encode()], [fd])
        except OSError as e:
            raise PyrtError(f"cannot send seccomp fd to {path}: {os.strerror(e.errno).lower()}") from None
