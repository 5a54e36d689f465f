"""pyrt's command line: runc's commands, flags, output formats and exit codes.

A small table-driven parser instead of argparse (whose import alone costs ~8 ms here): Go-style
flags (`-f`, `--flag`, `-flag`, `--flag=value`), global flags before the command. Each command is
a module of pyrt/commands/, imported only when that command runs.
"""

from __future__ import annotations

import os
import sys

from pyrt.errors import PyrtError


class Flag:
    __slots__ = ("name", "short", "kind", "default", "help", "multi", "bare")

    def __init__(self, name: str, help: str, short: str = "", kind: type | None = None, default: object = None,
                 multi: bool = False, bare: str | None = None) -> None:
        # kind None: a boolean switch; str/int: takes a value; multi: may repeat (a list); bare: the
        # value of a flag given without `=value` (its value is optional: `--trace`, `--trace=FILE`)
        self.name, self.short, self.kind, self.help, self.multi = name, short, kind, help, multi
        self.bare = bare
        self.default = ([] if multi else False if kind is None else default) if default is None else default


class Command:
    __slots__ = ("name", "args", "summary", "flags", "handler", "min_args", "max_args", "interspersed")

    def __init__(self, name: str, args: str, summary: str, handler: str, flags: tuple = (), min_args: int = 1,
                 max_args: int | None = 1, interspersed: bool = True) -> None:
        self.name, self.args, self.summary, self.handler = name, args, summary, handler
        self.flags, self.min_args, self.max_args, self.interspersed = flags, min_args, max_args, interspersed


TRACE = Flag("trace", "print every step as it happens, with its duration, then where the time went, to stderr "
             "or with --trace=FILE to FILE (pyrt only)", kind=str, bare="-")
CREATE_FLAGS = (
    Flag("bundle", "path to the root of the bundle directory (default: current directory)", "b", str, ""),
    Flag("console-socket", "path to an AF_UNIX socket which will receive the pty master", kind=str),
    Flag("pid-file", "file to write the process id to", kind=str),
    Flag("pidfd-socket", "path to an AF_UNIX socket which will receive a file descriptor referencing the init "
         "process", kind=str),
    Flag("no-pivot", "do not use pivot_root to jail the process inside the rootfs"),
    Flag("no-new-keyring", "do not create a new session keyring for the container"),
    Flag("preserve-fds", "pass N additional file descriptors to the container (3..3+N-1)", kind=int, default=0),
    Flag("network", "pyrt's own networking: none (default: config.json decides) or bridge", kind=str),
    Flag("publish", "publish a port (implies --network bridge): [IP:]HOST_PORT:CONTAINER_PORT[/tcp|udp]", "p", str,
         multi=True),
    Flag("publish-all", "publish every port the image exposes (from pyrt unpack) on the same host port", "P"),
    TRACE,
)
FORMAT = Flag("format", "select one of: table or json (default: table)", "f", str, "table")

COMMANDS = {c.name: c for c in (
    Command("spec", "", "create a new specification file (config.json)", "pyrt.commands.spec:main",
            (Flag("bundle", "path to the root of the bundle directory", "b", str, ""),
             Flag("rootless", "generate a configuration for a rootless container")), 0, 0),
    Command("create", "<container-id>", "create a container", "pyrt.commands.create:main", CREATE_FLAGS),
    Command("start", "<container-id>", "executes the user defined process in a created container",
            "pyrt.commands.start:main"),
    Command("run", "<container-id> | <bundle-dir>", "create and run a container", "pyrt.commands.run:main",
            (*CREATE_FLAGS, Flag("detach", "detach from the container's process", "d"),
             Flag("keep", "do not delete the container after it exits"),
             Flag("no-subreaper", "accepted for runc compatibility (pyrt reaps as runc does)"))),
    Command("state", "<container-id>", "output the state of a container", "pyrt.commands.state:main"),
    Command("list", "", "lists containers started by pyrt with the given root", "pyrt.commands.list:main",
            (FORMAT, Flag("quiet", "display only container IDs", "q")), 0, 0),
    Command("kill", "<container-id> [signal]", "send a signal (default: SIGTERM) to the container's init",
            "pyrt.commands.kill:main", (Flag("all", "send the signal to all processes in the container", "a"),),
            1, 2),
    Command("delete", "<container-id>", "delete any resources held by the container",
            "pyrt.commands.delete:main", (Flag("force", "forcibly delete the container if it is still running", "f"),)),
    Command("features", "", "show the enabled features", "pyrt.commands.features:main", (), 0, 0),
    Command("plan", "<bundle-dir>", "print the setup plan pyrt-init would execute (pyrt only)",
            "pyrt.commands.plan:main", (Flag("id", "container id to plan for", kind=str, default="plan"),
                                        Flag("explain", "with each step, the system calls it becomes and why")),
            0, 1),
    Command("unpack", "<image> <bundle-dir>", "unpack an image (OCI layout, oci-archive, docker-archive) into a "
            "bundle (pyrt only)", "pyrt.unpack:main",
            (Flag("ref", "the image to unpack when there are several: name, tag or manifest digest", kind=str,
                  default=""),), 2, 2),
    Command("exec", "<container-id> <command> [command options]", "execute new process inside the container",
            "pyrt.commands.exec:main", (
                Flag("console-socket", "path to an AF_UNIX socket which will receive the pty master", kind=str),
                Flag("cwd", "current working directory in the container", kind=str),
                Flag("env", "set environment variables", "e", str, multi=True),
                Flag("tty", "allocate a pseudo-TTY", "t"),
                Flag("user", "UID (format: <uid>[:<gid>])", "u", str),
                Flag("additional-gids", "additional gids", "g", int, multi=True),
                Flag("process", "path to the process.json", "p", str),
                Flag("detach", "detach from the container's process", "d"),
                Flag("pid-file", "file to write the process id to", kind=str),
                Flag("pidfd-socket", "path to an AF_UNIX socket which will receive a file descriptor referencing "
                     "the exec process", kind=str),
                Flag("process-label", "set the asm process label for the process", kind=str),
                Flag("apparmor", "set the apparmor profile for the process", kind=str),
                Flag("no-new-privs", "set the no new privileges value for the process"),
                Flag("cap", "add a capability to the bounding set for the process", "c", str, multi=True),
                Flag("preserve-fds", "pass N additional file descriptors to the container", kind=int, default=0),
                Flag("cgroup", "run the process in a (sub)cgroup", kind=str, multi=True),
                Flag("ignore-paused", "allow exec in a paused container"),
                TRACE,
            ), 1, None, interspersed=False),
    Command("ps", "<container-id> [ps options]", "ps displays the processes running inside a container",
            "pyrt.commands.ps:main", (FORMAT,), 1, None, interspersed=False),
    Command("pause", "<container-id>", "pause suspends all processes inside the container",
            "pyrt.commands.pause:pause"),
    Command("resume", "<container-id>", "resumes all processes that have been previously paused",
            "pyrt.commands.pause:resume"),
    Command("update", "<container-id>", "update container resource constraints", "pyrt.commands.update:main", (
        Flag("resources", "path to a file with the resources to update, or - for stdin", "r", str),
        Flag("blkio-weight", "specifies per cgroup weight, range is from 10 to 1000", kind=int),
        Flag("cpu-period", "CPU CFS period to be used for hardcapping", kind=str),
        Flag("cpu-quota", "CPU CFS hardcap limit", kind=str),
        Flag("cpu-burst", "CPU CFS hardcap burst limit", kind=str),
        Flag("cpu-share", "CPU shares (relative weight vs. other containers)", kind=str),
        Flag("cpu-shares", "CPU shares (relative weight vs. other containers)", kind=str),
        Flag("cpu-rt-period", "CPU realtime period to be used for hardcapping", kind=str),
        Flag("cpu-rt-runtime", "CPU realtime hardcap limit", kind=str),
        Flag("cpu-idle", "set cgroup SCHED_IDLE or not, 0: default behavior, 1: SCHED_IDLE", kind=str),
        Flag("cpuset-cpus", "CPU(s) to use", kind=str),
        Flag("cpuset-mems", "memory node(s) to use", kind=str),
        Flag("kernel-memory", "kernel memory limit (in bytes)", kind=str),
        Flag("kernel-memory-tcp", "kernel memory limit for tcp buffer (in bytes)", kind=str),
        Flag("memory", "memory limit (in bytes)", kind=str),
        Flag("memory-reservation", "memory reservation or soft_limit (in bytes)", kind=str),
        Flag("memory-swap", "total memory usage (memory + swap); set '-1' to enable unlimited swap", kind=str),
        Flag("pids-limit", "maximum number of pids allowed in the container", kind=int),
        Flag("l3-cache-schema", "the string of Intel RDT/CAT L3 cache schema", kind=str),
        Flag("mem-bw-schema", "the string of Intel RDT/MBA memory bandwidth schema", kind=str),
    )),
    Command("events", "<container-id>", "display container events such as OOM notifications, cpu, memory, and IO "
            "usage statistics", "pyrt.commands.events:main",
            (Flag("interval", "set the stats collection interval", kind=str, default="5s"),
             Flag("stats", "display the container's stats then exit"))),
)}
ALIASES = {"del": "delete", "rm": "delete", "ls": "list"}

GLOBAL_FLAGS = (
    Flag("root", "root directory for storage of container state (default /run/pyrt; without root "
         "$XDG_RUNTIME_DIR/pyrt)", kind=str, default=None),
    Flag("log", "set the log file to write pyrt logs to (default is stderr)", kind=str, default=""),
    Flag("log-format", "set the log format ('text' (default), or 'json')", kind=str, default="text"),
    Flag("debug", "enable debug logging (and a trace of every setup step)"),
    Flag("systemd-cgroup", "enable systemd cgroup support (not available in pyrt)"),
    Flag("rootless", "ignore cgroup permission errors ('true', 'false', or 'auto')", kind=str, default="auto"),
    Flag("criu", "path to the criu binary (checkpointing is not supported)", kind=str, default="criu"),
    Flag("version", "print the version", "v"),
    Flag("help", "show help", "h"),
)


class Usage(Exception):
    pass


class Globals:
    def __init__(self, values: dict) -> None:
        self.root: str = values["root"]
        self.log: str = values["log"]
        self.log_format: str = values["log-format"]
        self.debug: bool = values["debug"]
        self._rootless: str = values["rootless"]

    @property
    def rootless(self) -> bool:
        """--rootless: auto (the default) is rootless unless run by the host's root (rootless.py)."""
        from pyrt import rootless

        return rootless.enabled(self._rootless)


def parse_flags(flags: tuple, argv: list[str], interspersed: bool) -> tuple[dict, list[str]]:
    """Parse Go-style flags; return (values by name, positional arguments)."""
    by_name = {}
    for f in flags:
        by_name[f.name] = f
        if f.short:
            by_name[f.short] = f
    values = {f.name: (list(f.default) if f.multi else f.default) for f in flags}
    positional: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        i += 1
        if arg == "--":
            positional += argv[i:]
            break
        if not arg.startswith("-") or arg == "-":
            positional.append(arg)
            if not interspersed:
                positional += argv[i:]
                break
            continue
        name, eq, value = arg.lstrip("-").partition("=")
        flag = by_name.get(name)
        if flag is None:
            raise Usage(f"flag provided but not defined: -{name}")
        if flag.kind is None:
            if eq and value.lower() not in ("true", "false", "1", "0"):
                raise Usage(f'invalid boolean value "{value}" for -{name}')
            values[flag.name] = not eq or value.lower() in ("true", "1")
            continue
        if not eq and flag.bare is not None:
            value = flag.bare
        elif not eq:
            if i >= len(argv):
                raise Usage(f"flag needs an argument: -{name}")
            value = argv[i]
            i += 1
        if flag.kind is int:
            try:
                value = int(value, 0)
            except ValueError:
                raise Usage(f'invalid value "{value}" for flag -{name}: parse error') from None
        if flag.multi:
            values[flag.name].append(value)
        else:
            values[flag.name] = value
    return values, positional


def usage(cmd: Command | None) -> str:
    if cmd is None:
        lines = ["NAME:", "   pyrt - Open Container Initiative runtime, in Python", "", "USAGE:",
                 "   pyrt [global options] command [command options] [arguments...]", "", "COMMANDS:"]
        lines += [f"   {c.name:<10}{c.summary}" for c in COMMANDS.values()]
        lines += ["", "GLOBAL OPTIONS:"] + [_flag_line(f) for f in GLOBAL_FLAGS]
    else:
        lines = ["NAME:", f"   pyrt {cmd.name} - {cmd.summary}", "", "USAGE:",
                 f"   pyrt {cmd.name} [command options] {cmd.args}".rstrip()]
        if cmd.flags:
            lines += ["", "OPTIONS:"] + [_flag_line(f) for f in cmd.flags]
    return "\n".join(lines) + "\n"


def _flag_line(f: Flag) -> str:
    value = "[=value]" if f.bare is not None else " value" if f.kind else ""
    names = f"--{f.name}" + (f", -{f.short}" if f.short else "") + value
    return f"   {names:<28}{f.help}"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        return _main(argv)
    except PyrtError as e:
        from pyrt import log

        log.error(str(e))
        return e.status
    except Usage as e:
        sys.stderr.write(f"Incorrect Usage: {e}\n\n")
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 1
    except OSError as e:  # a system call pyrt has no words for (EMFILE, EIO, ...): still what failed
        from pyrt import log

        reason = os.strerror(e.errno).lower() if e.errno else str(e)
        log.error(f"{e.filename}: {reason}" if e.filename else reason)
        if log.debugging():
            import traceback

            traceback.print_exc()
        return 1
    except Exception as e:  # a bug: still one line for the user and the engine's log
        from pyrt import log

        log.error(f"internal error: {type(e).__name__}: {e}")
        if log.debugging():
            import traceback

            traceback.print_exc()
        return 1


def entry() -> None:
    """The `pyrt` program: run the command, flush stdio, and leave without the interpreter's
    teardown (about 2 ms of every call; nothing of pyrt's needs it)."""
    code = main()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)


def _main(argv: list[str]) -> int:
    from pyrt import log

    values, rest = parse_flags(GLOBAL_FLAGS, argv, interspersed=False)
    if values["log-format"] not in ("text", "json"):
        raise Usage(f'invalid log-format "{values["log-format"]}": use text or json')
    log.setup(values["log"] or None, values["log-format"], values["debug"])
    if values["version"]:
        from pyrt import SPEC_VERSION, __version__

        sys.stdout.write(f"pyrt version {__version__}\ncommit: {_commit()}\nspec: {SPEC_VERSION}\n")
        return 0
    if values["help"] or not rest or rest[0] == "help":
        topic = rest[1] if len(rest) > 1 and rest[0] == "help" else None
        sys.stdout.write(usage(COMMANDS.get(ALIASES.get(topic, topic)) if topic else None))
        return 0
    if values["systemd-cgroup"]:
        raise PyrtError("--systemd-cgroup: pyrt has no systemd cgroup driver; use cgroupfs paths")
    if values["rootless"] not in ("auto", "false", "true"):
        raise Usage(f'invalid --rootless value "{values["rootless"]}": use true, false or auto')
    if values["root"] is None:
        values["root"] = "/run/pyrt"
        maybe_userns = "XDG_RUNTIME_DIR" in os.environ and os.environ.get("USER") != "root"  # rootless.default_root
        if values["rootless"] != "false" and (os.geteuid() != 0 or maybe_userns):
            from pyrt import rootless

            values["root"] = rootless.default_root()
    name = ALIASES.get(rest[0], rest[0])
    cmd = COMMANDS.get(name)
    if cmd is None:
        log.error_in_log(f"unknown command {rest[0]!r}")
        sys.stderr.write(f"pyrt: unknown command {rest[0]!r}\n\n" + usage(None))
        return 3
    if name not in ("spec", "features", "plan"):
        _check_root(values["root"])
    try:
        opts, args = parse_flags((*cmd.flags, Flag("help", "show help", "h")), rest[1:], cmd.interspersed)
    except Usage as e:
        log.error_in_log(f"{name}: {e}")
        sys.stderr.write(f"Incorrect Usage: {e}\n\n{usage(cmd)}")
        return 1
    if opts["help"]:
        sys.stdout.write(usage(cmd))
        return 0
    if len(args) < cmd.min_args or (cmd.max_args is not None and len(args) > cmd.max_args):
        if cmd.max_args == cmd.min_args:
            want = f"exactly {cmd.min_args}"
        else:
            want = f"a minimum of {cmd.min_args}" if len(args) < cmd.min_args else f"a maximum of {cmd.max_args}"
        log.error_in_log(f'"{name}" requires {want} argument(s)')
        sys.stderr.write(f'pyrt: "{name}" requires {want} argument(s)\n\n{usage(cmd)}')
        return 1
    module, _, func = cmd.handler.partition(":")
    # __import__ with a fromlist returns the submodule itself; `importlib` would cost ~0.3 ms more
    handler = getattr(__import__(module, fromlist=(func,)), func)
    return handler(Globals(values), opts, args) or 0


def _check_root(root: str) -> None:
    """--root must be a directory, or not exist yet (`create` makes it): a file there would
    make every command misread it (`container with id exists`, `container does not exist')."""
    try:
        st = os.stat(root)
    except FileNotFoundError:
        return
    except OSError as e:
        raise PyrtError(f"--root {root}: {os.strerror(e.errno).lower()}") from None
    if st.st_mode & 0o170000 != 0o040000:
        raise PyrtError(f"--root {root}: not a directory")


def _commit() -> str:
    from pyrt import __version__

    return f"v{__version__}"
