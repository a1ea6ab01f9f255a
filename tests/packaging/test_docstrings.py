"""Every public function, method and class of the library documents each of its arguments, Google style
as torchaudio: an ``Args:`` section with one entry per argument, ``name (type): what it is``, and
``Default: ...`` for every argument that has one. Public means: named in a module's ``__all__``
(the command-line modules are documented by their ``--help`` instead, tested in test_cli.py)."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re

import audiosiam

ENTRY = re.compile(r"^(?P<indent>\s+)(?P<name>\*{0,2}\w+) \((?P<type>[^)]*(?:\)[^:]*)?)\):")


DEPRECATED_ALIASES = {"audiosiam.calibration", "audiosiam.classify", "audiosiam.decision", "audiosiam.gallery"}


def public_modules():
    yield audiosiam
    for info in pkgutil.walk_packages(audiosiam.__path__, "audiosiam."):
        name = info.name
        if "._" in name or name.startswith("audiosiam.commands") or name in ("audiosiam.cli", "audiosiam.__main__"):
            continue
        if name in DEPRECATED_ALIASES:  # re-exports of fewshot/ (checked there); importing them warns
            continue
        yield importlib.import_module(name)


def public_callables():
    """``(qualified name, function, docstring)`` for every public function, method and constructor."""
    seen = set()
    for module in public_modules():
        for attr in getattr(module, "__all__", []):
            obj = getattr(module, attr, None)
            if obj is None or id(obj) in seen:
                continue
            seen.add(id(obj))
            if inspect.isfunction(obj):
                yield f"{module.__name__}.{attr}", obj, inspect.getdoc(obj) or ""
            elif inspect.isclass(obj):
                init = obj.__dict__.get("__init__")
                if init is not None and inspect.isfunction(init):
                    doc = "\n".join(
                        d for d in (inspect.getdoc(obj), init.__doc__ and inspect.cleandoc(init.__doc__)) if d
                    )
                    yield f"{module.__name__}.{attr}", init, doc
                elif "__dataclass_fields__" in obj.__dict__:
                    yield f"{module.__name__}.{attr}", obj, inspect.getdoc(obj) or ""
                for name, member in obj.__dict__.items():
                    if inspect.isfunction(member) and not name.startswith("_"):
                        yield f"{module.__name__}.{attr}.{name}", member, inspect.getdoc(member) or ""


def documented_args(doc: str) -> dict[str, str]:
    """The entries of the docstring's ``Args:`` section: name -> its whole text."""
    lines = doc.splitlines()
    try:
        start = next(i for i, line in enumerate(lines) if line.strip() in ("Args:", "Arguments:", "Attributes:"))
    except StopIteration:
        return {}
    entries: dict[str, str] = {}
    current, indent = None, None
    for line in lines[start + 1 :]:
        if line.strip() and not line.startswith(" "):  # the section ends at the next unindented line
            if line.strip() in ("Args:", "Arguments:", "Attributes:"):
                current = None
                continue
            break
        m = ENTRY.match(line)
        if m and (indent is None or len(m["indent"]) == indent):
            indent = len(m["indent"])
            current = m["name"].lstrip("*")
            entries[current] = line
        elif current is not None:
            entries[current] += " " + line.strip()
    return entries


def test_every_public_argument_is_documented_with_its_type_and_default():
    problems = []
    for name, fn, doc in public_callables():
        entries = documented_args(doc)
        for param in inspect.signature(fn).parameters.values():
            if param.name in ("self", "cls") or param.name.startswith("_"):
                continue
            entry = entries.get(param.name)
            if entry is None:
                problems.append(f"{name}: argument {param.name!r} has no 'name (type): ...' entry under Args:")
            elif param.default is not inspect.Parameter.empty and "Default" not in entry:
                problems.append(f"{name}: argument {param.name!r} does not say its default ('Default: ...')")
    assert not problems, f"{len(problems)} documentation gaps:\n" + "\n".join(problems)


def test_the_checker_sees_a_missing_argument():
    def documented(a, b=1):
        """Example.

        Args:
            a (int): the first.
            b (int): the second. Default: 1.
        """

    def undocumented(a, b=1):
        """Example.

        Args:
            a (int): the first.
            b (int): the second.
        """

    assert set(documented_args(inspect.getdoc(documented))) == {"a", "b"}
    entries = documented_args(inspect.getdoc(undocumented))
    assert "Default" not in entries["b"]
