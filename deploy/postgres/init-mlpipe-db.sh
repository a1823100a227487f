#!/bin/bash
# Runs once, when the postgres container initialises an empty data volume (docker-entrypoint-initdb.d).
# POSTGRES_USER/POSTGRES_DB (airflow) already exist: add the airflow-mlpipe store database and its owner.
set -euo pipefail
: "${MLPIPE_DB:=mlpipe}" "${MLPIPE_DB_USER:=mlpipe}" "${MLPIPE_DB_PASSWORD:?MLPIPE_DB_PASSWORD is not set}"
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
     -v db="$MLPIPE_DB" -v usr="$MLPIPE_DB_USER" -v pwd="$MLPIPE_DB_PASSWORD" <<'SQL'
CREATE USER :"usr" WITH PASSWORD :'pwd';
CREATE DATABASE :"db" OWNER :"usr";
SQL
