"""Every field of the runtime-spec has a behaviour in pyrt: implemented (FIELDS names the test
that shows it) or refused with one line naming it (checked here on a generated config). The
fields come from walking the official JSON schema (Debian's golang-github-opencontainers-specs-dev,
conftest.SCHEMA_DIR), plus SPEC_1_3: the fields runtime-spec 1.3 added that this packaged schema
predates. A field pyrt silently ignores is an expected failure until it is implemented or refused;
a field the table lacks fails (a new field needs a decision)."""

from __future__ import annotations

import ast
import json
import re
import subprocess
from functools import cache
from pathlib import Path

import pytest
from conftest import SCHEMA_DIR, base_config

pytestmark = pytest.mark.pyrt_only
TESTS = Path(__file__).parent

#: runtime-spec 1.3 fields missing from the packaged schema (config.md, config-linux.md).
SPEC_1_3 = [
    "process.scheduler", "process.scheduler.policy", "process.scheduler.nice", "process.scheduler.priority",
    "process.scheduler.flags", "process.scheduler.flags[]", "process.scheduler.runtime", "process.scheduler.deadline",
    "process.scheduler.period", "process.ioPriority", "process.ioPriority.class", "process.ioPriority.priority",
    "process.execCPUAffinity", "process.execCPUAffinity.initial", "process.execCPUAffinity.final",
    "linux.memoryPolicy", "linux.memoryPolicy.mode", "linux.memoryPolicy.nodes", "linux.memoryPolicy.flags",
    "linux.memoryPolicy.flags[]", "linux.netDevices", "linux.netDevices.*", "linux.netDevices.*.name",
    "linux.timeOffsets", "linux.timeOffsets.*", "linux.timeOffsets.*.secs", "linux.timeOffsets.*.nanosecs",
    "linux.intelRdt.schemata", "linux.intelRdt.schemata[]", "linux.intelRdt.enableMonitoring",
]

D, P, L, M, C = "test_diff_process.py", "test_diff_mounts.py", "test_diff_linux.py", "test_diff_mounts.py", \
    "test_diff_cli.py"

#: field (or a prefix of fields: the longest entry that starts a field decides) -> its behaviour:
#:   ("test", "MODULE::NAME")      implemented; NAME is a test function or a differential row id
#:   ("refused", {config patch}[, words])   refused: create fails with one line naming the field (or
#:                                 having `words`, where the refusal is of what the field needs)
#:   ("ignored", {config patch}, why)   silently ignored today: an expected failure until fixed
FIELDS: dict[str, tuple] = {
    "ociVersion": ("test", "unit/test_config.py::test_refused_versions"),
    "root": ("test", f"{M}::root.readonly/true"),
    "root.path": ("test", f"{M}::root.path/absolute"),
    "root.readonly": ("test", f"{M}::root.readonly/false"),
    "mounts": ("test", f"{M}::mounts/bind-directory"),
    "mounts[].options": ("test", f"{M}::mounts/bind-ro"),
    "mounts[].uidMappings": ("test", "test_idmap.py::test_without_a_user_namespace"),
    "mounts[].gidMappings": ("test", "test_idmap.py::test_without_a_user_namespace"),
    "process": ("test", f"{D}::base/credentials+capabilities"),
    "process.terminal": ("test", "test_console.py::test_console_socket_sends_a_working_pty_master"),
    "process.consoleSize": ("test", "test_terminal.py::test_create_console_socket_and_console_size"),
    "process.args": ("test", f"{D}::args/argv"),
    "process.env": ("test", f"{D}::base/env"),
    "process.cwd": ("test", f"{D}::cwd/tmp"),
    "process.user": ("test", f"{D}::user/uid+gid"),
    "process.user.umask": ("test", f"{D}::user/umask"),
    "process.user.additionalGids": ("test", f"{D}::user/additionalGids"),
    "process.user.username": ("refused", {"process": {"user": {"uid": 0, "gid": 0, "username": "root"}}}),
    "process.capabilities": ("test", f"{D}::capabilities/effective+permitted"),
    "process.capabilities.bounding": ("test", f"{D}::capabilities/bounding-only"),
    "process.capabilities.inheritable": ("test", f"{D}::capabilities/inheritable"),
    "process.capabilities.ambient": ("test", f"{D}::capabilities/ambient"),
    "process.rlimits": ("test", f"{D}::rlimits/several"),
    "process.noNewPrivileges": ("test", f"{D}::noNewPrivileges/false"),
    "process.oomScoreAdj": ("test", f"{D}::oomScoreAdj/500"),
    "process.apparmorProfile": ("refused", {"process": {"apparmorProfile": "unconfined"}}),
    "process.selinuxLabel": ("refused", {"process": {"selinuxLabel": "system_u:system_r:container_t:s0"}}),
    "process.commandLine": ("refused", {"process": {"commandLine": "cmd /c echo"}}),
    "process.scheduler": ("test", f"{D}::scheduler/SCHED_BATCH-nice"),
    "process.scheduler.priority": ("test", f"{D}::scheduler/SCHED_FIFO-without-rt-runtime"),
    "process.scheduler.flags": ("test", f"{D}::scheduler/SCHED_BATCH-reset-on-fork"),
    "process.scheduler.runtime": ("test", f"{D}::scheduler/SCHED_DEADLINE"),
    "process.scheduler.deadline": ("test", f"{D}::scheduler/SCHED_DEADLINE"),
    "process.scheduler.period": ("test", f"{D}::scheduler/SCHED_DEADLINE"),
    "process.ioPriority": ("test", f"{D}::ioPriority/best-effort-3"),
    "process.execCPUAffinity": ("test", f"{C}::exec/--process-with-affinity+scheduler+ioPriority"),
    "hostname": ("test", f"{M}::hostname"),
    "domainname": ("test", f"{M}::domainname"),
    "hooks": ("test", f"{M}::hooks.prestart"),
    **{f"hooks.{k}": ("test", f"{M}::hooks.{k}") for k in ("prestart", "createRuntime", "createContainer",
                                                            "startContainer", "poststart", "poststop")},
    **{f"hooks.{k}[].timeout": ("test", f"{M}::hooks/timeout") for k in ("prestart", "createRuntime",
                                                                         "createContainer", "startContainer",
                                                                         "poststart", "poststop")},
    "annotations": ("test", f"{C}::state/annotations"),
    "linux": ("test", f"{L}::namespaces/base"),
    "linux.namespaces": ("test", f"{L}::namespaces/base"),
    "linux.namespaces[].path": ("test", f"{L}::namespaces/join-ipc"),
    "linux.uidMappings": ("test", "test_userns.py::test_maps_and_root_inside"),
    "linux.gidMappings": ("test", "test_userns.py::test_maps_and_root_inside"),
    "linux.timeOffsets": ("test", "test_timens.py::test_offsets_inside"),
    "linux.devices": ("test", f"{L}::devices/char"),
    "linux.cgroupsPath": ("test", f"{L}::cgroupsPath/relative"),
    "linux.resources": ("test", f"{L}::resources.memory.limit"),
    "linux.resources.devices": ("test", f"{L}::resources.devices"),
    "linux.resources.memory.limit": ("test", f"{L}::resources.memory.limit"),
    "linux.resources.memory.reservation": ("test", f"{L}::resources.memory.reservation"),
    "linux.resources.memory.swap": ("test", f"{L}::resources.memory.swap"),
    "linux.resources.memory.kernel": ("test", f"{L}::resources.memory.kernel"),
    "linux.resources.memory.kernelTCP": ("test", f"{L}::resources.memory.kernelTCP"),
    "linux.resources.memory.swappiness": ("test", f"{L}::resources.memory.swappiness"),
    "linux.resources.memory.disableOOMKiller": ("test", f"{L}::resources.memory.disableOOMKiller"),
    "linux.resources.memory.useHierarchy": ("test", f"{L}::resources.memory.useHierarchy"),
    "linux.resources.memory.checkBeforeUpdate": ("test", f"{L}::resources.memory.checkBeforeUpdate"),
    "linux.resources.memory": ("test", f"{L}::resources.memory.limit"),
    "linux.resources.cpu": ("test", f"{L}::resources.cpu.shares+quota+period"),
    "linux.resources.cpu.cpus": ("test", f"{L}::resources.cpu.cpus+mems"),
    "linux.resources.cpu.mems": ("test", f"{L}::resources.cpu.cpus+mems"),
    "linux.resources.cpu.realtimePeriod": ("test", f"{L}::resources.cpu.realtime"),
    "linux.resources.cpu.realtimeRuntime": ("test", f"{L}::resources.cpu.realtime"),
    "linux.resources.cpu.idle": ("test", f"{L}::resources.cpu.idle"),
    "linux.resources.cpu.burst": ("test", f"{L}::resources.cpu.burst"),
    "linux.resources.pids": ("test", f"{L}::resources.pids.limit"),
    "linux.resources.blockIO": ("test", f"{L}::resources.blockIO.weight"),
    "linux.resources.blockIO.leafWeight": ("test", f"{L}::resources.blockIO.leafWeight"),
    "linux.resources.blockIO.weightDevice": ("test", f"{L}::resources.blockIO.weightDevice"),
    **{f"linux.resources.blockIO.{k}": ("test", f"{L}::resources.blockIO.{k}") for k in (
        "throttleReadBpsDevice", "throttleWriteBpsDevice", "throttleReadIOPSDevice", "throttleWriteIOPSDevice")},
    "linux.resources.hugepageLimits": ("test", f"{L}::resources.hugepageLimits"),
    "linux.resources.network": ("test", f"{L}::resources.network"),
    "linux.resources.network.priorities": ("test", f"{L}::resources.network.priorities"),
    "linux.resources.rdma": ("test", f"{L}::resources.rdma"),
    "linux.resources.unified": ("test", f"{L}::resources.unified-on-v1"),
    "linux.intelRdt": ("refused", {"linux": {"intelRdt": {"closID": "pyrt"}}}),
    "linux.memoryPolicy": ("test", f"{L}::memoryPolicy/bind"),
    "linux.memoryPolicy.flags": ("test", f"{L}::memoryPolicy/bind-static"),
    "linux.netDevices": ("test", "test_netdevices.py::test_moved_in_renamed_with_its_address"),
    "linux.netDevices.*.name": ("test", "test_netdevices.py::test_name_defaults_to_the_hosts"),
    "linux.sysctl": ("test", f"{L}::sysctl/namespaced"),
    "linux.seccomp": ("test", f"{L}::seccomp/errno"),
    "linux.seccomp.defaultErrnoRet": ("test", "test_seccomp.py::test_podman_profile_default_is_enosys"),
    "linux.seccomp.architectures": ("test", f"{L}::seccomp/architectures"),
    "linux.seccomp.flags": ("test", f"{L}::seccomp/flags"),
    "linux.seccomp.syscalls[].errnoRet": ("test", f"{L}::seccomp/errnoRet"),
    "linux.seccomp.syscalls[].args": ("test", f"{L}::seccomp/args-condition"),
    "linux.seccomp.syscalls[].args[].valueTwo": ("test", "test_seccomp.py::test_argument_conditions"),
    "linux.seccomp.listenerPath": ("test", "test_seccomp_notify.py::test_run_output"),
    "linux.seccomp.listenerMetadata": ("test", "test_seccomp_notify.py::test_agent_answers_the_notified_syscalls"),
    "linux.rootfsPropagation": ("test", f"{L}::rootfsPropagation/shared"),
    "linux.maskedPaths": ("test", f"{L}::maskedPaths/file"),
    "linux.readonlyPaths": ("test", f"{L}::readonlyPaths"),
    "linux.mountLabel": ("refused", {"linux": {"mountLabel": "system_u:object_r:container_file_t:s0"}}),
    "linux.personality": ("test", f"{L}::personality/LINUX32"),
    "linux.personality.domain": ("test", f"{L}::personality/unknown-domain"),
    "linux.personality.flags": ("refused", {"linux": {"personality": {"domain": "LINUX",
                                                                      "flags": ["ADDR_NO_RANDOMIZE"]}}}),
    **{k: ("refused", {k: {"x": 1}}) for k in ("solaris", "windows", "vm", "zos")},
}


def _resolve(ref: str, current: str, docs: dict) -> tuple[dict, str]:
    name, _, fragment = ref.partition("#")
    name = name or current
    node = docs[name]
    for part in filter(None, fragment.split("/")):
        node = node[part]
    return node, name


def _walk(node: dict, path: str, current: str, docs: dict, out: set, depth: int = 0) -> None:
    if depth > 40:
        return
    if "$ref" in node:
        target, name = _resolve(node["$ref"], current, docs)
        _walk({**target, **{k: v for k, v in node.items() if k != "$ref"}}, path, name, docs, out, depth + 1)
        return
    for key in ("allOf", "anyOf", "oneOf"):
        for sub in node.get(key, []):
            _walk(sub, path, current, docs, out, depth + 1)
    if path:
        out.add(path)
    for key, sub in node.get("properties", {}).items():
        _walk(sub, f"{path}.{key}" if path else key, current, docs, out, depth + 1)
    if isinstance(node.get("items"), dict):
        _walk(node["items"], path + "[]", current, docs, out, depth + 1)
    for sub in node.get("patternProperties", {}).values():
        _walk(sub, path + ".*", current, docs, out, depth + 1)
    if isinstance(node.get("additionalProperties"), dict):
        _walk(node["additionalProperties"], path + ".*", current, docs, out, depth + 1)


@cache
def schema_fields() -> list[str]:
    """Every field path of config-schema.json (`a.b`, `a[]` for items, `a.*` for map values),
    plus SPEC_1_3; below another platform's object (solaris, windows, vm, zos) only the object."""
    docs = {p.name: json.loads(p.read_text()) for p in SCHEMA_DIR.glob("*.json")}
    out: set[str] = set()
    _walk(docs["config-schema.json"], "", "config-schema.json", docs, out)
    out |= set(SPEC_1_3)
    return sorted(f for f in out if f.split(".")[0] not in ("solaris", "windows", "vm", "zos") or "." not in f)


def behaviour(field: str) -> tuple[str, tuple] | None:
    """The table entry that decides a field: its own, a refused ancestor's, or the longest
    entry that is a prefix of it."""
    parts = re.split(r"(?=\.|\[\])", field)
    prefixes = ["".join(parts[:i]) for i in range(len(parts), 0, -1)]
    for p in prefixes[1:]:  # a refused ancestor refuses the whole object
        if FIELDS.get(p, ("",))[0] == "refused":
            return p, FIELDS[p]
    return next(((p, FIELDS[p]) for p in prefixes if p in FIELDS), None)


@cache
def _names(module: str) -> set[str]:
    """The test functions of a module, and the ids of its differential ROWS."""
    tree = ast.parse((TESTS / module).read_text())
    names = {n.name for n in tree.body if isinstance(n, ast.FunctionDef) and n.name.startswith("test_")}
    if module.startswith("test_diff_"):
        import importlib

        names |= {p.id for p in importlib.import_module(module.removesuffix(".py")).ROWS}
    return names


def _patched(patch: dict) -> dict:
    config = base_config(["true"])

    def merge(into: dict, more: dict) -> None:
        for k, v in more.items():
            if isinstance(v, dict) and isinstance(into.get(k), dict) and k not in ("timeOffsets", "netDevices"):
                merge(into[k], v)
            elif isinstance(v, list) and isinstance(into.get(k), list) and k == "namespaces":
                into[k] = into[k] + [n for n in v if n not in into[k]]
            elif isinstance(v, list) and isinstance(into.get(k), list):
                into[k] = into[k] + v
            else:
                into[k] = v
    merge(config, patch)
    return config


def refusal(rt, tmp_path: Path, patch: dict) -> subprocess.CompletedProcess:
    bundle = tmp_path / "bundle"
    bundle.mkdir(exist_ok=True)
    (bundle / "config.json").write_text(json.dumps(_patched(patch)))
    with open(tmp_path / "out", "w") as out, open(tmp_path / "err", "w+") as err:
        r = subprocess.run(rt.cmd("create", "--bundle", str(bundle), rt.new_id()), stdin=subprocess.DEVNULL,
                           stdout=out, stderr=err, timeout=30)
        err.seek(0)
        return subprocess.CompletedProcess(r.args, r.returncode, "", err.read())


def _params() -> list:
    out = []
    for field in schema_fields():
        found = behaviour(field)
        kind = found[1][0] if found else None
        marks = ([pytest.mark.xfail(strict=True, reason=f"pyrt ignores it: {found[1][2]}")]
                 if kind == "ignored" and found[0] == field else [])
        out.append(pytest.param(field, id=field, marks=marks))
    return out


@pytest.mark.parametrize("field", _params())
def test_field_has_a_behaviour(rt, tmp_path, field):
    found = behaviour(field)
    assert found, f"{field}: no behaviour recorded in FIELDS (implement it, or refuse it with one line naming it)"
    entry, (kind, *rest) = found
    if kind == "test":
        module, _, name = rest[0].partition("::")
        assert name in _names(module), f"{field}: {rest[0]} does not exist"
        return
    if entry != field:  # refused or ignored with its ancestor, which has its own row
        return
    r = refusal(rt, tmp_path, rest[0])
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 1 and len(lines) == 1, f"{field} is not refused: {r.returncode} {r.stderr!r}"
    words = rest[1] if len(rest) > 1 else field.rsplit(".", 1)[-1]
    at = lines[0].find('msg="')
    assert words in json.JSONDecoder().raw_decode(lines[0], at + 4)[0], lines[0]


def test_the_table_names_only_schema_fields():
    """A FIELDS entry that no field starts with is stale (a renamed or removed field)."""
    fields = schema_fields()
    stale = [k for k in FIELDS if not any(f == k or f.startswith((k + ".", k + "[")) for f in fields)]
    assert not stale, stale
