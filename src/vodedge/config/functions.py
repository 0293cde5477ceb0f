"""The domain function vocabulary of Alibaba Cloud CDN's BatchSetCdnDomainConfig.

Sources (read 2025; names, required flags, defaults and ranges follow them):
- "Domain configuration functions" (域名配置功能函数),
  https://help.aliyun.com/zh/cdn/developer-reference/parameters-for-configuring-features-for-domain-names
  (English: https://www.alibabacloud.com/help/en/cdn/developer-reference/parameters-for-configuring-features-for-domain-names):
  every function and argument below, e.g. video_seek's enable / flv_seek_by_time /
  mp4_seek_start / mp4_seek_end / flv_seek_start / flv_seek_end, ali_video_preview's
  required ali_video_preview_argument, range's on/off/force, ttl 1~99999999 and
  weight 1~99 (default 1), set_hashkey_args' hashkey_args (comma list, at most 10)
  with required disable and keep_oss_args, ali_remove_args (space-separated),
  refer_domain_allow_list/deny_list (commas) with allow_empty (white list default
  off), redirect_url (http:// or https://), disable_ast and ignore_scheme (default
  off), ip_list (commas, CIDRs like 192.168.0.1/24) with
  customize_response_status_code and ip_acl_xfwd (on/off/all, default on), and
  limit_rate's ali_limit_rate ("1m", "100k"; at least 100k; 0k = no limit),
  ali_limit_rate_after, traffic_limit_arg/unit, ali_limit_start_hour/end_hour
  (0..24, defaults 0 and 24); https_force / http_force with enable (required) and
  https_rewrite / http_rewrite, "301" (the default) or "308", excluding each other.
  set_resp_header: key and value, header_operation_type (add, delete, modify, rewrite)
  and access_origin_control (the CORS switch's origin check); see config/headers.py.
- Video seeking console guide, https://www.alibabacloud.com/help/en/cdn/user-guide/video-seeking:
  default parameter names start/end; names are letters, digits and underscores.
- BatchSetCdnDomainConfig API reference and error codes,
  https://api.alibabacloud.com/document/Cdn/2018-05-10/BatchSetCdnDomainConfig
  (InvalidFunctions.Malformed, InvalidFunctionName.ValueNotSupported,
  InvalidArgName.ValueNotSupported, InvalidArgValue.Malformed,
  InvalidFunctionArgs.Malformed, MissingParameter, ConfigDuplicate,
  Function.InvalidParentId); the older edition of that page lists both
  ip_allow_list_set and ip_white_list_set.

Where the docs are silent we chose, and say so beside the choice: the code for
conflicting functions, 0 as a ttl (force_revalidate speaks of a ttl of 0 while
the range says 1~), the referer black list's allow_empty default (on, as the
older SetRefererConfig API defaulted), limits on list lengths and name syntax
outside seeking, and ip_white_list_set as a synonym of ip_allow_list_set (the
IP white list function in the current docs) because the SDK describes it so.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from .access import parse_ip_list, parse_referer_list
from .errors import (
    BAD_PARENT_ID,
    CONFLICTING_FUNCTIONS,
    DUPLICATE_FUNCTION,
    MALFORMED_ARG_VALUE,
    MALFORMED_FUNCTION_ARGS,
    MALFORMED_FUNCTIONS,
    MISSING_PARAMETER,
    UNKNOWN_ARG,
    UNKNOWN_FUNCTION,
    ConfigError,
    shown,
)
from .headers import parse_header_name, parse_header_value, parse_operation
from .values import (
    bad,
    parse_host_header,
    parse_http_url,
    parse_int,
    parse_param_name,
    parse_rate,
    parse_switch,
    parse_text,
)

T = TypeVar("T")
Parser = Callable[[str], object]


@dataclass(frozen=True)
class FunctionArg:
    """One `{"argName", "argValue"}` pair, as given."""

    name: str
    value: str


@dataclass(frozen=True)
class Function:
    """One `{"functionName", "functionArgs"}` entry, as given (not yet validated)."""

    name: str
    args: tuple[FunctionArg, ...] = ()
    config_id: int | None = None

    @classmethod
    def of(cls, name: str, /, **args: str) -> Function:
        """A function from keyword arguments: `Function.of("range", enable="on")`."""
        return cls(name, tuple(FunctionArg(k, v) for k, v in args.items()))

    def arg(self, name: str) -> str | None:
        """The value given for argument `name`, if any."""
        return next((a.value for a in self.args if a.name == name), None)

    def to_api(self) -> dict[str, object]:
        """This function in the API's JSON shape."""
        shape: dict[str, object] = {
            "functionName": self.name,
            "functionArgs": [{"argName": a.name, "argValue": a.value} for a in self.args],
        }
        if self.config_id is not None:
            shape["configId"] = self.config_id
        return shape


@dataclass(frozen=True)
class ArgSpec:
    """How one argument is parsed; `default` (raw text) applies when it is absent."""

    parse: Parser
    required: bool = False
    default: str | None = None


@dataclass(frozen=True)
class FunctionSpec:
    """A function's arguments, whether it may repeat, and what it excludes."""

    args: Mapping[str, ArgSpec]
    repeatable: bool = False
    # Functions of one family exclude each other (the docs' "功能冲突说明").
    family: str | None = None
    check: Callable[[Mapping[str, object]], None] | None = None


@dataclass(frozen=True)
class CheckedFunction:
    """A validated function: parsed argument values, defaults filled in."""

    name: str
    values: Mapping[str, object] = field(default_factory=dict)

    def get(self, name: str, kind: type[T]) -> T | None:
        """The parsed value of `name` (None if absent), checked to be a `kind`."""
        value = self.values.get(name)
        if value is None:
            return None
        if not isinstance(value, kind):  # pragma: no cover - a vocabulary table bug
            raise TypeError(f"{self.name}.{name} is {type(value).__name__}, not {kind.__name__}")
        return value

    def need(self, name: str, kind: type[T]) -> T:
        """Like `get` for an argument that is required or has a default."""
        value = self.get(name, kind)
        if value is None:  # pragma: no cover - a vocabulary table bug
            raise TypeError(f"{self.name}.{name} has no value")
        return value


def _switch(*allowed: str) -> Parser:
    return lambda text: parse_switch(text, allowed or ("on", "off"))


def _int(low: int, high: int) -> Parser:
    return lambda text: parse_int(text, low, high)


def _names(separator: str, limit: int) -> Parser:
    def parse(text: str) -> tuple[str, ...]:
        names = tuple(part for part in text.split(separator) if part)
        if len(names) > limit:
            raise bad(f"may name at most {limit} parameters, got {len(names)}")
        for name in names:
            # Any visible ASCII but the query string's own delimiters (our choice).
            if len(name) > 128 or not all(33 <= ord(c) < 127 and c not in "&=#?," for c in name):
                raise bad(f"has a bad parameter name {shown(name)}")
        return names

    return parse


def _file_types(text: str) -> tuple[str, ...]:
    types = tuple(text.split(","))
    for kind in types:
        # Extensions as the docs show them (jpg,txt): no dot; case kept, matching is case-sensitive.
        if (
            not kind
            or len(kind) > 32
            or not all(c.isascii() and (c.isalnum() or c in "_-+.") for c in kind)
            or kind[0] == "."
        ):
            raise bad(f"must be extensions separated by commas like mp4,flv, got {shown(text)}")
    return types


def _directory(text: str) -> str:
    if not text.startswith("/") or any(c.isspace() or c in "?#" for c in text):
        raise bad(f"must be a path starting with /, got {shown(text)}")
    return parse_text(text)


def _seek_names_differ(values: Mapping[str, object]) -> None:
    for kind in ("mp4", "flv"):
        if values[f"{kind}_seek_start"] == values[f"{kind}_seek_end"]:
            raise bad(f"{kind}_seek_start and {kind}_seek_end must differ").at(
                arg=f"{kind}_seek_end"
            )


# auth_type values the docs list; D and E are refused rather than stored unenforced.
AUTH_TYPES = ("no_auth", "type_a", "type_b", "type_c", "type_d", "type_e", "type_f")


def _auth_type(text: str) -> str:
    value = parse_switch(text, AUTH_TYPES)
    if value in ("type_d", "type_e"):
        raise bad(f"{value} is not supported by vodedge (type_a, type_b, type_c, type_f are)")
    return value


def _auth_key(text: str) -> str:
    # The docs: 16 to 128 upper- and lower-case letters and digits.
    if not 16 <= len(text) <= 128 or not (text.isascii() and text.isalnum()):
        raise bad("must be 16 to 128 letters and digits")
    return text


def _auth_consistent(values: Mapping[str, object]) -> None:
    if values["auth_type"] != "no_auth" and values.get("auth_key1") is None:
        raise ConfigError(
            MISSING_PARAMETER,
            f"the value of ArgName auth_key1 is missing (auth_type {values['auth_type']})",
            arg="auth_key1",
        )
    if values["sign_param"] == values["time_param"]:
        raise bad("sign_param and time_param must differ").at(arg="time_param")
    signature = {"auth_key", "KEY1", "KEY2", values["sign_param"], values["time_param"]}
    signed = values.get("vodedge_signed_args")
    for name in signed if isinstance(signed, tuple) else ():
        if name in signature:
            raise bad(f"vodedge_signed_args names the signature parameter {name}").at(
                arg="vodedge_signed_args"
            )


def _hours_ordered(values: Mapping[str, object]) -> None:
    start, end = values["ali_limit_start_hour"], values["ali_limit_end_hour"]
    assert isinstance(start, int) and isinstance(end, int)
    if start >= end:
        raise bad(f"ali_limit_start_hour ({start}) must be before ali_limit_end_hour ({end})").at(
            arg="ali_limit_end_hour"
        )
    if values.get("traffic_limit_unit") is not None and values.get("traffic_limit_arg") is None:
        raise bad("traffic_limit_unit needs traffic_limit_arg").at(arg="traffic_limit_unit")


def _redirect_status(text: str) -> int:
    # The docs' two: 301 (a non-GET may come back as GET) and 308 (method and body kept).
    return int(parse_switch(text, ("301", "308")))


ON_OFF = _switch()
_ENABLE = ArgSpec(ON_OFF, required=True)
_OFF = ArgSpec(ON_OFF, default="off")
# 0 admitted: the docs' range says 1~99999999 but force_revalidate describes a ttl of 0.
_TTL = ArgSpec(_int(0, 99_999_999), required=True)
_TTL_OPTIONS = {
    "weight": ArgSpec(_int(1, 99), default="1"),
    "swift_origin_cache_high": _OFF,
    "swift_no_cache_low": _OFF,
    "swift_follow_cachetime": _OFF,
    "force_revalidate": _OFF,
}
_REFERER_OPTIONS = {
    "redirect_url": ArgSpec(parse_http_url),
    "disable_ast": _OFF,
    "ignore_scheme": _OFF,
}
_IP_ARGS = {
    "ip_list": ArgSpec(parse_ip_list, required=True),
    # "3 位数值"; we keep it to statuses HTTP defines.
    "customize_response_status_code": ArgSpec(_int(100, 599)),
    "ip_acl_xfwd": ArgSpec(_switch("on", "off", "all"), default="on"),
    "ip_list_notes": ArgSpec(parse_text),
}
_PARAM_NAME = parse_param_name


VOCABULARY: Mapping[str, FunctionSpec] = {
    "ali_video_split": FunctionSpec({"enable": _ENABLE}),
    "video_seek": FunctionSpec(
        {
            "enable": _ENABLE,
            "flv_seek_by_time": _OFF,
            "mp4_seek_start": ArgSpec(_PARAM_NAME, default="start"),
            "mp4_seek_end": ArgSpec(_PARAM_NAME, default="end"),
            "flv_seek_start": ArgSpec(_PARAM_NAME, default="start"),
            "flv_seek_end": ArgSpec(_PARAM_NAME, default="end"),
        },
        check=_seek_names_differ,
    ),
    "ali_video_preview": FunctionSpec(
        {
            "enable": _ENABLE,
            "ali_video_preview_argument": ArgSpec(_PARAM_NAME, required=True),
            # vodedge's own: the longest preview served, whatever length a URL asks for.
            "vodedge_preview_max": ArgSpec(_int(1, 86_400)),
        }
    ),
    # vodedge's own: the listening page, GET /_vodedge/listen?src=/path.mp4 (edge/listen.py).
    "vodedge_listen_page": FunctionSpec({"enable": _ENABLE}),
    "set_resp_header": FunctionSpec(
        {
            "key": ArgSpec(parse_header_name, required=True),
            "value": ArgSpec(parse_header_value, required=True),
            "header_operation_type": ArgSpec(parse_operation, default="add"),
            "access_origin_control": _OFF,
        },
        repeatable=True,
    ),
    "range": FunctionSpec({"enable": ArgSpec(_switch("on", "off", "force"), required=True)}),
    "set_req_host_header": FunctionSpec({"domain_name": ArgSpec(parse_host_header, required=True)}),
    "filetype_based_ttl_set": FunctionSpec(
        {"ttl": _TTL, "file_type": ArgSpec(_file_types, required=True), **_TTL_OPTIONS},
        repeatable=True,
    ),
    "path_based_ttl_set": FunctionSpec(
        {"ttl": _TTL, "path": ArgSpec(_directory, required=True), **_TTL_OPTIONS},
        repeatable=True,
    ),
    "set_hashkey_args": FunctionSpec(
        {
            "hashkey_args": ArgSpec(_names(",", 10), default=""),
            "disable": _ENABLE,
            "keep_oss_args": _ENABLE,
        },
        family="cache key parameters",
    ),
    "ali_remove_args": FunctionSpec(
        {"ali_remove_args": ArgSpec(_names(" ", 100), required=True), "keep_oss_args": _ENABLE},
        family="cache key parameters",
    ),
    "referer_white_list_set": FunctionSpec(
        {
            "refer_domain_allow_list": ArgSpec(parse_referer_list, required=True),
            "allow_empty": _OFF,
            **_REFERER_OPTIONS,
        },
        family="referer list",
    ),
    "referer_black_list_set": FunctionSpec(
        {
            "refer_domain_deny_list": ArgSpec(parse_referer_list, required=True),
            # The docs give no default here; the older SetRefererConfig defaulted to on.
            "allow_empty": ArgSpec(ON_OFF, default="on"),
            **_REFERER_OPTIONS,
        },
        family="referer list",
    ),
    "ip_allow_list_set": FunctionSpec(_IP_ARGS, family="IP list"),
    "ip_white_list_set": FunctionSpec(_IP_ARGS, family="IP list"),
    "ip_black_list_set": FunctionSpec(_IP_ARGS, family="IP list"),
    "limit_rate": FunctionSpec(
        {
            "ali_limit_rate": ArgSpec(parse_rate, required=True),
            "ali_limit_rate_after": ArgSpec(parse_rate),
            "traffic_limit_arg": ArgSpec(_PARAM_NAME),
            "traffic_limit_unit": ArgSpec(_switch("k", "m")),
            "ali_limit_start_hour": ArgSpec(_int(0, 24), default="0"),
            "ali_limit_end_hour": ArgSpec(_int(0, 24), default="24"),
        },
        check=_hours_ordered,
    ),
    "aliauth": FunctionSpec(
        {
            "auth_type": ArgSpec(_auth_type, required=True),
            "auth_key1": ArgSpec(_auth_key),
            "auth_key2": ArgSpec(_auth_key),
            "ali_auth_delta": ArgSpec(_int(0, 2_147_483_647), default="1800"),
            "req_auth_ip_white": ArgSpec(parse_ip_list),
            "req_auth_ip_acl_xfwd": ArgSpec(_switch("on", "off", "all"), default="on"),
            "sign_param": ArgSpec(_PARAM_NAME, default="sign"),
            "time_param": ArgSpec(_PARAM_NAME, default="time"),
            # The docs' own example writes "hec"; it is read as hex.
            "time_format": ArgSpec(_switch("hex", "dec", "hec"), default="hex"),
            "path_encoding": ArgSpec(ON_OFF, default="on"),
            # Accepted for compatibility: vodedge serves no m3u8 playlists to rewrite.
            "auth_m3u8": ArgSpec(ON_OFF, default="on"),
            # vodedge's own extension (see config/urlauth.py): query parameters in the hash.
            "vodedge_signed_args": ArgSpec(_names(",", 10)),
        },
        check=_auth_consistent,
    ),
    "https_force": FunctionSpec(
        {"enable": _ENABLE, "https_rewrite": ArgSpec(_redirect_status, default="301")},
        family="protocol redirect",
    ),
    "http_force": FunctionSpec(
        {"enable": _ENABLE, "http_rewrite": ArgSpec(_redirect_status, default="301")},
        family="protocol redirect",
    ),
}


def _arg_value(function: str, raw: object) -> str:
    # The API documents string values, yet its own examples send integers too.
    if isinstance(raw, str):
        return raw
    if isinstance(raw, int) and not isinstance(raw, bool):
        return str(raw)
    raise ConfigError(
        MALFORMED_ARG_VALUE, f"{function}: argValue must be a string, got {shown(raw)}"
    )


def _pick(entry: Mapping[str, object], name: str) -> object:
    # Some of the docs' own examples capitalise the keys (ArgName, ArgValue).
    return entry.get(name, entry.get(name[0].upper() + name[1:]))


def parse_function(entry: object) -> Function:
    """One function from its API shape; ConfigError if the shape is wrong."""
    if not isinstance(entry, Mapping):
        raise ConfigError(
            MALFORMED_FUNCTIONS, f"each function must be an object, got {shown(entry)}"
        )
    known = {"functionName", "FunctionName", "functionArgs", "FunctionArgs", "configId", "ConfigId"}
    if "parentId" in entry or "ParentId" in entry:
        raise ConfigError(BAD_PARENT_ID, "The specified parentId does not exist.")
    extra = sorted(str(key) for key in entry if key not in known)
    if extra:
        raise ConfigError(MALFORMED_FUNCTIONS, f"unknown key {shown(extra[0])} in a function")
    name = _pick(entry, "functionName")
    if not isinstance(name, str) or not name:
        raise ConfigError(MALFORMED_FUNCTIONS, "functionName must be a non-empty string")
    raw_args = _pick(entry, "functionArgs")
    raw_args = [] if raw_args is None else raw_args
    if not isinstance(raw_args, list):
        raise ConfigError(MALFORMED_FUNCTION_ARGS, f"{name}: functionArgs must be a list")
    args = []
    for raw in raw_args:
        arg_name = _pick(raw, "argName") if isinstance(raw, Mapping) else None
        if not isinstance(raw, Mapping) or not isinstance(arg_name, str) or not arg_name:
            raise ConfigError(
                MALFORMED_FUNCTION_ARGS, f"{name}: each argument needs a string argName"
            )
        if set(raw) - {"argName", "ArgName", "argValue", "ArgValue"}:
            raise ConfigError(
                MALFORMED_FUNCTION_ARGS, f"{name}: unknown key in argument {arg_name}"
            )
        args.append(FunctionArg(arg_name, _arg_value(name, _pick(raw, "argValue"))))
    config_id = _pick(entry, "configId")
    if config_id is not None and (
        isinstance(config_id, bool)
        or not isinstance(config_id, int | str)
        or not (str(config_id).isascii() and str(config_id).isdigit())
    ):
        raise ConfigError(MALFORMED_FUNCTIONS, f"{name}: configId must be an integer")
    return Function(name, tuple(args), None if config_id is None else int(str(config_id)))


def parse_functions(raw: object) -> tuple[Function, ...]:
    """The API's `Functions` parameter (a JSON string or an already decoded list)."""
    if isinstance(raw, str | bytes):
        try:
            raw = json.loads(raw)
        except (ValueError, RecursionError):
            raise ConfigError(MALFORMED_FUNCTIONS, "Functions is not valid JSON") from None
    if not isinstance(raw, list):
        raise ConfigError(MALFORMED_FUNCTIONS, "Functions must be a list of functions")
    functions = []
    for index, entry in enumerate(raw):
        try:
            functions.append(parse_function(entry))
        except ConfigError as error:
            raise error.at(index=index) from None
    return tuple(functions)


def check_function(function: Function) -> CheckedFunction:
    """`function` validated argument by argument against the vocabulary."""
    spec = VOCABULARY.get(function.name)
    if spec is None:
        raise ConfigError(
            UNKNOWN_FUNCTION, f"FunctionName {shown(function.name)} is not supported."
        )
    values: dict[str, object] = {}
    for arg in function.args:
        arg_spec = spec.args.get(arg.name)
        if arg_spec is None:
            raise ConfigError(
                UNKNOWN_ARG,
                f"{function.name}: ArgName {shown(arg.name)} is not supported.",
                arg=arg.name,
            )
        if arg.name in values:
            raise ConfigError(
                MALFORMED_FUNCTION_ARGS, f"{function.name}: {arg.name} is given twice", arg=arg.name
            )
        if arg.value == "":
            if arg_spec.required:
                raise ConfigError(
                    MISSING_PARAMETER,
                    f"{function.name}: the value of ArgName {arg.name} is empty",
                    arg=arg.name,
                )
            values[arg.name] = None  # the docs' examples send "" for "not set"
            continue
        values[arg.name] = _parse(function.name, arg.name, arg_spec.parse, arg.value)
    for name, arg_spec in spec.args.items():
        if values.get(name) is not None:
            continue
        if arg_spec.required:
            raise ConfigError(
                MISSING_PARAMETER,
                f"{function.name}: the value of ArgName {name} is missing",
                arg=name,
            )
        values[name] = (
            None
            if arg_spec.default is None
            else _parse(function.name, name, arg_spec.parse, arg_spec.default)
        )
    if spec.check is not None:
        try:
            spec.check(values)
        except ConfigError as error:
            code = MISSING_PARAMETER if error.code == MISSING_PARAMETER else MALFORMED_ARG_VALUE
            raise ConfigError(code, f"{function.name}: {error.message}", arg=error.arg) from None
    return CheckedFunction(function.name, {k: v for k, v in values.items() if v is not None})


def _parse(function: str, name: str, parse: Parser, text: str) -> object:
    try:
        return parse(text)
    except ConfigError as error:
        raise ConfigError(
            MALFORMED_ARG_VALUE, f"{function}: {name} {error.message}", arg=name
        ) from None


def check_functions(functions: Sequence[Function]) -> tuple[CheckedFunction, ...]:
    """A domain's whole function list validated: each function, duplicates and conflicts."""
    checked = []
    seen: dict[str, str] = {}  # a singleton's name or a family -> the function that holds it
    for index, function in enumerate(functions):
        try:
            result = check_function(function)
        except ConfigError as error:
            raise error.at(index=index) from None
        spec = VOCABULARY[function.name]
        if not spec.repeatable:
            slot = spec.family or function.name
            other = seen.get(slot)
            if other == function.name or (
                other is not None
                and {other, function.name} <= {"ip_allow_list_set", "ip_white_list_set"}
            ):
                raise ConfigError(
                    DUPLICATE_FUNCTION, f"{function.name} is configured more than once", index=index
                )
            if other is not None:
                raise ConfigError(
                    CONFLICTING_FUNCTIONS,
                    f"{function.name} conflicts with {other}: a domain has one {slot}",
                    index=index,
                )
            seen[slot] = function.name
        checked.append(result)
    return tuple(checked)
