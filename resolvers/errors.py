"""Client-facing errors with the `extensions.code` the GraphQL response carries."""

from __future__ import annotations


class ClientError(Exception):
    code = "BAD_REQUEST"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.extensions = {"code": self.code}


class BadUserInput(ClientError):
    code = "BAD_USER_INPUT"


class NotFound(ClientError):
    code = "NOT_FOUND"


class Forbidden(ClientError):
    """The caller's role may not read this field or run this mutation."""

    code = "FORBIDDEN"

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        if field is not None:
            self.extensions["field"] = field
