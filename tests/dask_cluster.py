"""A real Dask cluster on loopback for tests: ``dask scheduler`` and ``dask worker`` subprocesses, as a user
starts them on their machines, killed when the test ends."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest


@dataclass
class Cluster:
    scheduler_file: Path
    client: Any
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)

    def training(self, prefix: str | tuple[str, ...]) -> tuple[str, str] | None:
        """(worker address, task key) of a task whose key starts with ``prefix`` and whose call stack on its
        worker is inside Keras' training loop (``Model.fit``), or None."""
        for address, tasks in self.client.call_stack().items():
            for key, stack in tasks.items():
                if str(key).startswith(prefix) and any("trainer.py" in str(frame) for frame in stack):
                    return address, str(key)
        return None

    def wait_until_training(self, prefix: str | tuple[str, ...], timeout_s: float = 180.0) -> tuple[str, str]:
        """(worker address, task key) of the first task found in Keras' training loop (see ``training``),
        polled every 50 ms; AssertionError after ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            found = self.training(prefix)
            if found is not None:
                return found
            time.sleep(0.05)
        raise AssertionError(f"no task {prefix!r} reached Keras' training loop within {timeout_s} s")

    def kill_worker(self, address: str) -> int:
        """SIGKILL the worker process at ``address`` (no nanny restarts it); returns its pid."""
        pid = self.client.run(os.getpid, workers=[address])[address]
        os.kill(pid, signal.SIGKILL)
        return pid


def _dask_command() -> str:
    command = Path(sys.executable).with_name("dask")
    if not command.exists():
        pytest.skip("the 'distributed' package is not installed (pip install -e '.[test]')")
    return str(command)


@contextlib.contextmanager
def dask_cluster(directory: Path, workers: int = 2) -> Iterator[Cluster]:
    """A scheduler on a free loopback port and ``workers`` single-threaded workers without nanny (a killed
    worker stays dead, as when its machine goes), each TensorFlow fit on one thread."""
    from distributed import Client

    dask = _dask_command()
    scheduler_file = directory / "scheduler.json"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "HPSEARCH_TF_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    processes: dict[str, subprocess.Popen] = {}
    logs = []

    def start(name: str, *args: str) -> None:
        log = open(directory / f"{name}.log", "w")  # noqa: SIM115 - closed below
        logs.append(log)
        processes[name] = subprocess.Popen([dask, *args], cwd=directory, env=env, stdout=log,
                                           stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                           start_new_session=True)

    client = None
    try:
        start("scheduler", "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
              "--scheduler-file", str(scheduler_file))
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(OSError, ValueError):
                if json.loads(scheduler_file.read_text()).get("address"):
                    break
            assert processes["scheduler"].poll() is None, (directory / "scheduler.log").read_text()
            assert time.monotonic() < deadline, "the Dask scheduler did not start"
            time.sleep(0.2)
        for index in range(workers):
            start(f"worker{index}", "worker", "--scheduler-file", str(scheduler_file), "--nthreads", "1",
                  "--nworkers", "1", "--no-nanny", "--host", "127.0.0.1", "--no-dashboard",
                  "--name", f"worker{index}", "--death-timeout", "60",
                  "--local-directory", str(directory / f"worker{index}-scratch"))
        client = Client(scheduler_file=str(scheduler_file), set_as_default=False, timeout=60)
        client.wait_for_workers(workers, timeout=120)
        yield Cluster(scheduler_file, client, processes)
    finally:
        if client is not None:
            client.close()
        for process in processes.values():  # our own processes only, by pid
            if process.poll() is None:
                process.kill()
            process.wait(timeout=30)
        for log in logs:
            log.close()
