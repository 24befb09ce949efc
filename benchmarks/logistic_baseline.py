"""The baseline a model trained on your own data must beat: one-hot logistic regression.

Reads a ``dct-preprocess`` directory, one-hot encodes every table row of every sparse feature
(a multi-valued row sets one column per value), appends the dense features as the
preprocessing transformed them, fits scikit-learn's ``LogisticRegression`` on the train split
and prints the eval split's AUC and log-loss::

    python benchmarks/logistic_baseline.py data/adult
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss, roc_auc_score

from dct.data.tabular_format import TabularManifest, open_split, read_manifest


def design(
    directory: Path, manifest: TabularManifest, split: str
) -> tuple[sp.csr_matrix, np.ndarray]:
    """The split's one-hot and dense columns, and its labels."""
    arrays = open_split(directory, manifest, split)
    rows = manifest.splits[split].rows
    blocks = [sp.csr_matrix(np.asarray(arrays.dense, dtype=np.float64))]
    for table, values, offsets in zip(manifest.tables, arrays.values, arrays.offsets):
        if offsets is None:
            offsets = np.arange(rows + 1)
        row = np.repeat(np.arange(rows), np.diff(offsets))
        ones = np.ones(len(values))
        block = sp.csr_matrix((ones, (row, np.asarray(values))), shape=(rows, table.table_rows))
        block.data[:] = 1.0  # a value repeated in one row is still one column set
        blocks.append(block)
    return sp.hstack(blocks, format="csr"), np.asarray(arrays.labels)


def fit_and_score(directory: Path, c: float = 1.0) -> dict[str, float]:
    """The baseline's eval AUC and log-loss over every eval row, and the sizes it saw."""
    manifest = read_manifest(directory)
    x_train, y_train = design(directory, manifest, "train")
    x_eval, y_eval = design(directory, manifest, "eval")
    model = LogisticRegression(C=c, max_iter=2000).fit(x_train, y_train)
    p = model.predict_proba(x_eval)[:, 1]
    return {
        "auc": float(roc_auc_score(y_eval, p)),
        "logloss": float(log_loss(y_eval, p)),
        "columns": x_train.shape[1],
        "train_rows": len(y_train),
        "eval_rows": len(y_eval),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directory", type=Path, help="a dct-preprocess output directory")
    parser.add_argument("--c", type=float, default=1.0, help="inverse L2 strength (default 1)")
    args = parser.parse_args()
    r = fit_and_score(args.directory, args.c)
    print(
        f"{args.directory}: one-hot logistic regression, {r['columns']} columns, "
        f"{r['train_rows']} train rows: eval auc {r['auc']:.4f}, logloss {r['logloss']:.4f} "
        f"({r['eval_rows']} eval rows)"
    )


if __name__ == "__main__":
    main()
