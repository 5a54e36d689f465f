"""Every command and flag of runc 1.5 (read from `runc-1.5 --help` and `runc-1.5 CMD --help` at
test time) is accepted by pyrt, or refused with one line naming it: never "flag provided but not
defined" for a flag runc has. What pyrt refuses today is an expected failure with its reason
(docs/runc-differences.md); what a flag means is checked by the differential rows
(tests/test_diff_cli.py) and the suite's own tests."""

from __future__ import annotations

import json
import re
import subprocess
from functools import cache
from pathlib import Path

import pytest
from conftest import BINARY, RUNC_1_5

pytestmark = pytest.mark.pyrt_only

#: Commands runc 1.5 has that pyrt refuses today, and why.
REFUSED_COMMANDS = {
    "checkpoint": "no checkpoint/restore (CRIU) in pyrt",
    "restore": "no checkpoint/restore (CRIU) in pyrt",
}
#: (command, flag) runc 1.5 has that pyrt refuses today ("" is the global level), and why.
REFUSED_FLAGS = {
    ("", "--systemd-cgroup"): "no systemd cgroup driver",
}
#: How a refusal says so.
REFUSAL_WORDS = ("not supported", "not available", "not implemented", "has no", "unknown command")


@cache
def runc_help(command: str = "") -> str:
    args = [str(RUNC_1_5), *([command] if command else []), "--help"]
    return subprocess.run(args, capture_output=True, text=True, timeout=10).stdout


def _section(text: str, title: str) -> list[str]:
    lines, inside = [], False
    for line in text.splitlines():
        if line.strip().endswith(":") and not line.startswith(" "):
            inside = line.strip() == title
            continue
        if inside and line.strip():
            lines.append(line)
    return lines


def runc_commands() -> list[str]:
    names = [re.match(r"\s+([\w-]+)", line).group(1) for line in _section(runc_help(), "COMMANDS:")]
    return [n for n in names if n != "help"]


def runc_flags(command: str = "") -> list[tuple[str, str | None]]:
    """(--flag, its value type or None for a switch) of a command, or the global ones."""
    out = []
    for line in _section(runc_help(command), "OPTIONS:" if command else "GLOBAL OPTIONS:"):
        m = re.match(r"\s+(--[\w-]+)(?: (\w+))?", line)
        if m and m.group(1) not in ("--help", "--version"):
            out.append((m.group(1), m.group(2)))
    return out


def _cases() -> list:
    if not RUNC_1_5:
        return [pytest.param("", "", None, marks=pytest.mark.skip(reason="shared/bin/runc-1.5 not found"))]
    out = []
    for command in ["", *runc_commands()]:
        for flag, kind in runc_flags(command):
            why = REFUSED_FLAGS.get((command, flag)) or REFUSED_COMMANDS.get(command)
            marks = [pytest.mark.xfail(strict=True, reason=f"pyrt refuses it: {why}")] if why else []
            out.append(pytest.param(command, flag, kind, id=f"{command or 'global'} {flag}", marks=marks))
    return out


#: A value for a flag of runc's that takes one, by name (else by type).
VALUES = {"--format": "json", "--user": "0:0", "--cwd": "/", "--env": "A=1", "--cap": "CAP_KILL", "--cgroup": "sub",
          "--log-format": "json", "--rootless": "auto", "--manage-cgroups-mode": "soft", "--interval": "1s",
          "--memory": "64M", "--memory-swap": "128M", "--memory-reservation": "32M", "--kernel-memory": "64M",
          "--kernel-memory-tcp": "64M", "--cpu-share": "512", "--cpu-shares": "512", "--cpuset-cpus": "0",
          "--cpuset-mems": "0", "--l3-cache-schema": "L3:0=f", "--mem-bw-schema": "MB:0=50"}


def invocation(command: str, flag: str, kind: str | None, tmp: Path) -> list[str]:
    """pyrt with one of runc's flags on a command line that would otherwise fail on a missing
    container or bundle (so nothing runs)."""
    value = [] if kind is None else [VALUES.get(flag, str(tmp / "nosuch") if kind == "string" else "1")]
    if flag in ("--root", "--log"):
        value = [str(tmp / flag.strip("-"))]
    if command == "":
        return [BINARY, flag, *value, *(["--root", str(tmp / "root")] if flag != "--root" else []), "state", "nosuch"]
    args = {"create": ["nosuch"], "run": ["nosuch"], "spec": [], "list": [], "features": [],
            "exec": ["nosuch", "true"], "update": ["nosuch"]}.get(command, ["nosuch"])
    bundle = [] if flag == "--bundle" or command not in ("create", "run", "spec") else ["--bundle", str(tmp / "b")]
    return [BINARY, "--root", str(tmp / "root"), command, *bundle, flag, *value, *args]


def outcome(command: str, flag: str, kind: str | None, tmp: Path) -> tuple[str, str]:
    """("accepted" | "refused" | "unknown", stderr) of pyrt given the flag."""
    (tmp / "b").mkdir(exist_ok=True)
    r = subprocess.run(invocation(command, flag, kind, tmp), capture_output=True, text=True, timeout=30,
                       stdin=subprocess.DEVNULL, cwd=tmp)
    assert "Traceback" not in r.stderr, r.stderr
    if "provided but not defined" in r.stderr or "unknown command" in r.stderr:
        return "unknown", r.stderr
    lines = r.stderr.strip().splitlines()
    if r.returncode != 0 and len(lines) == 1 and flag.strip("-") in lines[0] and any(
            w in lines[0] for w in REFUSAL_WORDS):
        return "refused", r.stderr
    return "accepted", r.stderr


@pytest.mark.parametrize(("command", "flag", "kind"), _cases())
def test_runc_flag_is_accepted(tmp_path, command, flag, kind):
    kind_, err = outcome(command, flag, kind, tmp_path)
    assert kind_ == "accepted", f"{command} {flag}: {kind_}: {err.strip()[:300]}"


@pytest.mark.parametrize(("command", "flag"), sorted(REFUSED_FLAGS))
def test_refused_flag_says_so_in_one_line(tmp_path, command, flag):
    kind = dict(runc_flags(command)).get(flag) if RUNC_1_5 else "string"
    kind_, err = outcome(command, flag, kind, tmp_path)
    assert kind_ == "refused", f"{command} {flag}: {kind_}: {err.strip()[:300]}"


@pytest.mark.parametrize("command", [pytest.param(c, marks=[pytest.mark.xfail(
    strict=True, reason=f"pyrt refuses it: {REFUSED_COMMANDS[c]}")] if c in REFUSED_COMMANDS else [])
    for c in (runc_commands() if RUNC_1_5 else [])])
def test_runc_command_exists(command):
    r = subprocess.run([BINARY, command, "--help"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and f"{command} - " in r.stdout, r.stdout + r.stderr


@pytest.mark.parametrize("command", sorted(REFUSED_COMMANDS))
@pytest.mark.xfail(strict=True, reason="pyrt differs: an unknown command prints the whole help after its error line")
def test_refused_command_says_so_in_one_line(tmp_path, command):
    r = subprocess.run([BINARY, "--root", str(tmp_path), command, "nosuch"], capture_output=True, text=True,
                       timeout=30)
    lines = (r.stdout + r.stderr).strip().splitlines()
    assert r.returncode != 0 and len(lines) == 1 and command in lines[0], lines


def test_run_keep_keeps_the_stopped_container(rt, bundle):
    """runc's meaning of run --keep: the stopped container stays for `state` until delete."""
    bundle.args("true").write()
    cid = rt.new_id()
    r = rt("run", "--keep", "--bundle", str(bundle.path), cid)
    assert r.returncode == 0, r.stderr
    assert rt.state(cid)["status"] == "stopped"
    rt.ok("delete", cid)


def test_runc_flags_are_read():
    """The walk has something to walk: runc 1.5's commands and their flags."""
    if not RUNC_1_5:
        pytest.skip("shared/bin/runc-1.5 not found")
    assert {"create", "run", "exec", "update", "events"} <= set(runc_commands())
    assert ("--pid-file", "string") in runc_flags("exec") and ("--tty", None) in runc_flags("exec")
    assert ("--root", "string") in runc_flags()
    assert json.loads(subprocess.run([str(RUNC_1_5), "features"], capture_output=True, text=True).stdout)
