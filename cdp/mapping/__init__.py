"""Mapping engine: JSON mappings whose leaves may be directives, resolved against events. See README.md."""

from cdp.mapping.directives import DIRECTIVES
from cdp.mapping.engine import CompiledMapping, compile_mapping, resolve, validate
from cdp.mapping.paths import MISSING, PathError, compile_getter, format_path, parse_path
from cdp.mapping.results import InvalidMapping, MappingError, Resolution

__all__ = [
    "DIRECTIVES",
    "MISSING",
    "CompiledMapping",
    "InvalidMapping",
    "MappingError",
    "PathError",
    "Resolution",
    "compile_getter",
    "compile_mapping",
    "format_path",
    "parse_path",
    "resolve",
    "validate",
]
