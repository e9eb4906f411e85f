"""Rotten Tomatoes review sentences (an offline SST-2 stand-in).

Source: the sdist of ``vaderSentiment==3.3.2`` on PyPI (MIT licence) carries
``additional_resources/hutto_ICWSM_2014.tar.gz`` with
``movieReviewSnippets_GroundTruth.txt``: 10,605 sentence-level snippets from
rottentomatoes.com (derived from Pang & Lee, 2004) with mean sentiment
ratings from at least 20 human raters. Cite: C.J. Hutto and E. Gilbert,
"VADER: A Parsimonious Rule-based Model for Sentiment Analysis of Social
Media Text", ICWSM 2014.

Labels are the sign of the mean rating (1 positive, 0 negative); the 37
sentences rated exactly 0 are dropped, leaving 10,568. The split is a fixed
shuffle (seed 0): the first ``test_size`` sentences are the test set.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile

import numpy as np

__all__ = ["PROVENANCE", "ensure_sdist", "load"]

VERSION = "3.3.2"
SDIST = f"vaderSentiment-{VERSION}.tar.gz"
PROVENANCE = {
    "name": "Rotten Tomatoes review sentences (VADER ground truth)",
    "source": f"PyPI sdist vaderSentiment=={VERSION}, "
              "additional_resources/hutto_ICWSM_2014.tar.gz, "
              "movieReviewSnippets_GroundTruth.txt",
    "license": "MIT (vaderSentiment package)",
    "citation": "Hutto & Gilbert, VADER, ICWSM 2014; sentences from "
                "Pang & Lee, 2004",
    "labels": "sign of the mean human rating; zero ratings dropped",
}


def ensure_sdist(cache_dir: str) -> str:
  """Path of the sdist, downloading it from PyPI with pip if missing."""
  path = os.path.join(cache_dir, SDIST)
  if not os.path.exists(path):
    os.makedirs(cache_dir, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps",
           "--no-binary", ":all:", f"vaderSentiment=={VERSION}", "-d",
           cache_dir]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0 or not os.path.exists(path):
      raise RuntimeError(
          f"could not fetch {SDIST} with `{' '.join(cmd)}`:\n{proc.stderr}")
  return path


def _read_snippets(sdist_path: str) -> list[tuple[float, str]]:
  with tarfile.open(sdist_path) as outer:
    member = next(m for m in outer.getmembers()
                  if m.name.endswith("hutto_ICWSM_2014.tar.gz"))
    inner_bytes = outer.extractfile(member).read()
  with tarfile.open(fileobj=io.BytesIO(inner_bytes)) as inner:
    member = next(m for m in inner.getmembers()
                  if m.name.endswith("movieReviewSnippets_GroundTruth.txt"))
    text = inner.extractfile(member).read().decode("utf-8")
  rows = []
  for line in text.splitlines():
    parts = line.split("\t")
    if len(parts) == 3:
      rows.append((float(parts[1]), parts[2].strip()))
  return rows


def load(cache_dir: str = "data/cache", test_size: int = 1000, seed: int = 0
         ) -> tuple[list[str], np.ndarray, list[str], np.ndarray]:
  """``(train_texts, train_labels, test_texts, test_labels)``."""
  rows = [(r, t) for r, t in _read_snippets(ensure_sdist(cache_dir)) if r != 0]
  order = np.random.default_rng(seed).permutation(len(rows))
  texts = [rows[i][1] for i in order]
  labels = np.array([int(rows[i][0] > 0) for i in order], np.int32)
  return (texts[test_size:], labels[test_size:], texts[:test_size],
          labels[:test_size])
