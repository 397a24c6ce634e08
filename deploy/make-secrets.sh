#!/usr/bin/env bash
# Create the secrets deploy/compose.yaml reads, under deploy/secrets/ (gitignored), once.
# Needs only openssl. Existing files are kept: rerunning never replaces a key that data depends on.
#
#   deploy/make-secrets.sh [DIR]       (default: deploy/secrets next to this script)
#
# The same values are what the Kubernetes Secrets hold (deploy/k8s/README.md shows the kubectl commands).
set -euo pipefail
dir="${1:-$(cd "$(dirname "$0")" && pwd)/secrets}"
umask 077
mkdir -p "$dir"
chmod 700 "$dir"

fernet_key() { openssl rand 32 | base64 | tr '+/' '-_'; }
create() {  # create FILE from stdin unless it exists
  if [[ -e "$dir/$1" ]]; then echo "kept    $dir/$1"; cat >/dev/null; return; fi
  cat >"$dir/$1"
  echo "created $dir/$1"
}

openssl rand -hex 24 | create postgres_password
openssl rand -hex 24 | create keystore_password
if [[ ! -e "$dir/auth-private.pem" ]]; then
  openssl genpkey -algorithm ed25519 -out "$dir/auth-private.pem"
  openssl pkey -in "$dir/auth-private.pem" -pubout -out "$dir/auth-public.pem"
  echo "created $dir/auth-private.pem, $dir/auth-public.pem"
fi
printf 'DATABASE_URL=postgresql://marugoto:%s@postgres:5432/marugoto\n' "$(cat "$dir/postgres_password")" \
  | create database.env
printf 'MARUGOTO_KEYSTORE_URL=postgresql://keystore:%s@keystore:5432/keystore\n' "$(cat "$dir/keystore_password")" \
  | create keystore.env
printf 'MARUGOTO_PERSONAL_DATA_KEYS=["%s"]\nMARUGOTO_PERSONAL_INDEX_KEY=%s\n' "$(fernet_key)" "$(fernet_key)" \
  | create intake.env
cat <<'CONF' | create conference.env
# The conference service's own client credentials (it reads the indicators for 推進会議 agendas).
# Issue them once the stack is up, then restart conference:
#   docker compose -f deploy/compose.yaml run --rm migrate agencies add --id svc-conference \
#     --name "conference service" --scopes operator
# MARUGOTO_SERVICE_CLIENT_ID=svc-conference
# MARUGOTO_SERVICE_CLIENT_SECRET=<the client_secret it printed>
CONF
# Compose bind-mounts secret files as they are: the services run as uid 10001 and must read them.
# The directory stays private to its owner (0700); the files inside are world-readable only through it.
chmod 644 "$dir"/*
