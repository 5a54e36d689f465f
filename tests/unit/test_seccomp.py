"""linux.seccomp without a container: the profile checked at the gate (seccomp.parse), and the
program libseccomp compiles for it, with runc's ENOSYS stub in front (the kernel runs it in
tests/test_seccomp.py)."""

from __future__ import annotations

import struct

import pytest

from pyrt import seccomp
from pyrt.reader import ConfigError, Reader


def parse(profile: dict) -> seccomp.Profile | None:
    return seccomp.parse(Reader(profile, "config.json", "linux.seccomp"))


def test_a_profile():
    p = parse({"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 38, "architectures": ["SCMP_ARCH_X86_64"],
               "flags": ["SECCOMP_FILTER_FLAG_LOG"],
               "syscalls": [{"names": ["mkdir", "rmdir"], "action": "SCMP_ACT_ALLOW"},
                            {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
                             "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]},
                            {"names": ["kill"], "action": "SCMP_ACT_ERRNO"}]})
    assert p.default == seccomp.ACTIONS["SCMP_ACT_ERRNO"] | 38 and p.archs == ["x86_64"] and p.flags == 2
    assert [(r.index, r.name, r.action, r.args) for r in p.rules] == [
        (0, "mkdir", seccomp.ACTIONS["SCMP_ACT_ALLOW"], []), (0, "rmdir", seccomp.ACTIONS["SCMP_ACT_ALLOW"], []),
        (1, "personality", seccomp.ACTIONS["SCMP_ACT_ALLOW"], [(0, seccomp.OPERATORS["SCMP_CMP_EQ"], 8, 0)]),
        (2, "kill", seccomp.ACTIONS["SCMP_ACT_ERRNO"] | 1, [])]  # ERRNO without errnoRet: EPERM, as runc
    assert parse({}) is None and parse({"architectures": ["SCMP_ARCH_X86_64"]}) is None  # asks for nothing


def test_listener():
    """A notify rule asks the kernel for the filter's listener; a listenerPath alone is ignored, as runc."""
    p = parse({"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/run/a", "listenerMetadata": "m",
               "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]})
    assert (p.listener, p.metadata, p.flags) == ("/run/a", "m", seccomp.NEW_LISTENER)
    assert p.rules[0].action == 0x7FC00000  # SECCOMP_RET_USER_NOTIF
    p = parse({"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/run/a"})
    assert (p.listener, p.flags) == (None, 0)


@pytest.mark.parametrize("profile,words", [
    ({"defaultAction": "SCMP_ACT_NOPE"}, 'defaultAction: unknown action "SCMP_ACT_NOPE"'),
    ({"defaultAction": "SCMP_ACT_NOTIFY"}, "defaultAction: SCMP_ACT_NOTIFY cannot be used as default action"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "defaultErrnoRet": 5}, "defaultErrnoRet: SCMP_ACT_ALLOW takes no errno"),
    ({"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 4096}, "defaultErrnoRet: must be an errno between 0"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_VAX"]},
     'architectures[0]: unknown architecture "SCMP_ARCH_VAX"'),
    ({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_S390X"]}, "architectures[0]: SCMP_ARCH_S390X "
     "is not little-endian like this machine"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "flags": ["SECCOMP_FILTER_FLAG_NOPE"]}, 'flags[0]: unknown flag'),
    ({"defaultAction": "SCMP_ACT_ALLOW", "flags": ["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"]},
     "flags: SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV needs a rule with SCMP_ACT_NOTIFY"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["x"], "action": "SCMP_ACT_NOTIFY"}]},
     "listenerPath: SCMP_ACT_NOTIFY needs a seccomp agent: seccomp listenerPath is not set"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/a",
      "syscalls": [{"names": ["x", "write"], "action": "SCMP_ACT_NOTIFY"}]},
     "syscalls[0].names: SCMP_ACT_NOTIFY cannot be used for the write syscall"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": [], "action": "SCMP_ACT_ERRNO"}]},
     "syscalls[0].names: must be a non-empty array of strings"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": [""], "action": "SCMP_ACT_ERRNO"}]},
     "syscalls[0].names[0]: must not be empty"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["x"]}]}, "syscalls[0].action: is required"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["x"], "action": "SCMP_ACT_ERRNO",
                                                       "args": [{"index": 6, "value": 1, "op": "SCMP_CMP_EQ"}]}]},
     "syscalls[0].args[0].index: must be between 0 and 5"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["x"], "action": "SCMP_ACT_ERRNO",
                                                       "args": [{"index": 0, "op": "SCMP_CMP_EQ"}]}]},
     "syscalls[0].args[0].value: is required"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["x"], "action": "SCMP_ACT_ERRNO",
                                                       "args": [{"index": 0, "value": 2**64, "op": "SCMP_CMP_EQ"}]}]},
     "syscalls[0].args[0].value: must be between 0 and 18446744073709551615"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["x"], "action": "SCMP_ACT_ERRNO",
                                                       "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_NOPE"}]}]},
     'syscalls[0].args[0].op: unknown operator "SCMP_CMP_NOPE"'),
])
def test_refused(profile, words):
    with pytest.raises(ConfigError) as e:
        parse(profile)
    assert str(e.value) == f"config.json: linux.seccomp.{words}" or str(e.value).startswith(
        f"config.json: linux.seccomp.{words}"), str(e.value)


def instructions(code: bytes) -> list[tuple[int, int, int, int]]:
    return [struct.unpack("=HBBI", code[i:i + 8]) for i in range(0, len(code), 8)]


def test_the_program_and_its_enosys_stub():
    """libseccomp's program for the profile, after runc's stub: a syscall numbered above the
    highest the profile names gets ENOSYS instead of the default action."""
    from pyrt._seccomp import ffi, lib

    p = parse({"defaultAction": "SCMP_ACT_ERRNO", "architectures": ["SCMP_ARCH_X86_64"],
               "syscalls": [{"names": ["read", "write", "exit_group"], "action": "SCMP_ACT_ALLOW"}]})
    code = seccomp._compile(ffi, lib, p)
    stub = instructions(seccomp._enosys_stub(lib, p))
    assert instructions(code)[:len(stub)] == stub
    top = lib.seccomp_syscall_resolve_name(b"exit_group")
    assert (0x25, 0, 1, top) in stub  # JGT the highest number named: on to the ENOSYS return
    assert (0x06, 0, 0, seccomp.ACTIONS["SCMP_ACT_ERRNO"] | 38) in stub
    allow = parse({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_KILL"}]})
    assert seccomp._enosys_stub(lib, allow) == b""  # a passing default needs none


def test_assembled_jumps_are_relative():
    code = seccomp._assemble([(0x20, None, None, 4), (0x15, "yes", None, 7), "no", (0x06, None, None, 0), "yes",
                              (0x06, None, None, 1)])
    assert instructions(code) == [(0x20, 0, 0, 4), (0x15, 1, 0, 7), (0x06, 0, 0, 0), (0x06, 0, 0, 1)]
