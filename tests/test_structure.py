"""The code's shape: small modules and functions, layered imports, imports at the top, a light `--help`."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "splitlm"
MAX_MODULE_LINES, MAX_FUNCTION_LINES = 300, 50
FILES = sorted(PACKAGE.rglob("*.py"))


def _rel(path: Path) -> str:
    return path.relative_to(PACKAGE.parent).as_posix()


def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def _imported(node: ast.AST, path: Path) -> list[str]:
    """Absolute names of the modules an Import/ImportFrom node loads (`from a import b` gives a.b)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if not isinstance(node, ast.ImportFrom):
        return []
    if node.level:  # relative: resolve against the importing module's package (a.b for a/b/c.py, a/b/__init__.py)
        package = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)[:-1]
        base = ".".join(package[: len(package) - node.level + 1] + ([node.module] if node.module else []))
    else:
        base = node.module
    # `from splitlm.core import errors` and `from . import layout` load submodules; `from a.b import X` loads a.b.
    if base == "splitlm" or (node.level and not node.module):
        return [f"{base}.{alias.name}" for alias in node.names]
    return [base]


def _splitlm(name: str) -> bool:
    return name == "splitlm" or name.startswith("splitlm.")


def test_sizes_are_checked_on_every_module():
    assert len(FILES) > 40 and PACKAGE / "core" / "parts.py" in FILES


def test_no_module_over_300_lines_and_no_function_over_50():
    too_long = []
    for path in FILES:
        lines = len(path.read_text(encoding="utf-8").splitlines())
        if lines > MAX_MODULE_LINES:
            too_long.append(f"{_rel(path)}: {lines} lines")
        for node in ast.walk(_tree(path)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1  # from `def` to the last line, decorators aside
                if length > MAX_FUNCTION_LINES:
                    too_long.append(f"{_rel(path)}:{node.lineno} {node.name}: {length} lines")
    assert not too_long, "\n".join(too_long)


@pytest.mark.parametrize("layer", ["core", "schemas"])
def test_lower_layers_import_only_core(layer):
    # Modules of the layer itself are fine too: the rule is about depending on the layers above.
    allowed = lambda name: any(  # noqa: E731
        name == f"splitlm.{ok}" or name.startswith(f"splitlm.{ok}.") for ok in ("core", layer))
    bad = [
        f"{_rel(path)}:{node.lineno} imports {name}"
        for path in sorted((PACKAGE / layer).rglob("*.py"))
        for node in ast.walk(_tree(path))
        for name in _imported(node, path)
        if _splitlm(name) and not allowed(name)
    ]
    assert not bad, "\n".join(bad)


def test_no_function_level_imports_of_splitlm_outside_the_cli():
    bad = []
    for path in FILES:
        if path.is_relative_to(PACKAGE / "cli"):
            continue
        for func in ast.walk(_tree(path)):
            if not isinstance(func, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                continue
            for node in ast.walk(func):
                bad += [f"{_rel(path)}:{node.lineno} {func.__dict__.get('name', 'lambda')} imports {name}"
                        for name in _imported(node, path) if _splitlm(name)]
    assert not bad, "\n".join(sorted(set(bad)))


def test_the_checks_see_relative_and_package_imports():
    # The import resolver itself: relative imports and `from splitlm import x` resolve to splitlm modules.
    path = PACKAGE / "schemas" / "tables.py"
    tree = ast.parse("from . import layout\nfrom ..curate import shards\nfrom splitlm import tokenizer\nimport numpy\n")
    names = [n for node in tree.body for n in _imported(node, path)]
    assert names == ["splitlm.schemas.layout", "splitlm.curate", "splitlm.tokenizer", "numpy"]
    init = PACKAGE / "core" / "__init__.py"
    assert _imported(ast.parse("from .parts import x").body[0], init) == ["splitlm.core.parts"]
    assert _imported(ast.parse("from . import errors").body[0], init) == ["splitlm.core.errors"]
    assert _imported(ast.parse("from .. import tokenizer").body[0], init) == ["splitlm.tokenizer"]


# `--help` of each command must stay light. tests/test_cli.py checks torch, transformers,
# sentence_transformers, faiss, polars and scipy for the `curate` and `train` apps; here the umbrella
# `splitlm` app too, and the heavy imports that list leaves out.
HEAVY = ("torch", "transformers", "sentence_transformers", "faiss", "polars", "scipy", "matplotlib", "ray",
         "datasketch", "sklearn", "onnxruntime")
HELP = """
import sys
from typer.testing import CliRunner
from splitlm.cli import curate, main, train
heavy = {heavy!r}
for name, app, args in (("curate", curate.app, ["--help"]), ("train", train.app, ["--help"]),
                        ("splitlm", main.app, ["--help"]), ("splitlm curate", main.app, ["curate", "--help"]),
                        ("splitlm train", main.app, ["train", "--help"])):
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, (name, result.output)
    print(name, sorted(m for m in heavy if m in sys.modules))
"""


def test_help_imports_no_heavy_library():
    out = subprocess.run([sys.executable, "-c", HELP.format(heavy=HEAVY)], capture_output=True, text=True,
                         check=True).stdout
    assert out.splitlines() == [f"{name} []" for name in
                                ("curate", "train", "splitlm", "splitlm curate", "splitlm train")]
