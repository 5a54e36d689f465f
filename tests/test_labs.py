"""The lab course (docs/labs/) as tests: every lab step of every page is typed into a shell with
`pyrt` meaning $PYRT_BIN (under this test's --root) and its output compared with the page
(tests/labdoc.py). A lab that no longer matches pyrt is a red test.

Labs that need cgroup v2 controllers carry the `cgroup2` marker (the VM on hybrid hosts); labs
that use bridge mode start with forwarding off and put it back, as the network tests do.
Container ids in the labs start with `lab` so that the leak check can look for them.
"""

from __future__ import annotations

import contextlib
import re
import socket
from pathlib import Path

import pytest
from conftest import BINARY, REPO, wait_for
from labdoc import Shell, matches, parse, pattern, prepare
from netutil import fresh_forwarding

LABS = REPO / "docs" / "labs"
PAGES = sorted(LABS.glob("[0-9][0-9]-*.md"))
IDS = re.compile(r"\blab[0-9][\w.-]*")


def _param(page: Path):
    marks = [pytest.mark.pyrt_only]
    if "cgroup2" in parse(page).requires:
        marks.append(pytest.mark.cgroup2)
    return pytest.param(page, id=page.stem, marks=marks)


def _cgroup2_controllers() -> bool:
    path = Path("/sys/fs/cgroup/cgroup.controllers")
    return path.exists() and "memory" in path.read_text().split()


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


@pytest.mark.parametrize("page", [_param(p) for p in PAGES])
def test_lab(page: Path, rt, tmp_path: Path):
    lab = parse(page)
    assert lab.steps, f"{page.name} has no lab steps"
    if "cgroup2" in lab.requires and not _cgroup2_controllers():
        pytest.fail("this lab needs a cgroup v2 host with controllers: `make test-cgroup2` runs it in a VM")
    for step in lab.steps:
        rt.ids.update(IDS.findall(step.command))
    work, env = prepare(tmp_path, BINARY, rt.root)
    network = "network" in lab.requires
    if network:
        wait_for(lambda: _port_free(8080), 10, "port 8080 to be free")
    shell = Shell(work, env)
    try:
        with fresh_forwarding() if network else contextlib.nullcontext():
            for step in lab.steps:
                actual = shell.run(step.command)
                assert matches(step.expected, actual), (f"{page.name}:{step.line}: `{step.command}` printed\n"
                                                        f"{actual}\n--- the page expects\n{step.expected}")
    finally:
        shell.close()


def test_course_is_complete():
    """At least 12 labs, each listed in the index, and the README links the course."""
    assert len(PAGES) >= 12
    index = (LABS / "README.md").read_text()
    for page in PAGES:
        assert f"({page.name})" in index, f"docs/labs/README.md does not link {page.name}"
    assert "docs/labs/README.md" in (REPO / "README.md").read_text()
    for page in PAGES:
        text = page.read_text()
        for section in ("## Goal", "## Concept", "## Steps", "## What just happened in the kernel", "## Exercise",
                        "## Check"):
            assert section in text, f"{page.name} lacks `{section}`"


def test_course_names_files_that_exist():
    """"What just happened" points students at modules and C files: each must exist (a restructure
    that moves a function must move the lab's pointer with it)."""
    for page in PAGES:
        for path in re.findall(r"`((?:pyrt|native)/[\w/.-]+\.(?:py|c|h))", page.read_text()):
            assert (REPO / path).exists(), f"{page.name} names {path}, which does not exist"


@pytest.mark.parametrize("expected, actual, ok", [
    ("hello\n", "hello\n", True),
    ("hello\n", "hellO\n", False),
    ("hello\n", "hello\nworld\n", False),
    ("hello\n...\n", "hello\nworld\nagain\n", True),
    ("...\nend\n", "end\n", True),
    ("pid <PID>\n", "pid 4242\n", True),
    ("pid <PID>\n", "pid x\n", False),
    ("exit <N>\n", "exit 1\n", True),
    ("msg ... end\n", "msg anything at all end\n", True),
    ("msg ... end\n", "msg\nend\n", False),
    ('time=<TIME> level=error msg="x"\n', 'time="2026-12-03T19:17:42Z" level=error msg="x"\n', True),
    ('"created": "<TIME>"\n', '"created": "2026-12-03T19:17:42.123456789Z"\n', True),
    ("eth0 <IP>/16\n", "eth0 10.77.0.2/16\n", True),
    ("", "", True),
    ("", "surprise\n", False),
    ("a.b*c\n", "aXbbc\n", False),
])
def test_matcher(expected: str, actual: str, ok: bool):
    """What the runner accepts: a changed output must fail a lab (the placeholders excepted)."""
    assert matches(expected, actual) is ok, pattern(expected).pattern
