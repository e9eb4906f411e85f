"""Own-data loaders: text (CSV, TSV, JSON lines, `datasets`) and image folders.

Expected values are written out by hand from the files each test writes.
"""
import doctest
import json
import os

import numpy as np
import pytest

from experiments.data import image_folder, tables


def _write(path, text: str) -> str:
  path.write_text(text, encoding="utf-8")
  return str(path)


@pytest.mark.parametrize("module", [tables, image_folder])
def test_docstring_examples(module):
  assert doctest.testmod(module).failed == 0


# ---------------------------------------------------------------- text tables

def test_csv_three_string_classes_and_pairs(tmp_path):
  train = _write(tmp_path / "train.csv",
                 "premise,hypothesis,label\n"
                 '"a cat, sleeping",an animal,entail\n'
                 "a dog,a cat,contra\n"
                 "a bird,it flies,neutral\n"
                 "a fish,it swims,entail\n")
  val = _write(tmp_path / "val.csv",
               "premise,hypothesis,label\n"
               "x,y,neutral\n"
               "p,q,contra\n")
  data = tables.load_text(train_file=train, validation_file=val,
                          text_column="premise", text_pair_column="hypothesis")
  assert data.label_names == ("contra", "entail", "neutral")
  assert data.train.texts == ["a cat, sleeping", "a dog", "a bird", "a fish"]
  assert data.train.pairs == ["an animal", "a cat", "it flies", "it swims"]
  assert data.train.labels.dtype == np.int32
  np.testing.assert_array_equal(data.train.labels, [1, 0, 2, 1])
  assert data.validation.texts == ["x", "p"]
  assert data.validation.pairs == ["y", "q"]
  np.testing.assert_array_equal(data.validation.labels, [2, 0])
  assert train in data.source and val in data.source


def test_csv_split_fraction_is_deterministic(tmp_path):
  rows = [(f"t{i}", "ab"[i % 2]) for i in range(10)]
  path = _write(tmp_path / "all.csv",
                "text,label\n" + "".join(f"{t},{l}\n" for t, l in rows))
  label_of = dict(rows)
  first = tables.load_text(train_file=path, split_fraction=0.3, split_seed=7)
  again = tables.load_text(train_file=path, split_fraction=0.3, split_seed=7)
  assert len(first.train.texts) == 7 and len(first.validation.texts) == 3
  assert first.train.texts == again.train.texts
  assert first.validation.texts == again.validation.texts
  everything = first.train.texts + first.validation.texts
  assert sorted(everything) == sorted(label_of)
  for part in (first.train, first.validation):  # file order kept in each part
    assert part.texts == sorted(part.texts, key=lambda t: int(t[1:]))
    np.testing.assert_array_equal(
        part.labels, [{"a": 0, "b": 1}[label_of[t]] for t in part.texts])
  others = {tuple(tables.load_text(train_file=path, split_fraction=0.3,
                                   split_seed=s).validation.texts)
            for s in range(8)}
  assert len(others) > 1  # the seed matters
  cut = tables.load_text(train_file=path, split_fraction=0.3, split_seed=7,
                         max_train_examples=2, max_eval_examples=1)
  assert cut.train.texts == first.train.texts[:2]
  assert cut.validation.texts == first.validation.texts[:1]


def test_integer_labels_sort_numerically_json(tmp_path):
  path = _write(tmp_path / "d.json", "\n".join(json.dumps(r) for r in [
      {"text": "a", "label": 10}, {"text": "b", "label": 2},
      {"text": "c", "label": 1}, {"text": "d", "label": 2}]) + "\n")
  val = _write(tmp_path / "v.csv", "text,label\ne,10\nf,1\n")  # digit strings
  data = tables.load_text(train_file=path, validation_file=val)
  assert data.label_names == ("1", "2", "10")
  np.testing.assert_array_equal(data.train.labels, [2, 1, 0, 1])
  np.testing.assert_array_equal(data.validation.labels, [2, 0])


def test_tsv_and_json_lines_regression(tmp_path):
  train = _write(tmp_path / "train.tsv",
                 "sentence\tscore\tid\n"
                 "one, with comma\t0.5\t1\n"
                 "two\t-1.25\t2\n"
                 "three\t3\t3\n"
                 "four\t1e-3\t4\n")
  val = _write(tmp_path / "val.jsonl",
               '{"sentence": "five", "score": 4.75}\n'
               "\n"
               '{"sentence": "six", "score": -2}\n')
  data = tables.load_text(train_file=train, validation_file=val,
                          text_column="sentence", label_column="score",
                          regression=True)
  assert data.label_names is None
  assert data.train.texts == ["one, with comma", "two", "three", "four"]
  assert data.train.pairs is None
  assert data.train.labels.dtype == np.float32
  np.testing.assert_array_equal(
      data.train.labels, np.array([0.5, -1.25, 3.0, 0.001], np.float32))
  assert data.validation.texts == ["five", "six"]
  np.testing.assert_array_equal(data.validation.labels, [4.75, -2.0])


def test_datasets_folder_with_class_label(tmp_path):
  datasets = pytest.importorskip("datasets")
  features = datasets.Features({
      "sentence": datasets.Value("string"),
      "label": datasets.ClassLabel(names=["positive", "negative"])})
  dd = datasets.DatasetDict(
      train=datasets.Dataset.from_dict(
          {"sentence": ["great", "awful", "fine"], "label": [0, 1, 0]},
          features=features),
      validation=datasets.Dataset.from_dict(
          {"sentence": ["bad"], "label": [1]}, features=features))
  folder = str(tmp_path / "dd")
  dd.save_to_disk(folder)
  data = tables.load_text(dataset=folder, text_column="sentence")
  assert data.label_names == ("positive", "negative")  # ClassLabel's order
  assert data.train.texts == ["great", "awful", "fine"]
  np.testing.assert_array_equal(data.train.labels, [0, 1, 0])
  assert data.validation.texts == ["bad"]
  np.testing.assert_array_equal(data.validation.labels, [1])
  assert folder in data.source
  msg = _error(dataset=folder)  # text_column="text" is not there
  assert folder in msg and "split 'train'" in msg and "'text'" in msg
  assert "sentence, label" in msg

  # Unlabelled rows (-1, as in GLUE test splits): dataset, split, row, column.
  datasets.DatasetDict(
      train=dd["train"],
      validation=datasets.Dataset.from_dict(
          {"sentence": ["x", "y"], "label": [0, -1]}, features=features)
  ).save_to_disk(str(tmp_path / "bad"))
  with pytest.raises(ValueError) as e:
    tables.load_text(dataset=str(tmp_path / "bad"), text_column="sentence")
  msg = str(e.value)
  assert "split 'validation'" in msg and "row 2" in msg
  assert "'label'" in msg and "-1" in msg


# ------------------------------------------------------------- text errors

def _error(**kwargs) -> str:
  with pytest.raises(ValueError) as e:
    tables.load_text(**kwargs)
  return str(e.value)


def test_missing_column(tmp_path):
  path = _write(tmp_path / "t.csv", "text,lbl\na,x\nb,y\n")
  msg = _error(train_file=path, split_fraction=0.5)
  assert path in msg and "'label'" in msg and "text, lbl" in msg


def test_empty_file(tmp_path):
  empty = _write(tmp_path / "empty.csv", "")
  assert empty in _error(train_file=empty, split_fraction=0.5)
  header_only = _write(tmp_path / "header.tsv", "text\tlabel\n")
  msg = _error(train_file=header_only, split_fraction=0.5)
  assert header_only in msg and "no data rows" in msg
  blank = _write(tmp_path / "blank.jsonl", "\n\n")
  assert blank in _error(train_file=blank, split_fraction=0.5)


def test_unknown_label_in_validation(tmp_path):
  train = _write(tmp_path / "train.csv", "text,label\na,yes\nb,no\n")
  val = _write(tmp_path / "val.csv", "text,label\nc,no\nd,maybe\n")
  msg = _error(train_file=train, validation_file=val)
  assert val in msg and "row 2" in msg and "column 'label'" in msg
  assert "'maybe'" in msg


@pytest.mark.parametrize("bad", ["n/a", "inf", ""])
def test_non_numeric_regression_target(tmp_path, bad):
  path = _write(tmp_path / "r.csv", f"text,label\na,1.5\nb,2\nc,{bad}\n")
  msg = _error(train_file=path, split_fraction=0.5, regression=True)
  assert path in msg and "row 3" in msg and "column 'label'" in msg
  assert repr(bad) in msg


def test_malformed_json_line(tmp_path):
  path = _write(tmp_path / "m.jsonl",
                '{"text": "a", "label": 1}\n{"text": "b", "label": }\n')
  msg = _error(train_file=path, split_fraction=0.5)
  assert path in msg and "line 2" in msg


def test_missing_text_cell(tmp_path):
  path = _write(tmp_path / "n.jsonl",
                '{"text": "a", "label": 1}\n\n{"text": null, "label": 0}\n')
  msg = _error(train_file=path, split_fraction=0.5)
  assert path in msg and "row 2 (line 3)" in msg and "column 'text'" in msg


def test_one_class_only(tmp_path):
  path = _write(tmp_path / "one.csv", "text,label\na,pos\nb,pos\nc,pos\n")
  msg = _error(train_file=path, split_fraction=0.5)
  assert path in msg and "column 'label'" in msg and "at least 2" in msg


def test_check_text_source_missing_file_and_bad_arguments(tmp_path):
  missing = str(tmp_path / "nope.csv")
  with pytest.raises(ValueError, match="`train_file`") as e:
    tables.check_text_source(train_file=missing, split_fraction=0.2)
  assert missing in str(e.value)
  with pytest.raises(ValueError, match=r"`train_file`.*\.csv, \.tsv"):
    tables.check_text_source(train_file=str(tmp_path / "x.txt"),
                             split_fraction=0.2)
  with pytest.raises(ValueError, match="exactly one of `train_file`"):
    tables.check_text_source(train_file=missing, dataset="glue")
  with pytest.raises(ValueError, match="`validation_file` or `split_fraction`"):
    tables.check_text_source(train_file=missing)


@pytest.mark.parametrize("fraction", [0, 1, 1.5, -0.1, True])
def test_bad_split_fraction(tmp_path, fraction):
  path = _write(tmp_path / "t.csv", "text,label\na,x\nb,y\n")
  with pytest.raises(ValueError) as e:
    tables.check_text_source(train_file=path, split_fraction=fraction)
  assert "`split_fraction`" in str(e.value) and "(0, 1)" in str(e.value)
  with pytest.raises(ValueError, match="`split_fraction`"):
    image_folder.check_image_folder(str(tmp_path), split_fraction=fraction)


# -------------------------------------------------------------- image folder

def _png(path, size, pixels=None, fill=(0, 0, 0)):
  from PIL import Image
  image = Image.new("RGB", size, fill)
  for xy, rgb in (pixels or {}).items():
    image.putpixel(xy, rgb)
  os.makedirs(os.path.dirname(path), exist_ok=True)
  image.save(path)


@pytest.fixture
def folder(tmp_path):
  """bird/, ant/, cat/ with 3 PNGs each; ant/0.png has one coloured pixel."""
  root = tmp_path / "train"
  for c in ("bird", "ant", "cat"):
    for i in range(3):
      _png(str(root / c / f"{i}.png"), (4, 4), fill=(0, 0, 0))
  _png(str(root / "ant" / "0.png"), (4, 4), {(2, 1): (51, 102, 204)})
  _png(str(root / "cat" / "2.PNG"), (7, 5), fill=(255, 0, 51))  # resized
  os.remove(root / "cat" / "2.png")
  (root / "cat" / "notes.txt").write_text("not an image")  # ignored
  return root


def test_image_folder_with_validation_folder(folder, tmp_path):
  val = tmp_path / "val"
  _png(str(val / "cat" / "a.png"), (4, 4))
  _png(str(val / "ant" / "b.jpg"), (4, 4))
  data = image_folder.load_image_folder(str(folder), image_size=4,
                                        validation_folder=str(val))
  assert data.class_names == ("ant", "bird", "cat")
  assert data.train_images.shape == (9, 3, 4, 4)
  assert data.train_images.dtype == np.float32
  assert data.train_labels.dtype == np.int32
  # Round-robin over the classes: ant/0, bird/0, cat/0, ant/1, ...
  np.testing.assert_array_equal(data.train_labels, [0, 1, 2] * 3)
  np.testing.assert_array_equal(data.val_labels, [0, 2])
  assert data.val_images.shape == (2, 3, 4, 4)
  # ant/0.png pixel (x=2, y=1) = (51, 102, 204): 51/255 = 0.2 -> (0.2 - 0.5)
  # / 0.5 = -0.6; 102/255 = 0.4 -> -0.2; 204/255 = 0.8 -> 0.6. Black -> -1.
  np.testing.assert_allclose(data.train_images[0, :, 1, 2], [-0.6, -0.2, 0.6],
                             atol=1e-6)
  np.testing.assert_array_equal(data.train_images[0, :, 0, 0], [-1, -1, -1])
  # cat/2.PNG: a uniform 7x5 (255, 0, 51) resized to 4x4 stays uniform.
  expected = np.broadcast_to(np.array([1.0, -1.0, -0.6], np.float32)[:, None,
                                                                     None],
                             (3, 4, 4))
  np.testing.assert_allclose(data.train_images[8], expected, atol=1e-6)
  assert data.val_images.min() == -1 and data.val_images.max() == -1


def test_image_folder_split_fraction(folder):
  a = image_folder.load_image_folder(str(folder), image_size=2,
                                     split_fraction=1 / 3, split_seed=3)
  b = image_folder.load_image_folder(str(folder), image_size=2,
                                     split_fraction=1 / 3, split_seed=3)
  assert a.train_images.shape == (6, 3, 2, 2) and a.val_images.shape == (
      3, 3, 2, 2)
  np.testing.assert_array_equal(a.train_labels, b.train_labels)
  np.testing.assert_array_equal(a.val_images, b.val_images)
  counts = np.bincount(np.concatenate([a.train_labels, a.val_labels]))
  np.testing.assert_array_equal(counts, [3, 3, 3])
  cut = image_folder.load_image_folder(str(folder), image_size=2,
                                       split_fraction=1 / 3, split_seed=3,
                                       max_train_examples=2)
  np.testing.assert_array_equal(cut.train_labels, a.train_labels[:2])


def test_image_folder_errors(folder, tmp_path):
  load = image_folder.load_image_folder
  missing = str(tmp_path / "nowhere")
  with pytest.raises(ValueError, match="`image_folder`") as e:
    load(missing, image_size=4, split_fraction=0.5)
  assert missing in str(e.value)

  one = tmp_path / "one"
  _png(str(one / "only" / "0.png"), (2, 2))
  with pytest.raises(ValueError, match="at least 2 class") as e:
    load(str(one), image_size=4, split_fraction=0.5)
  assert str(one) in str(e.value)

  bad = folder / "bird" / "1.png"
  bad.write_bytes(b"this is not a png")
  with pytest.raises(ValueError, match="not a readable image") as e:
    load(str(folder), image_size=4, split_fraction=0.5)
  assert str(bad) in str(e.value)

  (folder / "empty").mkdir()
  with pytest.raises(ValueError, match="no images") as e:
    load(str(folder), image_size=4, split_fraction=0.5)
  assert str(folder / "empty") in str(e.value)

  val = tmp_path / "val"
  _png(str(val / "dog" / "0.png"), (2, 2))
  with pytest.raises(ValueError, match="`validation_folder`") as e:
    image_folder.check_image_folder(str(folder), validation_folder=str(val))
  assert str(val) in str(e.value) and "dog" in str(e.value)
