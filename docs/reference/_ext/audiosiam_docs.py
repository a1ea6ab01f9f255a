"""The parts of the API reference that are generated from the code at build time, so they cannot drift.

* One page per public module (:func:`public_modules`): each name of its ``__all__`` is documented once, in
  the module that defines it (:func:`canonical_homes`); a package's page links its re-exported names there.
* References to a re-exported name (``audiosiam.FewShotClassifier``, ``:class:`EventDetector``` in
  ``audiosiam.detection``) resolve to that one place (:func:`resolve_reference`).
* ``.. audiosiam-cli::`` renders ``audiosiam --help`` and every subcommand's ``--help`` from the argparse
  parsers of :mod:`audiosiam.cli`.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import os
import pkgutil
import sys
import textwrap
from pathlib import Path

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective
from sphinx.util.nodes import nested_parse_with_titles

logger = logging.getLogger(__name__)

# Deprecated one-release aliases of fewshot/ (importing them warns); their names are documented in fewshot/.
DEPRECATED_ALIASES = {"audiosiam.calibration", "audiosiam.classify", "audiosiam.decision", "audiosiam.gallery"}
# The folder, under the documentation's source folder, that the module pages are written into (gitignored).
PAGES = "api"
# Filled by write_module_pages: (module, name) -> the module whose page documents it, and id(class or
# function) -> the full name it is documented under.
HOMES: dict[tuple[str, str], str] = {}
DOCUMENTED: dict[int, str] = {}
HELP_WIDTH = "100"  # argparse wraps --help to $COLUMNS: fixed, so the page does not depend on the terminal


def public_modules() -> list[str]:
    """Names of the public modules: ``audiosiam`` and every module under it that has an ``__all__``, less
    private ones (a ``_`` part), the command line (documented by its ``--help``) and the deprecated aliases:
    the modules whose ``__all__`` ``tests/packaging/test_docstrings.py`` checks."""
    import audiosiam

    names = ["audiosiam"]
    for info in pkgutil.walk_packages(audiosiam.__path__, "audiosiam."):
        name = info.name
        if "._" in name or name.startswith("audiosiam.commands") or name in ("audiosiam.cli", "audiosiam.__main__"):
            continue
        if name in DEPRECATED_ALIASES:
            continue
        if hasattr(importlib.import_module(name), "__all__"):
            names.append(name)
    return sorted(names)


def canonical_homes(modules: list[str]) -> dict[tuple[str, str], str]:
    """``(module, name) -> module`` whose page documents ``module.name``: for a function or class, the public
    module that defines it (its ``__module__``) when that module exports it; for anything else (constants,
    or objects defined in a private module), the deepest public module at or under ``module`` that exports
    the same object by the same name (a package's ``__all__`` re-exports its submodules')."""
    homes = {}
    for module_name in modules:
        module = importlib.import_module(module_name)
        for name in module.__all__:
            obj = getattr(module, name)
            owners = [
                m
                for m in modules
                if (m == module_name or m.startswith(module_name + "."))
                and name in importlib.import_module(m).__all__
                and getattr(importlib.import_module(m), name) is obj
            ]
            defined_in = getattr(obj, "__module__", None) if inspect.isclass(obj) or inspect.isfunction(obj) else None
            if inspect.ismodule(obj):
                homes[module_name, name] = obj.__name__
            elif defined_in in modules and name in importlib.import_module(defined_in).__all__:
                homes[module_name, name] = defined_in
            else:
                homes[module_name, name] = max(owners, key=lambda m: (m.count("."), m))
    return homes


def _directive(obj) -> str:
    if inspect.isclass(obj):
        return "autoexception" if issubclass(obj, BaseException) else "autoclass"
    return "autofunction" if callable(obj) else "autodata"  # callable: functions, lru_cache wrappers


def module_page(module_name: str, homes: dict[tuple[str, str], str]) -> str:
    """The reStructuredText of one module's page: its docstring, then each name of its ``__all__`` in order,
    documented here or linked to the page that documents it."""
    module = importlib.import_module(module_name)
    lines = [module_name, "=" * len(module_name), "", f".. automodule:: {module_name}", "   :no-members:", ""]
    elsewhere = []
    for name in module.__all__:
        home, obj = homes[module_name, name], getattr(module, name)
        if inspect.ismodule(obj):
            elsewhere.append(f"* :mod:`{obj.__name__}`{_summary(obj)}")
        elif home != module_name:
            role = "class" if inspect.isclass(obj) else "func" if callable(obj) else "data"
            elsewhere.append(f"* :{role}:`{name} <{home}.{name}>` (:mod:`{home}`){_summary(obj)}")
        else:
            lines += [f".. {_directive(obj)}:: {name}"]
            if inspect.isclass(obj):
                lines += ["   :members:", "   :show-inheritance:"]
            lines.append("")
    if elsewhere:
        lines += [".. rubric:: Re-exported here, documented in their modules", "", *elsewhere, ""]
    return "\n".join(lines)


def undocumented_members(cls) -> list[str]:
    """Public methods and properties of ``cls`` without a docstring (autodoc would leave them out without a
    word), less overrides of another library's methods (``nn.Module.extra_repr``), which that library
    documents."""
    missing = []
    for name, member in vars(cls).items():
        if name.startswith("_"):
            continue
        function = member.__func__ if isinstance(member, (classmethod, staticmethod)) else member
        if not (inspect.isfunction(function) or isinstance(member, property)):
            continue
        foreign = any(name in vars(base) for base in cls.__mro__[1:] if not base.__module__.startswith("audiosiam"))
        if not (member.__doc__ if isinstance(member, property) else function.__doc__) and not foreign:
            missing.append(f"{cls.__module__}.{cls.__qualname__}.{name}")
    return missing


def _summary(obj) -> str:
    """``": "`` and the first sentence of a class's, function's or module's docstring, or ``""``."""
    if not (inspect.isclass(obj) or inspect.ismodule(obj) or callable(obj)):
        return ""
    paragraph = (inspect.getdoc(obj) or "").split("\n\n")[0]
    sentence = " ".join(paragraph.split()).split(". ")[0].rstrip(".")
    return f": {sentence}." if sentence and sentence.count("`") % 2 == 0 else ""


def write_module_pages(app) -> None:
    """Write ``<srcdir>/api/<module>.rst`` for every public module (only files whose text changed, so an
    incremental build stays incremental) and remove the pages of modules that are gone. Off where
    ``audiosiam_module_pages = False`` (the tests' small projects)."""
    if not app.config.audiosiam_module_pages:
        return
    folder = Path(app.srcdir) / PAGES
    folder.mkdir(exist_ok=True)
    modules = public_modules()
    homes = canonical_homes(modules)
    HOMES.update(homes)
    for (module_name, name), home in homes.items():
        obj = getattr(importlib.import_module(module_name), name)
        if inspect.isclass(obj) or callable(obj):  # constants are told apart by name: 1 is 1 everywhere
            DOCUMENTED[id(obj)] = f"{home}.{name}"
        if inspect.isclass(obj) and home == module_name:
            for member in undocumented_members(obj):
                logger.warning("%s is public but has no docstring, so the reference would leave it out", member)
    wanted = {folder / f"{name}.rst": module_page(name, homes) for name in modules}
    for path in folder.glob("*.rst"):
        if path not in wanted:
            path.unlink()
    for path, text in wanted.items():
        if not path.is_file() or path.read_text() != text:
            path.write_text(text)


def _lookup(dotted: str):
    """The object named by a dotted path (a module, then attributes), or None. Modules outside ``audiosiam``
    are only looked up, never imported."""
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        module_name = ".".join(parts[:i])
        obj = sys.modules.get(module_name)
        if obj is None and module_name.startswith("audiosiam"):
            try:
                obj = importlib.import_module(module_name)
            except ImportError:
                continue
        if obj is None:
            continue
        try:
            for attr in parts[i:]:
                obj = getattr(obj, attr)
        except AttributeError:
            return None
        return obj
    return None


# Module names and their usual aliases as annotations spell them (``from __future__ import annotations``).
OTHER_LIBRARIES = {"np", "numpy", "torch", "torchaudio", "faiss", "sklearn"}


def resolve_reference(app, env, node, contnode):
    """``missing-reference`` for the Python domain (every other reference that fails, fails the build):

    * a name documented where it is defined but met where it is re-exported (``audiosiam.load_model``,
      ``:class:`EventDetector``` in ``audiosiam.detection``, ``audiosiam.models.EmbeddingModel.embed_all``)
      resolves to that definition;
    * a name of another library (``Tensor`` in a module that imported it, ``numpy.ndarray``) is shown as
      text: there is no network at build time to link it;
    * the words of a docstring's free-text type (``sequence of str``, ``(N, D) Tensor``) are text too.

    What is left fails: an ``audiosiam`` name that does not exist or is not documented (private, or missing
    from its module's ``__all__``)."""
    if node.get("refdomain") != "py":
        return None
    target, domain = node["reftarget"], env.domains["py"]
    module, cls = node.get("py:module"), node.get("py:class")
    candidates = [target] + ([f"{module}.{cls}.{target}"] if module and cls else [])
    candidates += [f"{module}.{target}"] if module else []
    for candidate in candidates:
        obj = _lookup(candidate)
        if obj is None:
            continue
        home = _canonical_name(obj, candidate)
        if home in domain.objects:
            node["reftarget"] = home
            found = domain.resolve_xref(env, node["refdoc"], app.builder, node["reftype"], home, node, contnode)
            if found is not None:
                return found
        if not home.startswith("audiosiam"):
            return contnode
    if target.split(".")[0] in OTHER_LIBRARIES:  # an annotation of another library's type (``np.ndarray``)
        return contnode
    written_type = node.get("refspecific") and not isinstance(contnode, nodes.literal)  # roles make literals
    if written_type and not target.startswith("audiosiam."):
        return contnode
    return None


def _canonical_name(obj, fallback: str) -> str:
    """The full name the reference documents ``obj`` under (a method: under its class's), else where it is
    defined, else ``fallback``."""
    if id(obj) in DOCUMENTED:
        return DOCUMENTED[id(obj)]
    module_name, _, name = fallback.rpartition(".")
    if (module_name, name) in HOMES:
        return f"{HOMES[module_name, name]}.{name}"
    if inspect.ismodule(obj):
        return obj.__name__
    module, qualname = getattr(obj, "__module__", None), getattr(obj, "__qualname__", None)
    if not (isinstance(module, str) and isinstance(qualname, str)) or "<" in qualname:
        return fallback
    outer, _, rest = qualname.partition(".")
    owner = getattr(sys.modules.get(module), outer, None)
    if rest and id(owner) in DOCUMENTED:
        return f"{DOCUMENTED[id(owner)]}.{rest}"
    return f"{module}.{qualname}"


def constant_comment(app, what, name, obj, options, lines) -> None:
    """``autodoc-process-docstring``: a public constant is documented by a ``#:`` comment above it (in the
    submodule that defines it when a package re-exports it: ``__version__``, ``io.AUDIO_EXTENSIONS``); without one,
    autodoc would show its type's docstring (``str(object='') -> str``): fail, naming the constant."""
    if what != "data" or not lines or lines != _docstring_lines(type(obj)):
        return
    from sphinx.pycode import ModuleAnalyzer

    lines.clear()
    module_name, _, attr = name.rpartition(".")
    for home in sorted(m for m in sys.modules if m.startswith(module_name + ".")):
        if not lines and getattr(sys.modules[home], attr, None) is obj:
            lines += ModuleAnalyzer.for_module(home).find_attr_docs().get(("", attr), [])
    if not lines:
        where = getattr(sys.modules.get(module_name), "__file__", module_name)
        logger.warning("%s (%s) is public but has no '#:' comment above it to document it", name, where)


def _docstring_lines(cls) -> list[str]:
    from sphinx.util.docstrings import prepare_docstring

    return prepare_docstring(cls.__doc__ or "")


def dataclass_signature(app, what, name, obj, options, signature, return_annotation):
    """``autodoc-process-signature``: a dataclass field with a ``default_factory`` shows ``<factory>`` as its
    default, which is not Python, so Sphinx would split the signature at every comma; show ``...``."""
    if signature and "<factory>" in signature:
        return signature.replace("<factory>", "..."), return_annotation
    return None


def public_bases(app, name, obj, options, bases) -> None:
    """``autodoc-process-bases``: a private base class (``_WaveformAugment``) is shown as its own bases."""
    i = 0
    while i < len(bases):
        base = bases[i]
        if getattr(base, "__module__", "").startswith("audiosiam") and base.__name__.startswith("_"):
            bases[i : i + 1] = [b for b in base.__bases__ if b not in bases]
        else:
            i += 1


def skip_foreign_members(app, what, name, obj, skip, options):
    """``autodoc-skip-member``: methods that another library adds to a class (scikit-learn's
    ``set_*_request``) are that library's to document, and a named tuple's fields ("Alias for field number
    0") are described by its ``Attributes:`` section."""
    if type(obj).__name__ == "_tuplegetter":
        return True
    module = getattr(obj, "__module__", None)
    if callable(obj) and isinstance(module, str) and not module.startswith("audiosiam"):
        return True
    return None


def napoleon_without_inline_types(app) -> None:
    """Napoleon, except that the first line of a property's docstring is prose: napoleon reads ``text: more``
    there as ``type: description``, and this code base writes colons as prose."""
    from sphinx.ext import napoleon

    for listener in list(app.events.listeners["autodoc-process-docstring"]):
        if listener.handler is napoleon._process_docstring:
            app.disconnect(listener.id)

    def process(app, what, name, obj, options, lines):
        what = "method" if what in ("property", "attribute", "data") else what
        napoleon._process_docstring(app, what, name, obj, options, lines)

    app.connect("autodoc-process-docstring", process)


@contextlib.contextmanager
def _columns(width: str):
    old = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = width
    try:
        yield
    finally:
        if old is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = old


class CommandLineReference(SphinxDirective):
    """``.. audiosiam-cli::``: ``audiosiam --help``, then a section per subcommand (in ``cli.SUBCOMMANDS``
    order) with its one-line summary and its ``--help``, read from the parsers themselves."""

    def run(self) -> list[nodes.Node]:
        import argparse

        from audiosiam import cli

        with _columns(HELP_WIDTH):
            parser = cli.build_parser("*")
            sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
            text = ["``audiosiam --help``:", "", ".. code-block:: text", ""]
            text += _indented(parser.format_help())
            for name in cli.SUBCOMMANDS:
                title = f"audiosiam {name}"
                summary = importlib.import_module(f"audiosiam.commands.{name}").HELP
                text += ["", title, "-" * len(title), "", summary[:1].upper() + summary[1:] + ".", ""]
                text += [".. code-block:: text", ""] + _indented(sub.choices[name].format_help())
        # the page is read again when any of the package's files changes (an option's default may live in
        # training/config.py), so an incremental build cannot keep an old --help
        for path in sorted(Path(cli.__file__).parent.rglob("*.py")):
            self.env.note_dependency(str(path))
        container = nodes.section()
        nested_parse_with_titles(self.state, StringList(text, source="audiosiam.cli"), container)
        return container.children


def _indented(help_text: str) -> list[str]:
    return textwrap.indent(help_text.rstrip() + "\n", "   ").splitlines()


def setup(app):
    app.add_config_value("audiosiam_module_pages", True, "env")
    app.connect("builder-inited", write_module_pages)
    app.setup_extension("sphinx.ext.autodoc")
    app.setup_extension("sphinx.ext.napoleon")
    napoleon_without_inline_types(app)
    app.connect("missing-reference", resolve_reference)
    app.connect("autodoc-process-bases", public_bases)
    app.connect("autodoc-process-signature", dataclass_signature)
    app.connect("autodoc-process-docstring", constant_comment, priority=400)
    app.connect("autodoc-skip-member", skip_foreign_members)
    app.add_directive("audiosiam-cli", CommandLineReference)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
