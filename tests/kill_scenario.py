"""A tiny PLATON training run for the SIGKILL-and-resume test.

Usage::

    python -m tests.kill_scenario CKPT_DIR OUT_NPZ [--pause-save STEP]
        [--pause-delete STEP] [--reference]

Trains a small MLP with PLATON through :func:`jaxprune.train.fit` with a
checkpoint after every step, resuming from ``CKPT_DIR`` if it holds one, and
writes the final params and optimizer state (scores, masks, ...) to
``OUT_NPZ``. It reports on stdout, one flushed line each:

* ``resumed S``: the step restored from the latest checkpoint (0: fresh);
* ``begin S``: step ``S`` starts (its batch is requested);
* ``saved S``: checkpoint ``S`` is complete (``fit`` saves synchronously);
* ``pausing S``: with ``--pause-save S``, checkpoint ``S`` has been written
  to its temporary folder and the process sleeps before orbax commits it
  (renames it), so that the test can kill it mid-save;
* ``pausing-delete S``: with ``--pause-delete S``, orbax has removed about
  half of the files of old checkpoint ``S`` (beyond ``max_to_keep``) and the
  process sleeps, so that the test can kill it mid-deletion;
* ``done``: the final arrays are written.

``CKPT_DIR`` empty or absent with ``--reference`` runs without checkpoints.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

import jaxprune  # noqa: E402
from jaxprune import train  # noqa: E402

STEPS = 40


def say(msg: str) -> None:
  sys.stdout.write(msg + "\n")
  sys.stdout.flush()


def make_problem():
  """Params, optimizer, train step and batch function of the tiny run."""
  k1, k2, k3 = jax.random.split(jax.random.key(0), 3)
  params = {"w1": jax.random.normal(k1, (16, 24)) * 0.3,
            "b1": jnp.zeros((24,)),
            "w2": jax.random.normal(k2, (24, 4)) * 0.3}
  x_all = np.asarray(jax.random.normal(k3, (STEPS, 32, 16)))
  y_all = (np.abs(x_all[..., :4]).argmax(-1)).astype(np.int32)
  tx = optax.chain(
      optax.clip_by_global_norm(1.0),
      jaxprune.platon(optax.adamw(3e-2), sparsity=0.8, total_steps=STEPS,
                      warmup_steps=4, final_steps=12, delta_t=3))

  def loss_fn(p, batch, rng):
    h = jnp.tanh(batch["x"] @ p["w1"] + p["b1"])
    drop = jax.random.bernoulli(rng, 0.9, h.shape)  # uses the step's key
    logits = (h * drop / 0.9) @ p["w2"]
    loss = optax.softmax_cross_entropy_with_integer_labels(
        logits, batch["y"]).mean()
    return loss, {}

  def batch_fn(s):
    say(f"begin {s}")
    return {"x": jnp.asarray(x_all[s]), "y": jnp.asarray(y_all[s])}

  return params, tx, train.make_train_step(loss_fn, tx), batch_fn


def flat_arrays(tree) -> dict[str, np.ndarray]:
  return {jax.tree_util.keystr(path): np.asarray(leaf)
          for path, leaf in jax.tree_util.tree_leaves_with_path(tree)}


def pause_before_commit(step: int) -> None:
  """Makes orbax sleep before committing checkpoint ``step`` (its rename)."""
  from orbax.checkpoint._src.path import atomicity
  original = atomicity.AtomicRenameTemporaryPath.finalize

  async def finalize(self, *args, **kwargs):
    if self._final_path.name == str(step):
      say(f"pausing {step}")
      time.sleep(600)  # killed here
    return await original(self, *args, **kwargs)

  atomicity.AtomicRenameTemporaryPath.finalize = finalize


def pause_while_deleting(step: int) -> None:
  """Makes orbax stop halfway through deleting old checkpoint ``step``."""
  from orbax.checkpoint._src.path import deleter
  original = deleter.PathDeleter.delete

  def delete(self, path, *args, **kwargs):
    if path.name == str(step):
      files = sorted(os.path.join(d, f) for d, _, fs in os.walk(str(path))
                     for f in fs)
      for f in files[:len(files) // 2 + 1]:  # the commit file among them
        os.remove(f)
      say(f"pausing-delete {step}")
      time.sleep(600)  # killed here
    return original(self, path, *args, **kwargs)

  deleter.PathDeleter.delete = delete


def main() -> None:
  parser = argparse.ArgumentParser()
  parser.add_argument("ckpt_dir")
  parser.add_argument("out")
  parser.add_argument("--pause-save", type=int, default=None)
  parser.add_argument("--pause-delete", type=int, default=None)
  parser.add_argument("--reference", action="store_true")
  args = parser.parse_args()
  if args.pause_save is not None:
    pause_before_commit(args.pause_save)
  if args.pause_delete is not None:
    pause_while_deleting(args.pause_delete)

  params, tx, step_fn, batch_fn = make_problem()
  opt_state = tx.init(params)
  kwargs = {}
  if not args.reference:
    ckpt = train.Checkpointer(args.ckpt_dir)
    say(f"resumed {ckpt.latest_step() or 0}")
    ckpt.close()
    original_save = train.Checkpointer.save

    def save(self, step, tree):
      original_save(self, step, tree)
      say(f"saved {step}")

    train.Checkpointer.save = save
    kwargs = dict(ckpt_dir=args.ckpt_dir, ckpt_every=1)
  params, opt_state, _ = train.fit(step_fn, params, opt_state, batch_fn,
                                   STEPS, rng=jax.random.key(7),
                                   progress=False, **kwargs)
  arrays = flat_arrays({"params": params, "opt_state": opt_state})
  tmp = args.out + ".tmp.npz"
  np.savez(tmp, **arrays)
  os.replace(tmp, args.out)
  say("done")


if __name__ == "__main__":
  main()
