"""The layering DESIGN.md draws, read off the code: engine at the bottom, instrument and
training above it and beside each other, and no two modules that import each other. The
JACK test harness (tests/jacktest) stands apart: the product never imports it, nor it the product."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PRODUCT = ("engine", "instrument", "training")
PACKAGES = PRODUCT + ("tests.jacktest",)


def layer(module: str) -> str:
    """The package a module belongs to."""
    return next((package for package in PACKAGES if module == package or module.startswith(package + ".")), "")


def imports() -> dict[str, set[str]]:
    """Module -> the project's modules it imports, at its top or inside a function."""
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package.replace(".", "/")).rglob("*.py"):
            module = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
            names = set()
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    names.add(node.module)
                    names.update(f"{node.module}.{alias.name}" for alias in node.names)
                elif isinstance(node, ast.Import):
                    names.update(alias.name for alias in node.names)
            found[module] = {name for name in names if layer(name)}
    return {module: {name for name in names if name in found} for module, names in found.items()}


def test_engine_is_at_the_bottom_and_instrument_and_training_do_not_import_each_other():
    graph = imports()
    assert "engine.generator_process" in graph["engine.supervisor"]   # imports inside functions count too
    forbidden = {("engine", "instrument"), ("engine", "training"), ("instrument", "training"), ("training", "instrument")}
    forbidden |= {(package, "tests.jacktest") for package in PRODUCT} | {("tests.jacktest", package) for package in PRODUCT}
    crossing = sorted(f"{module} imports {name}" for module, names in graph.items() for name in names
                      if (layer(module), layer(name)) in forbidden)
    assert crossing == []


def test_no_two_modules_import_each_other():
    graph = imports()
    both_ways = sorted({tuple(sorted((a, b))) for a, names in graph.items() for b in names if a in graph.get(b, ())})
    assert both_ways == []
