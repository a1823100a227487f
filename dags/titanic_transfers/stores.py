"""The example's datastores, registered the v1 way: an Azure Blob container (the local Azurite emulator unless
``TITANIC_BLOB_ENDPOINT`` names another endpoint) and an Azure Database for PostgreSQL (the machine's PostgreSQL
unless ``TITANIC_PG_SERVER`` says otherwise). The account key and the database password go into Airflow
connections, never into the workspace or the pipeline."""

import os

from airflow_mlpipe import Datastore, UserErrorException

#: Azurite's development account and its well-known key (public, the same on every machine)
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def titanic_stores(ws):
    """(blob store, PostgreSQL store, local store), registered on first use."""
    try:
        blob = Datastore.get(ws, "titanic_blob")
    except UserErrorException:
        endpoint = os.environ.get("TITANIC_BLOB_ENDPOINT", "127.0.0.1:10000")
        blob = Datastore.register_azure_blob_container(
            ws, "titanic_blob", container_name="titanic",
            account_name=os.environ.get("TITANIC_BLOB_ACCOUNT", AZURITE_ACCOUNT),
            account_key=os.environ.get("TITANIC_BLOB_KEY", AZURITE_KEY),
            protocol="http" if endpoint.startswith("127.0.0.1") else "https", endpoint=endpoint,
            create_if_not_exists=True)
    try:
        warehouse = Datastore.get(ws, "titanic_pg")
    except UserErrorException:
        warehouse = Datastore.register_azure_postgre_sql(
            ws, "titanic_pg", server_name=os.environ.get("TITANIC_PG_SERVER", "127.0.0.1"),
            port_number=int(os.environ.get("TITANIC_PG_PORT", "5432")),
            database_name=os.environ.get("TITANIC_PG_DATABASE", "test"),
            user_id=os.environ.get("TITANIC_PG_USER", "postgres"),
            user_password=os.environ.get("TITANIC_PG_PASSWORD", "unused-with-trust-auth"))
    return blob, warehouse, Datastore(ws, "workspaceblobstore")
