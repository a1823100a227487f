"""The Airflow connections of v1 datastore registrations: what each one holds, writing it, and reading it back.

``Datastore.register_azure_blob_container(..., account_key=...)`` and the other v1 registrations keep their
secrets (account key, SAS token, client secret, database password, S3 secret key) in an Airflow connection
``mlpipe_ds_<datastore name>`` written through the workspace's Airflow REST API (Airflow encrypts it with its
Fernet key). Our store keeps the URL, the connection id and non-secret settings only. Outside an Airflow task the
SDK reads an embedded workspace's connections straight from its Airflow metadata DB with its Fernet key
(:func:`read_embedded_connection`): the user's process is not an Airflow component, and Airflow's SDK only
searches env vars and external secrets backends there.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from airflow_mlpipe.contract.exceptions import UserErrorException
from airflow_mlpipe.data.datastore_location import add_connection_reader, make_connection
from airflow_mlpipe.data.datastore_urls import secret_name
from airflow_mlpipe.data.workspace_location import WorkspaceLocation

CONN_PREFIX = "mlpipe_ds_"
DESCRIPTION = "Datastore {name!r} of an airflow-mlpipe workspace"


def default_conn_id(datastore_name: str) -> str:
    """The Airflow connection of a datastore registered with credentials and no ``conn_id``."""
    return CONN_PREFIX + re.sub(r"[^A-Za-z0-9_]", "_", datastore_name).lower()


@dataclass
class Registration:
    """What a v1 registration records: the store row (url, kind, settings) and the connection body (secrets)."""

    name: str
    url: str
    kind: str
    settings: dict[str, Any]
    body: dict[str, Any] | None = None
    #: the secret values the body holds (scrubbed from every message)
    secrets: list[str] = field(default_factory=list)

    def __repr__(self) -> str:  # the body holds secrets
        return f"Registration(name={self.name!r}, kind={self.kind!r}, url={self.url!r})"


def connection_body(conn_id: str, datastore_name: str, conn_type: str, *, host: str | None = None,
                    login: str | None = None, password: str | None = None, port: int | None = None,
                    schema: str | None = None, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The Airflow REST body of a datastore's connection. Every field is sent (``None`` clears it), so a
    re-registration never keeps a stale secret: Airflow's PATCH replaces the fields a body sets."""
    return {"connection_id": conn_id, "conn_type": conn_type, "description": DESCRIPTION.format(name=datastore_name),
            "host": host, "login": login, "password": password, "port": port, "schema": schema,
            "extra": json.dumps({k: v for k, v in (extra or {}).items() if v is not None})}


def body_secrets(body: dict[str, Any] | None) -> list[str]:
    """The secret values of a connection body: its password and every extra whose name marks a secret."""
    if not body:
        return []
    found = [str(body["password"])] if body.get("password") else []
    extra = json.loads(body.get("extra") or "{}")
    found += [str(v) for k, v in extra.items() if v and secret_name(str(k))]
    return found


def scrub(text: str, secrets: list[str]) -> str:
    """``text`` with every secret (and its URL-encoded form) replaced by ``***``."""
    from urllib.parse import quote, quote_plus

    for secret in secrets:
        for form in {secret, quote(secret, safe=""), quote_plus(secret)}:
            if form:
                text = text.replace(form, "***")
    return text


def in_memory(body: dict[str, Any]) -> Any:
    """The connection of ``body`` as an Airflow ``Connection`` object (to try it before it is written)."""
    return make_connection(body["connection_id"], body["conn_type"], host=body.get("host"), login=body.get("login"),
                           password=body.get("password"), port=body.get("port"), schema=body.get("schema"),
                           extra=body.get("extra"))


def write_connection(workspace: WorkspaceLocation, reg: Registration) -> None:
    """Create or replace the connection of ``reg`` through the workspace's Airflow REST API."""
    from airflow_mlpipe.clients.airflow_rest import AirflowAPIError, client_for

    assert reg.body is not None
    try:
        with client_for(workspace) as client:
            client.put_connection(reg.body)
    except AirflowAPIError as exc:
        raise UserErrorException(
            f"Datastore {reg.name!r}: writing its Airflow connection {reg.body['connection_id']!r} failed: "
            f"{scrub(str(exc), reg.secrets)}"
        ) from None


# ---------------------------------------------------------------------------------------------- reading back
def _fernet(keys: str) -> Any:
    from cryptography.fernet import Fernet, MultiFernet

    return MultiFernet([Fernet(k.strip().encode()) for k in keys.split(",") if k.strip()])


_ENGINES: dict[str, Any] = {}


def read_embedded_connection(workspace: Any, conn_id: str) -> Any:
    """The connection ``conn_id`` of an embedded workspace's Airflow, decrypted with its Fernet key; None for a
    remote Airflow, an Airflow never started, or an unknown id. The result holds secrets: never log it."""
    if not isinstance(workspace, WorkspaceLocation) or not workspace.is_embedded:
        return None
    from airflow_mlpipe.clients.local_airflow_home import SECRETS_FILE

    if not (workspace.airflow_home / SECRETS_FILE).is_file():
        return None
    import sqlalchemy as sa

    from airflow_mlpipe.clients.local_airflow_env import airflow_env

    env = airflow_env(workspace)
    url = env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    if url.startswith("sqlite:///") and not urlsplit(url).path.lstrip("/"):
        return None
    engine = _ENGINES.get(url)
    if engine is None:
        engine = _ENGINES[url] = sa.create_engine(url, poolclass=sa.pool.NullPool)
    query = sa.text("SELECT conn_type, host, schema, login, password, port, extra, is_encrypted, "
                    "is_extra_encrypted FROM connection WHERE conn_id = :conn_id")
    try:
        with engine.connect() as db:
            row = db.execute(query, {"conn_id": conn_id}).mappings().first()
    except sa.exc.OperationalError:  # no metadata DB yet
        return None
    if row is None:
        return None
    fernet = _fernet(env["AIRFLOW__CORE__FERNET_KEY"])

    def plain(value: str | None, encrypted: bool) -> str | None:
        return fernet.decrypt(value.encode()).decode() if value and encrypted else value

    return make_connection(conn_id, row["conn_type"], host=row["host"], schema=row["schema"], login=row["login"],
                           password=plain(row["password"], row["is_encrypted"]), port=row["port"],
                           extra=plain(row["extra"], row["is_extra_encrypted"]))


add_connection_reader(read_embedded_connection)


# ---------------------------------------------------------------------------------------------- checking access
def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


def check_container(location: Any, reg: Registration, what: str, create: bool) -> None:
    """List the container/bucket ``what`` (``root`` of ``location``), creating it first when ``create``;
    an error names the datastore and the container, never a secret."""
    path = location.root
    try:
        fs = location.fs
        if create and not fs.exists(path):
            fs.mkdir(path)
        fs.ls(path)
    except UserErrorException:
        raise
    except Exception as exc:  # auth failure, missing container, unreachable endpoint
        raise UserErrorException(
            f"Datastore {reg.name!r}: cannot list {what} with the given credentials ({scrub(_first_line(exc), reg.secrets)}); "
            "check the name and the credentials, pass create_if_not_exists=True to create it, or "
            "skip_validation=True to register it without checking"
        ) from None


def check_database(location: Any, reg: Registration, what: str) -> None:
    """Connect to the SQL datastore and run ``SELECT 1``; an error names the datastore and the server."""
    import sqlalchemy as sa

    try:
        engine = sa.create_engine(location.sql_url(), poolclass=sa.pool.NullPool)
        try:
            with engine.connect() as db:
                db.execute(sa.text("SELECT 1"))
        finally:
            engine.dispose()
    except UserErrorException:
        raise
    except Exception as exc:
        raise UserErrorException(
            f"Datastore {reg.name!r}: cannot connect to {what} ({scrub(_first_line(exc), reg.secrets)}); check "
            "the server, database, user and password, or pass skip_validation=True to register it without checking"
        ) from None


def delete_connection(workspace: WorkspaceLocation, conn_id: str) -> None:
    """Delete a datastore's own connection (``unregister``); a missing one is fine."""
    from airflow_mlpipe.clients.airflow_rest import _seg, client_for

    with client_for(workspace) as client:
        client.request("DELETE", f"{client.API}/connections/{_seg(conn_id)}", allow_404=True)


# ---------------------------------------------------------------------------------------------- registrations
def choose_conn_id(datastore_name: str, conn_id: str | None, **secrets: Any) -> str:
    """``conn_id`` (the caller's connection, used as is) or ours; secrets AND a ``conn_id`` is an error."""
    given = [k for k, v in secrets.items() if v]
    if conn_id and given:
        raise UserErrorException(
            f"Datastore {datastore_name!r}: pass either {', '.join(given)} or conn_id={conn_id!r}, not both: with "
            "conn_id the credentials come from that Airflow connection as it is"
        )
    if conn_id is not None and (not isinstance(conn_id, str) or not conn_id.strip()):
        raise UserErrorException(f"Datastore {datastore_name!r}: conn_id must be an Airflow connection id, "
                                 f"got {conn_id!r}")
    return conn_id or default_conn_id(datastore_name)


def _need(datastore_name: str, **values: Any) -> None:
    for arg, value in values.items():
        if not isinstance(value, str) or not value.strip():
            raise UserErrorException(f"Datastore {datastore_name!r}: argument {arg!r} must be a non-empty string, "
                                     f"got {value!r}")


def _is_literal_host(host: str) -> bool:
    """``localhost``, an IP address or a host with a port: an emulator / local server, not an Azure suffix."""
    import ipaddress

    name = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    if name == "localhost" or ":" in host:
        return True
    try:
        ipaddress.ip_address(name.strip("[]"))
        return True
    except ValueError:
        return False


def azure_account_url(datastore_name: str, account: str, service: str, protocol: str | None,
                      endpoint: str | None) -> str:
    """v1's ``protocol://<account>.<service>.<endpoint>``; an endpoint that is a local host (``127.0.0.1:10000``)
    is an emulator: path-style ``protocol://<endpoint>/<account>``."""
    scheme = (protocol or "https").lower()
    if scheme not in ("http", "https"):
        raise UserErrorException(f"Datastore {datastore_name!r}: protocol must be 'https' or 'http', got {protocol!r}")
    suffix = (endpoint or "core.windows.net").strip().strip("/")
    if _is_literal_host(suffix):
        return f"{scheme}://{suffix}/{account}"
    return f"{scheme}://{account}.{service}.{suffix}"


def _azure_settings(account: str, protocol: str | None, endpoint: str | None, auth: str,
                    **more: Any) -> dict[str, Any]:
    return {"account_name": account, "protocol": (protocol or "https").lower(),
            "endpoint": endpoint or "core.windows.net", "auth": auth, **more}


def _storage_account_registration(name: str, kind: str, what: str, container: str, account: str,
                                  sas_token: str | None, account_key: str | None, protocol: str | None,
                                  endpoint: str | None, conn_id: str | None) -> Registration:
    """An Azure Storage container (Blob) or share (Files); the account key wins over a SAS token when both are
    given."""
    service, scheme, conn_type = {"AzureBlob": ("blob", "abfs", "wasb"),
                                  "AzureFile": ("file", "azfile", "azure_fileshare")}[kind]
    _need(name, **{what: container, "account_name": account})
    cid = choose_conn_id(name, conn_id, sas_token=sas_token, account_key=account_key)
    auth = "AirflowConnection" if conn_id else "AccountKey" if account_key else "Sas" if sas_token else "None"
    host = azure_account_url(name, account, service, protocol, endpoint)
    suffix = "dfs" if kind == "AzureBlob" else "file"
    url = f"{scheme}://{container}@{account}.{suffix}.{endpoint or 'core.windows.net'}"
    reg = Registration(name, url, kind, _azure_settings(account, protocol, endpoint, auth,
                                                         container_name=container, account_url=host))
    if not conn_id:
        reg.body = connection_body(cid, name, conn_type, host=host, login=account, password=account_key or None,
                                   extra={"account_name": account,
                                          "sas_token": None if account_key else sas_token or None})
    reg.secrets = body_secrets(reg.body)
    return reg


def blob_registration(name: str, container: str, account: str, sas_token: str | None, account_key: str | None,
                      protocol: str | None, endpoint: str | None, conn_id: str | None) -> Registration:
    return _storage_account_registration(name, "AzureBlob", "container_name", container, account, sas_token,
                                         account_key, protocol, endpoint, conn_id)


def file_share_registration(name: str, share: str, account: str, sas_token: str | None, account_key: str | None,
                            protocol: str | None, endpoint: str | None, conn_id: str | None) -> Registration:
    return _storage_account_registration(name, "AzureFile", "file_share_name", share, account, sas_token,
                                         account_key, protocol, endpoint, conn_id)


def adls_gen2_registration(name: str, filesystem: str, account: str, tenant_id: str | None, client_id: str | None,
                           client_secret: str | None, resource_url: str | None, authority_url: str | None,
                           protocol: str | None, endpoint: str | None, conn_id: str | None) -> Registration:
    """ADLS Gen2 with a service principal (``adls`` connection: login = client id, password = client secret)."""
    _need(name, filesystem=filesystem, account_name=account)
    cid = choose_conn_id(name, conn_id, client_secret=client_secret)
    if client_secret and not (tenant_id and client_id):
        raise UserErrorException(f"Datastore {name!r}: a service principal needs tenant_id, client_id and "
                                 "client_secret together")
    auth = "AirflowConnection" if conn_id else "ServicePrincipal" if client_secret else "None"
    host = azure_account_url(name, account, "blob", protocol, endpoint)
    url = f"abfs://{filesystem}@{account}.dfs.{endpoint or 'core.windows.net'}"
    reg = Registration(name, url, "AzureDataLakeGen2", _azure_settings(
        account, protocol, endpoint, auth, container_name=filesystem, account_url=host, tenant_id=tenant_id,
        client_id=client_id, resource_url=resource_url, authority_url=authority_url))
    if not conn_id:
        reg.body = connection_body(cid, name, "adls", host=host, login=client_id, password=client_secret or None,
                                   extra={"account_name": account, "tenant_id": tenant_id,
                                          "resource_url": resource_url, "authority_url": authority_url})
    reg.secrets = body_secrets(reg.body)
    return reg


def s3_registration(name: str, bucket: str, access_key_id: str | None, secret_access_key: str | None,
                    endpoint_url: str | None, region_name: str | None, conn_id: str | None) -> Registration:
    """An S3 bucket (``aws`` connection; ``endpoint_url`` in its extra reaches MinIO, moto, Ceph …)."""
    _need(name, bucket_name=bucket)
    cid = choose_conn_id(name, conn_id, secret_access_key=secret_access_key)
    if bool(access_key_id) != bool(secret_access_key) and not conn_id:
        raise UserErrorException(f"Datastore {name!r}: access_key_id and secret_access_key go together")
    auth = "AirflowConnection" if conn_id else "AccessKey" if secret_access_key else "None"
    reg = Registration(name, f"s3://{bucket}", "S3", {"bucket_name": bucket, "endpoint_url": endpoint_url,
                                                      "region_name": region_name, "auth": auth})
    if not conn_id:
        reg.body = connection_body(cid, name, "aws", login=access_key_id or None,
                                   password=secret_access_key or None,
                                   extra={"endpoint_url": endpoint_url, "region_name": region_name})
    reg.secrets = body_secrets(reg.body)
    return reg


#: per SQL kind: SQLAlchemy driver, Airflow connection type, default port, default Azure host suffix
SQL_FLAVOURS = {
    "AzurePostgreSql": ("postgresql+psycopg2", "postgres", 5432, "postgres.database.azure.com"),
    "AzureMySql": ("mysql+pymysql", "mysql", 3306, "mysql.database.azure.com"),
    "AzureSqlDatabase": ("mssql+pymssql", "mssql", 1433, "database.windows.net"),
}


def sql_host(server_name: str, endpoint: str | None, default_suffix: str) -> str:
    """The rule for ``server_name``: a host as it is when it has a dot, is ``localhost`` or an IP address
    (``127.0.0.1``, ``db.example.org``); otherwise an Azure server name, so ``<server_name>.<endpoint>`` with
    ``endpoint`` defaulting to the service's Azure suffix."""
    server = server_name.strip()
    if "." in server or _is_literal_host(server):
        return server
    return f"{server}.{(endpoint or default_suffix).strip('.')}"


def _is_local(host: str) -> bool:
    return host == "localhost" or host.startswith("127.") or host in ("::1", "[::1]")


def azure_sql_registration(name: str, kind: str, server_name: str, database_name: str, *, user: str | None,
                           password: str | None, port: int | None, endpoint: str | None, conn_id: str | None,
                           tenant_id: str | None = None, client_id: str | None = None,
                           client_secret: str | None = None, enforce_ssl: bool = False) -> Registration:
    """Azure Database for PostgreSQL / MySQL and Azure SQL (user + password, or for Azure SQL a service
    principal) as a SQLAlchemy URL without the password; the password goes into the connection."""
    from sqlalchemy.engine import URL

    _need(name, server_name=server_name, database_name=database_name)
    driver, conn_type, default_port, suffix = SQL_FLAVOURS[kind]
    cid = choose_conn_id(name, conn_id, password=password, client_secret=client_secret)
    if client_secret and not (tenant_id and client_id):
        raise UserErrorException(f"Datastore {name!r}: a service principal needs tenant_id, client_id and "
                                 "client_secret together")
    try:
        port = int(port) if port not in (None, "") else default_port
    except (TypeError, ValueError):
        raise UserErrorException(f"Datastore {name!r}: port_number must be a number, got {port!r}") from None
    host = sql_host(server_name, endpoint, suffix)
    login = client_id if client_secret else user
    query = {"sslmode": "require"} if enforce_ssl and not _is_local(host) else {}
    url = URL.create(driver, username=login or None, host=host, port=port, database=database_name, query=query)
    auth = ("AirflowConnection" if conn_id else "ServicePrincipal" if client_secret
            else "SqlAuthentication" if password else "None")
    reg = Registration(name, url.render_as_string(hide_password=False), kind, {
        "server_name": server_name, "host": host, "database_name": database_name, "user_id": login,
        "port": port, "endpoint": endpoint, "auth": auth, "tenant_id": tenant_id})
    if not conn_id:
        reg.body = connection_body(cid, name, conn_type, host=host, login=login, password=client_secret or password,
                                   port=port, schema=database_name, extra={"tenant_id": tenant_id})
    reg.secrets = body_secrets(reg.body)
    return reg


def sql_url_registration(name: str, url: str, conn_id: str | None) -> Registration:
    """Any SQLAlchemy URL: its password (if any) moves into the connection; the stored URL has none."""
    from sqlalchemy.engine import make_url

    from airflow_mlpipe.data.datastore_urls import CONN_TYPE_BY_DIALECT, split_sql_url, sql_dialect

    clean, password = split_sql_url(url, f"Datastore {name!r}")
    cid = choose_conn_id(name, conn_id, password=password)
    parsed = make_url(clean)
    reg = Registration(name, clean, "SqlDatabase", {
        "server_name": parsed.host, "host": parsed.host, "database_name": parsed.database,
        "user_id": parsed.username, "port": parsed.port,
        "auth": "AirflowConnection" if conn_id else "SqlAuthentication" if password else "None"})
    if password is not None and not conn_id:
        dialect = sql_dialect(clean)
        reg.body = connection_body(cid, name, CONN_TYPE_BY_DIALECT.get(dialect, dialect), host=parsed.host,
                                   login=parsed.username, password=password, port=parsed.port,
                                   schema=parsed.database)
    reg.secrets = body_secrets(reg.body) or ([password] if password else [])
    return reg
