"""Datastore names and URLs: what is a valid name, what kind of storage a URL is, and refusing credentials.

Secrets never reach the workspace store, specs or logs: a URL or a storage option that carries one is refused
with a hint to put it in an Airflow Connection instead. One place decides what "carries a credential" means.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus, urlsplit

from airflow_mlpipe.contract.exceptions import UserErrorException

_NAME_RE = re.compile(r"^[A-Za-z0-9_]+$")
#: the v1 ``datastore_type`` of a URL's protocol
KIND_BY_PROTOCOL = {
    "file": "Local", "local": "Local", "memory": "Memory", "s3": "S3", "s3a": "S3", "gs": "GCS", "gcs": "GCS",
    "abfs": "AzureBlob", "abfss": "AzureBlob", "az": "AzureBlob", "adl": "AzureDataLake", "dbfs": "DBFS",
    "azfile": "AzureFile", "hdfs": "Hdfs", "sftp": "SFTP", "ftp": "FTP",
}
#: parts of a query parameter or option name that carry a credential (compared without case and separators)
_SECRET_NAME_PARTS = ("password", "passwd", "passphrase", "secret", "token", "signature", "credential",
                      "accesskey", "sharedaccess", "connectionstring", "connstr")
#: whole words of such a name (``sig`` of a SAS, ``pwd`` of a connection string)
_SECRET_NAME_WORDS = frozenset({"sig", "pwd", "sas"})
#: option values that name an anonymous / ambient auth mode rather than carry a secret (gcsfs ``token``)
_AUTH_MODES = frozenset({"", "anon", "google_default", "cloud", "browser", "none"})
#: v1 ``datastore_type`` of the SQL datastores (``register_sql_database`` is ours: any SQLAlchemy URL)
SQL_KINDS = frozenset({"AzureSqlDatabase", "AzurePostgreSql", "AzureMySql", "SqlDatabase"})
#: the Airflow connection type of a SQLAlchemy dialect (the part of the URL scheme before ``+``)
CONN_TYPE_BY_DIALECT = {"postgresql": "postgres", "postgres": "postgres", "mysql": "mysql", "mariadb": "mysql",
                        "mssql": "mssql", "sqlite": "sqlite", "oracle": "oracle"}
CONN_HINT = ("put it in an Airflow Connection and pass its id as conn_id=... (secrets never go into the "
             "workspace store, specs or logs)")


def check_name(name: Any) -> str:
    """``name`` if it is a valid datastore name (letters, digits, ``_``), else a UserErrorException."""
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise UserErrorException(
            f"Invalid datastore name {name!r}: datastore names may contain only letters, digits and '_'"
        )
    return name


def secret_name(name: str) -> bool:
    """True for a query parameter / option name that carries a credential (``X-Amz-Signature``, ``sig``,
    ``AccountKey``, ``aws_secret_access_key``, ``sas_token``, ``pwd`` ...), whatever its case or separators."""
    words = [w for w in re.split(r"[^a-z0-9]+", name.lower()) if w]
    joined = "".join(words)
    return (joined.endswith("key") or any(part in joined for part in _SECRET_NAME_PARTS)
            or bool(_SECRET_NAME_WORDS.intersection(words)))


def url_secret(url: str) -> str | None:
    """What in ``url`` carries a credential (a description naming the key, never its value), or None."""
    parts = urlsplit(url) if "://" in url else None
    if parts is not None and parts.password:
        return "a password in its user info (user:password@host)"
    path = parts.path if parts is not None else url
    pairs = [p for p in path.split(";")[1:] if "=" in p]  # connection-string / matrix style ``;AccountKey=…``
    if parts is not None:
        pairs += [p for p in re.split(r"[&;]", f"{parts.query}&{parts.fragment}") if p]
    for pair in pairs:
        name, _, value = pair.partition("=")
        name = unquote_plus(name).strip()
        if value and secret_name(name):
            return f"query parameter {name!r}"
    return None


def normalize_url(url: str, owner: str = "Datastore url") -> str:
    """Plain local paths become ``file://`` URLs; URLs carrying credentials are refused."""
    if not isinstance(url, str) or not url:
        raise UserErrorException(f"{owner}: the url must be a non-empty string, got {url!r}")
    found = url_secret(url)
    if found:
        raise UserErrorException(f"{owner}: the url must not carry credentials, but has {found}; {CONN_HINT}")
    if "://" not in url:
        return Path(url).expanduser().resolve().as_uri()
    return url


def option_secrets(value: Any, path: str = "") -> list[str]:
    """Key paths (``client_kwargs.aws_secret_access_key``) of credentials anywhere in nested storage options."""
    found: list[str] = []
    if isinstance(value, dict):
        for key, item in value.items():
            where = f"{path}.{key}" if path else str(key)
            if secret_name(str(key)) and not _auth_mode(item):
                found.append(where)
            else:
                found += option_secrets(item, where)
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            found += option_secrets(item, f"{path}[{i}]")
    elif isinstance(value, str) and "://" in value and url_secret(value):
        found.append(f"{path} ({url_secret(value)})")
    return found


def _auth_mode(value: Any) -> bool:
    """An option value that selects an auth mode (``token="anon"``, ``anon=True``) instead of holding a secret."""
    return value is None or isinstance(value, bool) or (isinstance(value, str) and value.lower() in _AUTH_MODES)


def protocol_of(url: str) -> str:
    """The lower-case protocol of ``url`` (``file`` for a plain path)."""
    return url.split("://", 1)[0].lower() if "://" in url else "file"


def kind_of(url: str) -> str:
    """The v1 ``datastore_type`` for a URL (the upper-cased protocol when it has no v1 name)."""
    protocol = protocol_of(url)
    return KIND_BY_PROTOCOL.get(protocol, protocol.upper())


def is_sql_kind(kind: str | None) -> bool:
    return kind in SQL_KINDS


def split_sql_url(url: str, owner: str) -> tuple[str, str | None]:
    """``(url without its password, the password or None)`` of a SQLAlchemy URL (a clear error when it is not one).

    The error never shows the URL itself: it may hold the password.
    """
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    if not isinstance(url, str) or not url:
        raise UserErrorException(f"{owner}: url must be a SQLAlchemy URL string such as "
                                 f"'postgresql+psycopg2://user:password@host:5432/db', got {type(url).__name__}")
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        raise UserErrorException(f"{owner}: url is not a SQLAlchemy URL (expected "
                                 f"'dialect+driver://user:password@host:port/database')") from None
    password = parsed.password
    clean = url if password is None else parsed._replace(password=None).render_as_string(hide_password=False)
    found = url_secret(clean)
    if found:
        raise UserErrorException(f"{owner}: the url must not carry credentials outside its password, but has "
                                 f"{found}; pass the password in the user info (user:password@host), it moves "
                                 "into the datastore's Airflow connection")
    return clean, (str(password) if password is not None else None)


def sql_dialect(url: str) -> str:
    """The dialect of a SQLAlchemy URL (``postgresql`` of ``postgresql+psycopg2://…``)."""
    return protocol_of(url).split("+", 1)[0]
