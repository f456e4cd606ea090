"""Standardising identifiers as people type them, so one person matches across systems."""

from __future__ import annotations

import re

_NON_DIGITS = re.compile(r"\D")


def email(value: str) -> str:
    """Emails compare without surrounding spaces and case."""
    return value.strip().lower()


def phone(value: str, default_country: str) -> str | None:
    """E.164 (+31612345678) from '+31 612 345 678', '0031-612-345678', '(0612) 345-678' and the like;
    a number in national format (a trunk 0 first) is in `default_country` (a country code: "31")."""
    digits = _NON_DIGITS.sub("", value)
    if value.strip().startswith("00") or digits.startswith("00"):
        digits = digits.lstrip("0")
    elif digits.startswith("0"):
        digits = default_country + digits[1:]  # national format: a trunk 0 before the number
    return "+" + digits if 8 <= len(digits) <= 15 else None


def digits(value: str) -> str:
    """Numbers printed in groups or with separators (cards, account numbers) compare as digits only."""
    return _NON_DIGITS.sub("", value)
