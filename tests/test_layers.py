"""Imports run one way: data -> config -> models -> perf -> explore -> baselines -> studies ->
report -> cli, and no module imports another module's private (``_``-prefixed) names."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import chipletcloud

ROOT = Path(chipletcloud.__file__).parent

#: The layer of each top-level module or package of ``chipletcloud`` (lower imports nothing
#: higher). ``errors`` and the data cards sit at the bottom; ``sparsity`` is a storage model.
LAYERS = {
    "errors": 0,
    "data": 0,
    "config": 1,
    "models": 2,
    "sparsity": 2,
    "perf": 3,
    "explore": 4,
    "baselines": 5,
    "studies": 6,
    "report": 7,
    "cli": 8,
    "__init__": 9,
}


def _module_name(path: Path, root: Path) -> str:
    rel = path.relative_to(root).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__" and len(parts) > 1:
        parts = parts[:-1]
    return ".".join(["chipletcloud", *parts])


def violations(source: str, module: str, is_package: bool = False) -> list[str]:
    """Upward and private cross-module imports of ``module`` (a dotted name under chipletcloud;
    ``is_package`` for an ``__init__``) whose source is ``source``: one line each."""
    own_top = module.split(".")[1] if module.count(".") else "__init__"
    own_layer = LAYERS[own_top]
    out = []
    aliases: dict[str, str] = {}  # local name -> imported chipletcloud module
    tree = ast.parse(source)
    for node in ast.walk(tree):
        targets: list[tuple[str, str | None]] = []  # (module, imported name)
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("chipletcloud."):
                    targets.append((a.name, None))
                    if a.asname:
                        aliases[a.asname] = a.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against this module's package
                pkg = module.split(".") if is_package else module.split(".")[:-1]
                pkg = pkg[: len(pkg) - node.level + 1]
                base = ".".join([*pkg, *([node.module] if node.module else [])])
            if base == "chipletcloud" or base.startswith("chipletcloud."):
                for a in node.names:
                    if base == "chipletcloud":
                        targets.append((f"chipletcloud.{a.name}", None))
                        aliases[a.asname or a.name] = f"chipletcloud.{a.name}"
                    else:
                        targets.append((base, a.name))
                        aliases[a.asname or a.name] = f"{base}.{a.name}"
        for target, name in targets:
            top = target.split(".")[1]
            if LAYERS.get(top, -1) > own_layer:
                out.append(f"{module} imports {target} (layer {top} above {own_top})")
            if name and name.startswith("_") and not name.startswith("__") and target != module:
                out.append(f"{module} imports the private name {name} of {target}")
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in aliases
            and node.attr.startswith("_")
            and not node.attr.startswith("__")
            and aliases[node.value.id] != module
        ):
            out.append(f"{module} uses the private name {node.attr} of {aliases[node.value.id]}")
    return out


def test_every_module_has_a_layer():
    tops = {p.name.removesuffix(".py") for p in ROOT.iterdir() if not p.name.startswith(".")}
    tops -= {"__pycache__", "py.typed"}
    assert tops <= set(LAYERS), tops - set(LAYERS)


def test_imports_run_one_way_and_names_stay_private():
    found = []
    for path in sorted(ROOT.rglob("*.py")):
        found += violations(
            path.read_text(), _module_name(path, ROOT), is_package=path.name == "__init__.py"
        )
    assert not found, "\n".join(found)


@pytest.mark.parametrize(
    "source, module, fragment",
    [
        ("from chipletcloud.explore import software\n", "chipletcloud.perf.des", "layer explore"),
        (
            "def f():\n    from chipletcloud.report.store import x\n",
            "chipletcloud.explore.a",
            "report",
        ),
        ("from chipletcloud.report.store import _jsonable\n", "chipletcloud.cli", "private"),
        (
            "from chipletcloud.explore import kernel\nkernel._run()\n",
            "chipletcloud.studies.c",
            "_run",
        ),
        ("import chipletcloud.cli as c\n", "chipletcloud.models.llm", "layer cli"),
        ("from ..report import html\n", "chipletcloud.explore.shards", "layer report"),
        ("from .store import _atomic\n", "chipletcloud.report.html", "private"),
    ],
)
def test_the_check_catches_what_it_must(source, module, fragment):
    found = violations(source, module)
    assert found and any(fragment in f for f in found)


def test_the_check_allows_downward_and_same_layer_imports():
    src = (
        "from chipletcloud.perf import formulas as fm\n"
        "from chipletcloud.explore.pareto import pareto_mask\n"
        "from chipletcloud.config import Params\n"
        "fm.select(1, 2, 3)\n"
    )
    assert violations(src, "chipletcloud.explore.kernel") == []
