"""Your own text data: classification (any number of classes) or regression.

Set the data with ``--set``: ``train_file`` (CSV, TSV or JSON lines) and
``validation_file`` or ``split_fraction``, or ``dataset`` (a ``datasets``
name, or a folder written by ``save_to_disk``); ``text_column``
(``text_pair_column`` for sentence pairs) and ``label_column``;
``regression=True`` for a float target. Default model: the offline
MiniLM-L6 (``model=bert-base-uncased`` or a folder for another).

Run: ``python -m experiments.run --config experiments/configs/text.py
--set train_file=reviews.csv split_fraction=0.1 label_column=stars``
"""


def get_config():
  return {
      "task": "text", "method": "platon", "sparsity": 0.9, "epochs": 3,
      "batch_size": 16, "seq_len": 128, "lr": 5e-5, "lr_warmup": 0.1,
      "eval_every": "1 epoch", "dense_baseline": True,
  }
