"""Choose which layer property identifies a tract and which one names it."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from typing import Any

from tractcast.errors import InvalidInput

# Lower rank wins; a property matching no keyword can still be the id if nothing better exists.
ID_KEYWORDS: dict[str, int] = {"geoid": 0, "fips": 0, "codice": 1, "code": 1, "cod": 1, "id": 2}
ID_KEYWORDS_LOOSE: dict[str, int] = {"key": 3}
NAME_KEYWORDS: dict[str, int] = {"name": 0, "nome": 0, "denominazione": 0, "denom": 1, "label": 2}
NO_MATCH = 9


def id_text(value: Any) -> str:
    """A property value as an id string ("015" stays "015", 15.0 becomes "15")."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def field_names(properties: Sequence[dict[str, Any]]) -> list[str]:
    """Every property name, in first-seen order."""
    names: dict[str, None] = {}
    for props in properties:
        names.update(dict.fromkeys(props))
    return list(names)


def name_tokens(field: str) -> list[str]:
    """Lower-case words of a field name without digits: "GEOID10" -> ["geoid"]."""
    spaced = re.sub(r"([a-z])([A-Z])", r"\1 \2", field)
    return [re.sub(r"\d+", "", token) for token in re.split(r"[^a-z0-9]+", spaced.lower()) if token]


def keyword_rank(field: str, keywords: dict[str, int], *, suffix_match: bool) -> int:
    """The best rank of a keyword the field name contains (NO_MATCH when none does)."""
    ranks = [NO_MATCH]
    for token in name_tokens(field):
        for keyword, rank in keywords.items():
            if token == keyword or (len(keyword) >= 4 and token.startswith(keyword)):
                ranks.append(rank)
            elif suffix_match and token.endswith(keyword):
                ranks.append(rank)
    return min(ranks)


def value_kind(values: Sequence[Any]) -> int:
    """0 for digit strings (zero-padded codes), 1 other strings, 2 integers, 3 anything else."""
    if all(isinstance(v, str) for v in values):
        return 0 if all(v.strip().isdigit() for v in values) else 1
    if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return 2
    return 3


def is_unique_id(values: Sequence[Any]) -> bool:
    texts = [id_text(v) for v in values]
    return all(texts) and len(set(texts)) == len(texts)


def choose_id_field(properties: Sequence[dict[str, Any]], requested: str | None = None) -> str:
    """The requested id field after checking it, else the best unique, non-empty property."""
    names = field_names(properties)
    if requested is not None:
        check_id_field(properties, requested, names)
        return requested
    candidates = []
    for position, field in enumerate(names):
        values = [props.get(field) for props in properties]
        if not properties or not is_unique_id(values):
            continue
        rank = min(
            keyword_rank(field, ID_KEYWORDS, suffix_match=True),
            keyword_rank(field, ID_KEYWORDS_LOOSE, suffix_match=False),
        )
        candidates.append((rank, value_kind(values), position, field))
    if not candidates:
        raise InvalidInput(
            "no property of the tract layer is unique and non-empty for every tract; "
            f"set TRACTCAST_TRACT_ID_FIELD (available properties: {', '.join(names) or 'none'})"
        )
    return min(candidates)[-1]


def check_id_field(properties: Sequence[dict[str, Any]], field: str, names: list[str]) -> None:
    """Raise InvalidInput unless `field` exists and is unique and non-empty across tracts."""
    available = ", ".join(names) or "none"
    if field not in names:
        raise InvalidInput(
            f"id field {field!r} is not a property of the tract layer "
            f"(available properties: {available})"
        )
    texts = [id_text(props.get(field)) for props in properties]
    empty = sum(1 for text in texts if not text)
    if empty:
        raise InvalidInput(
            f"id field {field!r} is empty for {empty} tracts (available properties: {available})"
        )
    repeated = [text for text, count in Counter(texts).items() if count > 1]
    if repeated:
        shown = ", ".join(repr(text) for text in repeated[:5])
        raise InvalidInput(
            f"id field {field!r} is not unique: {shown} appear more than once "
            f"(available properties: {available})"
        )


def choose_name_field(properties: Sequence[dict[str, Any]], id_field: str) -> str:
    """The name-like string property with the most distinct values; the id field if none."""
    candidates = []
    for position, field in enumerate(field_names(properties)):
        rank = keyword_rank(field, NAME_KEYWORDS, suffix_match=False)
        if rank == NO_MATCH or field == id_field:
            continue
        values = [props.get(field) for props in properties]
        texts = {v.strip() for v in values if isinstance(v, str) and v.strip()}
        if not texts or any(v is not None and not isinstance(v, str) for v in values):
            continue
        candidates.append((-len(texts), rank, len(field), position, field))
    return min(candidates)[-1] if candidates else id_field
