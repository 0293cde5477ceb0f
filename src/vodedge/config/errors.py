"""The configuration's typed errors: an API error code and a one-line message."""

from __future__ import annotations

# The codes BatchSetCdnDomainConfig documents (see functions.py for sources),
# so the control plane can answer with them unchanged.
MALFORMED_FUNCTIONS = "InvalidFunctions.Malformed"
MALFORMED_FUNCTION_ARGS = "InvalidFunctionArgs.Malformed"
UNKNOWN_FUNCTION = "InvalidFunctionName.ValueNotSupported"
UNKNOWN_ARG = "InvalidArgName.ValueNotSupported"
MALFORMED_ARG_VALUE = "InvalidArgValue.Malformed"
MISSING_PARAMETER = "MissingParameter"
DUPLICATE_FUNCTION = "ConfigDuplicate"
BAD_PARENT_ID = "Function.InvalidParentId"
# Not named by the docs, which only say such functions "conflict"; chosen in their style.
CONFLICTING_FUNCTIONS = "InvalidFunctions.Conflict"
# Node settings and domain fields outside the function vocabulary.
INVALID_PARAMETER = "InvalidParameter"


def one_line(text: str) -> str:
    """`text` with line breaks and runs of whitespace folded to single spaces."""
    return " ".join(text.split())


def shown(value: object, limit: int = 60) -> str:
    """A short, single-line, quoted rendering of a user-supplied value."""
    text = repr(value)
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return text


class ConfigError(ValueError):
    """A refused configuration value: `code` is the API's error code."""

    def __init__(
        self,
        code: str,
        message: str,
        *,
        index: int | None = None,
        arg: str | None = None,
        status: int = 400,
    ) -> None:
        message = one_line(message)
        super().__init__(message)
        self.code = code
        self.message = message
        # Where in a function list the error is: the function's position and argument name.
        self.index = index
        self.arg = arg
        self.status = status

    def __str__(self) -> str:
        return self.message

    def at(self, *, index: int | None = None, arg: str | None = None) -> ConfigError:
        """This error located at function `index` / argument `arg` (kept if already set)."""
        return ConfigError(
            self.code,
            self.message,
            index=self.index if self.index is not None else index,
            arg=self.arg if self.arg is not None else arg,
            status=self.status,
        )


class ConfigFileError(ConfigError):
    """A refused configuration file: names the file, the key path and the reason."""

    def __init__(self, path: str, key: str, reason: str, *, code: str = INVALID_PARAMETER) -> None:
        super().__init__(code, reason)
        self.path = path
        self.key = key
        self.reason = self.message

    def __str__(self) -> str:
        where = f"{self.path}: {self.key}" if self.key else self.path
        return one_line(f"{where}: {self.reason}")
