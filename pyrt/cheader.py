"""The C side of the plan schema: native/init/steps.h, generated from pyrt/steps.py (the step
types) and pyrt/protocol.py (the sync messages), so pyrt-init's table of steps and their field
kinds cannot drift from what Python builds. Run `python -m pyrt.cheader > native/init/steps.h`."""

from __future__ import annotations

from pyrt import protocol
from pyrt.steps import TYPES


def header() -> str:
    """native/init/steps.h: the sync messages, the step ids, each step's field kinds and names, and
    the step functions pyrt-init must define (a step without one fails to link)."""

    most = max(len(t.fields) for t in TYPES.values())
    names = [t.name.replace("-", "_") for t in TYPES.values()]
    lines = [
        "/* Generated from pyrt/steps.py and pyrt/protocol.py by `python -m pyrt.cheader`: do not edit.",
        " * tests/unit/test_plan.py checks that it is up to date. */",
        "#ifndef PYRT_STEPS_H",
        "#define PYRT_STEPS_H",
        "",
        "/* The sync messages (pyrt/protocol.py) */",
        *(f'#define SYNC_{name} "{value.decode()}"' for name, value in protocol.MESSAGES.items()),
        "",
        f"#define STEP_MAX_FIELDS {most}",
        "",
        "enum step_id {",
        *(f"\tSTEP_{n.upper()}," for n in names),
        "\tSTEP_COUNT",
        "};",
        "",
        "/* One function per step, given the step's fields as typed by plan.c (init.h: union arg) */",
        "union arg;",
        *(f"void step_{n}(const union arg *a);" for n in names),
        "",
        "#ifdef PYRT_STEP_TABLE",
        "/* Each step's name, its fields' kinds (i u s b f S I F: see pyrt/steps.py) and names */",
        "static const struct step_type {",
        "\tconst char *name;",
        "\tconst char *kinds;",
        "\tconst char *fields[STEP_MAX_FIELDS];",
        "} STEP_TYPES[STEP_COUNT] = {",
        *(f'\t[STEP_{n.upper()}] = {{ "{t.name}", "{t.kinds}", {{ {_c_strings(t.fields)} }} }},'
          for n, t in zip(names, TYPES.values(), strict=True)),
        "};",
        "#endif",
        "",
        "#ifdef PYRT_STEP_FUNCTIONS",
        "static void (*const STEP_FUNCTIONS[STEP_COUNT])(const union arg *) = {",
        *(f"\t[STEP_{n.upper()}] = step_{n}," for n in names),
        "};",
        "#endif",
        "",
        "#endif",
        "",
    ]
    return "\n".join(lines)


def _c_strings(words: tuple[str, ...]) -> str:
    return ", ".join(f'"{w}"' for w in words) or "0"


if __name__ == "__main__":
    import sys

    sys.stdout.write(header())
