"""Write docs/api.md from the numpydoc docstrings of convlab's public objects.

Run ``python docs/make_api.py`` after changing a public docstring;
``tests/test_docs.py`` fails while docs/api.md is out of step with the code.
"""

import importlib
import inspect
import pathlib
import sys

# module -> heading; each module's ``__all__`` lists what it makes public.
MODULES = {
    "convlab": "Core: convolution, plans, methods, errors",
    "convlab.config": "Process-wide settings",
    "convlab.problem": "The problem spec: the one validation layer",
    "convlab.algorithms": "The method contract, the registry and the cost terms",
    "convlab.tuning": "Choosing a method: cost models, calibration, autotune",
    "convlab.operators": "Operators: the convolution as a matrix, and its spectrum",
    "convlab.padding": "Padding modes and their adjoints",
    "convlab.tolerances": "Accuracy tolerances",
    "convlab.fft_backends": "FFT backends",
    "convlab.nn": "Layers, losses and optimisers (convlab.nn)",
    "convlab.datasets": "Data sets for the example",
    "convlab.harness": "The measurement harness: stopwatch and machine probes",
    "convlab.case": "The problem record of the measuring applications",
    "convlab.signal": "scipy.signal drop-in (convlab.signal)",
    "convlab.report": "Benchmark report (convlab.report)",
}

HEADER = """# API reference

Generated from the docstrings by `python docs/make_api.py`; do not edit by
hand. Every name is importable from the module in its section heading.
"""


def _signature(obj):
    try:
        return str(inspect.signature(obj))
    except (TypeError, ValueError):
        return ""


def _stable_repr(obj):
    """``repr`` with set members sorted, so the page does not change with hash randomisation."""
    if isinstance(obj, (set, frozenset)):
        return f"{type(obj).__name__}({{{', '.join(sorted(map(repr, obj)))}}})"
    if isinstance(obj, dict):
        return "{" + ", ".join(f"{k!r}: {_stable_repr(v)}" for k, v in obj.items()) + "}"
    if isinstance(obj, (tuple, list)):
        inner = ", ".join(_stable_repr(v) for v in obj)
        return f"({inner}{',' if len(obj) == 1 else ''})" if isinstance(obj, tuple) else f"[{inner}]"
    return repr(obj)


def _entry(module_name, name, obj):
    kind = "class" if inspect.isclass(obj) else "function" if callable(obj) else "object"
    title = f"### `{module_name}.{name}`"
    doc = inspect.getdoc(obj) or "(no docstring)"
    if kind == "object":
        return f"{title}\n\n```text\n{name} = {_stable_repr(obj)}\n```\n"
    lines = [title, "", f"```text\n{kind} {name}{_signature(obj)}\n\n{doc}\n```"]
    if inspect.isclass(obj):
        for member_name, member in inspect.getmembers(obj):
            if member_name.startswith("_") or member_name not in obj.__dict__:
                continue
            member_doc = inspect.getdoc(member)
            if member_doc and (callable(member) or isinstance(member, property)):
                sig = _signature(member) if callable(member) else ""
                lines.append(f"\n**`{name}.{member_name}{sig}`**\n\n```text\n{member_doc}\n```")
    return "\n".join(lines) + "\n"


def _anchor(heading):
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    kept = "".join(ch for ch in heading.lower() if ch.isalnum() or ch in " -_")
    return kept.replace(" ", "-")


def render():
    sections = []
    for module_name, heading in MODULES.items():
        module = importlib.import_module(module_name)
        names = getattr(module, "__all__", [])
        entries = [_entry(module_name, name, getattr(module, name)) for name in names]
        sections.append((heading, f"## {heading}\n\n`import {module_name}`\n", entries))
    contents = "\n".join(f"- [{heading}](#{_anchor(heading)})" for heading, _, _ in sections)
    parts = [HEADER, contents + "\n"]
    for _, title, entries in sections:
        parts.append(title)
        parts.extend(entries)
    return "\n".join(parts)


if __name__ == "__main__":
    out = pathlib.Path(__file__).with_name("api.md")
    out.write_text(render(), encoding="utf-8")
    print(f"wrote {out}", file=sys.stderr)
