"""What pyrt prints and keeps as JSON, without a container: runc's layouts (Go's encoding/json),
state.json's record, and the status words each command refuses with."""

from __future__ import annotations

import json

import pytest

from pyrt import jsonio, state
from pyrt.commands import list as list_cmd
from pyrt.commands import state as state_cmd
from pyrt.errors import PyrtError


def test_pretty_is_gos_marshal_indent():
    obj = {"a": [1, {"b": None}], "c": {}, "d": [], "f": True, "g": 1.5}
    assert jsonio.pretty(obj) == ('{\n  "a": [\n    1,\n    {\n      "b": null\n    }\n  ],\n  "c": {},\n  "d": [],\n'
                                  '  "f": true,\n  "g": 1.5\n}')
    assert jsonio.pretty({"x": [1]}, indent="\t") == '{\n\t"x": [\n\t\t1\n\t]\n}'
    assert json.loads(jsonio.pretty(obj)) == obj


def test_dumps_is_compact_and_loads_is_strict():
    assert jsonio.dumps({"a": [1, "x"], "b": (2,)}) == '{"a":[1,"x"],"b":[2]}'
    for text in ("NaN", "[1] [2]", "", "{'a': 1}", "[" * 100000):
        with pytest.raises(ValueError):
            jsonio.loads(text)


def record(**changes) -> state.Record:
    fields = dict(oci_version="1.0.2", id="c1", pid=0, bundle="/b", rootfs="/b/rootfs", created="2026-01-01T00:00:00Z",
                  annotations={"k": "v"}, init_start=None, cgroup={"root": "/sys/fs/cgroup", "path": "pyrt/x/c1"},
                  hooks={"poststop": [{"path": "/bin/true", "args": [], "env": [], "timeout": None}]},
                  process={"args": ["sh"], "cwd": "/"}, namespaces=["mount", "pid"], no_new_keyring=True,
                  personality=8, seccomp_flags=2)
    fields.update(changes)
    return state.Record(**fields)


def test_the_record_is_what_state_json_holds():
    r = record()
    obj = json.loads(jsonio.dumps(r.to_json()))
    assert obj["exec"] == {"namespaces": ["mount", "pid"], "process": {"args": ["sh"], "cwd": "/"},
                           "noNewKeyring": True, "personality": 8}
    assert obj["seccomp_flags"] == 2 and obj["init_start"] is None
    again = state.Record.from_json(obj)
    assert {k: getattr(again, k) for k in state.Record.__slots__} == {k: getattr(r, k) for k in state.Record.__slots__}
    bare = json.loads(jsonio.dumps(record(process=None, seccomp_flags=None).to_json()))
    assert "exec" not in bare and "seccomp_flags" not in bare


def test_state_and_list_print_runcs_layouts(tmp_path, capsys):
    """`state`: runc's fields in runc's order (pid 0 once stopped); `list`: its table and JSON."""
    root = str(tmp_path / "root")
    c = state.Container.new(root, "c1")
    c.record = record(pid=1, init_start="not the start time of pid 1")  # a recycled pid: stopped
    c.save()
    c.close()

    class G:
        pass

    G.root = root
    state_cmd.main(G, {}, ["c1"])
    out = capsys.readouterr().out
    assert list(json.loads(out)) == ["ociVersion", "id", "pid", "status", "bundle", "rootfs", "created", "owner",
                                     "annotations"]
    assert json.loads(out)["status"] == "stopped" and json.loads(out)["pid"] == 0 and out.startswith('{\n  "oci')
    list_cmd.main(G, {"quiet": False, "format": "table"}, [])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"]
    assert lines[1].split()[:4] == ["c1", "0", "stopped", "/b"] and lines[0].index("PID") == 12
    list_cmd.main(G, {"quiet": False, "format": "json"}, [])
    assert json.loads(capsys.readouterr().out)[0]["id"] == "c1"
    list_cmd.main(G, {"quiet": True, "format": "table"}, [])
    assert capsys.readouterr().out == "c1\n"
    with pytest.raises(PyrtError, match='invalid format option "yaml": use table or json'):
        list_cmd.main(G, {"quiet": False, "format": "yaml"}, [])


RUNC_WORDS = {
    ("start", "stopped"): "cannot start a container that has stopped",
    ("start", "running"): "cannot start an already running container",
    ("start", "paused"): "cannot start a container in the paused state",
    ("kill", "stopped"): "container not running",
    ("delete", "running"): "cannot delete container c1 that is not stopped: running",
    ("delete", "paused"): "cannot delete container c1 that is not stopped: paused",
    ("exec", "stopped"): "cannot exec in a stopped container",
    ("exec", "paused"): "cannot exec in a paused container (use --ignore-paused to override)",
    ("exec --ignore-paused", "stopped"): "cannot exec in a stopped container",
    ("pause", "stopped"): "container not running",
    ("pause", "paused"): "container already paused",
    ("resume", "created"): "container not paused", ("resume", "running"): "container not paused",
    ("resume", "stopped"): "container not paused",
    ("update", "stopped"): "container not running",
    ("events", "stopped"): "container with id c1 is not running",
}


@pytest.mark.parametrize("op", sorted(state.Status.REFUSED))
@pytest.mark.parametrize("status", ["created", "running", "paused", "stopped"])
def test_status_require(op, status):
    """Each operation in each status: allowed, or refused in runc's words."""
    words = RUNC_WORDS.get((op, status))
    if words is None:
        state.Status(status, "c1").require(op)
    else:
        with pytest.raises(PyrtError) as e:
            state.Status(status, "c1").require(op)
        assert str(e.value) == words
