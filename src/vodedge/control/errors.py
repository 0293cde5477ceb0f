"""The API's error: an HTTP status, a documented code and a one-line message."""

from __future__ import annotations


class ApiError(Exception):
    """An answer of `{"RequestId", "HostId", "Code", "Message"}` with `status`."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = " ".join(message.split())  # one line, whatever was passed in


def missing(name: str) -> ApiError:
    """The documented error for an absent required parameter."""
    return ApiError(
        400,
        "MissingParameter",
        f"The input parameter {name} that is mandatory for processing this request"
        " is not supplied.",
    )
