"""Epochs streamed from ``--jobs`` fold processes to the trial's process as they end.

A fold process never opens the database: it sends each epoch, as it ends, over its own connection to
this process (``EpochStream.address``), and the trial's thread hands them to the trial's ``Attempt`` (the
one sink), so a running candidate's curves grow epoch by epoch as they did when the processes wrote
them. One connection per fold process: a process killed mid-message only cuts its own connection (its
reader sees the end of it), never another's, and nothing here waits on a dead process.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Iterable
from typing import Any

#: Seconds a trial waits for a finished fold's last epochs, already sent, to be read off its connection.
_ARRIVAL_S = 30.0


class EpochStream:
    """The receiving end: a listener the fold processes connect to, and the epochs they sent, by trial."""

    def __init__(self) -> None:
        from multiprocessing.connection import Listener

        self.authkey = secrets.token_bytes(32)
        self._listener = Listener(family="AF_UNIX", authkey=self.authkey)
        self.address = self._listener.address
        #: (trial tag, fold) -> epochs received and not yet taken; and how many were taken so far.
        self._inbox: dict[tuple[int, int], list[tuple[int, dict[str, float]]]] = {}
        self._taken: dict[tuple[int, int], int] = {}
        self._arrived = threading.Condition()
        threading.Thread(target=self._accept, name="hpsearch-fold-epochs", daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                connection = self._listener.accept()
            except (OSError, EOFError):
                return  # closed (or a process that died while connecting)
            except Exception:  # noqa: BLE001 - a failed handshake is that process's; keep accepting
                continue
            threading.Thread(target=self._read, args=(connection,), name="hpsearch-fold-epochs",
                             daemon=True).start()

    def _read(self, connection: Any) -> None:
        with connection:
            while True:
                try:
                    tag, fold, epoch, logs = connection.recv()
                except (EOFError, OSError):
                    return  # the fold process ended or died
                with self._arrived:
                    self._inbox.setdefault((tag, fold), []).append((epoch, logs))
                    self._arrived.notify_all()

    def take(self, tag: int, folds: Iterable[int]) -> dict[int, list[tuple[int, dict[str, float]]]]:
        """The epochs of trial ``tag``'s ``folds`` received since the last call, by fold, in order."""
        with self._arrived:
            taken = {fold: self._inbox.pop((tag, fold), []) for fold in folds}
            for fold, epochs in taken.items():
                self._taken[tag, fold] = self._taken.get((tag, fold), 0) + len(epochs)
        return {fold: epochs for fold, epochs in taken.items() if epochs}

    def wait_for(self, tag: int, fold: int, sent: int) -> None:
        """Wait until the ``sent`` epochs of a finished fold have been received (they are on their way:
        the process sent them before its result)."""
        with self._arrived:
            self._arrived.wait_for(
                lambda: self._taken.get((tag, fold), 0) + len(self._inbox.get((tag, fold), [])) >= sent,
                timeout=_ARRIVAL_S)

    def forget(self, tag: int) -> None:
        """Drop what is left of trial ``tag`` (it stopped; late epochs of its folds are not recorded)."""
        with self._arrived:
            for key in [key for key in [*self._inbox, *self._taken] if key[0] == tag]:
                self._inbox.pop(key, None)
                self._taken.pop(key, None)

    def close(self) -> None:
        """Stop accepting connections (the readers end with their processes)."""
        self._listener.close()


def epoch_sender(address: Any, authkey: bytes) -> Any:
    """In a fold process: the connection its epochs go back on (see ``EpochStream``)."""
    from multiprocessing.connection import Client

    return Client(address, family="AF_UNIX", authkey=authkey)
