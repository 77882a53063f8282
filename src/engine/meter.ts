/**
 * Plaintext bytes through the engine, counted where the crypto happens (every PUT, part, copy with new keys,
 * migration and re-key alike), for lakecrypt_crypto_bytes_total. Process-wide plain counters: /metrics reads them
 * at each scrape, so the hot path pays one addition per finished stream and no callback.
 */
export const cryptoMeter = { encrypt: 0, decrypt: 0 };
