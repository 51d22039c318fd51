"""The SQL that differs between warehouses that speak the PostgreSQL protocol.

Everything else the loader sends is plain SQL that PostgreSQL and Redshift both accept: quoted
identifiers, information_schema queries, CREATE ... IF NOT EXISTS, ALTER TABLE ADD COLUMN,
SELECT ... WHERE id IN (...), UPDATE. A Redshift dialect would subclass PostgresDialect and change
the text type (Redshift's TEXT is VARCHAR(256)), widen columns by copy-and-rename, and insert through
a staging table and MERGE instead of ON CONFLICT."""

from __future__ import annotations

from collections.abc import Sequence

# Logical column types: what the loader infers from JSON values and reasons about.
BIGINT, DOUBLE, BOOLEAN, TIMESTAMP, TEXT, UNKNOWN = "bigint", "double", "boolean", "timestamp", "text", "unknown"

# information_schema.columns.data_type → logical type; a column of any other type (a human made it,
# e.g. jsonb or date) takes no values from the loader: they are kept in the conflicts table.
_LOGICAL = {
    "bigint": BIGINT, "integer": BIGINT, "smallint": BIGINT,
    "double precision": DOUBLE, "real": DOUBLE, "numeric": DOUBLE,
    "boolean": BOOLEAN,
    "timestamp with time zone": TIMESTAMP, "timestamp without time zone": TIMESTAMP,
    "text": TEXT, "character varying": TEXT, "character": TEXT,
}  # fmt: skip


def quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def qualified(schema: str, table: str) -> str:
    return f"{quote(schema)}.{quote(table)}"


class PostgresDialect:
    name = "postgresql"
    max_identifier_length = 63  # NAMEDATALEN - 1 bytes
    # PostgreSQL allows 1600 columns per table; leave room for columns humans add.
    max_columns = 1500
    sql_types = {
        BIGINT: "BIGINT", DOUBLE: "DOUBLE PRECISION", BOOLEAN: "BOOLEAN", TIMESTAMP: "TIMESTAMP WITH TIME ZONE",
        TEXT: "TEXT",
    }  # fmt: skip

    def logical_type(self, data_type: str) -> str:
        return _LOGICAL.get(data_type.lower(), UNKNOWN)

    def session_setup(self, statement_timeout_ms: int) -> list[str]:
        return [f"SET statement_timeout = {int(statement_timeout_ms)}"]

    def create_schema(self, schema: str) -> str:
        return f"CREATE SCHEMA IF NOT EXISTS {quote(schema)}"

    def create_table(
        self, schema: str, table: str, columns: Sequence[tuple[str, str]], primary_key: Sequence[str]
    ) -> str:
        definitions = [f"{quote(name)} {self.sql_types[logical]}" for name, logical in columns]
        definitions.append(f"PRIMARY KEY ({', '.join(quote(name) for name in primary_key)})")
        return f"CREATE TABLE IF NOT EXISTS {qualified(schema, table)} ({', '.join(definitions)})"

    def add_column(self, schema: str, table: str, column: str, logical: str) -> str:
        return f"ALTER TABLE {qualified(schema, table)} ADD COLUMN {quote(column)} {self.sql_types[logical]}"

    def widen_to_double(self, schema: str, table: str, column: str) -> str:
        return f"ALTER TABLE {qualified(schema, table)} ALTER COLUMN {quote(column)} TYPE {self.sql_types[DOUBLE]}"

    def insert_new(self, schema: str, table: str, columns: Sequence[str], key: Sequence[str]) -> str:
        """INSERT of one row that leaves an existing row with the same key alone."""
        names = ", ".join(quote(name) for name in columns)
        values = ", ".join(["%s"] * len(columns))
        conflict = ", ".join(quote(name) for name in key)
        return f"INSERT INTO {qualified(schema, table)} ({names}) VALUES ({values}) ON CONFLICT ({conflict}) DO NOTHING"


POSTGRES = PostgresDialect()
