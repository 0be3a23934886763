"""The engine's own rooms: ``matching`` is the only door to the kernel.

(The rules between packages are import-linter contracts in ``pyproject.toml``.)
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import omniroute.engine

ENGINE = Path(omniroute.engine.__file__).parent


def _imports(path: Path) -> set[str]:
    """Absolute names of the modules a file imports (relative imports resolved)."""
    package = ["omniroute", "engine", *path.relative_to(ENGINE).parent.parts]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            found.add(".".join([*base, *([node.module] if node.module else [])]))
            found.update(".".join([*base, alias.name]) for alias in node.names if not node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def test_only_matching_imports_the_kernel() -> None:
    importers = sorted(
        str(path.relative_to(ENGINE))
        for path in ENGINE.rglob("*.py")
        if any(name.startswith("omniroute.core_ext") for name in _imports(path))
    )
    assert importers == ["matching.py"]


def test_the_engine_simulator_and_file_log_load_no_optional_dependency() -> None:
    """What an embedder imports needs only the core install (numpy, msgspec)."""
    code = (
        "import sys\n"
        "import omniroute.engine, omniroute.engine.simulation, omniroute.engine.memorylog\n"
        "import omniroute.adapters.filelog\n"
        "print(' '.join(sorted({m.split('.')[0] for m in sys.modules})))\n"
    )
    loaded = set(subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                                text=True).stdout.split())  # fmt: skip
    assert "numpy" in loaded and "msgspec" in loaded
    optional = {"duckdb", "nats", "prometheus_client", "matplotlib", "tqdm", "nkeys"}
    assert not loaded & optional
