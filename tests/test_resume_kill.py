"""SIGKILL a training run at chosen and random points, restart it, compare.

``tests/kill_scenario.py`` trains a tiny MLP with PLATON for 40 steps through
``train.fit`` with a checkpoint after every step. It is killed with SIGKILL
eight times (during start-up, mid-step, during a restore, twice while a
checkpoint sits uncommitted in orbax's temporary folder, once while polling
catches a temporary folder, once halfway through the deletion of an old
checkpoint, and after a random delay) and restarted each time. Every restart must resume from the last *complete* checkpoint (never
from a partial one, never from before one that completed), and the run that
finally finishes must end with params, masks and scores bitwise equal to an
uninterrupted run's.
"""
from __future__ import annotations

import os
import queue
import random
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STEPS = 40
TIMEOUT = 120.0


class Run:
  """A ``tests.kill_scenario`` subprocess whose stdout lines are collected."""

  def __init__(self, ckpt_dir: str, out: str, *extra: str):
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    self.proc = subprocess.Popen(
        [sys.executable, "-m", "tests.kill_scenario", ckpt_dir, out, *extra],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, bufsize=1)
    self.lines: list[str] = []
    self._queue: queue.Queue = queue.Queue()
    self._stderr: list[str] = []
    threading.Thread(target=self._read, daemon=True).start()
    threading.Thread(target=lambda: self._stderr.extend(self.proc.stderr),
                     daemon=True).start()

  def _read(self) -> None:
    for line in self.proc.stdout:
      self._queue.put(line.strip())
    self._queue.put(None)

  def _drain(self, timeout: float) -> bool:
    try:
      line = self._queue.get(timeout=timeout)
    except queue.Empty:
      return True
    if line is None:
      return False
    self.lines.append(line)
    return True

  def wait_for(self, prefix: str) -> str:
    """Blocks until a line starting with ``prefix`` is printed; returns it."""
    deadline = time.monotonic() + TIMEOUT
    seen = len(self.lines)
    while time.monotonic() < deadline:
      for line in self.lines[seen:]:
        if line.startswith(prefix):
          return line
      seen = len(self.lines)
      if not self._drain(0.05) and self.proc.poll() is not None:
        break
    raise AssertionError(f"no {prefix!r} line; got {self.lines[-5:]}, "
                         f"stderr: {''.join(self._stderr)[-3000:]}")

  def kill(self) -> None:
    os.kill(self.proc.pid, signal.SIGKILL)
    self.proc.wait(timeout=TIMEOUT)
    while self._drain(0.2):
      pass

  def finish(self) -> None:
    self.proc.wait(timeout=TIMEOUT)
    while self._drain(0.2):
      pass
    assert self.proc.returncode == 0, "".join(self._stderr)[-3000:]

  def values(self, prefix: str) -> list[int]:
    return [int(l.split()[1]) for l in self.lines if l.startswith(prefix)]

  @property
  def resumed(self) -> int:
    return int(self.wait_for("resumed ").split()[1])


def _tmp_folders(ckpt_dir: str) -> list[str]:
  if not os.path.isdir(ckpt_dir):
    return []
  return [n for n in os.listdir(ckpt_dir) if "tmp" in n]


def _latest_complete(ckpt_dir: str) -> int:
  """The latest committed checkpoint (orbax renames it to the bare step)."""
  steps = [int(n) for n in os.listdir(ckpt_dir) if n.isdigit()]
  return max(steps, default=0)


def _kill_when_tmp_folder_appears(run: Run, ckpt_dir: str) -> str:
  """Polls the checkpoint folder; SIGKILLs as soon as a save is in flight."""
  old = set(_tmp_folders(ckpt_dir))  # left behind by earlier kills
  deadline = time.monotonic() + TIMEOUT
  while time.monotonic() < deadline:
    tmp = [n for n in _tmp_folders(ckpt_dir) if n not in old]
    if tmp and run.proc.poll() is None:
      os.kill(run.proc.pid, signal.SIGKILL)
      run.kill()
      return tmp[0]
    time.sleep(0.0005)
  raise AssertionError("no temporary checkpoint folder seen")


def _load(path: str) -> dict[str, np.ndarray]:
  with np.load(path) as f:
    return {k: f[k] for k in f.files}


def test_sigkill_at_random_points_then_resume_is_bitwise_identical(tmp_path):
  rnd = random.Random(1234)
  ckpt = str(tmp_path / "ckpt")
  out = str(tmp_path / "final.npz")
  ref_out = str(tmp_path / "reference.npz")

  ref = Run(str(tmp_path / "unused"), ref_out, "--reference")
  ref.finish()
  assert ref.values("begin ") == list(range(STEPS))

  def check_resume(run: Run, last_saved: int, *, exact: bool = False) -> int:
    """The restart resumes from the last complete checkpoint (or from the
    one whose commit the kill interrupted after the rename)."""
    resumed = run.resumed
    if exact:
      assert resumed == last_saved, (resumed, last_saved)
    else:
      assert resumed in (last_saved, last_saved + 1), (resumed, last_saved)
    return resumed

  history = []  # (kill point, resumed from on restart)
  last_saved = 0

  # 1. During start-up (import, compile or the first steps).
  run = Run(ckpt, out)
  time.sleep(rnd.uniform(0.5, 2.5))
  run.kill()
  last_saved = max(run.values("saved "), default=0)
  history.append(("startup", last_saved))

  # 2. Mid-step: right after step 9 asked for its batch.
  run = Run(ckpt, out)
  check_resume(run, last_saved)
  run.wait_for("begin 9")
  time.sleep(rnd.uniform(0.0, 0.02))
  run.kill()
  last_saved = max(run.values("saved "))
  assert last_saved >= 9
  history.append(("mid-step 9", last_saved))

  # 3. During a checkpoint write: data written to the temporary folder,
  #    commit (rename) not done. The restart must ignore the partial one.
  latest = _latest_complete(ckpt)
  assert latest in (last_saved, last_saved + 1)
  paused = latest + 3
  run = Run(ckpt, out, "--pause-save", str(paused))
  check_resume(run, latest, exact=True)
  run.wait_for(f"pausing {paused}")
  assert any(n.startswith(f"{paused}.") for n in _tmp_folders(ckpt))
  assert not os.path.exists(os.path.join(ckpt, str(paused)))
  run.kill()
  last_saved = max(run.values("saved "))
  assert last_saved == paused - 1
  history.append((f"uncommitted save {paused}", last_saved))

  # 4. During a restore: killed as soon as the restart reports the step.
  run = Run(ckpt, out)
  check_resume(run, last_saved, exact=True)  # not the partial checkpoint
  run.kill()
  last_saved = max(run.values("saved "), default=last_saved)
  history.append(("restore", last_saved))

  # 5. Whenever polling sees a temporary checkpoint folder (a save in
  #    flight, or orbax's bookkeeping around it).
  run = Run(ckpt, out)
  check_resume(run, last_saved)
  folder = _kill_when_tmp_folder_appears(run, ckpt)
  last_saved = max(run.values("saved "), default=last_saved)
  history.append((f"tmp folder {folder}", last_saved))

  # 6. Halfway through orbax deleting an old checkpoint (beyond
  #    max_to_keep = 2, removed while saving the one two steps later): the
  #    half-deleted folder, commit file gone, must not disturb the resume.
  latest = _latest_complete(ckpt)
  assert latest in (last_saved, last_saved + 1)
  doomed = latest + 1
  run = Run(ckpt, out, "--pause-delete", str(doomed))
  check_resume(run, latest, exact=True)
  run.wait_for(f"pausing-delete {doomed}")
  run.kill()
  assert os.path.isdir(os.path.join(ckpt, str(doomed)))
  assert not os.path.exists(os.path.join(ckpt, str(doomed),
                                         "commit_success.txt"))
  last_saved = max(run.values("saved "))
  assert last_saved == doomed + 1
  history.append((f"deleting {doomed}", last_saved))

  # 7. After a random delay.
  run = Run(ckpt, out)
  check_resume(run, last_saved)
  run.wait_for("begin ")
  time.sleep(rnd.uniform(0.05, 1.5))
  run.kill()
  last_saved = max(run.values("saved "), default=last_saved)
  history.append(("random delay", last_saved))

  # 8. While the final checkpoint (step 40) is uncommitted.
  run = Run(ckpt, out, "--pause-save", str(STEPS))
  check_resume(run, last_saved)
  run.wait_for(f"pausing {STEPS}")
  run.kill()
  assert not os.path.exists(out)
  last_saved = max(run.values("saved "))
  assert last_saved == STEPS - 1
  history.append((f"uncommitted save {STEPS}", last_saved))

  # The run that finishes.
  run = Run(ckpt, out)
  check_resume(run, STEPS - 1, exact=True)
  run.finish()
  assert run.values("begin ") == [STEPS - 1]
  assert len(history) == 8, history
  print("kill points (point, last complete checkpoint):", history)

  got, want = _load(out), _load(ref_out)
  assert sorted(got) == sorted(want)
  for name in want:
    assert got[name].dtype == want[name].dtype, name
    np.testing.assert_array_equal(got[name], want[name], err_msg=name)
  # The comparison covers pruning state that did something.
  masks = [v for k, v in want.items() if ".mask_stacks[" in k]
  assert masks and sum(int((~m).sum()) for m in masks) == int(0.8 * 480)
  scores = [v for k, v in want.items() if ".ibar[" in k]
  assert scores and all(np.any(s > 0) for s in scores)
