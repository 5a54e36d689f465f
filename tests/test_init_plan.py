"""pyrt-init's plan reader, fed plans directly (no container, no namespaces): it takes any number
of steps and arguments, and refuses, naming it, anything it cannot read exactly. A lax parse is a
hole: a group list read up to its first bad character, or (gid_t)-1, leaves the process root."""

from __future__ import annotations

import os
import socket
import subprocess

import pytest

from pyrt import spawn

pytestmark = pytest.mark.pyrt_only


def run_plan(fields: list[str]) -> tuple[int, int, str]:
    """Run pyrt-init on a plan of NUL-terminated fields; its error message (index, errno, detail)."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    plan = os.memfd_create("plan")
    os.write(plan, "".join(f + "\0" for f in fields).encode())
    with ours, theirs:
        p = subprocess.Popen([spawn.INIT, str(theirs.fileno()), str(plan)], pass_fds=(theirs.fileno(), plan),
                             stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(plan)
        theirs.close()
        ours.send(b"go")
        ours.settimeout(20)
        message = ours.recv(1 << 16).split(b"\0")
        assert p.wait(timeout=20) != 0
    assert message[0] == b"error", message
    return int(message[1]), int(message[2]), message[3].decode()


def step(name: str, *args: str) -> list[str]:
    return [name, str(len(args)), *args]


@pytest.mark.parametrize("groups,bad", [("5,x", "x"), ("5,,6", ""), ("5,", ""), ("-1", "-1"), ("5 ", "5 "),
                                        ("99999999999999999999", "99999999999999999999")])
def test_user_groups_are_read_exactly(groups, bad):
    index, err, detail = run_plan(step("user", "0", "0", groups))
    assert (index, detail) == (0, f'bad number in plan: "{bad}"')


@pytest.mark.parametrize("args", [("4294967295", "0", ""), ("0", "4294967295", ""), ("0", "0", "7,4294967295"),
                                  ("2147483648", "0", "")])
def test_user_ids_above_int_max_are_refused(args):
    bad = next(a for a in ",".join(args).split(",") if a and int(a) > 2**31 - 1)
    assert run_plan(step("user", *args)) == (0, 22, f"id {bad} out of range")


def test_more_groups_than_the_kernel_takes_are_not_truncated():
    """setgroups(2) refuses more than NGROUPS_MAX: the step fails instead of dropping the rest."""
    assert run_plan(step("user", "0", "0", ",".join(map(str, range(65537))))) == (0, 22, "setgroups")


def test_rlimit_numbers_are_unsigned():
    assert run_plan(step("rlimit", "4", "-1", "-1"))[2] == 'bad number in plan: "-1"'


def test_no_fixed_number_of_steps_or_arguments():
    """10000 steps, and a step with 100000 arguments, are read whole (the last step runs)."""
    fields = step("umask", "0") * 10000 + step("hook", "createContainer", "0", "/nonexistent", "0",
                                               *["arg"] * 100000)
    index, err, detail = run_plan(fields)
    assert (index, detail) == (10000, "createContainer hook /nonexistent: no container state (no hook-sync step)")


@pytest.mark.parametrize("count", ["99", "1x", "", "-1", "99999999999999999999"])
def test_malformed_argument_counts(count):
    assert run_plan(["umask", count, "0"]) == (0, 22, "malformed plan")
