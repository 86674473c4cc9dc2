"""Each heavy dependency is owned by one module, only the CLI imports click, and every command is
documented: checked by parsing imports, so a shortcut that breaks a layer fails here."""

import ast
import re
from pathlib import Path

from conftest import PROJECT
from pai_kb.cli import main

PACKAGE = PROJECT / "pai_kb"
OWNERS = {
    "click": {"cli.py"},
    "chromadb": {"store.py"},
    "sentence_transformers": {"embeddings.py"},
    "torch": {"embeddings.py"},
    "onnxruntime": {"query_encoder.py"},
    "openai": {"llm.py"},
    "watchdog": {"watch.py"},
    "markdown_it": {"loaders/markdown.py"},
    "trafilatura": {"loaders/html.py"},
    "pypdf": {"loaders/pdf.py"},
    "fastapi": {"server.py"},
    "uvicorn": {"server.py"},
    "mcp": {"mcp_server.py"},
}


def imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_heavy_dependencies_have_one_owner():
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE).as_posix()
        for module in imports(path):
            if module in OWNERS:
                assert rel in OWNERS[module], f"{rel} imports {module}; only {OWNERS[module]} may"


def test_every_command_is_documented_in_readme():
    readme = (PROJECT / "README.md").read_text()
    for name in main.commands:
        assert re.search(rf"`pai-kb {name}\b", readme), f"README does not document `pai-kb {name}`"


def test_library_never_prints():
    for path in PACKAGE.rglob("*.py"):
        if path.name in ("cli.py", "__main__.py"):
            continue
        calls = [n for n in ast.walk(ast.parse(path.read_text()))
                 if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == "print"]
        assert not calls, f"{path.name} prints; results go through render and the CLI"
