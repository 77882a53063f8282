/** lakecrypt's release version (lakecrypt_build_info; test/ops/metrics.test.ts checks it equals package.json's). */
export const VERSION = '0.1.0';
