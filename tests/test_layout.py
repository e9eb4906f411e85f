"""The experiments layer stays small and acyclic: no import cycle between
its modules (read from their source, not by importing them) and no module
over about 400 lines."""

import ast
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MAX_LINES = 420


def _modules():
  out = {}
  for folder, _, files in os.walk(os.path.join(ROOT, "experiments")):
    for f in files:
      if f.endswith(".py"):
        path = os.path.join(folder, f)
        rel = os.path.relpath(path, ROOT)[:-3].replace(os.sep, ".")
        out[rel.removesuffix(".__init__")] = path
  return out


def _imports(path, modules):
  """Modules of ``experiments`` that ``path`` imports (anywhere in it)."""
  tree = ast.parse(open(path).read())
  found = set()
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      names = [a.name for a in node.names]
    elif isinstance(node, ast.ImportFrom) and node.module:
      names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
    else:
      continue
    found.update(n for n in names if n in modules)
  return found


def test_no_import_cycle():
  modules = _modules()
  graph = {m: _imports(p, modules) - {m} for m, p in modules.items()}
  # A package imports its parent implicitly; that is not a cycle.
  state = {}

  def visit(m, stack):
    state[m] = "open"
    for n in sorted(graph[m]):
      if m.startswith(n + ".") or n.startswith(m + "."):
        continue
      if state.get(n) == "open":
        raise AssertionError("import cycle: " + " -> ".join(
            stack[stack.index(n):] + [n]))
      if n not in state:
        visit(n, stack + [n])
    state[m] = "done"

  for m in sorted(graph):
    if m not in state:
      visit(m, [m])


def test_cycle_detector_finds_a_cycle(tmp_path):
  a = tmp_path / "a.py"
  a.write_text("from experiments import b\n")
  assert _imports(str(a), {"experiments.b": ""}) == {"experiments.b"}


def test_no_module_over_about_400_lines():
  long = {m: n for m, p in _modules().items()
          if (n := len(open(p).read().splitlines())) > MAX_LINES}
  assert not long, long
