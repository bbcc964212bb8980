"""Data as it comes: a table shaped like palmerpenguins' raw ``penguins-raw.csv`` (an id column, ISO dates,
free text, blanks, two rows without body mass) searches once its id column is left out with ``--drop``,
and the exported model predicts species names from the raw rows."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hpsearch.data import load_dataset
from hpsearch.errors import DataError

from tests.conftest import query
from tests.helpers import write_space

SPECIES = {
    "Adelie Penguin (Pygoscelis adeliae)": (38.8, 18.3, 190.0, 3700.0),
    "Chinstrap penguin (Pygoscelis antarctica)": (48.8, 18.4, 196.0, 3730.0),
    "Gentoo penguin (Pygoscelis papua)": (47.5, 15.0, 217.0, 5080.0),
}
ISLANDS = ("Torgersen", "Biscoe", "Dream")
SPACE = """\
objective: val_accuracy
params:
  n_neurons: {type: int, low: 8, high: 16}
fixed: {n_hidden: 1, epochs: 3, batch_size: 16, learning_rate: 0.01}
"""


def write_penguins(path: Path, rows_per_species: int = 50) -> Path:
    """A table with the raw palmerpenguins columns and quirks, measurements close to the real ones."""
    rng = np.random.default_rng(3)
    rows = []
    for index, (species, (culmen, depth, flipper, mass)) in enumerate(SPECIES.items()):
        for number in range(1, rows_per_species + 1):
            rows.append({
                "studyName": f"PAL0{7 + number % 3}0{8 + number % 3}",
                "Sample Number": number,
                "Species": species,
                "Region": "Anvers",
                "Island": ISLANDS[(index + number) % 3],
                "Stage": "Adult, 1 Egg Stage",
                "Individual ID": f"N{number}A{index + 1}",
                "Clutch Completion": "No" if number % 9 == 0 else "Yes",
                "Date Egg": f"{2007 + number % 3}-11-{1 + number % 28:02d}",
                "Culmen Length (mm)": round(rng.normal(culmen, 2.5), 1),
                "Culmen Depth (mm)": round(rng.normal(depth, 0.8), 1),
                "Flipper Length (mm)": round(rng.normal(flipper, 5.0)),
                "Body Mass (g)": round(rng.normal(mass, 300.0), -1),
                "Sex": "" if number % 17 == 0 else ("MALE" if number % 2 else "FEMALE"),
                "Delta 15 N (o/oo)": "" if number % 11 == 0 else round(rng.normal(8.7 + index, 0.4), 5),
                "Delta 13 C (o/oo)": "" if number % 11 == 0 else round(rng.normal(-25.8 + index, 0.5), 5),
                "Comments": "Not enough blood for isotopes." if number % 11 == 0 else
                            ("Nest never observed with full clutch." if number % 9 == 0 else ""),
            })
    # As in the real table: two birds were never measured.
    for row in (rows[3], rows[-3]):
        for column in ("Culmen Length (mm)", "Culmen Depth (mm)", "Flipper Length (mm)", "Body Mass (g)"):
            row[column] = ""
        row["Sex"] = ""
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def test_the_id_column_is_refused_naming_drop(cli, tmp_path: Path) -> None:
    data = write_penguins(tmp_path / "penguins-raw.csv")
    space = write_space(tmp_path, SPACE)
    result = cli("run", space, "--data", data, "--target", "Species", "--quiet", "--in-process")
    assert result.code == 2
    assert result.err.count("\n") == 1, "one sentence"
    assert "column 'Individual ID' looks like free text or an id (150 distinct values); leave it out with " \
           "--drop \"Individual ID\" (drop=['Individual ID'] in Python)" in result.err
    unknown = cli("run", space, "--data", data, "--target", "Species", "--drop", "Individual Id",
                  "--quiet", "--in-process")
    assert unknown.code == 2
    assert "cannot drop column 'Individual Id', which the file does not have; its columns are " \
           "'studyName', 'Sample Number', 'Species'" in unknown.err


def test_dates_become_days_and_drop_is_recorded(tmp_path: Path) -> None:
    data = write_penguins(tmp_path / "penguins-raw.csv")
    dataset = load_dataset(str(data), target="Species", drop=["Individual ID"])
    assert "Individual ID" not in dataset.feature_names and "Date Egg" in dataset.feature_names
    spec = dataset.preprocessor.to_dict()
    [date] = [item for item in spec["numeric"] if item["name"] == "Date Egg"]
    # Days since 1970-01-01: November 2007 to November 2009.
    assert date["date"] is True and 13_800 < date["mean"] < 14_600
    assert dataset.reference["drop"] == ["Individual ID"]
    assert dataset.fingerprint != load_dataset(str(data), target="Species",
                                               drop=["Individual ID", "Comments"]).fingerprint
    bad = tmp_path / "bad-date.csv"
    bad.write_text(data.read_text().replace("2008-11-02", "2008-02-30", 1))
    with pytest.raises(DataError, match=r"column 'Date Egg' holds ISO dates, but '2008-02-30' is no real "
                                        r"date; correct it, or leave the column out with --drop"):
        load_dataset(str(bad), target="Species", drop=["Individual ID"])


@pytest.mark.slow
def test_species_search_retrain_and_predict_species_names(cli, tmp_path: Path, db_url: str) -> None:
    data = write_penguins(tmp_path / "penguins-raw.csv")
    space = write_space(tmp_path, SPACE)
    run = cli("run", space, "--data", data, "--target", "Species", "--drop", "Individual ID", "--trials", "2",
              "--study", "penguins", "--quiet", "--in-process", "--pruner", "none")
    assert run.code == 0, run.err
    assert "penguins-raw.csv: 150 rows, 15 features (24 after encoding), multiclass (3 classes)" in run.out
    states = query(tmp_path / "hp.db", "SELECT state FROM hp_trials ORDER BY number")
    assert [s for (s,) in states] == ["COMPLETE", "COMPLETE"]

    retrained = cli("retrain", "penguins", "--epochs", "3", "--quiet")
    assert retrained.code == 0, retrained.err
    [model] = (tmp_path / "models" / "penguins").glob("*/model.keras")

    # New rows as they come: without the id column, and with it; dates given as ISO text.
    rows = pd.read_csv(data).drop(columns=["Species"]).iloc[::10]
    rows.drop(columns=["Individual ID"]).to_csv(tmp_path / "new.csv", index=False)
    predicted = cli("predict", model, tmp_path / "new.csv")
    assert predicted.code == 0, predicted.err
    frame = pd.read_csv(io.StringIO(predicted.out))
    assert len(frame) == 15 and set(frame["prediction"]) <= set(SPECIES)
    rows.to_csv(tmp_path / "with-id.csv", index=False)
    again = pd.read_csv(io.StringIO(cli("predict", model, tmp_path / "with-id.csv").out))
    assert list(again["prediction"]) == list(frame["prediction"])
    card = json.loads((model.parent / "model.json").read_text())
    assert card["data"]["reference"]["drop"] == ["Individual ID"]
    assert {i["column"]: i["type"] for i in card["input"]["inputs"]}["Date Egg"] == "date"


def test_body_mass_regression_leaves_unlabelled_rows_out(cli, tmp_path: Path) -> None:
    data = write_penguins(tmp_path / "penguins-raw.csv")
    space = write_space(tmp_path, SPACE.replace("val_accuracy", "val_mae"))
    run = cli("run", space, "--data", data, "--target", "Body Mass (g)", "--drop", "Individual ID,Comments",
              "--trials", "2", "--study", "mass", "--quiet", "--in-process", "--pruner", "none")
    assert run.code == 0, run.err
    note = f"note: {data}: left out 2 rows whose target 'Body Mass (g)' is missing; 148 rows remain"
    assert note in run.out
    assert "148 rows, 14 features (23 after encoding), regression" in run.out
    values = query(tmp_path / "hp.db", "SELECT value FROM hp_trials WHERE state = 'COMPLETE'")
    assert len(values) == 2 and all(np.isfinite(v) for (v,) in values)


def test_the_drop_advice_stays_one_short_line_whatever_the_column_is_called(tmp_path: Path) -> None:
    long_name = "a" * 5000
    path = tmp_path / "data.csv"
    pd.DataFrame({long_name: [None] * 6, "x\ny": [None] * 6, "f": range(6), "y": [0, 1] * 3}).to_csv(
        path, index=False)
    with pytest.raises(DataError) as refused:
        load_dataset(str(path), target="y", drop=["x\ny"])
    message = str(refused.value)
    assert "\n" not in message and len(message) < 400 + len(str(path)), message[:500]
    assert "--drop and the column's name" in message
    with pytest.raises(DataError) as refused:
        load_dataset(str(path), target="y", drop=[long_name])
    assert "--drop $'x\\ny' (drop=['x\\ny'] in Python)" in str(refused.value)
