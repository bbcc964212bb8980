"""Data given in memory (a DataFrame, arrays), kept in the store under the sha256 of its payload.

A study made from a DataFrame in a notebook must resume from the shell, in worker processes and on other
machines that share the database: the payload travels in the database itself, never as a file the user
sees. The store keeps bytes and their format only; encoding and decoding them is the data layer's part.
"""

from __future__ import annotations

import hashlib

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from .errors import StoredDataNotFoundError
from .store_base import StoreBase
from .tables import StoredDataRow, utcnow


def payload_key(payload: bytes) -> str:
    """The key a payload is stored under: its sha256, in hex."""
    return hashlib.sha256(payload).hexdigest()


class StoredData(StoreBase):
    """The stored-data methods of :class:`~hpsearch.storage.repository.Storage`."""

    def put_data(self, format: str, payload: bytes) -> str:
        """Keep ``payload`` in the store; storing the same bytes again (from any process) keeps one row.

        Args:
            format: how the payload is encoded (``csv.gz``, ``npz``), returned by ``get_data``.
            payload: the encoded data.

        Returns:
            The key to read it back with: the payload's sha256 in hex.

        Raises:
            StorageError: the database cannot be written.
        """
        key = payload_key(payload)
        with self._read() as session:
            if session.scalar(select(StoredDataRow.key).where(StoredDataRow.key == key)) is not None:
                return key
        try:
            with self._write() as session:
                session.add(StoredDataRow(key=key, format=format, payload=payload, created_at=utcnow()))
        except IntegrityError:
            pass  # another process stored the same bytes first: the row is there, which is all we need
        return key

    def get_data(self, key: str) -> tuple[str, bytes]:
        """The format and payload stored under ``key``.

        Raises:
            StoredDataNotFoundError: nothing is stored under ``key`` in this database.
            StorageError: the database cannot be read.
        """
        with self._read() as session:
            row = session.execute(
                select(StoredDataRow.format, StoredDataRow.payload).where(StoredDataRow.key == key)
            ).first()
        if row is None:
            raise StoredDataNotFoundError(
                f"{self._where} holds no stored data with key {key[:12]}...; the study's data was given in "
                "memory and kept in its database, so it must be opened from that database"
            )
        return str(row.format), bytes(row.payload)
