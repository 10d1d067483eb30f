"""Map column types between SQLAlchemy, Ferry's neutral kinds, and each dialect.

Reading: a reflected SQLAlchemy type becomes a :class:`ColumnType` (kind + the
dialect's own spelling). Writing: a kind becomes a DDL type for the target dialect,
and a bind type that converts the raw value carried from the source into what the
target's driver and column accept — without ever re-encoding JSON or text.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import mysql, postgresql
from sqlalchemy.types import TypeDecorator, UserDefinedType

from controller.engine.model import INTEGER_KINDS, MAX_SIZE, ColumnType, Kind
from controller.engine.sqltypes import SqlType, parse_type
from controller.engine.values import parse_datetime
from controller.errors import InvalidInput

_MYSQL_TEXTS = frozenset({"TINYTEXT", "TEXT", "MEDIUMTEXT", "LONGTEXT"})


def _native(satype: Any, dialect: sa.Dialect) -> str:
    try:
        return str(satype.compile(dialect=dialect))
    except Exception:
        return str(type(satype).__name__)


# Reflected SQLAlchemy type classes → kind, checked in order (a BigInteger is also an
# Integer, so the wider class comes first).
_BY_CLASS: tuple[tuple[tuple[type, ...], Kind], ...] = (
    ((sa.BigInteger,), Kind.BIGINT),
    ((sa.SmallInteger, mysql.TINYINT), Kind.SMALLINT),
    ((sa.Integer,), Kind.INTEGER),
    ((sa.Float, sa.REAL, mysql.DOUBLE), Kind.FLOAT),
    ((sa.Date,), Kind.DATE),
    ((sa.Time,), Kind.TIME),
    ((sa.LargeBinary, sa.types._Binary), Kind.BINARY),
)


def _boolean(satype: Any, upper: str) -> bool:
    if isinstance(satype, mysql.TINYINT) and getattr(satype, "display_width", None) == 1:
        return True
    return (
        upper.startswith("TINYINT(1)")
        or upper in ("BOOLEAN", "BOOL")
        or (isinstance(satype, sa.Boolean))
    )


def _textual(satype: Any, native: str) -> ColumnType:
    visit = getattr(satype, "__visit_name__", "")
    if isinstance(satype, sa.Text) or visit in _MYSQL_TEXTS:
        return ColumnType(Kind.TEXT, native=native)
    if isinstance(satype, (sa.String, sa.Enum)):
        length = getattr(satype, "length", None)
        if length is None and not isinstance(satype, sa.Enum):
            return ColumnType(Kind.TEXT, native=native)  # VARCHAR without a limit
        return ColumnType(Kind.STRING, length=length, native=native)
    return ColumnType(Kind.OTHER, native=native)


def column_type(satype: Any, dialect: sa.Dialect, declared: str = "") -> ColumnType:
    """Reduce a reflected SQLAlchemy type to a :class:`ColumnType`."""
    native = declared or _native(satype, dialect)
    upper = native.upper().replace(" ", "")
    if _boolean(satype, upper):
        return ColumnType(Kind.BOOLEAN, native=native)
    if isinstance(satype, (sa.JSON, postgresql.JSONB)):
        variant = "jsonb" if isinstance(satype, postgresql.JSONB) else None
        return ColumnType(Kind.JSON, variant=variant, native=native)
    if isinstance(satype, sa.Uuid) or upper == "UUID":
        return ColumnType(Kind.UUID, native=native)
    for classes, kind in _BY_CLASS[:4]:  # integers and floats, before Numeric
        if isinstance(satype, classes):
            return ColumnType(kind, native=native)
    if isinstance(satype, sa.Numeric):
        return ColumnType(
            Kind.DECIMAL, precision=satype.precision, scale=satype.scale, native=native
        )
    if isinstance(satype, sa.DateTime):
        return ColumnType(Kind.DATETIMETZ if satype.timezone else Kind.DATETIME, native=native)
    for classes, kind in _BY_CLASS[4:]:
        if isinstance(satype, classes):
            return ColumnType(kind, native=native)
    return _textual(satype, native)


class _Rendered(UserDefinedType[Any]):
    """A DDL type whose text Ferry produced: :meth:`SqlType.render` of a parsed,
    allow-listed type, or one of this module's constants — never text that was read."""

    cache_ok = True

    def __init__(self, spec: SqlType | str) -> None:
        self.spec = spec.render() if isinstance(spec, SqlType) else spec

    def get_col_spec(self, **_kw: Any) -> str:
        return self.spec


def ddl_type(
    ct: ColumnType,
    dialect: str,
    *,
    same_dialect: bool,
    autoincrement: bool = False,
    what: str = "column",
) -> Any:
    """The type to create a column of kind ``ct.kind`` with on ``dialect``.

    The source's spelling is used between databases of one dialect, re-rendered from
    its parse (InvalidInput if it does not parse: a second fence behind the readers)."""
    kind = ct.kind
    if autoincrement and kind in INTEGER_KINDS:
        return sa.BigInteger() if kind is Kind.BIGINT else sa.Integer()
    if same_dialect and ct.native:
        return _Rendered(parse_type(ct.native, dialect, f"{what} type"))
    if kind is Kind.OTHER:
        if dialect == "sqlite" and same_dialect:
            return _Rendered("BLOB")  # no declared type: SQLite's BLOB (none) affinity
        raise InvalidInput(f"{what}: its type cannot be created on {dialect}")
    for size in (ct.length, ct.precision, ct.scale):
        if size is not None and (type(size) is not int or not 0 <= size <= MAX_SIZE):
            raise InvalidInput(f"{what}: a type size is not a whole number")
    return _GENERIC_DDL[kind](ct, dialect)


def _text_ddl(_ct: ColumnType, dialect: str) -> Any:
    return mysql.LONGTEXT() if dialect == "mysql" else sa.Text()


def _binary_ddl(_ct: ColumnType, dialect: str) -> Any:
    return mysql.LONGBLOB() if dialect == "mysql" else sa.LargeBinary()


def _json_ddl(ct: ColumnType, dialect: str) -> Any:
    if dialect == "postgresql":
        return postgresql.JSONB() if ct.variant == "jsonb" else postgresql.JSON()
    return sa.JSON()


def _datetime_ddl(ct: ColumnType, dialect: str) -> Any:
    if dialect == "mysql":
        return mysql.DATETIME(fsp=6)
    return sa.DateTime(timezone=ct.kind is Kind.DATETIMETZ)


def _time_ddl(_ct: ColumnType, dialect: str) -> Any:
    return mysql.TIME(fsp=6) if dialect == "mysql" else sa.Time()


_GENERIC_DDL: dict[Kind, Callable[[ColumnType, str], Any]] = {
    Kind.SMALLINT: lambda ct, d: sa.SmallInteger(),
    Kind.INTEGER: lambda ct, d: sa.Integer(),
    Kind.BIGINT: lambda ct, d: sa.BigInteger(),
    Kind.BOOLEAN: lambda ct, d: sa.Boolean(create_constraint=False),
    Kind.FLOAT: lambda ct, d: sa.Float(precision=53) if d == "mysql" else sa.Float(),
    Kind.DECIMAL: lambda ct, d: sa.Numeric(ct.precision, ct.scale),
    Kind.STRING: lambda ct, d: sa.String(ct.length or 255),
    Kind.TEXT: _text_ddl,
    Kind.BINARY: _binary_ddl,
    Kind.DATE: lambda ct, d: sa.Date(),
    Kind.TIME: _time_ddl,
    Kind.DATETIME: _datetime_ddl,
    Kind.DATETIMETZ: _datetime_ddl,
    Kind.JSON: _json_ddl,
    Kind.UUID: lambda ct, d: sa.Uuid(as_uuid=False) if d == "postgresql" else sa.String(36),
}


# ---- binding raw values -------------------------------------------------------------


def _to_datetime(value: Any) -> Any:
    if isinstance(value, str):
        parsed = parse_datetime(value)
        return parsed if parsed is not None else value
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return dt.datetime(value.year, value.month, value.day)
    return value


def _datetime_for(kind: Kind, dialect: str) -> Callable[[Any], Any]:
    def convert(value: Any) -> Any:
        if dialect == "sqlite":
            if isinstance(value, dt.datetime):
                return value.isoformat(sep=" ")
            return value
        value = _to_datetime(value)
        if not isinstance(value, dt.datetime):
            return value
        if dialect == "mysql" or kind is Kind.DATETIME:
            if value.tzinfo is not None:
                value = value.astimezone(dt.UTC).replace(tzinfo=None)
            return value
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        return value

    return convert


def _date_for(dialect: str) -> Callable[[Any], Any]:
    def convert(value: Any) -> Any:
        if isinstance(value, dt.datetime):
            value = value.date()
        if dialect == "sqlite":
            return value.isoformat() if isinstance(value, dt.date) else value
        if isinstance(value, str):
            try:
                return dt.date.fromisoformat(value[:10])
            except ValueError:
                return value
        return value

    return convert


def _time_for(dialect: str) -> Callable[[Any], Any]:
    def convert(value: Any) -> Any:
        if dialect == "sqlite":
            return value.isoformat() if isinstance(value, dt.time) else value
        if isinstance(value, str):
            try:
                return dt.time.fromisoformat(value)
            except ValueError:
                return value
        return value

    return convert


def _boolean_for(dialect: str) -> Callable[[Any], Any]:
    def convert(value: Any) -> Any:
        if isinstance(value, str):
            flag = value.strip().lower() in ("1", "t", "true", "y", "yes")
        else:
            flag = bool(value)
        return int(flag) if dialect == "sqlite" else flag

    return convert


def _integer(value: Any) -> Any:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, (str, Decimal, float)):
        try:
            return int(value)
        except (ValueError, ArithmeticError):
            return value
    return value


def _decimal_for(dialect: str) -> Callable[[Any], Any]:
    def convert(value: Any) -> Any:
        if isinstance(value, float):
            value = Decimal(repr(value))
        if dialect == "sqlite":
            return str(value) if isinstance(value, Decimal) else value
        if isinstance(value, str):
            try:
                return Decimal(value)
            except ArithmeticError:
                return value
        return value

    return convert


def _float(value: Any) -> Any:
    """A float for the driver; text that is not a number (or an int beyond a double)
    goes through as it is, for the database to refuse with its own error."""
    if isinstance(value, (int, Decimal, str)) and value != "":
        try:
            return float(value)
        except (ValueError, ArithmeticError):
            return value
    return value


def _text(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).decode("utf-8")
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    if isinstance(value, (dt.datetime, dt.date, dt.time, Decimal)):
        return str(value) if not isinstance(value, dt.datetime) else value.isoformat(sep=" ")
    if isinstance(value, bool):
        return value
    return value


def _binary(value: Any) -> Any:
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    return value


def _identity(value: Any) -> Any:
    return value


class Bind(TypeDecorator[Any]):
    """Converts a carried raw value for the target column; optionally casts in SQL."""

    impl = sa.types.NullType
    cache_ok = True

    def __init__(self, convert: Callable[[Any], Any]) -> None:
        super().__init__()
        self.convert = convert

    def process_bind_param(self, value: Any, dialect: sa.Dialect) -> Any:
        return None if value is None else self.convert(value)


class CastBind(Bind):
    """Binds text and lets the server parse it (PostgreSQL JSON, JSONB, UUID)."""

    cache_ok = True

    def __init__(self, convert: Callable[[Any], Any], cast_to: str) -> None:
        super().__init__(convert)
        self.cast_to = cast_to

    def bind_expression(self, bindvalue: Any) -> Any:
        return sa.cast(sa.type_coerce(bindvalue, sa.Text()), _Rendered(self.cast_to))


def bind_type(ct: ColumnType, dialect: str) -> Bind:
    """How to bind a raw value into a column of type ``ct`` (the *target's* type)."""
    kind = ct.kind
    if kind in (Kind.DATETIME, Kind.DATETIMETZ):
        return Bind(_datetime_for(kind, dialect))
    if kind is Kind.DATE:
        return Bind(_date_for(dialect))
    if kind is Kind.TIME:
        return Bind(_time_for(dialect))
    if kind is Kind.BOOLEAN:
        return Bind(_boolean_for(dialect))
    if kind in INTEGER_KINDS:
        return Bind(_integer)
    if kind is Kind.DECIMAL:
        return Bind(_decimal_for(dialect))
    if kind is Kind.FLOAT:
        return Bind(_float)
    if kind is Kind.BINARY:
        return Bind(_binary)
    if kind is Kind.JSON:
        if dialect == "postgresql":
            return CastBind(_text, "JSONB" if ct.variant == "jsonb" else "JSON")
        return Bind(_text)
    if kind is Kind.UUID:
        return CastBind(_text, "UUID") if dialect == "postgresql" else Bind(_text)
    if kind in (Kind.STRING, Kind.TEXT):
        return Bind(_text)
    return Bind(_identity)
