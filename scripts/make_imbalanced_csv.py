"""Regenerate the bundled imbalanced dataset, ``search/datasets/imbalanced.csv``.

scikit-learn's breast cancer data (357 benign, 212 malignant tumours) with the malignant class cut down
to 40 rows drawn with a fixed seed, so malignant (the positive class, the second in sorted order) is
about 10% of the 397 rows: a rare positive class, as in the absenteeism example, where accuracy says
little and recall, precision and PR-AUC say what matters. Column names are snake_case (``mean_radius``)
so they serve as Keras input names as they are. Deterministic: running it again writes the same bytes.

    .venv/bin/python scripts/make_imbalanced_csv.py [--out search/datasets/imbalanced.csv]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
MALIGNANT_ROWS = 40
SEED = 15


def build_csv() -> str:
    from sklearn.datasets import load_breast_cancer

    bunch = load_breast_cancer()
    # scikit-learn codes malignant as 0 and benign as 1; keep every benign row and a few malignant ones.
    malignant = np.flatnonzero(bunch.target == 0)
    keep = np.sort(np.concatenate([
        np.flatnonzero(bunch.target == 1),
        np.random.default_rng(SEED).choice(malignant, size=MALIGNANT_ROWS, replace=False),
    ]))
    names = [name.replace(" ", "_") for name in bunch.feature_names]
    lines = [",".join([*names, "diagnosis"])]
    for row in keep:
        values = [f"{value:.6g}" for value in bunch.data[row]]
        lines.append(",".join([*values, "malignant" if bunch.target[row] == 0 else "benign"]))
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "search" / "datasets" / "imbalanced.csv")
    args = parser.parse_args()
    text = build_csv()
    args.out.write_text(text)
    rows = text.count("\n") - 1
    print(f"wrote {args.out}: {rows} rows, {text.count(',malignant')} malignant")


if __name__ == "__main__":
    main()
