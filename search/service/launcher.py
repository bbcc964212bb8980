"""Launching, stopping and resuming studies from the server, as child ``hpsearch`` processes.

A launch runs ``hpsearch run ...`` (a resume ``hpsearch resume ...``) in its own session, so the study is
supervised by the very code a terminal user gets, outlives the HTTP request, and is not hit by a Ctrl-C
meant for the server. The storage URL reaches the child through ``HPSEARCH_STORAGE``, never its command
line, where any local user could read a password. Stopping sends SIGINT, which the CLI treats as Ctrl-C:
the trial in flight is recorded as FAILED (interrupted) and the study can be resumed.

Input is checked here where the check needs no library: every field by its own rule
(:mod:`hpsearch.service.launch_fields`, which also writes the child's argument list so a value never reads
as an option), and data and preset files confined to ``--data-dir``. The rest (space, data content) is
checked by the child before it creates the study, and its one-sentence message comes back as the HTTP
error.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from hpsearch.storage import Storage, StudyNotFoundError, StudyRecord, TrialState

from ..errors import HpsearchError, InputError, UsageError
from .launch_fields import (
    STUDY_NAME,
    LaunchRequest,
    RequestError,
    ResumeRequest,
    resume_arguments,
    run_arguments,
)

#: Seconds a stopped child gets to record its interrupted trial: the supervisor's own grace for its
#: workers (30 s) plus its exit.
STOP_GRACE_S = 40.0
#: Seconds a launch waits for the child to create its study (or refuse its input) before answering
#: anyway: loading a large CSV may take that long, and the child keeps going either way.
CREATE_WAIT_S = 120.0
_POLL_S = 0.1
#: A RUNNING trial on another machine whose heartbeat is older than this is not taken as a live run.
_REMOTE_STALE = timedelta(minutes=5)


class StudyBusyError(InputError):
    """The study is running (or being launched) already, or is not running when asked to stop: 409."""


class LaunchFailedError(HpsearchError):
    """The child process failed at run time before the study started (for example, storage errors)."""


@dataclass
class Launch:
    """One child ``hpsearch`` process this server started for a study."""

    study: str
    action: str  # "run" | "resume"
    process: subprocess.Popen[bytes]
    log_path: Path
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    stop_requested: bool = False

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def output(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""

    def error_line(self) -> str | None:
        """The child's one-sentence error (``error: ...``), or argparse's usage error."""
        for line in reversed(self.output().splitlines()):
            line = line.strip()
            for prefix in ("error: ", "hpsearch run: error: ", "hpsearch resume: error: "):
                if line.startswith(prefix):
                    return line.removeprefix(prefix)
        return None


class Launcher:
    """Starts and tracks the child processes of one server; thread-safe (handlers run in a pool)."""

    def __init__(
        self,
        storage: Storage,
        *,
        data_dir: Path | None,
        mask: Callable[[str], str],
        workdir: Path | None = None,
    ) -> None:
        self.storage = storage
        self.data_dir = data_dir.resolve() if data_dir is not None else None
        self._mask = mask
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="hpsearch-serve-"))
        self._launches: dict[str, Launch] = {}
        self._reserved: set[str] = set()
        self._lock = threading.Lock()

    # -- queries ----------------------------------------------------------------------------------

    def status(self, study: StudyRecord, running_trials: int | None = None) -> dict[str, Any]:
        """Whether the study is running, and who runs it: this server's child, or another process.

        ``running_trials`` (from a summary already read) spares a query when it is 0.
        """
        launch = self._launches.get(study.name)
        if launch is not None and launch.alive:
            return {"running": True, "launched_here": True, "action": launch.action,
                    "pid": launch.process.pid, "started_at": launch.started_at.isoformat(),
                    "stopping": launch.stop_requested}
        state: dict[str, Any] = {"running": False, "launched_here": False}
        if launch is not None:
            code = launch.process.returncode
            state.update(last_launch={"action": launch.action, "exit_code": code,
                                      "started_at": launch.started_at.isoformat(),
                                      "error": self._error_of(launch, code)})
        if running_trials != 0:
            live = self.live_workers(study)
            if live:
                state.update(running=True, workers=live)
        return state

    def live_workers(self, study: StudyRecord) -> list[str]:
        """Workers (host:pid) of RUNNING trials that are alive: a run started by another process."""
        from ..recovery import worker_is_alive

        now = datetime.now(UTC)
        live = []
        for trial in self.storage.running_trials(study.id):
            alive = worker_is_alive(trial)
            if alive is None:  # another machine: its heartbeat is all we can see
                alive = now - (trial.heartbeat_at or trial.started_at) < _REMOTE_STALE
            if alive:
                live.append(trial.worker)
        return live

    def running(self, name: str) -> bool:
        launch = self._launches.get(name)
        return launch is not None and launch.alive

    # -- launch -----------------------------------------------------------------------------------

    def launch(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """Start a new study as ``hpsearch run``; returns once the child created it (or refused).

        Every field is checked (:class:`~hpsearch.service.launch_fields.LaunchRequest`) and reaches the child
        as a value, never as an option.
        """
        request = LaunchRequest.parse(body)
        from ..engines.registry import get_engine

        engine = get_engine(request.engine or "optuna")
        if request.algorithm is not None and request.algorithm not in engine.algorithms:
            raise RequestError(f"algorithm must be one of {', '.join(engine.algorithms)} for engine "
                               f"'{engine.name}', but got {request.algorithm!r}")
        name = request.study
        if name is None:
            from ..study import default_study_name

            algorithm = engine.resolve_algorithm(request.algorithm)
            name = default_study_name(_data_label(request.data or "digits"), engine.name, algorithm)
        if not STUDY_NAME.fullmatch(name):
            raise RequestError(f"study must be 1-128 letters, digits, '.', '_' or '-' starting with a "
                               f"letter or digit, but got {name!r}")
        data = self.resolve_data(request.data or "digits")
        space = self._space_argument(request, name)
        args = run_arguments(request, study=name, space=space, data=data)
        with self._reserve(name):
            if self._study_exists(name):
                from hpsearch.storage import StudyExistsError

                raise StudyExistsError(name, self.storage.location.shown)
            launch = self._spawn(name, "run", args)
            self._wait_until(launch, lambda: self._study_exists(name), CREATE_WAIT_S)
        return self._launched(launch)

    def resume(self, name: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """Continue a stopped study as ``hpsearch resume``; returns once the child started resuming."""
        request = ResumeRequest.parse(body)
        study = self.storage.get_study(name)  # 404 for an unknown study
        # A study made by the CLI may have any name; after "--" even one starting with "-" is a value.
        args = resume_arguments(request, study.name)
        with self._reserve(name):
            self._refuse_external(study, "resume")
            launch = self._spawn(name, "resume", args)
            self._wait_until(launch, lambda: "resuming study" in launch.output(), CREATE_WAIT_S)
        return self._launched(launch)

    def stop(self, name: str, wait_s: float = STOP_GRACE_S) -> dict[str, Any]:
        """Interrupt the study's child as Ctrl-C would, and wait until it has recorded that."""
        study = self.storage.get_study(name)
        launch = self._launches.get(name)
        if launch is None or not launch.alive:
            self._refuse_external(study, "stop")
            raise StudyBusyError(f"study '{name}' is not running")
        launch.stop_requested = True
        launch.process.send_signal(signal.SIGINT)
        try:
            code = launch.process.wait(timeout=wait_s)
        except subprocess.TimeoutExpired:
            return {"study": name, "stopped": False, "stopping": True, "pid": launch.process.pid}
        interrupted = [
            trial.number
            for trial in self.storage.list_trials(study.id, states=[TrialState.FAILED])
            if trial.interrupted and trial.ended_at is not None and trial.ended_at >= launch.started_at
        ]
        return {"study": name, "stopped": True, "exit_code": code, "interrupted_trials": interrupted,
                "resumable": True}

    def shutdown(self, grace_s: float = STOP_GRACE_S) -> list[str]:
        """Interrupt every live child (their trials stay resumable) and wait for them; returns names."""
        live = [launch for launch in self._launches.values() if launch.alive]
        for launch in live:
            launch.stop_requested = True
            launch.process.send_signal(signal.SIGINT)
        deadline = time.monotonic() + grace_s
        for launch in live:
            try:
                launch.process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                # Its supervisor did not finish in time; SIGTERM is Ctrl-C again for the CLI.
                launch.process.terminate()
                try:
                    launch.process.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    launch.process.kill()
                    launch.process.wait()
        return [launch.study for launch in live]

    # -- inputs -----------------------------------------------------------------------------------

    def resolve_data(self, data: str) -> str:
        """A bundled dataset name, or the absolute path of a file confined to ``--data-dir``.

        Raises:
            RequestError: neither; the message never says whether a path outside ``--data-dir`` exists.
        """
        from ..data import BUILTIN_DATASETS, BUNDLED_CSVS

        bundled_names = (*BUILTIN_DATASETS, *BUNDLED_CSVS)
        if data in bundled_names:
            return data
        bundled = ", ".join(bundled_names)
        if self.data_dir is None:
            raise RequestError(f"data must be a bundled dataset ({bundled}); files are accepted only from "
                               f"the server's --data-dir, which it was not given (got {data!r})")
        if Path(data).is_absolute():
            raise RequestError(f"data must be a bundled dataset ({bundled}) or a path relative to the "
                               f"server's --data-dir, but got the absolute path {data!r}")
        path = self._confined(data)
        if path is None:
            raise RequestError(f"data {data!r} is outside the server's --data-dir; give a path relative to "
                               "it, inside it")
        if not path.is_file():
            raise RequestError(f"data {data!r} is neither a bundled dataset ({bundled}) nor a file under "
                               "the server's --data-dir")
        return str(path)

    def resolve_preset(self, preset: str) -> str:
        """A bundled preset's name, or the absolute path of a space file confined to ``--data-dir``.

        Raises:
            RequestError: neither; a file's content is never quoted, and a path outside ``--data-dir``
                gets the same answer whether or not it exists.
        """
        from hpsearch.spaces import list_presets

        presets = list_presets()
        if preset in presets:
            return preset
        refusal = RequestError(
            f"preset {preset!r} is not a bundled preset ({', '.join(presets)})"
            + (" nor a .yaml, .yml or .json file under the server's --data-dir" if self.data_dir else
               "; space files are accepted only from the server's --data-dir, which it was not given"))
        if self.data_dir is None:
            raise refusal
        path = self._confined(preset)
        if path is None or path.suffix.lower() not in (".yaml", ".yml", ".json") or not path.is_file():
            raise refusal
        return str(path)

    def _confined(self, relative: str) -> Path | None:
        """``--data-dir``/``relative`` resolved (symbolic links included), or None when it leaves it."""
        assert self.data_dir is not None
        if Path(relative).is_absolute():
            return None
        try:
            path = (self.data_dir / relative).resolve()
        except (OSError, RuntimeError, ValueError):  # a symlink loop, a name too long: not a usable file
            return None
        return path if path.is_relative_to(self.data_dir) else None

    def data_files(self) -> list[str]:
        """Files a launch may name as data: .csv and .npz under ``--data-dir``, relative to it."""
        if self.data_dir is None or not self.data_dir.is_dir():
            return []
        files = []
        for path in sorted(self.data_dir.rglob("*")):
            if path.suffix.lower() in (".csv", ".npz") and path.is_file():
                resolved = path.resolve()
                if resolved.is_relative_to(self.data_dir):
                    files.append(str(path.relative_to(self.data_dir)))
        return files

    def _space_argument(self, request: LaunchRequest, name: str) -> str:
        if request.space is None:
            return self.resolve_preset(request.preset or "default")
        spaces = self.workdir / "spaces"
        spaces.mkdir(parents=True, exist_ok=True)
        # YAML is a superset of JSON, so one suffix reads both.
        path = spaces / f"{_file_name(name)}.yaml"
        path.write_text(request.space, encoding="utf-8")
        return str(path)

    # -- processes --------------------------------------------------------------------------------

    def _spawn(self, name: str, action: str, args: list[str]) -> Launch:
        logs = self.workdir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        log_path = logs / f"{_file_name(name)}-{action}-{time.strftime('%Y%m%d-%H%M%S')}.log"
        env = {**os.environ, "HPSEARCH_STORAGE": self.storage.url, "PYTHONUNBUFFERED": "1",
               "PYTHONPATH": _pythonpath()}
        env.pop("HPSEARCH_TOKEN", None)  # the child serves nothing; it has no use for the token
        with open(log_path, "wb") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "hpsearch.cli", *args], stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT, env=env,
                # Own session: a Ctrl-C in the server's terminal is the server's; it stops children
                # itself, in order, on the way out.
                start_new_session=True,
            )
        launch = Launch(name, action, process, log_path)
        self._launches[name] = launch
        return launch

    def _wait_until(self, launch: Launch, ready: Callable[[], bool], timeout_s: float) -> None:
        """Wait for ``ready`` or the child's exit; a child that exits first refused its input."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if launch.process.poll() is not None:
                break
            if ready():
                return
            time.sleep(_POLL_S)
        code = launch.process.poll()
        if code is None or code == 0:
            return  # still going (slow data) or already done (nothing left to do): both are launched
        message = self._error_of(launch, code) or f"hpsearch {launch.action} exited with code {code}"
        if "already exists" in message:  # another process created the name between check and run
            raise StudyBusyError(message)
        if code == 2:
            raise UsageError(message)
        raise LaunchFailedError(message)

    def _error_of(self, launch: Launch, code: int | None) -> str | None:
        if code in (None, 0):
            return None
        line = launch.error_line()
        if line is None and code == 130:
            return "interrupted; completed trials are saved"
        if line is None:
            return None
        # A space sent as text lives in our work directory: name it as the request did.
        return self._mask(line.replace(str(self.workdir / "spaces") + os.sep, "space "))

    def _launched(self, launch: Launch) -> dict[str, Any]:
        return {"study": launch.study, "action": launch.action, "running": launch.alive,
                "pid": launch.process.pid, "exit_code": launch.process.returncode,
                "started_at": launch.started_at.isoformat()}

    def _study_exists(self, name: str) -> bool:
        try:
            self.storage.get_study(name)
        except StudyNotFoundError:
            return False
        return True

    def _refuse_external(self, study: StudyRecord, what: str) -> None:
        live = self.live_workers(study)
        if live:
            raise StudyBusyError(
                f"study '{study.name}' is running in another process (worker {', '.join(live)}); "
                f"cannot {what} it from this server" + ("; stop it there first" if what == "resume" else "")
            )

    class _Reservation:
        def __init__(self, launcher: Launcher, name: str) -> None:
            self.launcher, self.name = launcher, name

        def __enter__(self) -> None:
            launcher = self.launcher
            with launcher._lock:
                if self.name in launcher._reserved or launcher.running(self.name):
                    raise StudyBusyError(f"study '{self.name}' is already running from this server")
                launcher._reserved.add(self.name)

        def __exit__(self, *exc_info: object) -> None:
            with self.launcher._lock:
                self.launcher._reserved.discard(self.name)

    def _reserve(self, name: str) -> Launcher._Reservation:
        """Hold the name while a launch or resume starts: two requests at once start one child."""
        return Launcher._Reservation(self, name)


def _file_name(name: str) -> str:
    """A study name as one safe file name: a CLI-made study may be named ``../x`` or ``a/b``."""
    import hashlib

    slug = re.sub(r"[^A-Za-z0-9._-]", "_", name)[:80].lstrip(".") or "study"
    if slug == name:
        return slug
    return f"{slug}-{hashlib.sha256(name.encode('utf-8', 'surrogatepass')).hexdigest()[:10]}"


def _data_label(data: str) -> str:
    """The data part of a default study name: a file's stem, so the name keeps to the pattern."""
    stem = Path(data).stem
    return re.sub(r"[^A-Za-z0-9._-]", "_", stem).lstrip("._-") or "data"


def _pythonpath() -> str:
    """Children import this very checkout, also when it is not installed (tests, scripts)."""
    root = str(Path(__file__).resolve().parents[2])
    existing = os.environ.get("PYTHONPATH")
    return root if not existing else f"{root}{os.pathsep}{existing}"
