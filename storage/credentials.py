"""Keeping storage passwords out of messages, logs and responses.

A password can reach text in many spellings: raw (a driver's error, a ``repr``), as the user typed it
in the URL, re-quoted by SQLAlchemy (which only escapes ``@:/%``), by ``urllib.parse.quote`` or
``quote_plus``, with lower- or upper-case hex, or partly encoded. Comparing against a list of known
spellings always misses one, so each password becomes one pattern in which every character may appear
as itself or as any percent-encoding of its UTF-8 bytes (``%`` itself possibly encoded once more);
on top of that, the userinfo of any ``scheme://user:password@`` in the text and any ``password=...``
pair is masked whether or not its URL was given.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from urllib.parse import unquote, unquote_plus

MASK = "***"
#: Secrets shorter than this are masked where they stand alone, not inside words.
_SHORT = 4

#: ``scheme://user:password@`` anywhere in text. The password runs to the last ``@`` before
#: whitespace, a quote, ``?`` or ``#``, so a raw ``@`` inside it (a URL typed unencoded) is still covered.
_URL_USERINFO = re.compile(
    r"(?P<head>\b[A-Za-z][A-Za-z0-9+.\-]*://[^\s:/@'\"<>]*:)(?P<password>[^\s'\"<>?#]*)(?P<tail>@)"
)
#: libpq DSNs (``password=secret``) and URL query parameters (``?password=secret``).
_KEY_VALUE = re.compile(
    r"(?P<head>\b(?:password|passwd|pwd)\s*=\s*)(?P<password>'[^']*'|\"[^\"]*\"|[^\s&;,'\"]+)",
    re.IGNORECASE,
)
#: Where a URL's own userinfo sits: ``scheme://`` then up to an ``@`` (first or last, see below).
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*://")


def _literal_passwords(url: str) -> set[str]:
    """The password exactly as spelt in ``url``: between ``user:`` and an ``@``.

    SQLAlchemy ends the password at the first ``@``; a user who left an ``@`` unencoded meant the
    last one. Both readings are masked, so neither parser's idea of the secret can leak.
    """
    scheme = _SCHEME.match(url)
    if not scheme:
        return set()
    rest = url[scheme.end():]
    # A "@" in the query or fragment is not the userinfo's end; a raw "/" may be part of a password.
    cut = min((i for i in (rest.find("?"), rest.find("#")) if i >= 0), default=len(rest))
    authority = rest[:cut]
    found = set()
    for index in (authority.rfind("@"), authority.find("@")):
        if index < 0:
            continue
        user, colon, password = authority[:index].partition(":")
        # A user name never holds "/": "sqlite:////home/a:b@c/x.db" is a path, not credentials.
        if colon and "/" not in user:
            found.add(password)
    return {literal for literal in found if literal}


def _passwords(url: str) -> set[str]:
    """Every raw and literal form of the password of ``url`` (empty when it has none)."""
    literals = _literal_passwords(url)
    secrets = set(literals)
    for literal in literals:
        secrets.add(unquote(literal))  # SQLAlchemy's reading
        secrets.add(unquote_plus(literal))  # a form parser's reading ("+" as space)
    try:
        from sqlalchemy.engine import make_url

        password = make_url(url).password
    except Exception:  # an unparseable URL still has its literal forms masked above
        password = None
    if password:
        secrets.add(str(password))
    return {secret for secret in secrets if secret}


def _char_pattern(char: str) -> str:
    """A regex for one character of a password: itself, or any percent-encoding of its bytes."""
    encoded = "".join(
        "%(?:25)?" + "".join(f"[{d.lower()}{d.upper()}]" if d.isalpha() else d for d in f"{byte:02X}")
        for byte in char.encode("utf-8")
    )
    options = [re.escape(char), encoded]
    if char == " ":
        options.append(r"\+")
    return "(?:" + "|".join(options) + ")"


def _password_pattern(secret: str) -> str:
    return "".join(_char_pattern(char) for char in secret)


def _compile(urls: Iterable[str]) -> re.Pattern[str] | None:
    secrets: set[str] = set()
    for url in urls:
        if url:
            secrets |= _passwords(str(url))
    if not secrets:
        return None
    # Longer secrets first: at one position the alternation takes the first that matches, and a
    # shorter secret that is a prefix of a longer one would leave the longer one's tail in the text.
    alternatives = []
    for secret in sorted(secrets, key=len, reverse=True):
        one = f"(?:{re.escape(secret)}|{_password_pattern(secret)})"
        if len(secret) < _SHORT:
            # Masked where it stands alone only: "p" masked inside every word would garble the message
            # while a URL's userinfo is masked by _URL_USERINFO anyway.
            one = f"(?<![A-Za-z0-9]){one}(?![A-Za-z0-9])"
        alternatives.append(one)
    return re.compile("|".join(alternatives))


def mask_credentials(text: str, *urls: str) -> str:
    """Replace by ``***`` every password in ``text``: those of ``urls`` in any spelling, and any other.

    For each given URL its password is masked raw, as written in the URL, and percent-encoded any way
    (``quote``, ``quote_plus``, lower- or upper-case hex, partly encoded), whatever the driver in the
    URL's scheme. Independently of ``urls``, the password of any ``scheme://user:password@`` URL and any
    ``password=...`` pair found in ``text`` are masked too. Text without credentials is returned as is.
    """
    return masker(*urls)(text)


def mask_url(url: str) -> str:
    """``url`` as it may be shown, logged or stored: as the user wrote it, the password as ``***``."""
    return mask_credentials(url, url)


def masker(*urls: str) -> Callable[[str], str]:
    """A function ``text -> text`` that masks like :func:`mask_credentials` with these URLs.

    The pattern is compiled once, for a log filter or a response hook that masks many texts.
    """
    pattern = _compile(urls)

    def mask(text: str) -> str:
        if not text:
            return text
        if pattern is not None:
            text = pattern.sub(MASK, text)
        text = _URL_USERINFO.sub(lambda m: f"{m['head']}{MASK}{m['tail']}", text)
        return _KEY_VALUE.sub(lambda m: f"{m['head']}{MASK}", text)

    return mask
