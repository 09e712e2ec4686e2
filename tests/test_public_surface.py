"""The public surface is declared: every module has ``__all__``, every ``sweeplab`` name that a
config or an entry point names is in it, and the README's layout lists every module."""

from __future__ import annotations

import importlib
import re

import pytest
import tomllib

from tests.conftest import ROOT

SRC = ROOT / "src" / "sweeplab"
MODULES = sorted(
    ".".join(("sweeplab", *p.relative_to(SRC).with_suffix("").parts)).removesuffix(".__init__")
    for p in SRC.rglob("*.py")
)


def _named_in_configs_and_entry_points() -> set[str]:
    targets = {
        m
        for path in (ROOT / "configs").rglob("*.yaml")
        for m in re.findall(r"_target_:\s*(sweeplab\.[\w.]+)", path.read_text())
    }
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    entry_points = [
        *project["scripts"].values(),
        *project["entry-points"]["hydra.plugins"].values(),
    ]
    return targets | {e.replace(":", ".") for e in entry_points}


@pytest.mark.parametrize("module", MODULES)
def test_every_module_declares_its_public_names(module: str) -> None:
    imported = importlib.import_module(module)
    assert hasattr(imported, "__all__"), f"{module} has no __all__"
    assert all(hasattr(imported, name) for name in imported.__all__), module


def test_what_configs_and_entry_points_name_is_public() -> None:
    named = _named_in_configs_and_entry_points()
    assert len(named) >= 10
    for path in named:
        module, name = path.rsplit(".", 1)
        assert name in importlib.import_module(module).__all__, f"{path} is not in __all__"


def _readme_layout() -> dict[str, set[str]]:
    """The README's layout block: for each package under src/sweeplab ("" for the top), the
    module files it lists."""
    text = (ROOT / "README.md").read_text()
    block = text.split("## Layout", 1)[1].split("```text", 1)[1].split("```", 1)[0]
    lines = block.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("src/sweeplab/"))
    listed: dict[str, set[str]] = {}
    package = ""
    for line in lines[start + 1 :]:
        if not line.startswith(" "):
            break
        if re.match(r"  \S", line):  # a new entry: a package ("sweep/") or top-level modules
            first = line.split()[0]
            package = first.rstrip("/") if first.endswith("/") else ""
        listed.setdefault(package, set()).update(re.findall(r"\b(\w+\.py)\b", line))
    return listed


def test_the_readme_layout_lists_every_module() -> None:
    listed = _readme_layout()
    on_disk: dict[str, set[str]] = {}
    for path in SRC.rglob("*.py"):
        if path.name != "__init__.py":
            package = "/".join(path.relative_to(SRC).parts[:-1])
            on_disk.setdefault(package, set()).add(path.name)
    assert listed == on_disk
