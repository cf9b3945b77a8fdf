"""Errors that the CLI turns into one line on stderr and exit code 2."""

from __future__ import annotations

from typing import Any


class InputError(ValueError):
    """Bad user input: names the field, the value given and what is allowed.

    The message is always one line: ``<field>: got <value!r>; allowed: <allowed>``.
    """

    def __init__(self, field: str, value: Any, allowed: str) -> None:
        self.field = field
        self.value = value
        self.allowed = allowed
        text = repr(value)
        if len(text) > 80:
            text = text[:77] + "..."
        # one line: every line boundary (also \r, \v, \f, \x1c-\x1e, \x85, \u2028) becomes a space
        super().__init__(" ".join(f"{field}: got {text}; allowed: {allowed}".splitlines()))
