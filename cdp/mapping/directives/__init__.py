"""The directive registry: adding a directive is one compile function plus one line here."""

from __future__ import annotations

from cdp.mapping.compiler import DirectiveCompiler
from cdp.mapping.directives.convert import compile_date, compile_to_boolean, compile_to_number, compile_to_string
from cdp.mapping.directives.hashing import compile_sha256
from cdp.mapping.directives.logic import (
    compile_exclude_when_null,
    compile_flatten,
    compile_if,
    compile_json,
    compile_merge,
)
from cdp.mapping.directives.lookup import compile_array_path, compile_literal, compile_path, compile_template
from cdp.mapping.directives.text import compile_case, compile_replace

DIRECTIVES: dict[str, DirectiveCompiler] = {
    "@path": compile_path,
    "@template": compile_template,
    "@literal": compile_literal,
    "@arrayPath": compile_array_path,
    "@if": compile_if,
    "@excludeWhenNull": compile_exclude_when_null,
    "@merge": compile_merge,
    "@flatten": compile_flatten,
    "@json": compile_json,
    "@case": compile_case,
    "@replace": compile_replace,
    "@toNumber": compile_to_number,
    "@toString": compile_to_string,
    "@toBoolean": compile_to_boolean,
    "@date": compile_date,
    "@sha256": compile_sha256,
}
