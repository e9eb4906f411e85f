"""The README's quick start runs as written."""
import pathlib
import re


def test_readme_quick_start_runs(capsys):
  text = (pathlib.Path(__file__).parents[1] / "README.md").read_text()
  block = re.search(r"## Quick start\n\n```python\n(.*?)```", text, re.S).group(1)
  namespace = {}
  exec(compile(block, "README.md", "exec"), namespace)
  assert float(capsys.readouterr().out.strip()) == round(4147 / 4608, 4)
