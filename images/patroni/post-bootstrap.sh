#!/bin/sh
# Patroni's post_bootstrap: runs once on the member that initialised the cluster, with a
# superuser connection string as $1. Creates the application role and database.
set -eu
db=${NMPI_DB_NAME:-nmpi}
user=${NMPI_DB_USER:-nmpi}
psql "$1" -v ON_ERROR_STOP=1 -v user="$user" -v db="$db" -v password="$NMPI_DB_PASSWORD" <<'SQL'
CREATE ROLE :"user" LOGIN PASSWORD :'password';
CREATE DATABASE :"db" OWNER :"user";
SQL
