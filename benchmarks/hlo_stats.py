"""Counts in compiled (optimized) HLO text: kernels, control flow, bytes.

Pure text processing, no jax import: works on the ``compiled.as_text()`` of
any backend (XLA:GPU from ``benchmarks/gpu_proxy.py``'s deviceless compile,
XLA:CPU in the tests).

Counting rule (static: every instruction is counted once, whatever the trip
count of the loop or the branch of the conditional it sits in):

* The computations visited are ENTRY and, transitively, the bodies and
  conditions of ``while``, the branches of ``conditional``, the callees of
  ``call`` and of ``async-start``. Fused computations (``calls=`` of a
  ``fusion``), reducers, comparators and custom-call callees are *not*
  visited: they are the inside of one kernel.
* In the visited computations every instruction is a kernel except the ones
  that launch nothing: ``parameter``, ``constant``, ``get-tuple-element``,
  ``tuple``, ``bitcast``, the control-flow ops themselves (``while``,
  ``conditional``, ``call``, ``async-*``) and bookkeeping ops
  (``after-all``, ``add-dependency``, ``opt-barrier``, ``domain``,
  ``copy-done``). Kernels are broken down into ``fusions`` (``fusion``: one
  generated kernel each, Triton GEMM fusions included), ``copies`` (``copy``,
  ``copy-start``), ``custom_calls`` (``custom-call``: cuBLAS/cuDNN...),
  ``sorts`` (``sort``, and a ``fusion`` whose fused computation holds a
  ``sort``, as XLA:GPU emits them; one sort may launch several kernels) and
  ``other`` (anything else: on XLA:GPU nearly
  nothing, since every computation is wrapped in a fusion; on XLA:CPU many
  ops stay unfused, so there ``kernels`` is not a GPU kernel count).
* ``bytes``: per kernel, the bytes of its distinct operands plus those of its
  result (tuples summed), summed over the kernels; of an operand a fusion
  reads only through a ``gather``, ``dynamic-slice`` or ``slice`` (possibly
  after element-wise ops), the fraction they take of it. An estimate of the
  memory traffic: it ignores caching, in-place aliasing and other partial
  reads.
* ``conditionals``: ``conditional`` ops (on XLA:GPU each copies its
  predicate to the host and waits for the stream). ``whiles_known_trip``
  have ``known_trip_count`` in their backend config; ``whiles_unknown_trip``
  do not (a host round trip per iteration on XLA:GPU).
* The ``*_entry`` fields count the ENTRY computation only: what runs exactly
  once per call. The ``*_min_path`` fields count the cheapest path: ENTRY,
  plus for every ``conditional`` its branch with the fewest kernels
  (recursively), plus every ``while``'s condition and body once. For a
  program that decides the step kind on the device (an untaken selection
  ``cond``) this is what an ordinary step runs, loops aside.
* ``entry_params`` / ``entry_outputs``: parameters of ENTRY and leaves of
  its result (the executable's input and output buffers).

Example:
  >>> text = '''
  ... HloModule m
  ...
  ... %fused (p: f32[4]) -> f32[4] {
  ...   %p = f32[4]{0} parameter(0)
  ...   ROOT %n = f32[4]{0} negate(%p)
  ... }
  ...
  ... ENTRY %main (x: f32[4]) -> f32[4] {
  ...   %x = f32[4]{0} parameter(0)
  ...   %f = f32[4]{0} fusion(%x), kind=kLoop, calls=%fused
  ...   ROOT %c = f32[4]{0} copy(%f)
  ... }
  ... '''
  >>> c = hlo_counts(text)
  >>> c["kernels"], c["fusions"], c["copies"], c["bytes"]
  (2, 1, 1, 64)
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["hlo_counts", "parse_module", "shape_bytes", "KERNEL_FIELDS"]

KERNEL_FIELDS = ("fusions", "copies", "custom_calls", "sorts", "other")

_DTYPE_BYTES = {
    "pred": 1, "s2": 0.25, "u2": 0.25, "s4": 0.5, "u4": 0.5, "s8": 1,
    "u8": 1, "s16": 2, "u16": 2, "s32": 4, "u32": 4, "s64": 8, "u64": 8,
    "f16": 2, "bf16": 2, "f32": 4, "f64": 8, "c64": 8, "c128": 16,
    "token": 0, "opaque": 0,
}
_ARRAY_RE = re.compile(r"\b([a-z][a-z0-9]*)\[([0-9,\s]*)\]")

_NO_KERNEL = frozenset({
    "parameter", "constant", "get-tuple-element", "tuple", "bitcast",
    "while", "conditional", "call", "async-start", "async-update",
    "async-done", "after-all", "add-dependency", "opt-barrier", "domain",
    "copy-done",
})
_CATEGORY = {"fusion": "fusions", "copy": "copies", "copy-start": "copies",
             "custom-call": "custom_calls", "sort": "sorts"}

_COMP_HEADER_RE = re.compile(r"^(ENTRY\s+)?%?([\w.\-]+)\s*\(.*\{\s*$")
_INSTR_RE = re.compile(r"^\s*(ROOT\s+)?%?([\w.\-]+)\s*=\s*(.*)$")
_TRIP_RE = re.compile(r'"known_trip_count"\s*:\s*\{\s*"n"\s*:\s*"?(\d+)')


def _dtype_bytes(dtype: str) -> float:
  if dtype in _DTYPE_BYTES:
    return _DTYPE_BYTES[dtype]
  if dtype.startswith("f8") or dtype.startswith("f4") or dtype.startswith(
      "f6"):
    return 1
  return 0


def shape_bytes(shape: str) -> int:
  """Bytes of an HLO shape string (tuples summed; layouts ignored).

  >>> shape_bytes("(f32[2,3]{1,0}, s32[], pred[8])")
  36
  """
  total = 0.0
  for dtype, dims in _ARRAY_RE.findall(shape):
    n = 1
    for d in dims.replace(" ", "").split(","):
      if d:
        n *= int(d)
    total += n * _dtype_bytes(dtype)
  return int(total)


def _split_shape(rest: str) -> tuple[str, str]:
  """``'(f32[2], s32[]) while(...)...'`` -> (shape, remainder)."""
  rest = rest.lstrip()
  if rest.startswith("("):
    depth = 0
    for i, ch in enumerate(rest):
      if ch == "(":
        depth += 1
      elif ch == ")":
        depth -= 1
        if depth == 0:
          return rest[:i + 1], rest[i + 1:].lstrip()
    return rest, ""
  parts = rest.split(" ", 1)
  return parts[0], (parts[1] if len(parts) > 1 else "")


def _balanced(text: str, start: int) -> int:
  """Index just past the parenthesis group opening at ``text[start]``."""
  depth = 0
  for i in range(start, len(text)):
    ch = text[i]
    if ch == "(":
      depth += 1
    elif ch == ")":
      depth -= 1
      if depth == 0:
        return i + 1
  return len(text)


def parse_module(text: str) -> dict[str, Any]:
  """Parses HLO text into computations.

  Returns:
    ``{"entry": name, "computations": {name: [instr, ...]}}`` where each
    ``instr`` is a dict with ``name``, ``shape``, ``opcode``, ``operands``
    (names), ``attrs`` (the text after the operand list) and ``root``.
  """
  comps: dict[str, list[dict]] = {}
  entry = None
  current = None
  for line in text.splitlines():
    if current is None:
      m = _COMP_HEADER_RE.match(line)
      if m and "=" not in line.split("(", 1)[0]:
        current = m.group(2)
        comps[current] = []
        if m.group(1):
          entry = current
      continue
    if line.strip() == "}":
      current = None
      continue
    m = _INSTR_RE.match(line)
    if not m:
      continue
    shape, rest = _split_shape(m.group(3))
    om = re.match(r"([\w\-]+)\(", rest)
    if not om:
      continue
    opcode = om.group(1)
    end = _balanced(rest, om.end() - 1)
    operand_text = rest[om.end():end - 1]
    operands = []
    if opcode != "constant":
      operands = re.findall(r"%([\w.\-]+)", operand_text)
      if not operands:  # operands printed without '%'
        operands = [tok.strip().split(" ")[-1] for tok in
                    operand_text.split(",") if tok.strip()]
    comps[current].append({
        "name": m.group(2), "shape": shape, "opcode": opcode,
        "operands": operands, "attrs": rest[end:], "root": bool(m.group(1)),
    })
  if entry is None and comps:
    entry = list(comps)[-1]
  return {"entry": entry, "computations": comps}


def _called(instr: dict) -> list[str]:
  """Computations run as control flow by ``instr`` (not fused bodies)."""
  op, attrs = instr["opcode"], instr["attrs"]
  names = []
  if op == "while":
    names += re.findall(r"\b(?:condition|body)=%?([\w.\-]+)", attrs)
  elif op == "conditional":
    m = re.search(r"branch_computations=\{([^}]*)\}", attrs)
    if m:
      names += re.findall(r"%?([\w.\-]+)", m.group(1))
    names += re.findall(r"\b(?:true|false)_computation=%?([\w.\-]+)", attrs)
  elif op in ("call", "async-start"):
    names += re.findall(r"\b(?:to_apply|calls)=%?([\w.\-]+)", attrs)
  return names


def _zero() -> dict[str, Any]:
  d = {"kernels": 0, "bytes": 0, "conditionals": 0, "whiles_known_trip": 0,
       "whiles_unknown_trip": 0}
  d.update({k: 0 for k in KERNEL_FIELDS})
  return d


def _fused_sort(instr: dict, comps: dict[str, list[dict]]) -> bool:
  """Whether a ``fusion`` wraps a ``sort`` (XLA:GPU fuses each sort)."""
  m = re.search(r"\bcalls=%?([\w.\-]+)", instr["attrs"])
  return bool(m) and any(i["opcode"] == "sort"
                         for i in comps.get(m.group(1), []))


_VIEWS = ("bitcast", "reshape", "concatenate")
# Element-wise ops: a fusion evaluates them only where its gather reads.
_ELEMENTWISE = ("abs", "add", "and", "bitcast-convert", "clamp", "compare",
                "convert", "divide", "exponential", "log", "maximum",
                "minimum", "multiply", "negate", "not", "or", "power",
                "rsqrt", "select", "sign", "sqrt", "subtract", "tanh", "xor")
_SLICERS = ("gather", "dynamic-slice", "slice")


def _sliced_operands(instr: dict, comps: dict[str, list[dict]]
                     ) -> tuple[set[int], float]:
  """For a ``fusion``: the operand positions it reads only through a
  ``gather``, ``dynamic-slice`` or ``slice`` (into their operand 0, through
  bitcasts, reshapes, concatenations and element-wise ops), and the bytes it
  reads of them: of each, the fraction of its slicing ops' operand they
  produce."""
  m = re.search(r"\bcalls=%?([\w.\-]+)", instr["attrs"])
  fused = comps.get(m.group(1), []) if instr["opcode"] == "fusion" and m else []
  users: dict[str, list[tuple[dict, int]]] = {}
  for i in fused:
    for pos, o in enumerate(i["operands"]):
      users.setdefault(o, []).append((i, pos))
  shapes = {i["name"]: i["shape"] for i in fused}

  def slicers(name: str) -> set[str] | None:
    """The slicing ops that read ``name``, or None if anything else does."""
    found: set[str] = set()
    if not users.get(name):
      return None
    for u, pos in users[name]:
      if u["opcode"] in _SLICERS and pos == 0:
        found.add(u["name"])
      elif u["opcode"] in _VIEWS + _ELEMENTWISE and not u["root"]:
        below = slicers(u["name"])
        if below is None:
          return None
        found |= below
      else:
        return None
    return found

  by_name = {i["name"]: i for i in fused}
  sliced: set[int] = set()
  nbytes = 0.0
  for i in fused:
    if i["opcode"] == "parameter" and i["operands"]:
      found = slicers(i["name"])
      if found is not None:
        sliced.add(int(i["operands"][0]))
        nbytes += shape_bytes(i["shape"]) * sum(
            shape_bytes(shapes[n])
            / max(shape_bytes(shapes.get(by_name[n]["operands"][0], "")), 1)
            for n in found)
  return sliced, nbytes


def _count_comp(instrs: list[dict], comps: dict[str, list[dict]]
                ) -> tuple[dict, dict, list[str]]:
  """Counts of one computation, its opcode histogram of 'other' kernels and
  the computations it calls as control flow."""
  shapes = {i["name"]: i["shape"] for i in instrs}
  c = _zero()
  other_ops: dict[str, int] = {}
  called = []
  for ins in instrs:
    op = ins["opcode"]
    called += _called(ins)
    if op == "conditional":
      c["conditionals"] += 1
    elif op == "while":
      if _TRIP_RE.search(ins["attrs"]):
        c["whiles_known_trip"] += 1
      else:
        c["whiles_unknown_trip"] += 1
    if op in _NO_KERNEL:
      continue
    cat = _CATEGORY.get(op, "other")
    if op == "fusion" and _fused_sort(ins, comps):
      cat = "sorts"
    c[cat] += 1
    c["kernels"] += 1
    if cat == "other":
      other_ops[op] = other_ops.get(op, 0) + 1
    sliced, slice_bytes = _sliced_operands(ins, comps)
    read = {o for pos, o in enumerate(ins["operands"]) if pos not in sliced}
    c["bytes"] += round(shape_bytes(ins["shape"]) + slice_bytes
                        + sum(shape_bytes(shapes.get(o, "")) for o in read))
  return c, other_ops, called


def _min_path(name: str, comps: dict[str, list[dict]], memo: dict,
              stack: tuple = ()) -> tuple[int, int]:
  """(kernels, bytes) of the cheapest path through computation ``name``."""
  if name in memo:
    return memo[name]
  if name not in comps or name in stack:
    return (0, 0)
  c, _, _ = _count_comp(comps[name], comps)
  k, b = c["kernels"], c["bytes"]
  for ins in comps[name]:
    called = _called(ins)
    if not called:
      continue
    paths = [_min_path(n, comps, memo, stack + (name,)) for n in called]
    if ins["opcode"] == "conditional":
      kk, bb = min(paths)
    else:
      kk, bb = sum(p[0] for p in paths), sum(p[1] for p in paths)
    k, b = k + kk, b + bb
  memo[name] = (k, b)
  return memo[name]


def hlo_counts(text: str) -> dict[str, Any]:
  """Kernel, control-flow, buffer and byte counts of compiled HLO text.

  See the module docstring for the counting rule.

  Returns:
    A dict with ``kernels``, the breakdown ``fusions``, ``copies``,
    ``custom_calls``, ``sorts``, ``other``, ``other_ops`` (opcode histogram
    of ``other``), ``bytes``, ``conditionals``, ``whiles_known_trip``,
    ``whiles_unknown_trip``, ``kernels_entry``, ``bytes_entry``,
    ``kernels_min_path``, ``bytes_min_path``,
    ``entry_params``, ``entry_outputs`` and ``computations`` (names
    visited).
  """
  mod = parse_module(text)
  comps = mod["computations"]
  entry = mod["entry"]
  total = _zero()
  other_ops: dict[str, int] = {}
  visited: list[str] = []
  todo = [entry] if entry is not None else []
  entry_counts = _zero()
  while todo:
    name = todo.pop(0)
    if name in visited or name not in comps:
      continue
    visited.append(name)
    c, ops, called = _count_comp(comps[name], comps)
    if name == entry:
      entry_counts = c
    for k in total:
      total[k] += c[k]
    for op, n in ops.items():
      other_ops[op] = other_ops.get(op, 0) + n
    todo += called
  out = dict(total)
  out["other_ops"] = dict(sorted(other_ops.items()))
  out["kernels_entry"] = entry_counts["kernels"]
  out["bytes_entry"] = entry_counts["bytes"]
  out["kernels_min_path"], out["bytes_min_path"] = (
      _min_path(entry, comps, {}) if entry is not None else (0, 0))
  entry_instrs = comps.get(entry, [])
  out["entry_params"] = sum(1 for i in entry_instrs
                            if i["opcode"] == "parameter")
  root = next((i for i in entry_instrs if i["root"]), None)
  if root is None:
    out["entry_outputs"] = 0
  elif root["opcode"] == "tuple":
    out["entry_outputs"] = len(root["operands"])
  else:
    out["entry_outputs"] = 1
  out["computations"] = visited
  return out
