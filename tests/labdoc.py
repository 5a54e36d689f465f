"""The doc-test runner of the lab course (docs/labs/): every lab step in the markdown is typed
into a shell and what it prints is compared with what the page says it prints.

A lab step is a fenced block whose info string is `console lab`:

    ```console lab
    # pyrt run box lab1-hello
    hello from pid <PID>
    ```

`# ` starts a command (root's prompt; a line ending in `\\` continues it); the lines after it, up
to the next command, are its expected output (stdout and stderr together, as a terminal shows
them). Expected output may say:

- `...` on a line of its own: any number of lines (none too);
- `...` inside a line: any text on that line;
- `<PID>`, `<N>`: a number (and the blanks before it: columns stay aligned); `<HEX>`: hex
  digits; `<IP>`: an IPv4 address; `<TIME>`: a time stamp (log lines' `time="..."` and RFC 3339
  times in JSON are turned into `<TIME>` before comparing).

Every other character must match exactly. The commands of one page run in one bash, one after
the other (cd, variables and functions carry over), each with stdin from /dev/null. A page's
requirements are a comment `<!-- lab-requires: cgroup2 network -->` (tests/test_labs.py runs a
cgroup2 lab in the VM and a network lab with the network tests' precautions).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

FENCE_OPEN = "```console lab"
REQUIRES = re.compile(r"<!--\s*lab-requires:([^>]*)-->")
PLACEHOLDERS = {"<PID>": r" *\d+", "<N>": r" *-?\d+", "<HEX>": r"[0-9a-f]+", "<IP>": r"\d+\.\d+\.\d+\.\d+",
                "<TIME>": "<TIME>"}
TIMES = [re.compile(r'(?<=time=)"[^"]*"'), re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)?")]


@dataclass
class Step:
    command: str
    expected: str
    line: int  # of the command in the page, for error messages


@dataclass
class Lab:
    path: Path
    title: str
    requires: set[str] = field(default_factory=set)
    steps: list[Step] = field(default_factory=list)


def parse(path: Path) -> Lab:
    """The page's title, requirements and lab steps, in order."""
    text = path.read_text()
    title = next((line[2:].strip() for line in text.splitlines() if line.startswith("# ")), path.stem)
    lab = Lab(path, title, {w for m in REQUIRES.finditer(text) for w in m.group(1).split()})
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        if lines[i].strip() != FENCE_OPEN:
            i += 1
            continue
        i += 1
        step: Step | None = None
        while i < len(lines) and lines[i].strip() != "```":
            line = lines[i]
            if line.startswith("# "):
                command, start = line[2:], i + 1
                while command.endswith("\\") and i + 1 < len(lines):
                    i += 1
                    command = command[:-1] + "\n" + lines[i]
                step = Step(command, "", start)
                lab.steps.append(step)
            elif step is None:
                raise ValueError(f"{path.name}:{i + 1}: a lab block must start with a `# ` command")
            else:
                step.expected += line + "\n"
            i += 1
        if i == len(lines):
            raise ValueError(f"{path.name}: unterminated lab block")
        i += 1
    return lab


def normalise(output: str) -> str:
    """Time stamps become <TIME>; trailing blanks and carriage returns go."""
    for pattern in TIMES:
        output = pattern.sub("<TIME>", output)
    lines = [line.rstrip() for line in output.replace("\r", "").split("\n")]
    return "\n".join(lines).strip("\n")


def pattern(expected: str) -> re.Pattern:
    """The regular expression an expected output stands for (see the module's docstring)."""
    parts = []
    for line in normalise(expected).split("\n") if expected.strip() else []:
        if line == "...":
            parts.append(r"(?:[^\n]*\n)*?")
            continue
        tokens = re.split(r"(\.\.\.|<PID>|<N>|<HEX>|<IP>|<TIME>)", line)
        body = "".join(r"[^\n]*?" if t == "..." else PLACEHOLDERS[t] if t in PLACEHOLDERS and t != "<TIME>"
                       else re.escape(t) for t in tokens)
        parts.append(body + r"\n")
    return re.compile("".join(parts))


def matches(expected: str, actual: str) -> bool:
    out = normalise(actual)
    return pattern(expected).fullmatch(out + "\n" if out else "") is not None


class Shell:
    """One bash for a whole page; each command's output goes to a file (a detached container
    keeps its stdio: a pipe would never see its end)."""

    def __init__(self, cwd: Path, env: dict[str, str]) -> None:
        self.dir = cwd.parent / "shell"
        self.dir.mkdir()
        self.count = 0
        self.bash = subprocess.Popen(["bash", "--norc", "--noprofile"], stdin=subprocess.PIPE, cwd=cwd, env=env,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True,
                                     start_new_session=True)

    def run(self, command: str, timeout: float = 60) -> str:
        self.count += 1
        out, rc = self.dir / f"{self.count}.out", self.dir / f"{self.count}.rc"
        self.bash.stdin.write(f"{{\n{command}\n}} </dev/null >{out} 2>&1; echo $? >{rc}.tmp; mv {rc}.tmp {rc}\n")
        self.bash.stdin.flush()
        deadline = time.monotonic() + timeout
        while not rc.exists():
            if time.monotonic() > deadline or self.bash.poll() is not None:
                raise AssertionError(f"`{command}` did not finish in {timeout} s: {out.read_text()!r}")
            time.sleep(0.01)
        return out.read_text(errors="replace")

    def close(self) -> None:
        try:
            self.bash.stdin.close()
            self.bash.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self.bash.pid, signal.SIGKILL)
            self.bash.wait()


def prepare(tmp: Path, binary: str, root: Path) -> tuple[Path, dict[str, str]]:
    """The lab's working directory (with `bundles` linking to the clone's) and an environment
    whose `pyrt` is `binary --root root`."""
    repo = Path(__file__).resolve().parent.parent
    bindir, work = tmp / "bin", tmp / "labs"
    bindir.mkdir()
    work.mkdir()
    (work / "bundles").symlink_to(repo / "bundles")
    binary = shutil.which(binary) or binary
    (bindir / "pyrt").write_text(f'#!/bin/sh\nexec "{os.path.abspath(binary)}" --root "{root}" "$@"\n')
    (bindir / "pyrt").chmod(0o755)
    return work, {**os.environ, "PATH": f"{bindir}:{os.environ['PATH']}", "LC_ALL": "C"}


def transcript(page: Path, binary: str) -> None:
    """For lab authors: run a page and print each command with what it printed now, in the
    page's format (`python3 tests/labdoc.py docs/labs/01-processes.md /opt/pyrt/pyrt`)."""
    with tempfile.TemporaryDirectory() as tmp:
        work, env = prepare(Path(tmp), binary, Path(tmp) / "state")
        shell = Shell(work, env)
        try:
            for step in parse(page).steps:
                actual = shell.run(step.command)
                mark = "" if matches(step.expected, actual) else "   <<< differs from the page"
                print(f"# {step.command}{mark}")
                if normalise(actual):
                    print(normalise(actual))
        finally:
            shell.close()


if __name__ == "__main__":
    transcript(Path(sys.argv[1]), sys.argv[2] if len(sys.argv) > 2 else "pyrt")
