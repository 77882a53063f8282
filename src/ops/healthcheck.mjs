// Container HEALTHCHECK: exit 0 if GET /healthz (or the path given: /readyz) answers 2xx. Plain JS (no tsx
// start-up cost). Tries the S3 listener (which serves both), then the admin listener; honours LAKECRYPT_PORT /
// LAKECRYPT_ADMIN_PORT. With TLS on the S3 port the certificate is not verified (this is a loopback probe).
const env = process.env;
const probe = process.argv[2] === '/readyz' ? '/readyz' : '/healthz';
if (env.LAKECRYPT_TLS_CERT) process.env.NODE_TLS_REJECT_UNAUTHORIZED = '0';
const targets = [
  `${env.LAKECRYPT_TLS_CERT ? 'https' : 'http'}://127.0.0.1:${env.LAKECRYPT_PORT || 9100}${probe}`,
  `http://127.0.0.1:${env.LAKECRYPT_ADMIN_PORT || 9101}${probe}`,
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
