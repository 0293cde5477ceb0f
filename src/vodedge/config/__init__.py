"""The node configuration: domains, their CDN-API functions, and node settings.

Pure data and validation: no I/O but reading the TOML file in `load_toml`.
"""

from __future__ import annotations

from .access import IpAcl, RefererPolicy
from .errors import ConfigError, ConfigFileError
from .functions import VOCABULARY, Function, FunctionArg, check_function, parse_functions
from .hosts import normalize_host
from .loader import load_toml, zero_config
from .model import Domain, DomainCertificate, ListenAddress, NodeConfig, OriginSpec
from .policy import PreviewConfig, RangeMode, RateLimit, SeekConfig, TtlRule
from .values import parse_size

__all__ = [
    "VOCABULARY",
    "ConfigError",
    "ConfigFileError",
    "Domain",
    "DomainCertificate",
    "Function",
    "FunctionArg",
    "IpAcl",
    "ListenAddress",
    "NodeConfig",
    "OriginSpec",
    "PreviewConfig",
    "RangeMode",
    "RateLimit",
    "RefererPolicy",
    "SeekConfig",
    "TtlRule",
    "check_function",
    "load_toml",
    "normalize_host",
    "parse_functions",
    "parse_size",
    "zero_config",
]
