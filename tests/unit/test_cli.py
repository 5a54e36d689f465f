"""The command line without running a container: runc's flag syntax, and the small parsers of
flag values (signals, ports, sizes, durations)."""

from __future__ import annotations

import pytest

from pyrt import cli, netspec
from pyrt.commands import events, kill, update
from pyrt.errors import PyrtError

FLAGS = (cli.Flag("bundle", "", "b", str, ""), cli.Flag("detach", "", "d"), cli.Flag("preserve-fds", "", kind=int,
                                                                                      default=0),
         cli.Flag("env", "", "e", str, multi=True))


@pytest.mark.parametrize("argv,values,positional", [
    ([], {"bundle": "", "detach": False, "preserve-fds": 0, "env": []}, []),
    (["-b", "x", "id"], {"bundle": "x"}, ["id"]),
    (["--bundle=x", "id"], {"bundle": "x"}, ["id"]),
    (["-bundle", "x", "id"], {"bundle": "x"}, ["id"]),  # Go's flags: one dash or two
    (["id", "-d"], {"detach": True}, ["id"]),  # interspersed
    (["-d=false", "id"], {"detach": False}, ["id"]),
    (["--preserve-fds", "0x2", "id"], {"preserve-fds": 2}, ["id"]),
    (["-e", "A=1", "--env", "B=2", "id"], {"env": ["A=1", "B=2"]}, ["id"]),
    (["--", "-d", "id"], {"detach": False}, ["-d", "id"]),
    (["-", "id"], {}, ["-", "id"]),
])
def test_flags(argv, values, positional):
    got, rest = cli.parse_flags(FLAGS, argv, interspersed=True)
    assert {k: got[k] for k in values} == values and rest == positional


def test_flags_stop_at_the_first_argument_when_not_interspersed():
    got, rest = cli.parse_flags(FLAGS, ["-d", "id", "sh", "-d", "-e", "X"], interspersed=False)
    assert got["detach"] and got["env"] == [] and rest == ["id", "sh", "-d", "-e", "X"]


@pytest.mark.parametrize("argv,words", [
    (["--nope"], "flag provided but not defined: -nope"),
    (["-b"], "flag needs an argument: -b"),
    (["-d=maybe"], 'invalid boolean value "maybe" for -d'),
    (["--preserve-fds", "two"], 'invalid value "two" for flag -preserve-fds: parse error'),
])
def test_flag_errors_in_runcs_words(argv, words):
    with pytest.raises(cli.Usage, match=words):
        cli.parse_flags(FLAGS, argv, interspersed=True)


def test_usage_lists_every_command_and_flag():
    text = cli.usage(None)
    assert all(f"   {name}" in text for name in cli.COMMANDS) and "--root value" in text
    exec_text = cli.usage(cli.COMMANDS["exec"])
    assert exec_text.startswith("NAME:\n   pyrt exec - ") and "--preserve-fds value" in exec_text


@pytest.mark.parametrize("text,number", [("KILL", 9), ("SIGKILL", 9), ("kill", 9), ("15", 15), ("SIGRTMIN", 34),
                                         ("hup", 1), ("64", 64), ("0", 0)])
def test_signals(text, number):
    assert kill.parse_signal(text) == number


@pytest.mark.parametrize("text", ["65", "SIGNOPE", "", "-9", "9x", "SIG_DFL"])
def test_bad_signals(text):
    with pytest.raises(PyrtError, match="unknown signal"):
        kill.parse_signal(text)


@pytest.mark.parametrize("text,port", [
    ("8080:80", ("", 8080, 80, "tcp")), ("127.0.0.1:53:53/udp", ("127.0.0.1", 53, 53, "udp")),
    ("0.0.0.0:1:65535/tcp", ("", 1, 65535, "tcp")),
])
def test_ports(text, port):
    p = netspec.parse_port(text, "-p")
    assert (p.host_ip, p.host_port, p.container_port, p.proto) == port
    assert netspec.parse_port(str(p), "-p").__str__() == str(p)  # what create records reads back the same


@pytest.mark.parametrize("text,words", [
    ("80", 'want [IP:]HOST_PORT:CONTAINER_PORT[/tcp|udp]'), ("80:80/sctp", "want"), ("1:2:3:4", "want"),
    ("0:80", "host port must be 1-65535"), ("80:65536", "container port must be 1-65535"),
    ("x.1.1.1:80:80", '"x.1.1.1" is not an IPv4 address'), ("٣:80", "want"), ("::1:80:80", "want"),
])
def test_bad_ports(text, words):
    with pytest.raises(PyrtError) as e:
        netspec.parse_port(text, "-p")
    assert str(e.value).startswith(f'-p "{text}": ') and words in str(e.value), str(e.value)


def test_a_host_port_is_published_once():
    with pytest.raises(PyrtError, match="host port 80/tcp is published twice"):
        netspec.parse_ports(["80:80", "127.0.0.1:80:81"], "-p")
    assert len(netspec.parse_ports(["80:80", "80:80/udp"], "-p")) == 2


@pytest.mark.parametrize("text,size", [("1048576", 1 << 20), ("512k", 512 << 10), ("64m", 64 << 20),
                                       ("1.5g", 3 << 29), ("1GiB", 1 << 30), ("1 KB", 1024), ("-1", -1)])
def test_sizes(text, size):
    assert update.parse_bytes(text, "memory") == size


@pytest.mark.parametrize("text", ["nan", "inf", "1e3", "-5", "1.5.5m", "12q", "", "٣", "1" * 41])
def test_bad_sizes(text):
    with pytest.raises(PyrtError, match=r"^update --memory: .* is not a size"):
        update.parse_bytes(text, "memory")


@pytest.mark.parametrize("text,seconds", [("5s", 5), ("100ms", 0.1), ("1m30s", 90), ("1.5s", 1.5), ("1h", 3600),
                                          ("250us", 0.00025), ("2562047h", 2562047 * 3600)])
def test_durations(text, seconds):
    assert events.parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text,words", [
    ("5", "is not a duration"), ("1e3s", "is not a duration"), ("-5s", "is not a duration"),
    ("1.2.3s", "is not a duration"), ("0s", "must be positive"),
    ("2562048h", "is longer than the longest duration runc takes"),
    ("9" * 400 + "h", "is longer than the longest duration runc takes"),  # once read as infinite: no stats ever
])
def test_bad_durations(text, words):
    with pytest.raises(PyrtError, match=words):
        events.parse_duration(text)


def test_exec_cgroup_argument():
    """runc's exec --cgroup: PATH for every hierarchy, or CONTROLLER[,CONTROLLER]:PATH (one path
    per controller); refused in runc's words where runc refuses."""
    from pyrt.subcgroup import parse

    assert parse(["sub"]) == {"": "sub"}
    assert parse(["cpu,memory:a/b", "pids:c"]) == {"cpu": "a/b", "memory": "a/b", "pids": "c"}
    assert parse(["name=systemd:s"]) == {"name=systemd": "s"}
    for bad, words in ((["x", "y"], "missing <controller>: prefix"), ([",cpu:x"], "empty <controller> prefix"),
                       ([":x"], "empty <controller> prefix"), (["cpu:a", "cpu:b"], "controller cpu specified")):
        with pytest.raises(PyrtError, match=words):
            parse(bad)


def test_exec_sub_cgroup_stays_in_the_container():
    """The sub-cgroup's directories, as runc joins them: `/a`, `a/`, `a/../b` below the
    container's cgroup; `..` out of it refused; a controller prefix moves that v1 hierarchy only."""
    from pyrt.cgroups import Cgroup
    from pyrt.subcgroup import SubCgroup

    cg = Cgroup("/u", "pyrt/t/c", {"cpu": "/v1/cpu", "memory": "/v1/memory"})
    assert SubCgroup(cg, {"": "/a"}).dir == SubCgroup(cg, {"": "a/"}).dir == "/u/pyrt/t/c/a"
    assert SubCgroup(cg, {"": "a/../b"}).dir == "/u/pyrt/t/c/b"
    assert SubCgroup(cg, {"cpu": "a"}).dir == "/u/pyrt/t/c"  # cgroup2 stays the container's
    assert SubCgroup(cg, {"cpu": "a"})._dir("/v1/cpu", ["cpu"]) == "/v1/cpu/pyrt/t/c/a"
    assert SubCgroup(cg, {"cpu": "a"})._dir("/v1/memory", ["memory"]) == "/v1/memory/pyrt/t/c"
    for sub in ("..", "../x", "a/../../x"):
        with pytest.raises(PyrtError, match="bad sub cgroup path"):
            _ = SubCgroup(cg, {"": sub}).dir
    with pytest.raises(PyrtError, match="unknown controller pids in SubCgroupPaths"):
        SubCgroup(cg, {"pids": "a"})
