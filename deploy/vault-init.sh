#!/bin/sh
# Seeds a Vault for the app (docker-compose.yml runs it against the dev-mode Vault):
#   - a KV v2 secret at $VAULT_KV_MOUNT/$VAULT_SECRET_PATH with JWT_SECRET, ENCRYPTION_KEY and
#     METRICS_TOKEN (prod needs it with METRICS_PORT), generated once (an existing secret is
#     kept; a missing METRICS_TOKEN is added);
#   - a policy that may read only that secret, use transit keys (VAULT_TRANSIT_KEY, when a
#     transit engine is mounted) and renew its own token;
#   - an AppRole bound to the policy, whose role id and a fresh secret id are written as the
#     app's secret files VAULT_ROLE_ID and VAULT_SECRET_ID in $SECRETS_OUT (the app's
#     SECRETS_DIR), readable only by $APP_UID.
# Idempotent: a dev-mode Vault forgets everything on restart, so run it on every start.
#
# Needs VAULT_ADDR and a token allowed to do all that (VAULT_TOKEN). Works with the `vault`
# CLI or OpenBao's `bao` (VAULT_BIN=bao).
set -eu

: "${VAULT_ADDR:?set VAULT_ADDR}"
: "${VAULT_TOKEN:?set VAULT_TOKEN}"
VAULT_BIN=${VAULT_BIN:-vault}
MOUNT=${VAULT_KV_MOUNT:-secret}
SECRET_PATH=${VAULT_SECRET_PATH:-app}
ROLE=${APPROLE_NAME:-app}
OUT=${SECRETS_OUT:-/secrets}
APP_UID=${APP_UID:-10001}

vault() { "$VAULT_BIN" "$@"; }

# URL-safe base64 of $1 random bytes, without padding.
random_b64() { head -c "$1" /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n'; }

until vault status >/dev/null 2>&1; do
    echo "vault-init: waiting for $VAULT_ADDR" >&2
    sleep 1
done

if ! vault secrets list -format=json | grep -q "\"$MOUNT/\""; then
    vault secrets enable -path="$MOUNT" -version=2 kv
fi
if vault kv get -mount="$MOUNT" "$SECRET_PATH" >/dev/null 2>&1; then
    echo "vault-init: $MOUNT/$SECRET_PATH exists, kept" >&2
    if ! vault kv get -mount="$MOUNT" -field=METRICS_TOKEN "$SECRET_PATH" >/dev/null 2>&1; then
        vault kv patch -mount="$MOUNT" "$SECRET_PATH" METRICS_TOKEN="$(random_b64 32)" >/dev/null
        echo "vault-init: METRICS_TOKEN added" >&2
    fi
else
    vault kv put -mount="$MOUNT" "$SECRET_PATH" \
        JWT_SECRET="$(random_b64 48)" \
        ENCRYPTION_KEY="$(random_b64 32)" \
        METRICS_TOKEN="$(random_b64 32)" >/dev/null
    echo "vault-init: $MOUNT/$SECRET_PATH written" >&2
fi

vault policy write "$ROLE" - >/dev/null <<POLICY
path "$MOUNT/data/$SECRET_PATH" { capabilities = ["read"] }
path "$MOUNT/metadata/$SECRET_PATH" { capabilities = ["read"] }
path "transit/encrypt/*" { capabilities = ["update"] }
path "transit/decrypt/*" { capabilities = ["update"] }
path "auth/token/lookup-self" { capabilities = ["read"] }
path "auth/token/renew-self" { capabilities = ["update"] }
POLICY

if ! vault auth list -format=json | grep -q '"approle/"'; then
    vault auth enable approle >/dev/null
fi
vault write "auth/approle/role/$ROLE" \
    token_policies="$ROLE" token_ttl=1h token_max_ttl=4h secret_id_ttl=0 >/dev/null
role_id=$(vault read -field=role_id "auth/approle/role/$ROLE/role-id")
secret_id=$(vault write -f -field=secret_id "auth/approle/role/$ROLE/secret-id")

umask 077
mkdir -p "$OUT"
printf '%s' "$role_id" >"$OUT/VAULT_ROLE_ID"
printf '%s' "$secret_id" >"$OUT/VAULT_SECRET_ID"
if [ "$(id -u)" = 0 ]; then
    chown "$APP_UID" "$OUT" "$OUT/VAULT_ROLE_ID" "$OUT/VAULT_SECRET_ID"
fi
echo "vault-init: AppRole $ROLE ready, ids written to $OUT" >&2
