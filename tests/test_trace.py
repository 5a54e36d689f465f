"""`--trace[=FILE]` on run, create and exec, and `pyrt plan --explain` (pyrt only: runc has neither).

A trace lists pyrt's steps and pyrt-init's, each with its start and duration (pyrt-init's timed
by pyrt-init itself), then every step longest first and a total that adds up; tracing changes
nothing the container does.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.pyrt_only

LINE = re.compile(r"^\s*(\d+\.\d{3})\s+(\d+\.\d{3})\s+(pyrt|init)\s+(?:(\d+)\s+)?(\S+)\s+(.*)$")
BLAME = re.compile(r"^\s+(\d+\.\d{3}) ms  (pyrt|init)\s+(.+)$")
TOTAL = re.compile(r"^total (\d+\.\d{3}) ms.*: pyrt's (\d+) steps (\d+\.\d{3}) ms \+ (-?\d+\.\d{3}) ms between them; "
                   r"pyrt-init's (\d+) steps (\d+\.\d{3}) ms of it")

# the parent's steps of a plain busybox container, in order (parent_plan.for_create)
CREATE_STEPS = ["config", "plan", "state-dir", "cgroup", "fifo", "spawn", "go", "ready", "record"]


class Trace:
    """A trace's text, parsed."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.lines = [m.groups() for m in map(LINE.match, text.splitlines()) if m]
        self.parent = [(name, float(took)) for _, took, who, _, name, _ in self.lines if who == "pyrt"]
        self.child = [(int(i), name, float(took), text) for _, took, who, i, name, text in self.lines if who == "init"]
        self.blame = [(float(ms), who, name) for ms, who, name in
                      (m.groups() for m in map(BLAME.match, text.splitlines()) if m)]
        totals = [m.groups() for m in map(TOTAL.match, text.splitlines()) if m]
        assert len(totals) == 1, text
        total, n_parent, parent_ms, between, n_child, child_ms = totals[0]
        self.total, self.parent_ms, self.between, self.child_ms = map(float, (total, parent_ms, between, child_ms))
        self.n_parent, self.n_child = int(n_parent), int(n_child)

    def parent_names(self) -> list[str]:
        return [n for n, _ in self.parent if n != "limit"]  # the limits depend on the host's hierarchies

    def check_summary(self) -> None:
        """The summary is every traced step, longest first, and its numbers add up."""
        assert self.n_parent == len(self.parent) and self.n_child == len(self.child), self.text
        assert len(self.blame) == len(self.parent) + len(self.child), self.text
        took = [ms for ms, _, _ in self.blame]
        assert took == sorted(took, reverse=True), self.text
        assert sorted(took) == sorted([t for _, t in self.parent] + [c[2] for c in self.child])
        assert abs(sum(t for _, t in self.parent) - self.parent_ms) < 0.001 * len(self.parent) + 0.002
        assert abs(sum(c[2] for c in self.child) - self.child_ms) < 0.001 * len(self.child) + 0.002
        assert abs(self.parent_ms + self.between - self.total) <= 0.002, self.text
        assert self.between >= 0 and self.parent_ms <= self.total
        # pyrt-init's steps run while pyrt waits: they fit in the total
        assert self.child_ms <= self.total, self.text

    def check_child_order(self, first: str, last: str) -> None:
        """pyrt-init reports its steps in the plan's order, from step 1 (step 0 is `trace`)."""
        indices = [i for i, _, _, _ in self.child]
        assert indices == list(range(1, len(indices) + 1)), self.text
        assert self.child[0][1] == first and self.child[-1][1] == last, self.text


def names_in(trace: Trace) -> list[str]:
    return [name for _, name, _, _ in trace.child]


def test_run_trace_to_stderr(rt, bundle):
    bundle.args("echo", "hello").write()
    r = rt("run", "--trace", "--bundle", str(bundle.path), rt.new_id())
    assert r.returncode == 0 and r.stdout == "hello\n", r.stderr
    t = Trace(r.stderr)
    assert t.parent_names() == [*CREATE_STEPS, "start"], t.text
    t.check_child_order("join-cgroups" if Path("/sys/fs/cgroup/memory").is_dir() else "unshare", "exec")
    names = names_in(t)
    # the kernel's work in the order pyrt-init does it
    order = ["root", "mount", "pivot-root", "hostname", "cap-bounding", "user", "caps", "ready", "wait-start", "exec"]
    assert list(dict.fromkeys(n for n in names if n in order)) == order, names
    assert all(took >= 0 for _, took in t.parent) and all(c[2] >= 0 for c in t.child)
    assert any(c[1] == "mount" and "mount proc on /proc" in c[3] for c in t.child), t.text
    t.check_summary()
    assert "(to the container's execve)" in t.text


def test_run_trace_file_changes_nothing(rt, bundle, tmp_path):
    bundle.args("sh", "-c", "echo out; echo err >&2; exit 7").write()
    plain = rt("run", "--bundle", str(bundle.path), rt.new_id())
    out = tmp_path / "trace.txt"
    traced = rt("run", f"--trace={out}", "--bundle", str(bundle.path), rt.new_id())
    assert (plain.returncode, plain.stdout, plain.stderr) == (7, "out\n", "err\n")
    assert (traced.returncode, traced.stdout, traced.stderr) == (plain.returncode, plain.stdout, plain.stderr)
    t = Trace(out.read_text())
    assert t.parent_names() == [*CREATE_STEPS, "start"]
    assert names_in(t)[-1] == "exec"
    t.check_summary()


def test_create_and_exec_trace(rt, bundle, tmp_path):
    bundle.args("sleep", "1000").write()
    out = tmp_path / "create.txt"
    cid = rt.create(bundle, None, "--trace=" + str(out))  # stdio on files: the container keeps them
    assert (bundle.path / "stderr").read_text() == ""
    t = Trace(out.read_text())
    assert t.parent_names() == CREATE_STEPS, t.text
    names = names_in(t)
    assert names[-1] == "ready" and "pivot-root" in names and "exec" not in names, t.text
    t.check_summary()
    assert rt.state(cid)["status"] == "created"
    rt.ok("start", cid)
    rt.wait_status(cid, "running")

    r = rt("exec", "--trace", cid, "sh", "-c", "echo in; exit 3")
    assert r.returncode == 3 and r.stdout == "in\n", r.stderr
    t = Trace(r.stderr)
    assert t.parent_names() == ["state", "process", "spawn", "exec"], t.text
    names = names_in(t)
    assert "setns" in names and names[-1] == "exec", t.text
    t.check_child_order(names[0], "exec")
    t.check_summary()
    plain = rt("exec", cid, "sh", "-c", "echo in; exit 3")
    assert (plain.returncode, plain.stdout, plain.stderr) == (3, "in\n", "")


def test_failing_step_is_named(rt, bundle, tmp_path):
    bundle.config["mounts"].append({"destination": "/data", "type": "bind", "source": str(tmp_path / "missing"),
                                    "options": ["bind"]})
    bundle.args("true").write()
    plain = rt("run", "--bundle", str(bundle.path), rt.new_id())
    out = tmp_path / "trace.txt"
    traced = rt("run", f"--trace={out}", "--bundle", str(bundle.path), rt.new_id())
    assert plain.returncode == traced.returncode == 1
    assert "no such file or directory" in plain.stderr
    assert re.sub(r'time="[^"]*"', "", traced.stderr) == re.sub(r'time="[^"]*"', "", plain.stderr)
    t = Trace(out.read_text())
    failed = [c for c in t.child if c[3].startswith("FAILED")]
    assert len(failed) == 1 and failed[0] == t.child[-1], t.text
    assert failed[0][1] == "mount" and "missing" in failed[0][3] and "no such file or directory" in failed[0][3]
    # pyrt's step that was waiting for pyrt-init fails with it; nothing after it ran
    assert t.parent[-1][0] == "ready" and "FAILED" in t.text.splitlines()[
        next(i for i, line in enumerate(t.text.splitlines()) if LINE.match(line) and " ready " in line
             and "pyrt" in line)]
    t.check_summary()


def test_failing_parent_step_is_named(rt, bundle, tmp_path):
    """A step of pyrt's that fails (the pid file cannot be written) is the last, marked FAILED;
    nothing is left behind (no_leaks)."""
    bundle.args("true").write()
    out = tmp_path / "trace.txt"
    r = rt("run", f"--trace={out}", "--pid-file", str(tmp_path / "no" / "pid"), "--bundle", str(bundle.path),
           rt.new_id())
    assert r.returncode == 1 and "write pid file" in r.stderr
    t = Trace(out.read_text())
    assert t.parent[-1][0] == "record", t.text
    last = [line for line in t.text.splitlines() if LINE.match(line) and "  pyrt  record" in line]
    assert len(last) == 1 and "FAILED" in last[0] and "write pid file" in last[0], t.text
    assert t.parent_names() == CREATE_STEPS
    t.check_summary()


def test_trace_file_unwritable(rt, bundle, tmp_path):
    bundle.args("true").write()
    r = rt("run", f"--trace={tmp_path}/no/such/dir/trace", "--bundle", str(bundle.path), rt.new_id())
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert r.stderr.strip().endswith(f"--trace {tmp_path}/no/such/dir/trace: no such file or directory\"")


def test_plan_without_trace_has_no_trace_step(rt, bundle):
    """Cheap when off: without --trace (or --debug) pyrt-init's plan has no `trace` step, so
    pyrt-init makes no extra system call."""
    bundle.args("true").write()
    plan = rt.ok("plan", str(bundle.path)).stdout
    assert "send a message to the parent" not in plan and "syscalls:" not in plan


def test_plan_explain(rt, bundle):
    bundle.args("true").write()
    plan = rt.ok("plan", "--explain", str(bundle.path)).stdout.splitlines()
    steps = [i for i, line in enumerate(plan) if re.match(r"^\s*\d+  ", line)]
    assert steps
    for i in steps:  # each step: its system calls, then why
        assert plan[i + 1].lstrip().startswith("syscalls: ") and len(plan[i + 1]) > 20, plan[i:i + 3]
        assert plan[i + 2].lstrip().startswith("why: ") and len(plan[i + 2]) > 20, plan[i:i + 3]

    def explained(step: str) -> str:
        i = next(i for i in steps if step in plan[i])
        return plan[i + 1]

    assert "pivot_root(2)" in explained("pivot_root into the rootfs")
    assert "mount(2)" in explained("mount proc on /proc")
    assert "sethostname(2)" in explained("set hostname")
    assert "clone3(2)" in explained("clone pyrt-init into the cgroup")
    assert "execve(2)" in explained("execve ['true']")
    assert "mkdir(2)" in explained("make or join cgroup")


def test_every_step_is_explained():
    """The explanations live with the steps' declarations: a new step without one fails here."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from pyrt import parent_plan, steps

    for t in steps.TYPES.values():
        assert t.calls and "(2)" in t.calls + t.why and t.why, t.name
    described = set(re.findall(r'self\.name == "([a-z-]+)"', Path(parent_plan.__file__).read_text()))
    assert set(parent_plan.EXPLAIN) == described | {"record"}  # describe()'s last case: record
    for calls, why in parent_plan.EXPLAIN.values():
        assert calls and why


@pytest.mark.parametrize("command", ["run", "create", "exec"])
def test_help_lists_trace(rt, command):
    r = rt.ok(command, "--help")
    line = next(line for line in r.stdout.splitlines() if "--trace" in line)
    assert "--trace[=value]" in line and "FILE" in line


def test_help_lists_explain(rt):
    assert "--explain" in rt.ok("plan", "--help").stdout


def test_trace_does_not_take_the_next_argument(rt, bundle):
    """`--trace ID`: the flag's value is optional, so the id stays an argument."""
    bundle.args("echo", "x").write()
    r = rt("run", "--bundle", str(bundle.path), "--trace", rt.new_id())
    assert r.returncode == 0 and r.stdout == "x\n", r.stderr
    assert "where the time went" in r.stderr
