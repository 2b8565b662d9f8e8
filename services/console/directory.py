"""The console's search index: clients (by their case) and supporters, found by reference,
name, email or phone. Held in the console's memory only, never written anywhere, and built
from what the organisation's records say (``ReadDirectory``); docs/decisions/0030.

Terms are normalised (accents and case folded, phones to their digits) and kept sorted, so
each word searched for is a range found by bisection: a word matches the start of a name's
word, of a reference, of an email, or of any ending of a phone number (so "5551234" finds
"+64 21 555 1234"). A person matches when every word searched for matches one of their
terms. Pure: no I/O.
"""

from __future__ import annotations

import bisect
import re
import unicodedata
from typing import Literal

from contracts.views import DirectoryEntry

Person = Literal["client", "supporter"]
MatchedOn = Literal["reference", "name", "email", "phone"]
Who = tuple[Person, str]  # (person, their id)
MIN_PHONE_DIGITS = 4  # fewer digits than this are not searched as a phone number
_WORD = re.compile(r"[^\W_]+", re.UNICODE)


def folded(text: str) -> str:
    """Lower case, accents off: "Aroha Ngāti" and "aroha ngati" are one."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


def digits(text: str) -> str:
    return "".join(c for c in text if c.isdigit())


def _terms(entry: DirectoryEntry) -> list[tuple[str, MatchedOn]]:
    terms: list[tuple[str, MatchedOn]] = [(folded(entry.subject_id), "reference")]
    terms += [(word, "name") for word in _WORD.findall(folded(entry.display_name))]
    if entry.email:
        terms.append((folded(entry.email), "email"))
    if entry.phone:
        number = digits(entry.phone).lstrip("0")
        terms += [(number[i:], "phone") for i in range(len(number) - MIN_PHONE_DIGITS + 1)]
    return sorted(set(terms))


class SearchIndex:
    """Everyone the console may find in one organisation."""

    def __init__(self) -> None:
        self.entries: dict[Who, DirectoryEntry] = {}
        self._terms: list[tuple[str, MatchedOn, Person, str]] = []  # sorted

    def __len__(self) -> int:
        return len(self.entries)

    def put(self, entry: DirectoryEntry) -> None:
        who: Who = (entry.person, entry.subject_id)
        self.drop(who)
        self.entries[who] = entry
        for term, kind in _terms(entry):
            bisect.insort(self._terms, (term, kind, entry.person, entry.subject_id))

    def drop(self, who: Who) -> None:
        entry = self.entries.pop(who, None)
        if entry is None:
            return
        for term, kind in _terms(entry):
            row = (term, kind, *who)
            at = bisect.bisect_left(self._terms, row)
            if at < len(self._terms) and self._terms[at] == row:
                del self._terms[at]

    def search(self, query: str) -> dict[Who, MatchedOn]:
        """Who matches ``query``: a reference starting with it, or every word of it; with
        what the first word matched."""
        whole = folded(query.strip())
        found = self._starting_with(whole, ("reference",)) if whole else {}
        by_words: dict[Who, MatchedOn] | None = None
        for word, kinds in _query_words(query):
            matches = self._starting_with(word, kinds)
            if by_words is None:
                by_words = matches
            else:
                by_words = {who: kind for who, kind in by_words.items() if who in matches}
            if not by_words:
                break
        return {**(by_words or {}), **found}

    def _starting_with(self, word: str, kinds: tuple[MatchedOn, ...]) -> dict[Who, MatchedOn]:
        start = bisect.bisect_left(self._terms, (word,))
        end = bisect.bisect_left(self._terms, (word + "\U0010ffff",))
        matches: dict[Who, MatchedOn] = {}
        for _, kind, person, subject_id in self._terms[start:end]:
            if kind in kinds:
                matches.setdefault((person, subject_id), kind)
        return matches


_WORDS: tuple[MatchedOn, ...] = ("name", "reference", "email")


def _query_words(query: str) -> list[tuple[str, tuple[MatchedOn, ...]]]:
    """The words searched for, each with what it may match: an email is one word, a phone
    number its digits (without leading zeros, which an international form drops)."""
    query = query.strip()
    if "@" in query:
        return [(folded(query), ("email",))]
    number = digits(query)
    if len(number) >= MIN_PHONE_DIGITS and not re.search(r"[^\d\s+()\-.]", query):
        return [(number.lstrip("0"), ("phone",))]
    return [(word, _WORDS) for word in _WORD.findall(folded(query))]
