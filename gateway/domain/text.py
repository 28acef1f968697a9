"""Text as bank files carry it: NFC always, and the restricted Latin set for Latin-only partners.

A partner's charset policy is `utf8` (Vietnamese kept, in NFC) or `latin` (transliterated: `đ→d`,
`Đ→D`, every other letter stripped of its marks, then only the characters of the SWIFT/EPC
restricted set `a-z A-Z 0-9 / - ? : ( ) . , ' + space`). Lengths are counted after this.
"""

from __future__ import annotations

import re
import unicodedata
from enum import StrEnum
from functools import lru_cache

from gateway.errors import InvalidMessage


class Charset(StrEnum):
    """What a partner's files may contain."""

    UTF8 = "utf8"
    LATIN = "latin"


LATIN_SET = re.compile(r"[A-Za-z0-9/\-?:().,'+ ]*")
_NOT_LATIN = re.compile(r"[^A-Za-z0-9/\-?:().,'+ ]")
# Letters whose marks are not combining characters, and punctuation with a close Latin stand-in.
_SPECIAL = str.maketrans(
    {
        "đ": "d",
        "Đ": "D",
        "ð": "d",
        "Ð": "D",
        "ø": "o",
        "Ø": "O",
        "ł": "l",
        "Ł": "L",
        "ß": "ss",
        "æ": "ae",
        "Æ": "AE",
        "œ": "oe",
        "Œ": "OE",
        "&": "+",
        "_": "-",
        '"': "'",
        "‘": "'",
        "’": "'",
        "“": "'",
        "”": "'",
        "–": "-",
        "—": "-",
        ";": ",",
        "\t": " ",
        "\n": " ",
        "\r": " ",
    }
)


def nfc(text: str) -> str:
    """Text in Unicode NFC, the form every length check and every file uses."""
    return text if text.isascii() else unicodedata.normalize("NFC", text)


@lru_cache(maxsize=65536)
def to_latin(text: str) -> str:
    """Transliterate to the restricted Latin set: `đ→d`, marks stripped, others become `.`."""
    if text.isascii() and LATIN_SET.fullmatch(text):
        return text
    decomposed = unicodedata.normalize("NFD", text.translate(_SPECIAL))
    stripped = "".join(char for char in decomposed if not unicodedata.combining(char))
    return _NOT_LATIN.sub(".", unicodedata.normalize("NFC", stripped))


def fit(text: str, charset: Charset, where: str, max_length: int) -> str:
    """Text for a file field under a charset policy, refused when too long after normalisation."""
    value = to_latin(text) if charset is Charset.LATIN else nfc(text)
    if len(value) > max_length:
        policy = "transliteration" if charset is Charset.LATIN else "NFC"
        raise InvalidMessage(
            f"{where} is {len(value)} characters after {policy}; at most {max_length}"
        )
    return value


def check_identifier(value: str, where: str) -> str:
    """An ISO 20022 identifier: 1-35 characters of the restricted set, no outer spaces."""
    if not 1 <= len(value) <= 35:
        raise InvalidMessage(f"{where} {value!r} must be 1 to 35 characters, has {len(value)}")
    if not LATIN_SET.fullmatch(value) or value != value.strip():
        raise InvalidMessage(
            f"{where} {value!r} may only hold A-Z a-z 0-9 / - ? : ( ) . , ' + and inner spaces"
        )
    return value
