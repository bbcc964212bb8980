"""Filling a study with many trials fast, for the scale test and the store benchmark (plain sqlite3)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from hpsearch.storage import config_key, open_storage


def fill_study(path: Path, name: str, trials: int, epochs: int = 3) -> None:
    """A study of ``trials`` COMPLETE trials with ``epochs`` epochs each, written with executemany."""
    storage = open_storage(str(path))
    study = storage.create_study(name, engine="optuna", algorithm="tpe", objective="val_loss",
                                 direction="minimize", space={}, dataset={}, settings={}, versions={})
    storage.close()
    stamp = "2026-01-01 00:00:00.000000"
    rows = []
    for number in range(trials):
        params = {"n_neurons": number % 97, "learning_rate": 1e-3 * (1 + number % 13)}
        value = 1.0 + ((number * 7919) % 100003) / 100003
        rows.append((study.id, number, str(number), "COMPLETE", json.dumps(params), value,
                     json.dumps({"val_loss": value}), stamp, stamp, 1.5, epochs, 0, f"h:{number % 4}", stamp,
                     config_key(params | {"number": number})))
    connection = sqlite3.connect(path)
    with connection:
        connection.executemany(
            "INSERT INTO hp_trials (study_id, number, engine_trial_id, state, params, value, metrics, "
            "started_at, ended_at, duration_s, epochs_run, interrupted, worker, heartbeat_at, config_key) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
        ids = [row[0] for row in connection.execute(
            "SELECT id FROM hp_trials WHERE study_id = ? ORDER BY number", (study.id,))]
        connection.executemany(
            "INSERT INTO hp_trial_epochs (trial_id, epoch, metrics, recorded_at) VALUES (?, ?, ?, ?)",
            ((trial_id, epoch, json.dumps({"loss": 2.0 - epoch / 10, "val_loss": 2.1 - epoch / 10}), stamp)
             for trial_id in ids for epoch in range(epochs)))
    connection.close()
