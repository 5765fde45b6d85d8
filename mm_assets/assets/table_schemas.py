"""Dagster column schemas of the warehouse tables, derived from their SQLAlchemy definitions.

Why derived: the UI's schema of a table (names, types, descriptions with units) is then the table itself; a
hand-written copy drifted (a column the table had was missing from it).
"""

import dagster as dg
import sqlalchemy as sa

from mm_assets.warehouse.warehouse import table_definitions

_TYPES = ((sa.DateTime, "datetime"), (sa.Integer, "int"), (sa.Float, "float"), (sa.String, "string"))


def _type_name(column: sa.Column) -> str:
    return next((name for kind, name in _TYPES if isinstance(column.type, kind)), str(column.type).lower())


def column_schema(table: sa.Table) -> dg.TableSchema:
    """The table's columns, in order, with type, description and nullability (primary key columns are unique
    together)."""
    return dg.TableSchema(columns=[
        dg.TableColumn(column.name, _type_name(column), description=column.info.get("description"),
                       constraints=dg.TableColumnConstraints(nullable=bool(column.nullable)))
        for column in table.columns
    ])


def table_metadata(id_columns, name: str) -> dict:
    """The Dagster metadata of warehouse table ``name``: its name and its column schema."""
    return {"dagster/table_name": name, "dagster/column_schema": column_schema(table_definitions(id_columns)[name])}
