"""Study names as users type them, and the file names and printed commands made from them.

A study name is stored as given (up to 512 characters in the database), but it also becomes a folder name
(``plots/<study>/``, ``models/<study>/``) and part of printed commands (``hpsearch resume <study>``). So:

- a *new* study's name must be non-empty, hold no control character (a newline would split a printed
  command or a log line in two) and be at most :data:`MAX_STUDY_NAME` characters;
- a folder name made from a study name is cut to :data:`MAX_SLUG_BYTES` bytes, with a short hash of the
  whole name appended when cut, so studies created before the length rule (or through the storage API)
  still plot and retrain, and two long names sharing a prefix get two folders;
- every value in a printed command is shell-quoted, so the line can be pasted into a shell as it is.
"""

from __future__ import annotations

import hashlib
import re
import shlex
import unicodedata
from collections.abc import Iterable
from pathlib import Path

from .errors import UsageError

#: The longest name a new study may have, in characters (documented in docs/concepts.md).
MAX_STUDY_NAME = 200
#: File systems allow 255 bytes per name; a folder made from a study name stays well below that, leaving
#: room for suffixes such as ``-2`` and for the files' own names.
MAX_SLUG_BYTES = 100
#: Hex digits of the whole name's sha256 appended to a cut folder name.
_HASH_DIGITS = 10


def check_study_name(name: str, *, flag: str = "--study", length: bool = True) -> str:
    """Refuse a study name that cannot be used, in one sentence naming ``flag``; return the name.

    Args:
        name: the name as given.
        flag: the option (or field) the name came from, for the message.
        length: also enforce :data:`MAX_STUDY_NAME` (for a study about to be created; an existing study
            keeps whatever name it has).

    Returns:
        ``name`` unchanged.

    Raises:
        UsageError: the name is empty or only whitespace, holds a control character (or a lone surrogate,
            which cannot be stored as UTF-8), or is longer than :data:`MAX_STUDY_NAME` when ``length``.
    """
    if not name.strip():
        raise UsageError(f"{flag} must name the study with at least one visible character, but got "
                         f"{name!r}")
    bad = next((char for char in name if unicodedata.category(char) in ("Cc", "Cs")), None)
    if bad is not None:
        raise UsageError(f"{flag} must not hold control characters such as newlines or tabs, but got "
                         f"{_shown(name)} (character {bad!r})")
    if length and len(name) > MAX_STUDY_NAME:
        raise UsageError(f"{flag} must be at most {MAX_STUDY_NAME} characters, but got a name of "
                         f"{len(name)} characters ({_shown(name)})")
    return name


def _shown(name: str, limit: int = 40) -> str:
    """A name for an error message: quoted, and cut so the message stays one short line."""
    return repr(name) if len(name) <= limit else f"{name[:limit]!r}..."


def file_name_for(text: str, *, max_bytes: int = MAX_SLUG_BYTES) -> str:
    """``text`` (a study name) as one path component that every common file system accepts.

    Characters other than letters, digits, ``.``, ``-`` and ``_`` become ``_`` (a study may be named
    ``a/b``). A result longer than ``max_bytes`` in UTF-8 is cut and ends with ``-`` and the first
    hex digits of the whole text's sha256, so it stays unique per name; shorter names map as they always
    did, so existing folders are found again.

    Args:
        text: the name to turn into a file name.
        max_bytes: the longest result, in UTF-8 bytes (at least 20).

    Returns:
        A non-empty file name without ``/``, not starting with ``.``.
    """
    slug = re.sub(r"[^\w.\-]+", "_", text).strip("._") or "study"
    if len(slug.encode("utf-8")) <= max_bytes:
        return slug
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:_HASH_DIGITS]
    keep = max_bytes - _HASH_DIGITS - 1
    cut = slug.encode("utf-8")[:keep].decode("utf-8", "ignore").rstrip("._-")
    return f"{cut or 'study'}-{digest}"


def unused_directory(wanted: Path, in_use: Iterable[str]) -> Path:
    """``wanted``, or ``wanted-2``, ``wanted-3``, ... : the first that holds none of the names ``in_use``.

    Args:
        wanted: the directory asked for.
        in_use: file or folder names whose presence means an earlier run's output lives there.

    Returns:
        A directory that does not hold any of those names (it may not exist yet); a suffixed candidate
        that exists as a file is skipped too.
    """
    names = tuple(in_use)

    def taken(directory: Path) -> bool:
        if not directory.exists():
            return False
        return not directory.is_dir() or any((directory / name).exists() for name in names)

    candidate, suffix = wanted, 2
    while taken(candidate):
        candidate, suffix = wanted.with_name(f"{wanted.name}-{suffix}"), suffix + 1
    return candidate


def command_line(*words: object) -> str:
    """A command as it can be pasted into a POSIX shell: every word quoted where it needs it.

    Args:
        words: the program and its arguments (converted with ``str``).

    Returns:
        The words joined by spaces, each passed through :func:`shlex.quote`.
    """
    return shlex.join(str(word) for word in words)
