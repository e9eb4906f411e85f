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


def find_cycle(graph):
  """An import cycle of ``graph`` (module -> imported modules) or None.

  A package and its own submodules are not a cycle (importing a submodule
  runs its package's ``__init__`` first)."""
  state = {}

  def visit(m, stack):
    state[m] = "open"
    for n in sorted(graph.get(m, ())):
      if m.startswith(n + ".") or n.startswith(m + "."):
        continue
      if state.get(n) == "open":
        return stack[stack.index(n):] + [n]
      if n not in state:
        found = visit(n, stack + [n])
        if found:
          return found
    state[m] = "done"
    return None

  for m in sorted(graph):
    if m not in state:
      found = visit(m, [m])
      if found:
        return found
  return None


def test_no_import_cycle():
  modules = _modules()
  graph = {m: _imports(p, modules) - {m} for m, p in modules.items()}
  cycle = find_cycle(graph)
  assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_cycle_finder_finds_cycles(tmp_path):
  assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c",
                                                               "a"]
  assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None
  assert find_cycle({"p": {"p.m"}, "p.m": {"p"}}) is None
  a = tmp_path / "a.py"
  a.write_text("import os\nfrom experiments import b\n"
               "def f():\n  from experiments.c import x\n")
  assert _imports(str(a), {"experiments.b": "", "experiments.c": ""}) == {
      "experiments.b", "experiments.c"}


def test_no_module_over_about_400_lines():
  long = {m: n for m, p in _modules().items()
          if (n := len(open(p).read().splitlines())) > MAX_LINES}
  assert not long, long
