"""Reading a tabular dataset definition: delimited, Parquet and JSON-lines files → an Arrow table → pandas.

Files are read with pyarrow in the listing's sorted order; partition values parsed from the paths and the
``Path`` column are appended, ``set_column_types`` conversions applied, then the recorded transforms.
"""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import datetime
from typing import Any

from airflow_mlpipe.contract.exceptions import UserErrorException
from airflow_mlpipe.data.dataset_definition import header_mode as parse_header_mode
from airflow_mlpipe.data.dataset_files import FileListing, list_files
from airflow_mlpipe.data.transforms import apply_table_transforms

_ENCODINGS = {"utf8": "utf8", "utf8bom": "utf-8-sig", "iso88591": "iso-8859-1", "latin1": "latin1",
              "ascii": "ascii", "utf16": "utf-16", "utf32": "utf-32", "windows1252": "cp1252"}


def partition_parser(fmt: str | None) -> tuple[re.Pattern[str], list[tuple[str, str | None]]] | None:
    """``'/{Dept}/{Date:yyyy/MM/dd}/data.csv'`` → a suffix regex and its (column, date format) list."""
    if not fmt:
        return None
    pattern, columns, pos = "", [], 0
    for m in re.finditer(r"\{([^}:]+)(?::([^}]+))?\}", fmt):
        pattern += re.escape(fmt[pos:m.start()])
        name, datefmt = m.group(1), m.group(2)
        if datefmt:
            rx = re.escape(datefmt)
            for token, digits in (("yyyy", 4), ("MM", 2), ("dd", 2), ("HH", 2), ("mm", 2), ("ss", 2)):
                rx = rx.replace(token, rf"\d{{{digits}}}")
            pattern += f"({rx})"
        else:
            pattern += "([^/]+)"
        columns.append((name, datefmt))
        pos = m.end()
    pattern += re.escape(fmt[pos:])
    return re.compile(pattern + "$"), columns


def partition_values(parser: Any, rel: str) -> dict[str, Any]:
    if parser is None:
        return {}
    regex, columns = parser
    m = regex.search("/" + rel)
    if not m:
        return {name: None for name, _ in columns}
    out: dict[str, Any] = {}
    for (name, datefmt), value in zip(columns, m.groups(), strict=True):
        if datefmt:
            py = datefmt
            for token, code in (("yyyy", "%Y"), ("MM", "%m"), ("dd", "%d"), ("HH", "%H"), ("mm", "%M"),
                                ("ss", "%S")):
                py = py.replace(token, code)
            value = datetime.strptime(value, py)
        out[name] = value
    return out


def _first_row(data: bytes, encoding: str, separator: str) -> list[str]:
    text = data[: 1 << 16].decode(encoding, errors="replace")
    try:
        return next(csv.reader(io.StringIO(text), delimiter=separator))
    except StopIteration:
        return []


def _read_delimited(data: bytes, options: dict[str, Any], header: bool, names: list[str] | None) -> Any:
    import pyarrow as pa
    import pyarrow.csv as pacsv

    encoding = _ENCODINGS.get(str(options.get("encoding", "utf8")).lower(), options.get("encoding", "utf8"))
    separator = options.get("separator", ",")
    typed = options.get("set_column_types") or {}
    read_kw: dict[str, Any] = {"encoding": encoding}
    if names is not None:
        read_kw["column_names"] = names
        read_kw["skip_rows"] = 1 if header else 0
    elif not header:
        count = len(_first_row(data, "utf-8-sig" if encoding == "utf8" else encoding, separator))
        read_kw["column_names"] = [f"Column{i + 1}" for i in range(count)]
    if names is None and header and not options.get("infer_column_types", True):
        cols = _first_row(data, "utf-8-sig" if encoding == "utf8" else encoding, separator)
    else:
        cols = read_kw.get("column_names") or []
    string_cols = set(typed)
    if not options.get("infer_column_types", True):
        string_cols |= set(cols)
    convert = pacsv.ConvertOptions(
        column_types={c: pa.string() for c in string_cols},
        strings_can_be_null=not options.get("empty_as_string", False),
        quoted_strings_can_be_null=not options.get("empty_as_string", False),
    )
    parse = pacsv.ParseOptions(delimiter=separator, newlines_in_values=bool(options.get("support_multi_line")))
    if encoding in ("utf8", "utf-8-sig") and data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
        read_kw["encoding"] = "utf8"
    return pacsv.read_csv(pa.BufferReader(data), read_options=pacsv.ReadOptions(**read_kw),
                          parse_options=parse, convert_options=convert)


def _read_json_lines(data: bytes, options: dict[str, Any]) -> Any:
    import pyarrow as pa
    import pyarrow.json as pajson

    if options.get("invalid_lines", "error") == "drop":
        rows = []
        for line in data.decode(options.get("encoding") or "utf8").splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        return pa.Table.from_pylist(rows)
    return pajson.read_json(pa.BufferReader(data))


def read_table(listing: FileListing, fmt: str, options: dict[str, Any]) -> Any:
    import pyarrow as pa
    import pyarrow.parquet as pq

    if fmt not in ("delimited", "parquet", "json_lines"):
        raise UserErrorException(f"Cannot read format {fmt!r} as a table")
    parser = partition_parser(options.get("partition_format"))
    header_mode = parse_header_mode(options.get("header", True))
    tables = []
    names: list[str] | None = None
    for i, m in enumerate(listing.matches):
        with m.fs.open(m.path, "rb") as handle:
            data = handle.read()
        try:
            if fmt == "delimited":
                header = header_mode == "all" or (header_mode == "first" and i == 0)
                table = _read_delimited(data, options, header, names if header_mode == "first" else None)
                if header_mode == "first" and names is None:
                    names = table.column_names
            elif fmt == "parquet":
                table = pq.read_table(pa.BufferReader(data))
            else:
                table = _read_json_lines(data, options)
        except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
            raise UserErrorException(f"Could not read {m.path} as {fmt}: {exc}") from exc
        if options.get("include_path"):
            table = table.append_column("Path", pa.array(["/" + m.rel] * table.num_rows, pa.string()))
        for col, value in partition_values(parser, m.rel).items():
            table = table.append_column(col, pa.array([value] * table.num_rows))
        tables.append(table)
    if not tables:
        return pa.table({})
    return pa.concat_tables(tables, promote_options="permissive")


def convert_column(series: Any, spec: dict[str, Any], errors: str, col: str) -> Any:
    import pandas as pd

    kind = spec.get("type")
    try:
        if kind == "string":
            return series.astype("str").where(series.notna(), None) if series.dtype != "str" else series
        if kind in ("long", "float"):
            values = series
            if kind == "float" and spec.get("decimal_mark", ".") != "." and values.dtype == "str":
                values = values.str.replace(spec["decimal_mark"], ".", regex=False)
            numbers = pd.to_numeric(values, errors=errors)
            if kind == "long":
                if errors == "raise" and (numbers.dropna() % 1 != 0).any():
                    raise ValueError("non-integer values")
                return numbers.where(numbers % 1 == 0).astype("Int64")
            return numbers.astype("float64")
        if kind == "bool":
            mapping = {"true": True, "false": False, "1": True, "0": False, "yes": True, "no": False,
                       "t": True, "f": False}
            mapped = series.map(lambda v: v if isinstance(v, bool) or v is None or v != v
                                else mapping.get(str(v).strip().lower(), "bad"))
            if errors == "raise" and (mapped == "bad").any():
                raise ValueError("values that are not booleans")
            return mapped.where(mapped != "bad", None).astype("boolean")
        if kind == "datetime":
            formats = spec.get("formats") or [None]
            result = pd.to_datetime(series, format=formats[0], errors="coerce")
            for fmt in formats[1:]:
                result = result.fillna(pd.to_datetime(series, format=fmt, errors="coerce"))
            if errors == "raise" and (result.isna() & series.notna()).any():
                raise ValueError("values that do not parse as datetimes")
            return result
    except (ValueError, TypeError) as exc:
        raise UserErrorException(f"Column {col!r} cannot be converted to {kind}: {exc}") from exc
    raise UserErrorException(f"Column {col!r}: unknown column type {kind!r}")




def read_arrow(workspace: Any, source: dict[str, Any]) -> Any:
    """The rows of a tabular definition's ``source`` as one Arrow table (no conversions, no transforms)."""
    if source.get("format") == "sql":
        from airflow_mlpipe.data.sql_dataset import read_sql_table

        return read_sql_table(workspace, source)
    listing = list_files(workspace, source)
    return read_table(listing, source["format"], source.get("options") or {})


def read_pandas(workspace: Any, definition: dict[str, Any], on_error: str = "null") -> Any:
    """The rows of a tabular definition as a pandas frame: column types converted (``on_error='null'`` makes
    values that do not convert null, ``'fail'`` raises), then the transforms applied."""
    if on_error not in ("null", "fail"):
        raise UserErrorException(f"to_pandas_dataframe: on_error must be 'null' or 'fail', got {on_error!r}")
    source = definition["source"]
    df = read_arrow(workspace, source).to_pandas()
    errors = "coerce" if on_error == "null" else "raise"
    for col, spec in (source.get("options") or {}).get("set_column_types", {}).items():
        if col in df.columns:
            df[col] = convert_column(df[col], spec, errors, col)
    return apply_table_transforms(df, definition.get("transforms") or [])
