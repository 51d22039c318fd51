"""Schema evolution: what a batch needs of a schema's tables, and each value fitted to its column.

A table is created with its standard columns; a key never seen before adds a column of the type its
first value asks for; a bigint column that meets a fraction becomes double precision. A value whose
type does not fit its column (text in a bigint column, say) becomes NULL in the row and a row of the
conflicts table, which keeps it as text with the type the column expected."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from cdp.destinations.types.warehouse.dialect import BIGINT, BOOLEAN, DOUBLE, TEXT, TIMESTAMP, PostgresDialect
from cdp.destinations.types.warehouse.rows import Row, Value

_BIGINT_MIN, _BIGINT_MAX = -(2**63), 2**63 - 1
# Stands for "no such column" in a conflict: the table reached the dialect's column limit.
NO_COLUMN = "no column (the table has too many columns)"

# Column name → SQL type as information_schema spells it, per table of one schema.
Catalog = dict[str, dict[str, str]]

_CATALOG_SQL = (
    "SELECT table_name, column_name, data_type FROM information_schema.columns "
    "WHERE table_schema = %s ORDER BY table_name, ordinal_position"
)
_SCHEMA_SQL = "SELECT schema_name FROM information_schema.schemata WHERE schema_name = %s"


def read_catalog(cursor: Any, schema: str) -> Catalog | None:
    """The schema's tables and columns; None if the schema does not exist (or is not visible)."""
    cursor.execute(_SCHEMA_SQL, (schema,))
    if cursor.fetchone() is None:
        return None
    cursor.execute(_CATALOG_SQL, (schema,))
    catalog: Catalog = {}
    for table, column, data_type in cursor.fetchall():
        catalog.setdefault(table, {})[column] = data_type.lower()
    return catalog


@dataclass
class Conflict:
    message_id: str
    table: str
    column: str
    value: str
    value_type: str
    expected_type: str


@dataclass
class TablePlan:
    """What one table needs before the batch's rows go in, and its columns afterwards."""

    table: str
    key: tuple[str, ...]
    columns: dict[str, str]  # name → SQL type
    create: tuple[tuple[str, str], ...] = ()  # standard columns (name, logical type), if it is new
    add: dict[str, str] = field(default_factory=dict)  # new column → logical type
    widen: set[str] = field(default_factory=set)

    def statements(self, dialect: PostgresDialect, schema: str) -> list[str]:
        out = [dialect.create_table(schema, self.table, self.create, self.key)] if self.create else []
        out += [dialect.widen_to_double(schema, self.table, column) for column in sorted(self.widen)]
        out += [dialect.add_column(schema, self.table, column, logical) for column, logical in self.add.items()]
        return out


def _integral(value: Value) -> bool:
    return value.type == BIGINT or (
        value.type == DOUBLE and float(value.data).is_integer() and _BIGINT_MIN <= value.data <= _BIGINT_MAX
    )


def plan_table(
    dialect: PostgresDialect,
    catalog: Catalog,
    table: str,
    standard: tuple[tuple[str, str], ...],
    key: tuple[str, ...],
    rows: Iterable[Row],
) -> TablePlan:
    existing = catalog.get(table)
    if existing is None:
        plan = TablePlan(table, key, {name: dialect.sql_types[t].lower() for name, t in standard}, create=standard)
    else:
        plan = TablePlan(table, key, dict(existing))
    for row in rows:
        for column, value in row.values.items():
            current = plan.columns.get(column)
            if current is None:
                if len(plan.columns) < dialect.max_columns:
                    plan.add[column] = value.type
                    plan.columns[column] = dialect.sql_types[value.type].lower()
            elif dialect.logical_type(current) == BIGINT and not _integral(value) and value.type == DOUBLE:
                if column in plan.add:
                    plan.add[column] = DOUBLE
                else:
                    plan.widen.add(column)
                plan.columns[column] = dialect.sql_types[DOUBLE].lower()
    return plan


def fit(value: Value, logical: str) -> tuple[bool, Any]:
    """(True, what the column stores) if the value fits a column of the logical type."""
    if logical == TEXT:
        return True, value.text
    if logical == BIGINT and _integral(value):
        return True, int(value.data)
    if logical == DOUBLE and value.type in (BIGINT, DOUBLE):
        return True, float(value.data)
    if logical in (BOOLEAN, TIMESTAMP) and value.type == logical:
        return True, value.data
    return False, None


def fit_row(
    dialect: PostgresDialect, plan: TablePlan, message_id: str, row: Row, conflicts: list[Conflict]
) -> dict[str, Any]:
    """The row's column values for the plan's table; values that do not fit go to `conflicts`."""
    data: dict[str, Any] = {}
    for column, value in row.values.items():
        sql_type = plan.columns.get(column)
        ok, stored = fit(value, dialect.logical_type(sql_type)) if sql_type else (False, None)
        if ok:
            data[column] = stored
        else:
            expected = sql_type or NO_COLUMN
            value_type = dialect.sql_types[value.type].lower()
            conflicts.append(Conflict(message_id, plan.table, column, value.text, value_type, expected))
    return data
