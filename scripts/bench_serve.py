"""Does a busy ``hpsearch serve`` slow training? Twenty clients poll the API while a study trains.

Starts ``hpsearch serve`` on a throwaway SQLite file, reports how long it took to answer, then launches
the same study (same space, data, seed, so the same configurations) several times through the API,
alternately alone and with N polling clients, and compares the training time of the trials (the sum of
their durations: TensorFlow's start-up in each worker is not training). Rounds alternate so that a
change in the machine's load hits both modes alike. Every poll must answer 200.

    .venv/bin/python scripts/bench_serve.py --clients 20 --rounds 2 --trials 8
"""

from __future__ import annotations

import argparse
import http.client
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from scripts.bench_results import table, write_result  # noqa: E402

SPACE = """\
task: auto
objective: val_accuracy
params:
  n_neurons: {type: int, low: 16, high: 64}
  learning_rate: {type: float, low: 1.0e-3, high: 3.0e-2, log: true}
  activation: {type: categorical, choices: [relu, tanh]}
fixed:
  n_hidden: 2
  epochs: 8
  batch_size: 32
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Pollers:
    """N clients, each making one request per ``interval_s`` over what a study page reads."""

    def __init__(self, url: str, study: str, clients: int, interval_s: float) -> None:
        self.paths = ["/api/studies", f"/api/studies/{study}", f"/api/studies/{study}/trials?limit=25",
                      f"/api/studies/{study}/history", f"/api/studies/{study}/best?top=5&curves=true",
                      f"/api/compare?study={study}"]
        self.url, self.clients, self.interval_s = url, clients, interval_s
        self.stop = threading.Event()
        self.latencies: list[float] = []
        self.errors: list[str] = []
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(clients)]

    def _run(self, index: int) -> None:
        # http.client on a kept-alive connection: the load generator shares the machine's cores with
        # the training it measures, so it should cost as little CPU as a client can.
        host, port = self.url.removeprefix("http://").split(":")
        connection = http.client.HTTPConnection(host, int(port), timeout=30)
        turn = index
        while not self.stop.is_set():
            path = self.paths[turn % len(self.paths)]
            turn += 1
            started = time.perf_counter()
            try:
                connection.request("GET", path)
                response = connection.getresponse()
                body = response.read()
                ok = response.status == 200 or (response.status == 404 and "best" in path)
                problem = None if ok else f"{path}: {response.status} {body[:100]!r}"
            except (OSError, http.client.HTTPException) as error:
                problem = f"{path}: {error!r}"
                connection.close()
                connection = http.client.HTTPConnection(host, int(port), timeout=30)
            with self.lock:
                self.latencies.append(time.perf_counter() - started)
                if problem:
                    self.errors.append(problem)
            self.stop.wait(self.interval_s)
        connection.close()

    def __enter__(self) -> Pollers:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join()


def _cpu(pid: int) -> float:
    """CPU seconds a process has used (user and system), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_study(api: httpx.Client, name: str, trials: int, space: str, poll_url: str | None,
              clients: int, interval_s: float, server_pid: int) -> dict:
    launched = api.post("/api/studies", json={"study": name, "space": space, "data": "digits",
                                              "engine": "optuna", "algorithm": "random", "trials": trials,
                                              # No pruning: every round trains the same epochs.
                                              "pruner": "none", "seed": 7})
    launched.raise_for_status()
    started = time.monotonic()
    server_cpu, client_cpu = _cpu(server_pid), _cpu(os.getpid())
    pollers = Pollers(poll_url, name, clients, interval_s) if poll_url else None
    if pollers:
        pollers.__enter__()
    try:
        while api.get(f"/api/studies/{name}").json()["run"]["running"]:
            time.sleep(0.5)
    finally:
        if pollers:
            pollers.__exit__(None, None, None)
    wall = time.monotonic() - started
    server_cpu, client_cpu = _cpu(server_pid) - server_cpu, _cpu(os.getpid()) - client_cpu
    rows = api.get(f"/api/studies/{name}/trials").json()["trials"]
    complete = [row for row in rows if row["state"] == "COMPLETE"]
    finished = [row for row in rows if row["duration_s"] is not None]
    return {"name": name, "wall_s": wall, "train_s": sum(row["duration_s"] for row in finished),
            "complete": len(complete), "server_cpu_s": server_cpu, "client_cpu_s": client_cpu,
            "requests": len(pollers.latencies) if pollers else 0,
            "errors": pollers.errors if pollers else [], "latencies": pollers.latencies if pollers else []}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between one client's requests")
    parser.add_argument("--rounds", type=int, default=3, help="studies per mode, alternating")
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--no-result", action="store_true", help="print only; write no result file")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="bench-serve-"))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    hpsearch = Path(sys.executable).with_name("hpsearch")
    began = time.perf_counter()
    server = subprocess.Popen([str(hpsearch), "serve", "--storage", f"sqlite:///{workdir / 'bench.db'}",
                               "--port", str(port)], cwd=workdir, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    while True:
        try:
            if httpx.get(f"{url}/api/health", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.02)
    answered_s = time.perf_counter() - began
    print(f"server answered {answered_s:.2f} s after start (process start to first 200)")
    results: dict[str, list[dict]] = {"alone": [], "polled": []}
    try:
        with httpx.Client(base_url=url, timeout=120) as api:
            for round_ in range(args.rounds):
                for mode in ("alone", "polled") if round_ % 2 == 0 else ("polled", "alone"):
                    result = run_study(api, f"bench-{mode}-{round_}", args.trials, SPACE,
                                       url if mode == "polled" else None, args.clients, args.interval,
                                       server.pid)
                    results[mode].append(result)
                    extra = (f", {result['requests']} requests, {len(result['errors'])} errors"
                             if mode == "polled" else "")
                    extra += (f"; CPU: server {result['server_cpu_s']:.1f} s, "
                              f"this script {result['client_cpu_s']:.1f} s")
                    print(f"{result['name']}: {result['complete']} trials, training "
                          f"{result['train_s']:.1f} s, wall {result['wall_s']:.1f} s{extra}", flush=True)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=120)
        shutil.rmtree(workdir, ignore_errors=True)
    alone = statistics.median(r["train_s"] for r in results["alone"])
    polled = statistics.median(r["train_s"] for r in results["polled"])
    latencies = sorted(x for r in results["polled"] for x in r["latencies"])
    errors = [e for r in results["polled"] for e in r["errors"]]
    requests = len(latencies)
    seconds = sum(r["wall_s"] for r in results["polled"])
    print(f"\n{args.clients} clients, one request each per {args.interval:g} s: {requests} requests "
          f"({requests / seconds:.1f}/s), {len(errors)} errors")
    if latencies:
        print(f"latency p50 {1000 * latencies[len(latencies) // 2]:.1f} ms, "
              f"p95 {1000 * latencies[int(len(latencies) * 0.95)]:.1f} ms, max {1000 * latencies[-1]:.1f} ms")
    cpu = sum(r["server_cpu_s"] for r in results["polled"])
    print(f"server CPU while polled: {cpu:.1f} s over {seconds:.0f} s ({100 * cpu / seconds:.1f}% of one "
          f"core, {1000 * cpu / max(requests, 1):.2f} ms per request)")
    print(f"training time (median of {args.rounds}): alone {alone:.1f} s, polled {polled:.1f} s, "
          f"slowdown {100 * (polled / alone - 1):+.1f}%")
    # Rounds pair an alone and a polled study run back to back: their ratio is the least disturbed by
    # other load on the machine, which changes over minutes.
    pairs = [100 * (p["train_s"] / a["train_s"] - 1) for a, p in zip(results["alone"], results["polled"],
                                                                      strict=True)]
    print(f"per round, polled against alone: {', '.join(f'{x:+.1f}%' for x in pairs)}; "
          f"median {statistics.median(pairs):+.1f}%")
    for error in errors[:5]:
        print(f"  error: {error}")
    if not args.no_result:
        p50 = 1000 * latencies[len(latencies) // 2] if latencies else None
        p95 = 1000 * latencies[int(len(latencies) * 0.95)] if latencies else None
        slowdown = 100 * (polled / alone - 1)
        path = write_result(
            "serve", title="A busy hpsearch serve against training",
            summary=(f"With {args.clients} clients polling the API, the trials' training time changed by "
                     f"{statistics.median(pairs):+.1f}% (median of the rounds' paired ratios); the server "
                     f"answered {requests} requests with {len(errors)} errors, at a median latency of "
                     f"{p50 or 0:.0f} ms."),
            tables=[
                table(f"Training time of {args.trials} trials, alone and with {args.clients} polling clients",
                      ["round", "alone (s)", "polled (s)", "polled against alone (%)"],
                      [[number + 1, a["train_s"], p["train_s"], pair] for number, (a, p, pair) in
                       enumerate(zip(results["alone"], results["polled"], pairs, strict=True))]
                      + [["median of each column", alone, polled, statistics.median(pairs)]],
                      notes="Training time is the sum of the trials' durations (a worker's TensorFlow "
                            "start-up is not training); rounds alternate which mode runs first, and each "
                            "round's ratio compares two studies run back to back, the least disturbed by "
                            f"other load (the medians' own ratio: {slowdown:+.1f}%)."),
                table("The server under load",
                      ["measure", "value"],
                      [["seconds from process start to the first answer", answered_s],
                       ["requests answered", requests],
                       ["requests per second", requests / seconds if seconds else 0.0],
                       ["errors", len(errors)],
                       ["latency p50 (ms)", p50], ["latency p95 (ms)", p95],
                       ["latency max (ms)", 1000 * latencies[-1] if latencies else None],
                       ["server CPU while polled (% of one core)", 100 * cpu / seconds if seconds else 0.0],
                       ["server CPU per request (ms)", 1000 * cpu / max(requests, 1)]]),
            ],
            data={"clients": args.clients, "interval_s": args.interval, "rounds": args.rounds,
                  "trials": args.trials, "errors": errors[:20],
                  "rounds_data": {mode: [{k: v for k, v in r.items() if k != "latencies"} for r in rows]
                                  for mode, rows in results.items()}})
        print(f"wrote {path}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
