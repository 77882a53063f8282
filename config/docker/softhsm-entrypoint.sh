#!/bin/sh
# Entrypoint of the `softhsm` image variant: create the SoftHSM token on first start (tokens live in a
# volume), then start the gateway. The gateway creates its CMK key inside the token itself.
# Needs LAKECRYPT_PKCS11_TOKEN and LAKECRYPT_PKCS11_PIN; SOFTHSM_SO_PIN defaults to a random value.
set -eu
: "${LAKECRYPT_PKCS11_TOKEN:?set LAKECRYPT_PKCS11_TOKEN}"
: "${LAKECRYPT_PKCS11_PIN:?set LAKECRYPT_PKCS11_PIN}"
if ! softhsm2-util --show-slots 2>/dev/null | grep -q "Label:[[:space:]]*${LAKECRYPT_PKCS11_TOKEN}[[:space:]]*$"; then
  so_pin="${SOFTHSM_SO_PIN:-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')}"
  softhsm2-util --init-token --free --label "$LAKECRYPT_PKCS11_TOKEN" \
    --pin "$LAKECRYPT_PKCS11_PIN" --so-pin "$so_pin" >/dev/null
  echo "lakecrypt: initialised SoftHSM token \"$LAKECRYPT_PKCS11_TOKEN\"" >&2
fi
exec "$@"
