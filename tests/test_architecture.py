"""The code's shape: no import circles, one definition per concept, modules a newcomer can hold in mind."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "birdspec"
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 90


def _module_name(path: Path) -> str:
    rel = path.relative_to(SRC.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _modules() -> dict[str, ast.Module]:
    return {_module_name(p): ast.parse(p.read_text(), filename=str(p)) for p in sorted(SRC.rglob("*.py"))}


def _imports(name: str, tree: ast.Module, known: set[str]) -> set[str]:
    """Every birdspec module ``name`` imports, at module level or inside functions."""
    package = name if (SRC.parent / name.replace(".", "/") / "__init__.py").exists() else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parent + ([base] if base else []))
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        else:
            continue
        out.update(t for t in targets if t in known and t != name)
    return out


def test_no_import_circle_in_src():
    trees = _modules()
    known = set(trees)
    graph = {name: _imports(name, tree, known) for name, tree in trees.items()}
    # a package's __init__ that only re-exports lazily is not an edge into its submodules' users
    color: dict[str, int] = defaultdict(int)
    cycles: list[list[str]] = []

    def visit(node: str, stack: list[str]) -> None:
        color[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if color[nxt] == 1:
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif color[nxt] == 0:
                visit(nxt, stack)
        stack.pop()
        color[node] = 2

    for name in sorted(graph):
        if color[name] == 0:
            visit(name, [])
    assert not cycles, "import circles: " + "; ".join(" -> ".join(c) for c in cycles[:5])


LAYERS = (
    ("base", ("birdspec", "birdspec.errors", "birdspec.config", "birdspec.runtime", "birdspec.fileio", "birdspec.locks",
              "birdspec.lazy", "birdspec.formats", "birdspec.names")),
    ("signal", ("birdspec.audio", "birdspec.truncation", "birdspec.windowing", "birdspec.features",
                "birdspec.birdnet.backend", "birdspec.birdnet.geometry")),
    ("models", ("birdspec.models",)),
    ("data", ("birdspec.data", "birdspec.birdnet")),
    ("training", ("birdspec.training",)),
    ("evaluation", ("birdspec.evaluation",)),
    ("prediction", ("birdspec.prediction",)),
    ("top", ("birdspec.experiments", "birdspec.demo", "birdspec.app", "birdspec.similarity")),
    ("cli", ("birdspec.cli", "birdspec.__main__")),
)
"""The layers, lowest first: a module imports only modules of its own layer or lower ones. BirdNET's backbone
(audio in, embeddings and its own logits out) and its window geometry are a frozen feature extractor, with the
features; what birdspec builds on BirdNET sits in its own layer: its class rows for your classes with the
models (models/birdnet_classes.py), the embedding cache with the data, the heads' runtime with prediction."""


def layer_of(module: str) -> int:
    """The index in :data:`LAYERS` of ``module`` (the longest matching prefix)."""
    best, best_len = -1, -1
    for i, (_, prefixes) in enumerate(LAYERS):
        for p in prefixes:
            if (module == p or module.startswith(p + ".")) and len(p) > best_len:
                best, best_len = i, len(p)
    if best < 0:
        raise AssertionError(f"{module} is in no layer; add it to LAYERS")
    return best


def upward_imports(trees: dict[str, ast.Module]) -> list[str]:
    """``importer (layer) -> imported (layer)`` for every import of a higher layer."""
    known = set(trees)
    bad = []
    for name, tree in trees.items():
        for imp in sorted(_imports(name, tree, known)):
            if layer_of(imp) > layer_of(name):
                bad.append(f"{name} ({LAYERS[layer_of(name)][0]}) -> {imp} ({LAYERS[layer_of(imp)][0]})")
    return bad


def test_layers_import_only_downwards():
    """base -> audio, windowing, features -> models -> data, birdnet -> training -> evaluation -> prediction ->
    experiments, demo, app -> cli: a lower layer never imports a higher one (in functions neither)."""
    bad = upward_imports(_modules())
    assert not bad, "upward imports: " + "; ".join(bad)


def test_the_layer_check_catches_a_planted_upward_import():
    trees = dict(_modules())
    trees["birdspec.features.planted"] = ast.parse("def f():\n    from birdspec.prediction.predictor import Predictor\n")
    assert upward_imports(trees) == [
        "birdspec.features.planted (signal) -> birdspec.prediction.predictor (prediction)"]


def _definitions() -> dict[str, list[str]]:
    """Top-level function, class and constant names -> modules defining them."""
    found: dict[str, list[str]] = defaultdict(list)
    for name, tree in _modules().items():
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                found[node.name].append(name)
            elif isinstance(node, (ast.Assign, ast.AnnAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for t in targets:
                    if isinstance(t, ast.Name) and t.id.isupper():
                        found[t.id].append(name)
    return found


PER_MODULE_NAMES = {
    "DESCRIPTION", "add_parser", "run",  # every CLI command module has them (cli/main.py registers them)
    "main",  # a module run as a program (`python -m birdspec.app.train_runner`) beside the CLI's
    "router",  # every FastAPI route module of the app has one
}
"""Public names several modules define by design (one per module of a kind), not concepts defined twice."""


def test_one_definition_per_public_name():
    """A public function, class or constant is defined in one module and imported elsewhere; two different
    things do not share a name (a reader could not tell which one a name means)."""
    twice = {k: v for k, v in _definitions().items()
             if len(v) > 1 and not k.startswith("_") and k not in PER_MODULE_NAMES}
    assert not twice, f"defined in more than one module: {twice}"


def test_torch_load_only_in_the_checkpoint_owner():
    users = []
    for name, tree in _modules().items():
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "load":
                if isinstance(node.func.value, ast.Name) and node.func.value.id == "torch":
                    users.append(name)
                    assert any(k.arg == "weights_only" and getattr(k.value, "value", None) is True for k in node.keywords), name
    # birdspec checkpoints are read in one place; torchvision state dicts (--pretrained PATH) are another format
    assert sorted(set(users)) == ["birdspec.models.checkpoint", "birdspec.models.pretrained"], users


def test_modules_and_functions_stay_small():
    big, long = [], []
    for path in sorted(SRC.rglob("*.py")):
        text = path.read_text()
        if text.count("\n") > MAX_MODULE_LINES:
            big.append(f"{path.relative_to(SRC)}: {text.count(chr(10))} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES:
                long.append(f"{path.relative_to(SRC)}:{node.name} ({node.end_lineno - node.lineno + 1} lines)")
    assert not big and not long, f"modules over {MAX_MODULE_LINES} lines: {big}; functions over {MAX_FUNCTION_LINES}: {long}"


def test_cli_starts_without_heavy_imports():
    """Building the parser (every `birdspec ... --help`) imports neither PyTorch, Lightning nor pandas."""
    import subprocess
    import sys

    code = ("import sys\nimport birdspec.cli.main as m\nm.build_parser()\n"
            "print(sorted(k for k in ('torch', 'lightning', 'pandas', 'matplotlib') if k in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


FILE_NAME = r"[\w./-]+\.(json|csv|png|pt|npz|onnx|f16|html|md|log|parquet|txt|ogg|wav|gz)"
SAME_NAME_OTHER_FILE = {
    "predictions.csv": "evaluate's per-sample table, predict's default output, the demo's soundscape scores",
    "settings.json": "an embedding cache's settings, a learning curve model's settings",
    "summary.json": "a training run's summary, a folder prediction's summary",
}


def test_a_file_name_is_spelled_in_one_module():
    """A file name birdspec reads or writes is a constant of one module, imported where needed; a name two
    different files share is listed above with what each one is."""
    import re

    where: dict[str, set[str]] = defaultdict(set)
    for name, tree in _modules().items():
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and re.fullmatch(FILE_NAME, node.value):
                where[node.value].add(name)
    spread = {k: sorted(v) for k, v in where.items() if len(v) > 1 and k not in SAME_NAME_OTHER_FILE}
    assert not spread, f"define these once and import them: {spread}"


README = SRC.parents[1] / "README.md"


def _readme_layout() -> dict[str, set[str]]:
    """The modules the README's Development layout names, by package folder ("" for src/birdspec itself)."""
    import re

    text = README.read_text()
    section = text[text.index("- Layout: `src/birdspec/`"):text.index("  Tests in `tests/`")]
    named: dict[str, set[str]] = defaultdict(set)
    folder = ""
    for line in section.splitlines():
        if (m := re.match(r"  - `(\w+)/`", line)) is not None:
            folder = m.group(1)
        elif line.startswith("  - "):
            folder = ""  # the base / signal / top bullet: the package's own modules
        named[folder].update(re.findall(r"`([\w*]+\.py)`", line))
    return named


def test_readme_layout_matches_the_tree():
    """Every module of src/birdspec is named in the README's layout under its folder, and every name there exists."""
    from fnmatch import fnmatch

    named = _readme_layout()
    folders = [""] + sorted(d.name for d in SRC.iterdir() if (d / "__init__.py").is_file())
    problems = []
    for folder in folders:
        files = {p.name for p in (SRC / folder).glob("*.py") if p.name != "__init__.py"}
        patterns = named.get(folder, set())
        problems += [f"{folder or 'birdspec'}/{f}: not in the README's layout" for f in sorted(files)
                     if not any(fnmatch(f, pat) for pat in patterns)]
        problems += [f"{folder or 'birdspec'}/{pat}: named in the README, not in the tree" for pat in sorted(patterns)
                     if not any(fnmatch(f, pat) for f in files)]
    problems += [f"{folder}/: in the README, not a package" for folder in named if folder and folder not in folders]
    assert not problems, "\n".join(problems)
