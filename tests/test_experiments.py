"""The experiments layer's helpers (step counts, where variants, schedules,
MT-DNN Adamax, image preprocessing, SQuAD features) and every config file."""

import glob
import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from experiments import config, trainer
from experiments import optimizer as optim
from experiments.tasks import base, qa, text
from experiments.tasks import image_classification as vit

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = sorted(glob.glob(os.path.join(ROOT, "experiments", "configs", "*",
                                        "*.py")))
# Training-set sizes of the dev-evaluated tasks (SQuAD: windows at 384/128).
TRAIN_SIZE = {"glue/mnli": 392702, "glue/qqp": 363846, "glue/qnli": 104743,
              "glue/sst2": 67349, "glue/cola": 8551, "glue/stsb": 5749,
              "glue/mrpc": 3668, "glue/rte": 2490, "squad": 88641,
              "cifar100": 50000}


# --- helpers -----------------------------------------------------------------

def test_to_steps():
  assert optim.to_steps(7, 100, 1000) == 7
  assert optim.to_steps("2 epochs", 100, 1000) == 200
  assert optim.to_steps("1 epoch", 100, 1000) == 100
  assert optim.to_steps("30 steps", 100, 1000) == 30
  assert optim.to_steps(0.1, 100, 1000) == 100
  for bad in ("two epochs", 1.5, True):
    with pytest.raises(ValueError):
      optim.to_steps(bad, 100, 1000)


def test_where_variants():
  import jaxprune
  params = {"bert": {"encoder": {"layer": {"0": {"attention": {"self": {
      "query": {"kernel": jnp.ones((2, 2)), "bias": jnp.ones(2)}}}}}},
      "pooler": {"dense": {"kernel": jnp.ones((2, 2))}}}}
  count = lambda w: sum(jaxprune.where.resolve(optim.resolve_where(w),
                                               params))
  assert count("bert") == 2
  assert count("bert_kernels") == 1
  assert count("bert_kernels_pooler") == 2
  with pytest.raises(ValueError, match="where"):
    optim.resolve_where("gpt")


def test_lr_schedules():
  s = optim.lr_schedule("warmup_linear", 1.0, 100, 10)
  assert [float(s(c)) for c in (0, 5, 10, 50, 100)] == pytest.approx(
      [0.0, 0.5, 0.9, 0.5, 0.0])
  s = optim.lr_schedule("linear", 2.0, 100, 0, end_factor=0.1)
  assert float(s(0)) == pytest.approx(2.0)
  assert float(s(100)) == pytest.approx(0.2)
  assert float(optim.lr_schedule("constant", 3.0, 10)(7)) == 3.0


def test_mtdnn_adamax_matches_a_hand_loop():
  params = {"dense": {"kernel": jnp.array([[1.0, -2.0]]),
                      "bias": jnp.array([0.5])}}
  grads = [{"dense": {"kernel": jnp.array([[0.1, -0.3]]),
                      "bias": jnp.array([0.2])}},
           {"dense": {"kernel": jnp.array([[-0.2, 0.1]]),
                      "bias": jnp.array([0.05])}}]
  tx = optim.mtdnn_adamax(0.1, weight_decay=0.01)
  state = tx.init(params)
  p = jax.tree.map(np.asarray, params)
  m = jax.tree.map(np.zeros_like, p)
  u = jax.tree.map(np.zeros_like, p)
  for g in grads:
    upd, state = tx.update(g, state, params)
    params = optax.apply_updates(params, upd)
    for name in ("kernel", "bias"):
      gi = np.asarray(g["dense"][name])
      m["dense"][name] = 0.9 * m["dense"][name] + 0.1 * gi
      u["dense"][name] = np.maximum(0.999 * u["dense"][name],
                                    np.abs(gi) + 1e-6)
      step = m["dense"][name] / (u["dense"][name] + 1e-6)
      if name == "kernel":  # no decay on biases
        step = step + 0.01 * p["dense"][name]
      p["dense"][name] = p["dense"][name] - 0.1 * step
  for name in ("kernel", "bias"):
    np.testing.assert_allclose(params["dense"][name], p["dense"][name],
                               rtol=1e-5)


def test_resize_matches_jax_image_resize_and_crops():
  rng = np.random.default_rng(0)
  img = rng.uniform(0, 255, (7, 5, 3)).astype(np.float32)
  ours = vit.resize_bilinear(img, 16, 11)
  ref = jax.image.resize(jnp.asarray(img), (16, 11, 3), "linear")
  np.testing.assert_allclose(ours, np.asarray(ref), atol=1e-3)
  np.testing.assert_allclose(vit.resize_bilinear(img, 7, 5), img, atol=1e-4)
  crop = vit.random_resized_crop(img, 8, np.random.default_rng(1))
  assert crop.shape == (8, 8, 3)
  assert vit.center_crop(img, 4, 0.875).shape == (4, 4, 3)
  x = vit.normalize(np.full((2, 4, 4, 3), 255.0))
  assert x.shape == (2, 3, 4, 4) and np.all(x == 1.0)


def test_squad_features_point_at_the_answers():
  tok = text.smoke_tokenizer()
  data = qa.smoke_dataset(0)["train"]
  cfg = config.from_dict({"task": "qa", "seq_len": 48, "doc_stride": 16})
  feats = qa.train_features(tok, data, cfg)
  enc = qa._window(tok, data["question"], data["context"], cfg)
  found = 0
  for i, (s, e) in enumerate(zip(feats["start_positions"],
                                 feats["end_positions"])):
    if s == 0:
      continue
    ex = enc["overflow_to_sample_mapping"][i]
    off = enc["offset_mapping"][i]
    span = data["context"][ex][off[s][0]:off[e][1]]
    assert span == data["answers"][ex]["text"][0]
    found += 1
  assert found >= len(data["id"])  # every answer lies in some window
  assert len(feats["start_positions"]) > len(data["id"])  # windows overflow


def test_best_spans_hand_example():
  context = "alpha beta gamma"
  # window tokens: [CLS] q [SEP] alpha beta gamma [SEP]
  offsets = np.array([[-1, -1], [-1, -1], [-1, -1], [0, 5], [6, 10],
                      [11, 16], [-1, -1]])
  feats = {"example": np.array([0]), "offsets": offsets[None]}
  start = np.array([[9.0, 0, 0, 1.0, 3.0, 0, 0]])   # CLS is not context
  end = np.array([[9.0, 0, 0, 0, 1.0, 2.0, 0]])
  assert qa.best_spans(start, end, feats, [context], 20, 30) == [
      "beta gamma"]
  # a one-token limit forces a single token: beta (3+1) beats gamma (0+2)
  assert qa.best_spans(start, end, feats, [context], 20, 1) == ["beta"]


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: "/".join(
    p.split(os.sep)[-2:]))
def test_config_loads_and_fits_the_paper_run(path):
  cfg = config.load(path)
  assert cfg.data in TRAIN_SIZE and 0 < cfg.sparsity < 1
  assert cfg.source and cfg.model
  with open(path) as f:
    assert f"--config {os.path.relpath(path, ROOT)}" in f.read()
  total, per_epoch = optim.steps_for(cfg, TRAIN_SIZE[cfg.data])
  args = optim.method_overrides(cfg, per_epoch, total)
  if cfg.method == "platon" and cfg.data == "glue/mnli":
    assert total == 98176  # the released script: 12,272 x 8
  if "final_steps" in args:
    assert args.get("warmup_steps", 0) + args["final_steps"] < total
  params = {"bert": {"encoder": {"layer": {"0": {"attention": {"self": {
      "query": {"kernel": jnp.ones((4, 4)), "bias": jnp.ones(4)}}}}}}},
      "vit": {"encoder": {"layer": {"0": {"attention": {"attention": {
          "query": {"kernel": jnp.ones((4, 4)), "bias": jnp.ones(4)}}}}}}}}
  tx, _ = optim.build_tx(cfg, total_steps=total, steps_per_epoch=per_epoch,
                           num_examples=TRAIN_SIZE[cfg.data],
                           where=optim.resolve_where(cfg.where))
  tx.init(params)


def _tiny_task(cfg):
  """A Prepared text task on a tiny random BERT, without data."""
  from jaxprune import models
  model = models.FunctionalModel(models.build(
      text.tiny_bert_config(64, num_labels=2), "sequence_classification"))
  from jaxprune import train
  return base.Prepared(
      model=model, params=model.params, train_size=100,
      make_batch=None, loss_fn=train.hf.classification_loss(model),
      evaluate=lambda p: {"accuracy": 0.0}, primary="accuracy",
      classification=True, where="bert", info={},
      heldout_evaluate=lambda p: {"accuracy": 0.0})


@pytest.mark.parametrize("method", ["soft_movement", "pins_sr"])
def test_a_paper_configs_optimizer_reaches_the_model_aware_methods(method):
  # PLATON's MNLI config trains with MT-DNN's Adamax (no bias correction,
  # decoupled decay 0.01 except biases). The runner's plan for a
  # model-aware method must step the weights with it: the first update from
  # zero moments is -lr * (0.1 g / (|g| + 2 eps) + 0.01 w) for kernels and
  # -lr * 0.1 g / (|g| + 2 eps) for biases, against the hand computation.
  path = os.path.join(ROOT, "experiments/configs/platon/mnli_90.py")
  cfg = config.load(path, [f"method={method}", "method_args={}",
                           "lr_schedule=constant", "clip_norm=None"])
  assert cfg.optimizer["name"] == "mtdnn_adamax"
  task = _tiny_task(cfg)
  _, plan = trainer.make_plan(cfg, task)
  state = plan.tx.init(plan.start)
  grads = jax.tree.map(lambda x: jnp.full_like(x, 0.5), plan.start)
  updates, _ = plan.tx.update(grads, state, plan.start)
  upd = updates["params"] if method == "soft_movement" else updates
  p0 = task.params
  pick = lambda t: jax.tree_util.keystr(t)
  leaves = dict(jax.tree_util.tree_leaves_with_path(upd))
  params = dict(jax.tree_util.tree_leaves_with_path(p0))
  kernel = [k for k in leaves if "query" in pick(k) and "kernel" in pick(k)]
  bias = [k for k in leaves if "query" in pick(k) and "bias" in pick(k)]
  assert kernel and bias
  lr, eps = cfg.lr, 1e-6
  step = 0.1 * 0.5 / ((0.5 + eps) + eps)   # m / (u + eps), no bias correction
  want_k = -lr * (step + 0.01 * np.asarray(params[kernel[0]]))
  want_b = -lr * step * np.ones_like(np.asarray(params[bias[0]]))
  np.testing.assert_allclose(leaves[kernel[0]], want_k, rtol=1e-5, atol=1e-9)
  np.testing.assert_allclose(leaves[bias[0]], want_b, rtol=1e-5, atol=1e-9)
  # AdamW (the default) would have moved the kernel by about -lr * 1.0.
  assert abs(float(leaves[bias[0]].ravel()[0])) < 0.2 * lr
