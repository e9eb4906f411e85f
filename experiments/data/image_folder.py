"""Your own image classification data: a folder with one subfolder per class.

``path/<class_name>/*.png`` (or .jpg, .jpeg, .bmp, .gif, .webp, any case);
classes are the subfolders sorted by name; hidden files and folders and files
of other extensions are ignored. Images are decoded with Pillow, converted to
RGB, resized to ``image_size`` x ``image_size`` (bilinear) and normalised as
ViT expects: ``(x / 255 - 0.5) / 0.5`` per channel, channels first.

Example:

  >>> import os, tempfile
  >>> from PIL import Image
  >>> root = tempfile.mkdtemp()
  >>> for c in ("cat", "dog"):
  ...   os.mkdir(os.path.join(root, c))
  ...   for i in range(2):
  ...     Image.new("RGB", (5, 5), (255, 0, 0)).save(f"{root}/{c}/{i}.png")
  >>> data = load_image_folder(root, image_size=4, split_fraction=0.5)
  >>> data.train_images.shape, data.class_names
  ((2, 3, 4, 4), ('cat', 'dog'))
  >>> data.train_images[0, :, 0, 0].tolist()
  [1.0, -1.0, -1.0]
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np

__all__ = ["IMAGE_EXTENSIONS", "ImageData", "check_image_folder",
           "load_image_folder"]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")


@dataclasses.dataclass(frozen=True)
class ImageData:
  """Train and validation images of an image folder.

  Attributes:
    train_images: float32 ``(N, 3, S, S)``, normalised to [-1, 1].
    train_labels: int32 ``(N,)`` class ids.
    val_images: float32 ``(M, 3, S, S)``.
    val_labels: int32 ``(M,)``.
    class_names: class ``i`` is ``class_names[i]`` (the subfolder's name).
    source: one line saying where the images came from and how they split.
  """
  train_images: np.ndarray
  train_labels: np.ndarray
  val_images: np.ndarray
  val_labels: np.ndarray
  class_names: tuple[str, ...]
  source: str


def _classes(path: str, arg: str) -> list[str]:
  """Sorted class subfolders of ``image_folder``; errors name the argument."""
  if not os.path.exists(path):
    raise ValueError(f"`{arg}`: no such folder '{path}'")
  if not os.path.isdir(path):
    raise ValueError(f"`{arg}`: '{path}' is not a folder (expected one "
                     "subfolder of images per class)")
  return sorted(e.name for e in os.scandir(path)
                if e.is_dir() and not e.name.startswith("."))


def check_image_folder(path: str, validation_folder: str | None = None,
                       split_fraction: float | None = None) -> None:
  """Checks the folders' layout without decoding any image.

  Args:
    path: the training folder, one subfolder per class.
    validation_folder: a validation folder of the same layout, or None.
    split_fraction: else the fraction of `image_folder`'s images held out.

  Raises:
    ValueError: naming the argument and the folder.

  Example:

    >>> check_image_folder("no/such/folder", split_fraction=0.1)
    Traceback (most recent call last):
    ...
    ValueError: `image_folder`: no such folder 'no/such/folder'
  """
  classes = _classes(path, "image_folder")
  if (validation_folder is None) == (split_fraction is None):
    raise ValueError("give exactly one of `validation_folder` or "
                     "`split_fraction` (in (0, 1))")
  if split_fraction is not None and (
      isinstance(split_fraction, bool)
      or not isinstance(split_fraction, (int, float))
      or not 0.0 < split_fraction < 1.0):
    raise ValueError("`split_fraction` (the fraction of images held out for "
                     f"validation) must be in (0, 1), got {split_fraction!r}")
  if len(classes) < 2:
    raise ValueError(f"`image_folder`: folder '{path}' needs at least 2 class "
                     f"subfolders, found {classes}")
  if validation_folder is not None:
    val_classes = _classes(validation_folder, "validation_folder")
    if not val_classes:
      raise ValueError(f"`validation_folder`: folder '{validation_folder}' has "
                       "no class subfolders")
    unknown = sorted(set(val_classes) - set(classes))
    if unknown:
      raise ValueError(f"`validation_folder`: folder '{validation_folder}' has "
                       f"classes {unknown} that '{path}' lacks (classes: "
                       f"{classes})")


def _files(path: str, classes: list[str]) -> tuple[list[str], list[int]]:
  """Image files and their class ids, classes interleaved round-robin."""
  per_class = []
  for c in classes:
    folder = os.path.join(path, c)
    names = sorted(n for n in os.listdir(folder)
                   if n.lower().endswith(IMAGE_EXTENSIONS)
                   and not n.startswith(".")  # e.g. macOS "._x.png"
                   and os.path.isfile(os.path.join(folder, n)))
    if not names:
      raise ValueError(f"class folder '{folder}' has no images ("
                       f"{', '.join(IMAGE_EXTENSIONS)})")
    per_class.append([os.path.join(folder, n) for n in names])
  files, labels = [], []
  for i in range(max(len(f) for f in per_class)):
    for k, f in enumerate(per_class):
      if i < len(f):
        files.append(f[i])
        labels.append(k)
  return files, labels


def _decode(files: list[str], image_size: int) -> np.ndarray:
  from PIL import Image
  out = np.empty((len(files), 3, image_size, image_size), np.float32)
  for i, f in enumerate(files):
    try:
      with Image.open(f) as im:
        rgb = im.convert("RGB").resize((image_size, image_size),
                                       Image.Resampling.BILINEAR)
        out[i] = np.asarray(rgb, np.float32).transpose(2, 0, 1)
    except (OSError, ValueError, SyntaxError,
            Image.DecompressionBombError) as e:
      raise ValueError(f"file '{f}' is not a readable image: {e}") from None
  out /= 255.0
  out -= 0.5
  out /= 0.5
  return out


def load_image_folder(path: str, *, image_size: int,
                      validation_folder: str | None = None,
                      split_fraction: float | None = None, split_seed: int = 0,
                      max_train_examples: int | None = None,
                      max_eval_examples: int | None = None) -> ImageData:
  """Loads a folder of class subfolders of images.

  Args:
    path: the training folder, ``path/<class_name>/<image>``.
    image_size: the side of the square the images are resized to.
    validation_folder: a validation folder of the same layout (its classes must
      be among `image_folder`'s).
    split_fraction: else the fraction of `image_folder`'s images held out for
      validation, chosen by ``np.random.default_rng(split_seed)``.
    split_seed: the seed of that choice.
    max_train_examples: keep the first N training images.
    max_eval_examples: keep the first N validation images.

  Returns:
    An :class:`ImageData`. Images are ordered round-robin over the classes
    (first image of each class, then the second, ...; files sorted by name),
    so the first N are balanced; a split keeps that order in both parts.
    Only the images kept are decoded.

  Raises:
    ValueError: naming the folder or file (see also check_image_folder).
  """
  check_image_folder(path, validation_folder, split_fraction)
  for arg, n in (("image_size", image_size),
                 ("max_train_examples", max_train_examples),
                 ("max_eval_examples", max_eval_examples)):
    if (n is not None or arg == "image_size") and (
        isinstance(n, bool) or not isinstance(n, int) or n < 1):
      raise ValueError(f"`{arg}` must be a positive integer, got {n!r}")
  classes = _classes(path, "image_folder")
  files, labels = _files(path, classes)
  if validation_folder is not None:
    val_names = _classes(validation_folder, "validation_folder")
    val_files, val_labels = _files(validation_folder, val_names)
    val_labels = [classes.index(val_names[k]) for k in val_labels]
    how = f"folder '{path}', validation folder '{validation_folder}'"
  else:
    n = len(files)
    if n < 2:
      raise ValueError(f"`image_folder`: folder '{path}' has {n} image: "
                       "`split_fraction` needs at least 2")
    n_val = min(max(1, round(n * split_fraction)), n - 1)
    perm = np.random.default_rng(split_seed).permutation(n)
    tr, va = np.sort(perm[n_val:]), np.sort(perm[:n_val])
    val_files, val_labels = [files[i] for i in va], [labels[i] for i in va]
    files, labels = [files[i] for i in tr], [labels[i] for i in tr]
    how = (f"folder '{path}' ({n} images), validation: {n_val} of them "
           f"(split_fraction {split_fraction}, seed {split_seed})")
  files, labels = files[:max_train_examples], labels[:max_train_examples]
  val_files = val_files[:max_eval_examples]
  val_labels = val_labels[:max_eval_examples]
  return ImageData(
      _decode(files, image_size), np.asarray(labels, np.int32),
      _decode(val_files, image_size), np.asarray(val_labels, np.int32),
      tuple(classes),
      f"{how}; {len(classes)} classes; {len(files)} train / "
      f"{len(val_files)} validation images at {image_size}x{image_size}")
