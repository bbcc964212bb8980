"""The one error type of ``spaces``: a space file (or a config built from one) that cannot be used."""

from __future__ import annotations

from hpsearch.errors import InputError

#: The longest message a SpaceError prints; the longest real one (a list of accepted names) is shorter.
MAX_MESSAGE_CHARS = 2000


class SpaceError(InputError):
    """A search space, a value in it, or a config derived from it is invalid.

    The message is one sentence naming the file (the space's ``source``), the parameter or field, and
    what must hold. Code deep in the validation often does not know which file it is reading, so the
    error carries ``source`` and ``param`` separately and the loader fills ``source`` in on the way
    out (``with_source``); ``str(error)`` assembles the sentence. Bad input: an
    :class:`hpsearch.errors.InputError` (a ``ValueError``, exit code 2).
    """

    def __init__(self, detail: str, *, param: str | None = None, source: str | None = None,
                 label: str = "parameter") -> None:
        self.detail = detail
        self.param = param
        self.source = source
        self.label = label
        super().__init__(self._message())

    def _message(self) -> str:
        parts = []
        if self.source:
            parts.append(self.source)
        if self.param is not None:
            parts.append(f"{self.label} '{str(self.param)[:80]}'")
        parts.append(self.detail)
        # A safety net under the short quoting of values (hpsearch.spaces.limits.quoted): whatever a message
        # quotes, it stays one line of bounded length.
        message = " ".join(": ".join(parts).splitlines())
        return message if len(message) <= MAX_MESSAGE_CHARS else message[: MAX_MESSAGE_CHARS - 3] + "..."

    def with_source(self, source: str) -> SpaceError:
        """The same error, attributed to ``source`` unless it already names a file."""
        if self.source:
            return self
        return SpaceError(self.detail, param=self.param, source=source, label=self.label)

    def __str__(self) -> str:
        return self._message()
