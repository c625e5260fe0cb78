"""No private name of lightning, transformers or torch in the package: every private-looking name that
``grep -rnE "\\._[a-z]\\w*|import _|\\b_[A-Z]\\w+" lightning_latentseek callbacks`` finds is one we define
ourselves (``self._cache``, ``_Request``), or is listed in `ALLOWED` with its reason.

`ALLOWED` is the one place for a private name that cannot be avoided: it must sit behind one function with a
comment, be listed here with the reason, and have a test that fails loudly when the library changes it.
There is none today: the launcher, seeding, the attention implementation, the prefix store's sharing, the
benchmarks' model construction and the command line's error messages all use public APIs.

``python tests/test_private_api.py`` prints every grep hit with the definition that makes it ours.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = ("lightning_latentseek", "callbacks")
GREP = re.compile(r"\._[a-z]\w*|import _|\b_[A-Z]\w+")
NAME = re.compile(r"\b_[A-Za-z]\w*")
# private name -> (where it is used, why it cannot be avoided, the test that guards it)
ALLOWED: dict[str, tuple[str, str, str]] = {}


def sources() -> dict[Path, str]:
    return {path: path.read_text() for folder in FOLDERS for path in sorted((ROOT / folder).rglob("*.py"))}


def own_definitions(texts: dict[Path, str]) -> dict[str, str]:
    """Private names our code defines, with where: functions and classes, assignment targets (``_x = ...``,
    ``self._x = ...``, annotated dataclass fields), loop variables and parameters."""
    found: dict[str, str] = {}

    def define(name: str, path: Path, node: ast.AST) -> None:
        if name.startswith("_") and not name.startswith("__"):
            found.setdefault(name, f"{path.relative_to(ROOT)}:{node.lineno}")

    def targets(node: ast.AST):
        if isinstance(node, ast.Name):
            yield node.id
        elif isinstance(node, ast.Attribute):
            yield node.attr
        elif isinstance(node, (ast.Tuple, ast.List)):
            for element in node.elts:
                yield from targets(element)

    for path, text in texts.items():
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                define(node.name, path, node)
            elif isinstance(node, ast.Assign):
                for target in node.targets:
                    for name in targets(target):
                        define(name, path, node)
            elif isinstance(node, (ast.AnnAssign, ast.AugAssign, ast.For, ast.comprehension)):
                for name in targets(node.target):
                    define(name, path, node.target)
            elif isinstance(node, ast.arg):
                define(node.arg, path, node)
    return found


def hits(texts: dict[Path, str]) -> list[tuple[str, int, str, list[str]]]:
    """(file, line number, line, private names on it) for every line the issue's grep finds."""
    out = []
    for path, text in texts.items():
        for number, line in enumerate(text.splitlines(), start=1):
            if GREP.search(line):
                names = sorted({m.group(0) for m in NAME.finditer(line)})
                out.append((str(path.relative_to(ROOT)), number, line.strip(), names))
    return out


def test_every_private_name_the_grep_finds_is_ours_or_listed():
    texts = sources()
    ours = own_definitions(texts)
    foreign = sorted({(name, f"{file}:{number}") for file, number, _, names in hits(texts) for name in names
                      if name not in ours and name not in ALLOWED})
    assert not foreign, f"private names of other libraries (use a public API, or list one in ALLOWED): {foreign}"


def test_the_audit_catches_a_foreign_private_name():
    """The audit itself: a line reading a library's private attribute is caught, our own names are not."""
    texts = {ROOT / "lightning_latentseek" / "x.py": "from lightning.fabric import _Launcher\n\n\nclass _Ours:\n"
             "    pass\n\n\ndef f(model):\n    self._mine = _Ours()\n"
             "    return model.config._attn_implementation, self._mine, _Launcher\n"}
    ours = own_definitions(texts)
    found = [name for _, _, _, names in hits(texts) for name in names if name not in ours]
    assert found == ["_Launcher", "_Launcher", "_attn_implementation"]


if __name__ == "__main__":
    texts = sources()
    ours = own_definitions(texts)
    for file, number, line, names in hits(texts):
        where = "; ".join(f"{n}: {'ours, ' + ours[n] if n in ours else ALLOWED.get(n, ('', 'NOT OURS'))[1]}"
                          for n in names)
        print(f"{file}:{number}: {where}\n    {line}")
