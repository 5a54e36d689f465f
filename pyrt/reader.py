"""The one reader of JSON objects: typed getters whose errors name the file and the field.

Every input pyrt parses goes through `Reader`: config.json (config.py), linux.resources
(limits.py), linux.seccomp (seccomp.py), exec's process.json, `update --resources` and the
network annotations. An error is one line, `file: path.to.field: why`, raised as ConfigError:

    r = Reader(obj, "config.json")           # the whole document
    proc = r.child("process")                # config.json: process: ...
    proc.strings("args", required=True)      # config.json: process.args: must be ...
"""

from __future__ import annotations

from pyrt.errors import PyrtError

#: The largest user or group id: runc's range (the kernel's ids are 32 bits, but -1 is "unchanged"
#: to setresuid(2) and chown(2): 4294967295 would leave the process root).
MAX_ID = (1 << 31) - 1
_KIND_NAMES = {str: "a string", bool: "true or false", list: "an array", dict: "an object"}


class ConfigError(PyrtError):
    """Bad input, found before anything was done about it."""


class Reader:
    """Typed access to one JSON object. `file` names the input ("config.json", "update
    --resources -"; "" for none), `where` the object's path in it ("process.user")."""

    __slots__ = ("obj", "file", "where")

    def __init__(self, obj: object, file: str, where: str = "") -> None:
        self.file, self.where = file, where
        if not isinstance(obj, dict):
            self.fail("must be an object")
        self.obj: dict = obj

    def field(self, key: str | None) -> str:
        """The dotted path of `key` in this object (of the object itself for None)."""
        if not key:
            return self.where
        return f"{self.where}.{key}" if self.where else key

    def name(self, key: str | None = None) -> str:
        """How errors name `key` (or this object): "config.json: process.args"."""
        where = self.field(key)
        return f"{self.file}: {where}" if self.file and where else self.file or where

    def error(self, why: str, key: str | None = None) -> ConfigError:
        head = self.name(key)
        return ConfigError(f"{head}: {why}" if head else why)

    def fail(self, why: str, key: str | None = None):
        raise self.error(why, key)

    # -- the general getters (config.json's words) --------------------------------------

    def child(self, key: str, required: bool = False) -> Reader | None:
        if self.obj.get(key) is None:
            if required:
                self.fail("is required", key)
            return None
        return Reader(self.obj[key], self.file, self.field(key))

    def get(self, key: str, kind: type, default: object = None, required: bool = False):
        value = self.obj.get(key)
        if value is None:
            if required:
                self.fail("is required", key)
            return default
        if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
            self.fail("must be an integer", key)
        if not isinstance(value, kind):
            self.fail(f"must be {_KIND_NAMES.get(kind, 'a number')}", key)
        return value

    def strings(self, key: str, required: bool = False, nonempty: bool = False) -> list[str]:
        value = self.get(key, list, [], required)
        if not all(isinstance(v, str) for v in value) or (nonempty and not value):
            self.fail("must be " + ("a non-empty " if nonempty else "an ") + "array of strings", key)
        return value

    def uint(self, key: str, default: int = 0, bits: int = 32) -> int:
        value = self.get(key, int, default)
        if not 0 <= value < 1 << bits:
            self.fail(f"must be between 0 and {(1 << bits) - 1}", key)
        return value

    def id(self, key: str) -> int:
        """A uid or gid (runc's words for one out of range)."""
        value = self.get(key, int, 0)
        if not 0 <= value <= MAX_ID:
            self.fail(f"uids and gids must be in range 0-{MAX_ID}", key)
        return value

    def items(self, key: str) -> list[Reader]:
        """The objects of an array."""
        value = self.get(key, list, [])
        return [Reader(v, self.file, f"{self.field(key)}[{i}]") for i, v in enumerate(value)]

    def refuse(self, key: str, what: str) -> None:
        """Refuse a field pyrt does not implement, unless it is empty."""
        if self.obj.get(key) not in (None, "", [], {}):
            self.fail(f"{what} is not supported by pyrt", key)

    # -- strict getters (linux.resources' words: the value is quoted back) ---------------

    def known(self, keys: tuple[str, ...]) -> Reader:
        """Refuse keys other than `keys` (resources are applied, not ignored, so a typo is an error)."""
        for key in self.obj:
            if key not in keys:
                self.fail("unknown field", key)
        return self

    def number(self, key: str, lo: int, hi: int, minus_one: bool = False, zero_unset: bool = False) -> int | None:
        """An integer in [lo, hi], or None if absent; -1 (unlimited) if `minus_one`; 0 means
        unset (None) if `zero_unset`."""
        v = self.obj.get(key)
        if v is None:
            return None
        if type(v) is not int:
            self.fail(f"{v!r} is not an integer", key)
        if zero_unset and v == 0:
            return None
        if not (lo <= v <= hi or (minus_one and v == -1)):
            allowed = f"{lo}..{hi}" + (" or -1 (unlimited)" if minus_one else "")
            self.fail(f"{v} is out of range ({allowed})", key)
        return v

    def flag(self, key: str) -> bool | None:
        v = self.obj.get(key)
        if v is not None and type(v) is not bool:
            self.fail(f"{v!r} is not true or false", key)
        return v

    def text(self, key: str) -> str | None:
        v = self.obj.get(key)
        if v is not None and not isinstance(v, str):
            self.fail(f"{v!r} is not a string", key)
        return v

    def array(self, key: str) -> list:
        v = self.obj.get(key)
        if v is None:
            return []
        if not isinstance(v, list):
            self.fail("must be an array", key)
        return v

    def at(self, value: object, name: str, known: tuple[str, ...]) -> Reader:
        """A Reader for `value` found under this object as `name` (an array element: "devices[2]")."""
        return Reader(value, self.file, self.field(name)).known(known)


def check_tree(obj: object, file: str) -> None:
    """Refuse, naming the field, what no field may hold: a string with a NUL byte (no system
    call takes one: Python would raise ValueError at the first that meets it) or a lone
    surrogate (not UTF-8). Every string, keys included, wherever it is: also in sections other
    modules read (seccomp, resources, annotations)."""
    from pyrt import jsonio

    try:  # the C encoder escapes both as \\u0000 and \\udXXX: most configs have neither
        text = jsonio.dumps(obj)
        if "\\u0000" not in text and "\\ud" not in text:
            return
    except RecursionError:
        pass
    todo: list[tuple[object, str]] = [(obj, "")]
    while todo:
        value, where = todo.pop()
        if isinstance(value, dict):
            for k, v in value.items():
                field = f"{where}.{k}" if where else k
                _check_string(k, field, file)
                todo.append((v, field))
        elif isinstance(value, list):
            todo += ((v, f"{where}[{i}]") for i, v in enumerate(value))
        elif isinstance(value, str):
            _check_string(value, where, file)


def _check_string(s: str, where: str, file: str) -> None:
    if "\0" in s:
        raise Reader({}, file, where).error("must not contain a NUL byte")
    try:
        s.encode()
    except UnicodeEncodeError:
        raise Reader({}, file, where).error("must be valid UTF-8 (it has a lone surrogate)") from None
