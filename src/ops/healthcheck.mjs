// Container HEALTHCHECK: exit 0 if GET /healthz answers 2xx. Plain JS (no tsx start-up cost).
// Tries the admin listener first, then the S3 listener; honours LAKECRYPT_ADMIN_PORT / LAKECRYPT_PORT.
const env = process.env;
const targets = [
  `http://127.0.0.1:${env.LAKECRYPT_ADMIN_PORT || 9101}/healthz`,
  `${env.LAKECRYPT_TLS_CERT ? 'https' : 'http'}://127.0.0.1:${env.LAKECRYPT_PORT || 9100}/healthz`,
];
for (const url of targets) {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(3000) });
    if (res.ok) process.exit(0);
  } catch {
    // try the next one
  }
}
process.exit(1);
