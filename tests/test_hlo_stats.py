"""``benchmarks/hlo_stats.py``: counts on hand-made HLO and on CPU programs."""

from __future__ import annotations

import os
import sys

import jax
import jax.numpy as jnp

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "benchmarks")
if BENCH not in sys.path:
  sys.path.insert(0, BENCH)

import hlo_stats  # noqa: E402  (benchmarks/hlo_stats.py)

from tests import helpers  # noqa: E402

_MODULE = """\
HloModule jit_f, is_scheduled=true, entry_computation_layout={(f32[8,4]{1,0}, pred[])->(f32[8,4]{1,0}, s32[])}

%fused_add (param_0: f32[8,4], param_1: f32[8,4]) -> f32[8,4] {
  %param_0 = f32[8,4]{1,0} parameter(0)
  %param_1 = f32[8,4]{1,0} parameter(1)
  %mul = f32[8,4]{1,0} multiply(%param_0, %param_1)
  ROOT %add = f32[8,4]{1,0} add(%mul, %param_1)
}

%body (arg: (s32[], f32[8,4])) -> (s32[], f32[8,4]) {
  %arg = (s32[], f32[8,4]{1,0}) parameter(0)
  %i = s32[] get-tuple-element(%arg), index=0
  %x = f32[8,4]{1,0} get-tuple-element(%arg), index=1
  %f = f32[8,4]{1,0} fusion(%x, %x), kind=kLoop, calls=%fused_add, backend_config={"operation_queue_id":"0"}
  ROOT %t = (s32[], f32[8,4]{1,0}) tuple(%i, %f)
}

%cond (arg.1: (s32[], f32[8,4])) -> pred[] {
  %arg.1 = (s32[], f32[8,4]{1,0}) parameter(0)
  %i.1 = s32[] get-tuple-element(%arg.1), index=0
  %c5 = s32[] constant(5)
  ROOT %lt = pred[] compare(%i.1, %c5), direction=LT
}

%then (p.t: f32[8,4]) -> (f32[8,4]) {
  %p.t = f32[8,4]{1,0} parameter(0)
  %cc = f32[8,4]{1,0} custom-call(%p.t), custom_call_target="__cublas$gemm"
  ROOT %tt = (f32[8,4]{1,0}) tuple(%cc)
}

%else (p.e: f32[8,4]) -> (f32[8,4]) {
  %p.e = f32[8,4]{1,0} parameter(0)
  %cp = f32[8,4]{1,0} copy(%p.e)
  ROOT %te = (f32[8,4]{1,0}) tuple(%cp)
}

%cmp (a: f32[], b: f32[]) -> pred[] {
  %a = f32[] parameter(0)
  %b = f32[] parameter(1)
  ROOT %l = pred[] compare(%a, %b), direction=LT
}

ENTRY %main (x.0: f32[8,4], p.0: pred[]) -> (f32[8,4], s32[]) {
  %x.0 = f32[8,4]{1,0} parameter(0)
  %p.0 = pred[] parameter(1)
  %zero = s32[] constant(0)
  %init = (s32[], f32[8,4]{1,0}) tuple(%zero, %x.0)
  %w1 = (s32[], f32[8,4]{1,0}) while(%init), condition=%cond, body=%body, backend_config={"known_trip_count":{"n":"5"},"known_init_step":{"init":"0","step":"1"}}
  %w2 = (s32[], f32[8,4]{1,0}) while(%w1), condition=%cond, body=%body
  %y = f32[8,4]{1,0} get-tuple-element(%w2), index=1
  %c = (f32[8,4]{1,0}) conditional(%p.0, %y, %y), branch_computations={%then, %else}
  %s = f32[8,4]{1,0} sort(%y), dimensions={1}, to_apply=%cmp
  %n = s32[] get-tuple-element(%w2), index=0
  ROOT %out = (f32[8,4]{1,0}, s32[]) tuple(%s, %n)
}
"""


def test_shape_bytes():
  assert hlo_stats.shape_bytes("f32[8,4]{1,0}") == 128
  assert hlo_stats.shape_bytes("(s32[], f32[2]{0}, pred[3])") == 4 + 8 + 3
  assert hlo_stats.shape_bytes("bf16[10]") == 20
  assert hlo_stats.shape_bytes("token[]") == 0


def test_hand_made_module():
  c = hlo_stats.hlo_counts(_MODULE)
  assert c["conditionals"] == 1
  assert c["whiles_known_trip"] == 1
  assert c["whiles_unknown_trip"] == 1
  # fusion (body, counted once although two whiles use it), custom-call
  # (then), copy (else), sort (entry), compare (cond, unfused: "other").
  # The fused computation and the sort comparator are not visited.
  assert c["fusions"] == 1
  assert c["custom_calls"] == 1
  assert c["copies"] == 1
  assert c["sorts"] == 1
  assert c["other"] == 1 and c["other_ops"] == {"compare": 1}
  assert c["kernels"] == 5
  assert c["kernels_entry"] == 1  # the sort
  assert "fused_add" not in c["computations"]
  assert "cmp" not in c["computations"]
  # Bytes: fusion reads %x once (distinct operands) and writes one array;
  # custom-call, copy and sort read one and write one; compare reads two
  # s32 (the constant and the counter) and writes a pred.
  assert c["bytes"] == 4 * 256 + (4 + 4 + 1)
  assert c["bytes_entry"] == 256
  assert c["entry_params"] == 2 and c["entry_outputs"] == 2
  # Cheapest path: sort, each while's body fusion and compare once (the two
  # whiles share them), one branch of the conditional (one kernel each).
  assert c["kernels_min_path"] == 1 + 2 * 2 + 1
  assert c["bytes_min_path"] == 256 + 2 * (256 + 9) + 256


def test_cpu_cond_and_while_loops():

  def f(x, n):
    y = jax.lax.cond(x[0, 0] > 0, lambda v: jnp.sin(v) @ v,
                     lambda v: jnp.cos(v) + 1.0, x)
    y = jax.lax.fori_loop(0, 5, lambda i, a: jnp.tanh(a) * 1.1, y)
    y = jax.lax.while_loop(lambda c: c[1] < n, lambda c: (c[0] * 2, c[1] + 1),
                           (y, 0))[0]
    return y, jnp.sum(y)

  x = jax.ShapeDtypeStruct((64, 64), jnp.float32)
  n = jax.ShapeDtypeStruct((), jnp.int32)
  text = helpers.compiled_text(jax.jit(f).lower(x, n))
  c = hlo_stats.hlo_counts(text)
  assert c["conditionals"] == 1, c
  # The fori_loop's static bounds give XLA:CPU a known trip count too.
  assert c["whiles_known_trip"] == 1, c
  assert c["whiles_unknown_trip"] == 1, c
  assert c["kernels"] >= c["kernels_entry"] > 0
  assert c["entry_params"] == 2 and c["entry_outputs"] == 2
  assert c["bytes"] > 64 * 64 * 4


def test_cpu_straight_line_has_no_control_flow():
  text = helpers.compiled_text(jax.jit(lambda a, b: (a * b + 1.0, a.sum())
                                      ).lower(jnp.ones((8, 8)), jnp.ones((8, 8))))
  c = hlo_stats.hlo_counts(text)
  assert c["conditionals"] == 0
  assert c["whiles_known_trip"] == c["whiles_unknown_trip"] == 0
  assert c["computations"] == [hlo_stats.parse_module(text)["entry"]]


def test_fused_sort_counts_as_sort():
  text = """\
%fused_sort (p0: f32[16]) -> f32[16] {
  %p0 = f32[16]{0} parameter(0)
  ROOT %s = f32[16]{0} sort(%p0), dimensions={0}, to_apply=%lt
}

%lt (a: f32[], b: f32[]) -> pred[] {
  %a = f32[] parameter(0)
  %b = f32[] parameter(1)
  ROOT %c = pred[] compare(%a, %b), direction=LT
}

ENTRY %main (x: f32[16]) -> f32[16] {
  %x = f32[16]{0} parameter(0)
  ROOT %f = f32[16]{0} fusion(%x), kind=kInput, calls=%fused_sort
}
"""
  c = hlo_stats.hlo_counts(text)
  assert (c["kernels"], c["sorts"], c["fusions"]) == (1, 1, 0)
  assert c["bytes"] == 128


_GATHER_HLO = """
HloModule m

%fused_rows (p0: f32[64,256], p1: f32[64,256], p2: s32[2,2], p3: f32[8]) -> (f32[2,1,256], f32[8]) {
  %p0 = f32[64,256]{1,0} parameter(0)
  %b0 = f32[1,64,256]{2,1,0} bitcast(%p0)
  %p1 = f32[64,256]{1,0} parameter(1)
  %b1 = f32[1,64,256]{2,1,0} bitcast(%p1)
  %stack = f32[2,64,256]{2,1,0} concatenate(%b0, %b1), dimensions={0}
  %p2 = s32[2,2]{1,0} parameter(2)
  %g = f32[2,1,256]{2,1,0} gather(%stack, %p2), offset_dims={1,2}, collapsed_slice_dims={0}, start_index_map={0,1}, index_vector_dim=1, slice_sizes={1,1,256}
  %p3 = f32[8]{0} parameter(3)
  %n = f32[8]{0} negate(%p3)
  ROOT %t = (f32[2,1,256]{2,1,0}, f32[8]{0}) tuple(%g, %n)
}

ENTRY %main (x: f32[64,256], y: f32[64,256], i: s32[2,2], z: f32[8]) -> (f32[2,1,256], f32[8]) {
  %x = f32[64,256]{1,0} parameter(0)
  %y = f32[64,256]{1,0} parameter(1)
  %i = s32[2,2]{1,0} parameter(2)
  %z = f32[8]{0} parameter(3)
  ROOT %f = (f32[2,1,256]{2,1,0}, f32[8]{0}) fusion(%x, %y, %i, %z), kind=kLoop, calls=%fused_rows
}
"""


def test_bytes_of_an_operand_read_through_a_gather_are_the_slice():
  """A fusion that reads two 64 x 256 leaves only through a gather of one
  row each counts the two rows (2 x 256 x 4 bytes), not the leaves; an
  element-wise op between them and the gather changes nothing."""
  c = hlo_stats.hlo_counts(_GATHER_HLO)
  out = 2 * 256 * 4 + 8 * 4
  assert c["bytes"] == out + 2 * 256 * 4 + 2 * 2 * 4 + 8 * 4
  # The same fusion with the first leaf also negated: read in full, and of
  # the second the gather reads one row of its two.
  text = _GATHER_HLO.replace("%n = f32[8]{0} negate(%p3)",
                             "%n = f32[8]{0} negate(%p3)\n  %m = f32[64,256]{1,0} negate(%p0)")
  c = hlo_stats.hlo_counts(text)
  assert c["bytes"] == out + 256 * 4 + 64 * 256 * 4 + 2 * 2 * 4 + 8 * 4
  text = _GATHER_HLO.replace(
      "%b0 = f32[1,64,256]{2,1,0} bitcast(%p0)",
      "%a0 = f32[64,256]{1,0} abs(%p0)\n  %b0 = f32[1,64,256]{2,1,0} bitcast(%a0)")
  assert hlo_stats.hlo_counts(text)["bytes"] == out + 2 * 256 * 4 + 2 * 2 * 4 + 8 * 4


def test_bytes_of_an_operand_read_through_a_static_slice_are_the_slice():
  """A fusion reading one of the 4 rows of a stacked pred[4,768] (a stacked
  mask) counts that row (768 bytes), not the stack; read whole as well, the
  stack counts whole."""
  text = """
HloModule m

%fused (p0: pred[4,768], p1: f32[768]) -> f32[768] {
  %p0 = pred[4,768]{1,0} parameter(0)
  %s = pred[1,768]{1,0} slice(%p0), slice={[2:3], [0:768]}
  %b = pred[768]{0} bitcast(%s)
  %p1 = f32[768]{0} parameter(1)
  %z = f32[768]{0} constant({...})
  ROOT %w = f32[768]{0} select(%b, %p1, %z)
}

ENTRY %main (m: pred[4,768], x: f32[768]) -> f32[768] {
  %m = pred[4,768]{1,0} parameter(0)
  %x = f32[768]{0} parameter(1)
  ROOT %f = f32[768]{0} fusion(%m, %x), kind=kLoop, calls=%fused
}
"""
  c = hlo_stats.hlo_counts(text)
  assert c["bytes"] == 768 + 768 * 4 + 768 * 4
  whole = text.replace("%p1 = f32[768]{0} parameter(1)",
                       "%p1 = f32[768]{0} parameter(1)\n  %n = pred[4,768]{1,0} not(%p0)")
  assert hlo_stats.hlo_counts(whole)["bytes"] == 4 * 768 + 768 * 4 + 768 * 4
