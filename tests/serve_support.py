"""Helpers of the ``hpsearch serve`` tests: a real server in a subprocess, and a store with studies of
every engine written through the storage API (what the recorder writes), so pages can be checked
against known values without training."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.conftest import TINY_SPACE, hpsearch_command

SPACE_DICT = {
    "task": "auto", "objective": "val_accuracy",
    "params": {"n_neurons": {"type": "int", "low": 4, "high": 16},
               "learning_rate": {"type": "float", "low": 0.001, "high": 0.03, "log": True},
               "activation": {"type": "categorical", "choices": ["relu", "tanh"]}},
    "fixed": {"n_hidden": 1, "epochs": 3, "batch_size": 64},
}
#: Studies ``populate`` writes: engine, algorithm, settings, and per trial (value or None for a failed
#: trial, epochs). Best values are known: 0.9 (optuna), 0.8667 (sklearn), 0.8333 (keras-tuner).
FAKE_STUDIES = {
    "iris-optuna": ("optuna", "tpe", {}, [0.6, 0.8, 0.7, 0.9, None, 0.85]),
    "iris-sklearn": ("sklearn", "grid", {"cv": 3}, [0.7333, 0.8667, 0.8]),
    "iris-keras-tuner": ("keras-tuner", "random", {}, [0.5, 0.8333, 0.7667, 0.8]),
}
SCREENSHOTS = Path("/tmp/serve-screenshots")


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


@dataclass
class Server:
    process: subprocess.Popen
    url: str
    log: Path

    def client(self, token: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=120)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 90) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            return self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError(f"the server did not stop within {timeout_s} s:\n{self.output()}") from None


@contextmanager
def running_server(
    tmp_path: Path, db_url: str, *args: str, host: str = "127.0.0.1", connect: str = "127.0.0.1",
    token: str | None = None, env: dict[str, str] | None = None,
) -> Iterator[Server]:
    """``hpsearch serve`` on a free port, as a user starts it; stopped with SIGTERM on the way out."""
    port = free_port()
    log = tmp_path / f"server-{port}.log"
    environment = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONUNBUFFERED": "1", **(env or {})}
    environment.pop("HPSEARCH_TOKEN", None)
    if env and "HPSEARCH_TOKEN" in env:
        environment["HPSEARCH_TOKEN"] = env["HPSEARCH_TOKEN"]
    command = hpsearch_command("serve", "--storage", db_url, "--host", host, "--port", str(port), *args)
    with open(log, "wb") as out:
        process = subprocess.Popen(command, cwd=tmp_path, env=environment, stdout=out,
                                   stderr=subprocess.STDOUT)
    server = Server(process, f"http://{connect}:{port}", log)
    try:
        wait_until_up(server, token)
        yield server
    finally:
        server.stop()


def wait_until_up(server: Server, token: str | None = None, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise AssertionError(f"the server exited with {server.process.returncode}:\n{server.output()}")
        try:
            if httpx.get(f"{server.url}/api/health", headers=headers, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"the server did not answer within {timeout_s} s:\n{server.output()}")


def wait_json(client: httpx.Client, path: str, condition, timeout_s: float = 180, interval_s: float = 0.5):
    """GET ``path`` until ``condition(json)`` holds; returns that json."""
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        response = client.get(path)
        assert response.status_code == 200, response.text
        last = response.json()
        if condition(last):
            return last
        time.sleep(interval_s)
    raise AssertionError(f"condition on {path} not met within {timeout_s} s; last answer: {last}")


def launch_body(study: str, *, engine: str = "optuna", algorithm: str = "random", trials: int = 4,
                **extra: object) -> dict:
    return {"study": study, "space": TINY_SPACE, "data": "iris", "engine": engine, "algorithm": algorithm,
            "trials": trials, **extra}


def populate(db_url: str, models_dir: Path) -> dict[str, int]:
    """Write ``FAKE_STUDIES`` (with curves) and one retrained model of the optuna study; returns the
    model's id."""
    from hpsearch.storage import TrialState, open_storage

    storage = open_storage(db_url)
    model_id = {}
    for name, (engine, algorithm, settings, values) in FAKE_STUDIES.items():
        study = storage.create_study(
            name, engine=engine, algorithm=algorithm, objective="val_accuracy", direction="maximize",
            space=SPACE_DICT,
            dataset={"kind": "builtin", "source": "iris", "fingerprint": "f" * 64,
                     "summary": "150 rows (90 train, 30 validation, 30 test), 4 features, 3 classes"},
            settings={"algorithm": algorithm, "seed": 0, "trials": len(values), **settings},
            versions={"python": "3.11"},
        )
        folds = settings.get("cv")
        for number, value in enumerate(values):
            params = {"n_neurons": 4 + 3 * number, "learning_rate": 0.001 * (2 + 3 * number),
                      "activation": ("relu", "tanh")[number % 2]}
            trial = storage.start_trial(study.id, params, worker="test-host:1")
            final = value if value is not None else 0.3
            for epoch in range(3):
                progress = (epoch + 1) / 3
                metrics = {"loss": 1.2 - 0.5 * progress, "val_loss": 1.1 - 0.4 * progress,
                           "accuracy": final * progress, "val_accuracy": final * (0.6 + 0.4 * progress)}
                if folds:
                    for fold in range(folds):
                        storage.record_epoch(trial.id, epoch, metrics, fold=fold)
                else:
                    storage.record_epoch(trial.id, epoch, metrics)
            if value is None:
                storage.finish_trial(trial.id, TrialState.FAILED, error="loss became NaN at epoch 2")
            else:
                storage.finish_trial(trial.id, TrialState.COMPLETE, value=value,
                                     metrics={"val_accuracy": value, "val_loss": 0.7})
        if engine == "optuna":
            directory = models_dir / name / "trial-3"
            directory.mkdir(parents=True)
            model_path = directory / "model.keras"
            model_path.write_bytes(b"PK\x03\x04 not a real model, only bytes to download")
            card = {"study": name, "trial": 3, "config": {"n_neurons": 13, "activation": "tanh"},
                    "test_metrics": {"accuracy": 0.9333, "loss": 0.21}, "sha256": "0" * 64}
            (directory / "model.json").write_text(json.dumps(card))
            model = storage.add_model(
                study.id, trial_number=3, path=str(model_path),
                sha256=hashlib.sha256(model_path.read_bytes()).hexdigest(),
                test_metrics={"accuracy": 0.9333, "loss": 0.21},
                settings={"card": str(directory / "model.json"), "best_epoch": 14,
                          "callbacks": {"patience": 20, "lr_factor": 0.5}},
                epochs_run=34, stop_reason="early stopping",
            )
            model_id[name] = model.id
    storage.close()
    return model_id


def save_screenshot(page, tmp_path: Path, name: str) -> Path:
    """Into the test's directory, and a copy into /tmp/serve-screenshots for people to look at."""
    path = tmp_path / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    (SCREENSHOTS / path.name).write_bytes(path.read_bytes())
    return path


def studies_named(rows: Sequence[dict]) -> dict[str, dict]:
    return {row["name"]: row for row in rows}
