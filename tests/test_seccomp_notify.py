"""seccomp notify: SCMP_ACT_NOTIFY rules, linux.seccomp.listenerPath and listenerMetadata. The
runtime sends the filter's listener fd with the container's state to the agent listening on
listenerPath (runc's protocol: ContainerProcessState JSON, the fd by SCM_RIGHTS); the agent here
(seccompagent.py) answers each notification with ENOSPC. Holds for runc 1.5 too."""

from __future__ import annotations

import pytest
from conftest import IS_RUNC
from seccompagent import Agent
from test_seccomp import create_fails

ENOSPC = 28


@pytest.fixture
def agent(tmp_path):
    a = Agent(str(tmp_path / "agent.sock"), ENOSPC)
    yield a
    a.close()


def notify(agent, names: str = "mkdir mkdirat", **kw) -> dict:
    return {"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": agent.path,
            "syscalls": [{"names": names.split(), "action": "SCMP_ACT_NOTIFY"}], **kw}


def check_sent(agent, index: int, cid: str, pid: int, bundle, status: str, metadata: str | None) -> None:
    state, link, nfds = agent.received[index]
    assert link == "anon_inode:seccomp notify" and nfds == 1  # the filter's listener, nothing else
    assert state["fds"] == ["seccompFd"] and state["pid"] == pid and state.get("metadata") == metadata
    inner = state["state"]
    assert (inner["id"], inner["status"], inner["bundle"]) == (cid, status, str(bundle.path))
    assert state["ociVersion"] and inner["ociVersion"]


@pytest.mark.parametrize("nnp", [True, False], ids=["noNewPrivileges", "privileged-load"])
def test_agent_answers_the_notified_syscalls(rt, bundle, agent, nnp):
    bundle.config["linux"]["seccomp"] = notify(agent, listenerMetadata="profile=test")
    bundle.process["noNewPrivileges"] = nnp
    cid = rt.create(bundle.args("sh", "-c", "mkdir /tmp/d; echo rc=$?; touch /tmp/f && echo touched"))
    pid = rt.state(cid)["pid"]
    assert len(agent.received) == 1  # sent during create, before the process runs
    check_sent(agent, 0, cid, pid, bundle, "creating", "profile=test")
    rt.ok("start", cid)
    rt.wait_status(cid, "stopped")
    assert agent.syscalls  # the agent was asked (mkdir or mkdirat)
    rt.ok("delete", cid)


def test_run_output(rt, bundle, agent):
    bundle.config["linux"]["seccomp"] = notify(agent)
    bundle.args("sh", "-c", "mkdir /tmp/d; echo rc=$?; touch /tmp/f && echo touched").write()
    r = rt("run", "--bundle", str(bundle.path), rt.new_id())
    assert (r.returncode, r.stdout) == (0, "rc=1\ntouched\n"), r.stderr
    assert "No space left on device" in r.stderr  # the agent's answer, not the kernel's
    assert "metadata" not in agent.received[0][0]  # omitted when empty, as runc


@pytest.mark.pyrt_only  # runc 1.5's libseccomp does not support the flag
def test_wait_killable_recv_flag(rt, bundle, agent):
    bundle.config["linux"]["seccomp"] = notify(agent, flags=["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"])
    bundle.args("sh", "-c", "mkdir /tmp/d; echo rc=$?").write()
    r = rt("run", "--bundle", str(bundle.path), rt.new_id())
    assert (r.returncode, r.stdout) == (0, "rc=1\n"), r.stderr
    assert "No space left on device" in r.stderr


def test_exec_sends_its_own_listener(rt, bundle, agent):
    bundle.config["linux"]["seccomp"] = notify(agent, listenerMetadata="m")
    cid = rt.create(bundle.args("sleep", "100"))
    rt.ok("start", cid)
    r = rt("exec", cid, "sh", "-c", "mkdir /tmp/e; echo rc=$?")
    assert (r.returncode, r.stdout) == (0, "rc=1\n"), r.stderr
    assert "No space left on device" in r.stderr
    assert len(agent.received) == 2
    state = agent.received[1][0]
    assert state["pid"] != rt.state(cid)["pid"] and state["state"]["pid"] == rt.state(cid)["pid"]
    check_sent(agent, 1, cid, state["pid"], bundle, "running", "m")
    rt.ok("delete", "--force", cid)


def test_agent_not_listening_fails_create(rt, bundle, tmp_path):
    bundle.config["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": str(tmp_path / "no.sock"),
                                         "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]}
    bundle.args("true").write()
    cid = rt.new_id()
    r = rt("create", "--bundle", str(bundle.path), cid)
    assert r.returncode == 1 and "seccomp agent" in r.stderr, r.stderr
    assert rt("state", cid).returncode == 1 and not (rt.root / cid).exists()


BAD = {
    "no-listener": ({"defaultAction": "SCMP_ACT_ALLOW",
                     "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]},
                    "linux.seccomp.listenerPath: SCMP_ACT_NOTIFY needs a seccomp agent: seccomp listenerPath is not "
                    "set"),
    "default-notify": ({"defaultAction": "SCMP_ACT_NOTIFY", "listenerPath": "/run/agent.sock"},
                       "linux.seccomp.defaultAction: SCMP_ACT_NOTIFY cannot be used as default action"),
    "notify-write": ({"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/run/agent.sock",
                      "syscalls": [{"names": ["read", "write"], "action": "SCMP_ACT_NOTIFY"}]},
                     "linux.seccomp.syscalls[0].names: SCMP_ACT_NOTIFY cannot be used for the write syscall"),
}


PYRT_ONLY_BAD = {
    "killable-without-notify": ({"defaultAction": "SCMP_ACT_ALLOW",
                                 "flags": ["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"]},
                                "linux.seccomp.flags: SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV needs a rule with "
                                "SCMP_ACT_NOTIFY"),
    "notify-sendmsg": ({"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/run/agent.sock",
                        "syscalls": [{"names": ["sendmsg"], "action": "SCMP_ACT_NOTIFY"}]},
                       "linux.seccomp.syscalls[0].names: SCMP_ACT_NOTIFY cannot be used for the sendmsg syscall"),
    "listener-too-long": ({"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/" + "a" * 120,
                           "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]},
                          "linux.seccomp.listenerPath: longer than a unix socket path (107 bytes)"),
}


@pytest.mark.pyrt_only
@pytest.mark.parametrize("name", PYRT_ONLY_BAD)
def test_bad_notify_profile_pyrt(rt, bundle, name):
    profile, message = PYRT_ONLY_BAD[name]
    assert f"config.json: {message}" in create_fails(rt, bundle, profile)


@pytest.mark.parametrize("name", BAD)
def test_bad_notify_profile(rt, bundle, name):
    profile, message = BAD[name]
    line = create_fails(rt, bundle, profile)
    if not IS_RUNC:
        assert f"config.json: {message}" in line
