"""pyrt-init's plan reader, fed plans directly (no container, no namespaces): it reads the whole
plan against the table generated from pyrt/steps.py before it runs a step, takes any number of
steps and list items, and refuses, naming the step and the field, anything it cannot read
exactly. A lax parse is a hole: a group list read up to its first bad character, or (gid_t)-1,
leaves the process root. (native/init/tests/test_init.c tests the reader itself, without a
process; here it is the real pyrt-init and its messages to the parent.)"""

from __future__ import annotations

import os
import socket
import subprocess

import pytest

from pyrt import spawn, steps
from pyrt.steps import Step

pytestmark = pytest.mark.pyrt_only


def run_plan(tokens: list[str]) -> tuple[int, int, str]:
    """Run pyrt-init on a plan of NUL-terminated tokens; its first message must be its error
    (index, errno, detail)."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    plan = os.memfd_create("plan")
    os.write(plan, "".join(t + "\0" for t in tokens).encode())
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


def tokens(*plan: Step) -> list[str]:
    return steps.encode(list(plan), {}).decode().split("\0")[:-1]


def user(uid: str, gid: str, *groups: str) -> list[str]:
    return ["user", uid, gid, str(len(groups)), *groups]


@pytest.mark.parametrize("groups,bad", [(("5", "x"), 'item 1: bad number "x"'), (("5", ""), 'item 1: bad number ""'),
                                        (("5 ",), 'item 0: bad number "5 "'), (("+5",), 'item 0: bad number "+5"'),
                                        (("99999999999999999999",), 'item 0: bad number "99999999999999999999"')])
def test_user_groups_are_read_exactly(groups, bad):
    assert run_plan(user("0", "0", *groups)) == (0, 0, f"malformed plan: step 0 (user): field groups: {bad}")


@pytest.mark.parametrize("plan", [user("4294967295", "0"), user("0", "4294967295"), user("0", "0", "7", "4294967295"),
                                  user("2147483648", "0"), user("0", "0", "-1")])
def test_user_ids_above_int_max_are_refused(plan):
    bad = next(a for a in plan[1:] if not 0 <= int(a) <= 2**31 - 1)
    assert run_plan(plan) == (0, 22, f"id {bad} out of range")


def test_more_groups_than_the_kernel_takes_are_not_truncated():
    """setgroups(2) refuses more than NGROUPS_MAX: the step fails instead of dropping the rest."""
    assert run_plan(user("0", "0", *map(str, range(65537)))) == (0, 22, "setgroups")


def test_rlimit_numbers_are_unsigned():
    why = 'malformed plan: step 0 (rlimit): field soft: bad number "-1"'
    assert run_plan(["rlimit", "4", "-1", "-1"]) == (0, 0, why)


def test_the_whole_plan_is_read_before_a_step_runs():
    """A malformed step anywhere fails the plan before its first step: here `trace` would have
    sent a STEP message for each step before it."""
    plan = tokens(Step("trace"), Step("umask", 0o22)) + ["umask", "0x12"]
    assert run_plan(plan) == (2, 0, 'malformed plan: step 2 (umask): field mask: bad number "0x12"')
    assert run_plan(tokens(Step("trace")) + ["nope"]) == (1, 0, 'malformed plan: step 1: unknown step "nope"')


def test_no_fixed_number_of_steps_or_list_items():
    """10000 steps, and a step with 100000 arguments, are read whole (the last step runs)."""
    plan = tokens(*[Step("umask", 0)] * 10000,
                  Step("hook", "createContainer", 0, "/nonexistent", [], ["arg"] * 100000, 0))
    assert run_plan(plan) == (10000, 22, "createContainer hook /nonexistent: no container state (no hook-sync step)")


@pytest.mark.parametrize("count, why", [("99", "count 99 is more than the plan holds"), ("1x", 'bad count "1x"'),
                                        ("", 'bad count ""'), ("-1", 'bad count "-1"'),
                                        ("99999999999999999999", 'bad count "99999999999999999999"')])
def test_malformed_list_counts(count, why):
    assert run_plan(["exec", "0", "0", count, "sh"]) == (0, 0, f"malformed plan: step 0 (exec): field argv: {why}")


def test_a_plan_without_exec_fails():
    assert run_plan(tokens(Step("umask", 0))) == (1, 0, "the plan has no exec step")
