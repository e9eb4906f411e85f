"""Probe: does a tie-heavy batch make PLATON's update slower? (BERT-base, CPU)

Gradients of a BERT-base classifier (random init, 8 x 128, no dropout) on a
batch of random token ids and on a batch whose ids are all the same. Printed:
per batch, the fractions of exactly-zero and denormal gradients and
``|theta * g|`` of the prunable leaves (``where="bert"``) and the median
``|g|``. With ``time STEP``: the PLATON update alone (AdamW inner; state warmed
by 3 traced updates on the same gradients, then ``count`` set to STEP, run as
``jaxprune.step_kind(tx, STEP)``) and AdamW alone, for each batch and for the
states and gradients swapped, in 12 rounds of random order, no donation.

Run: ``PYTHONPATH=. python benchmarks/tie_heavy_probe.py [time [STEP]]``
(STEP 151: an ordinary final-phase step; 150: a selecting window boundary).
"""
import sys, time, json
sys.path.insert(0, __import__("os").path.dirname(__import__("os").path.abspath(__file__)))
import numpy as np, jax, jax.numpy as jnp, optax, jaxprune
import platon_overhead as po
from jaxprune import where as W
model, config = po.build_model("base", 0)
params = jax.tree.map(jnp.array, model.params)
rand = po.random_batch(config, 8, 128, 0)
degen = po.random_batch(config, 8, 128, 0, tokens="same")
def loss_fn(p, b):
  logits = model(b["input_ids"], attention_mask=b["attention_mask"], params=p, train=False).logits
  return optax.softmax_cross_entropy_with_integer_labels(logits, b["labels"]).mean()
g_fn = jax.jit(jax.grad(loss_fn))
grads = {"random": g_fn(params, rand), "degenerate": g_fn(params, degen)}
flags = W.resolve("bert", params)
TINY = np.finfo(np.float32).tiny
stats = {}
for name, g in grads.items():
  gl = [np.asarray(x) for x, f in zip(jax.tree.leaves(g), flags) if f]
  pl = [np.asarray(x) for x, f in zip(jax.tree.leaves(params), flags) if f]
  n = sum(x.size for x in gl)
  zero = sum(int((x == 0).sum()) for x in gl)
  den = sum(int(((x != 0) & (np.abs(x) < TINY)).sum()) for x in gl)
  tg = [np.abs(a * b) for a, b in zip(pl, gl)]
  tg_den = sum(int(((x != 0) & (x < TINY)).sum()) for x in tg)
  tg_zero = sum(int((x == 0).sum()) for x in tg)
  small = sum(int((np.abs(x) < 1e-30).sum()) for x in gl)
  stats[name] = dict(n=n, grad_zero=zero / n, grad_denormal=den / n, grad_below_1e30=small / n,
                     tg_zero=tg_zero / n, tg_denormal=tg_den / n,
                     grad_abs_median=float(np.median(np.concatenate([np.abs(x).ravel() for x in gl]))))
print(json.dumps(stats, indent=1))
if len(sys.argv) < 2:
  sys.exit()
T = 200
STEP = int(sys.argv[2]) if len(sys.argv) > 2 else 151
txs = {"platon": jaxprune.platon(optax.adamw(8e-5), sparsity=0.9, where="bert", delta_t=10,
                                 total_steps=T, warmup_steps=0, final_steps=60),
       "adamw": optax.adamw(8e-5)}
res = {}
for tname, tx in txs.items():
  upd = jax.jit(lambda g, s, p, tx=tx: tx.update(g, s, p))
  if tname == "platon":
    tx.init(params)  # step_kind reads the schedule of an initialised tx
    kind = jaxprune.step_kind(tx, STEP)
    fn = jax.jit(lambda g, s, p, tx=tx, kind=kind: tx.update(g, s, p, step_kind=kind))
  else:
    fn = upd
  for bname, g in grads.items():
    st = tx.init(params)
    for _ in range(3):
      _, st = upd(g, st, params)
    if tname == "platon":
      st = st._replace(count=jnp.asarray(STEP, st.count.dtype))
    jax.block_until_ready(fn(g, st, params))
    res[(tname, bname)] = (fn, g, st, [])
print("kind", kind)
states = {b: res[("platon", b)][2] for b in grads}
fnp = res[("platon", "random")][0]
for sb in grads:
  for gb in grads:
    if sb != gb:
      res[("platon", f"state_{sb}+grads_{gb}")] = (fnp, grads[gb], states[sb], [])
keys = list(res)
order_rng = np.random.default_rng(0)
for r in range(12):
  for i in order_rng.permutation(len(keys)):
    fn, g, st, ts = res[keys[i]]
    t0 = time.perf_counter(); jax.block_until_ready(fn(g, st, params)); ts.append(time.perf_counter() - t0)
for key, (_, _, _, ts) in res.items():
  print(key, "median %.4f s  min %.4f" % (np.median(ts), np.min(ts)))
