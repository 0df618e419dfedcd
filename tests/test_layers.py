"""The layers hold: envs <- agent <- {training, evals}, and evals never imports training.

Every import statement in every module counts, including those inside functions.
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
OURS = ("envs", "agent", "training", "evals")
ALLOWED = {
    "envs": {"envs"},
    "agent": {"envs", "agent"},
    "training": {"envs", "agent", "training"},
    "evals": {"envs", "agent", "evals"},
}


def imported_packages(path: Path) -> set[str]:
    """Our top-level packages that a module imports."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        found |= {name.split(".")[0] for name in names if name.split(".")[0] in OURS}
    return found


MODULES = sorted(p for package in OURS for p in (ROOT / package).rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(ROOT)))
def test_module_imports_only_from_its_layer_or_below(path):
    layer = path.relative_to(ROOT).parts[0]
    assert imported_packages(path) <= ALLOWED[layer], f"{path.relative_to(ROOT)} imports across a layer"


def test_the_check_catches_a_forbidden_import(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from training.seeds import eval_seeds\n")
    assert imported_packages(bad) == {"training"}
