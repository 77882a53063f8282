/*
 * The aws-chunked framing, read by the seal pump (native/dataplane.c) in place of a plain body: `hex-size[;ext]\r\n
 * data \r\n` ... `0[;ext]\r\n`, trailer lines, a blank line; `inputLength` bytes of it (the request's Content-Length),
 * the chunks' data being the plaintext of `length` bytes (x-amz-decoded-content-length). The rules are
 * src/s3/chunked.ts's: extensions of unsigned chunks ignored, a bare LF taken for CR LF, CRs and LFs after the end
 * tolerated, 4 KiB header lines, 16 MiB chunks, 16 KiB of trailer. The last sealed chunk is held (job.held) until
 * the framing ended and everything it declares was checked, so a body refused at its end never commits.
 *
 * Two payload modes:
 *   STREAMING-UNSIGNED-PAYLOAD-TRAILER (`awsChunked`; the AWS SDK for Go v2's stream bodies): the CRC-32 of the
 *     plaintext is computed and checked against an x-amz-checksum-crc32 trailer, if any (BadDigest); another
 *     checksum trailer or a malformed value is InvalidTrailer; no checksum trailer is accepted (as the Node path).
 *   STREAMING-AWS4-HMAC-SHA256-PAYLOAD (`chunkKey`, `chunkSeed`, `chunkDateScope`; minio-go and mc over http): every
 *     chunk header carries `chunk-signature=<64 hex>`, the HMAC-SHA256 under the request's SigV4 signing key of
 *     "AWS4-HMAC-SHA256-PAYLOAD\n" date "\n" scope "\n" <previous signature> "\n" <SHA-256 of ""> "\n" <SHA-256
 *     of the chunk's data>, chained from the request's own signature; the final zero-size chunk is signed too and
 *     is followed by CR LF, no trailer — or, with `signedTrailer` (STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER; the AWS
 *     SDK for Java v2 over http), by trailer lines whose last is `x-amz-trailer-signature:<64 hex>`, the HMAC of
 *     "AWS4-HMAC-SHA256-TRAILER\n" date "\n" scope "\n" <the final chunk's signature> "\n" <SHA-256 of the other
 *     trailer lines, each as received with "\n" after it>; their x-amz-checksum-crc32 is checked as for unsigned
 *     chunks. A chunk or trailer whose signature is missing, malformed or wrong ends the pump
 *     (SignatureDoesNotMatch). Its ciphertext may already be at the backend, as every earlier chunk's is: what keeps
 *     a forged body from committing is the held last chunk (the Node path instead withholds each chunk's plaintext
 *     until its signature verified; here nothing unverified leaves but ciphertext of an upload that cannot complete).
 */
#include <openssl/hmac.h>
#include <string.h>
#include <strings.h>

#include "pump.h"

int hexval(int c) {
  return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

static int b64val(int c) {
  return c >= 'A' && c <= 'Z' ? c - 'A' : c >= 'a' && c <= 'z' ? c - 'a' + 26 : c >= '0' && c <= '9' ? c - '0' + 52 : c == '+' ? 62 : c == '/' ? 63 : -1;
}

static int is_space(int c) { return c == ' ' || c == '\t'; }

static const char EMPTY_SHA256[] = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

static void to_hex(const uint8_t *b, size_t n, char *out) {
  static const char digits[] = "0123456789abcdef";
  for (size_t i = 0; i < n; i++) out[2 * i] = digits[b[i] >> 4], out[2 * i + 1] = digits[b[i] & 15];
}

/* A signed chunk's extensions (after the ';', spaces trimmed): exactly chunk-signature=<64 lowercase hex>. */
static int chunk_signature(job_t *j, const char *ext, size_t n) {
  static const char name[] = "chunk-signature=";
  size_t nl = sizeof name - 1;
  while (n > 0 && is_space(ext[0])) ext++, n--;
  while (n > 0 && is_space(ext[n - 1])) n--;
  int ok = n == nl + SIG_HEX && memcmp(ext, name, nl) == 0;
  for (size_t k = nl; ok && k < n; k++) ok = (ext[k] >= '0' && ext[k] <= '9') || (ext[k] >= 'a' && ext[k] <= 'f');
  if (!ok) return fail(j, "SignatureDoesNotMatch", "The aws-chunked chunk signature is missing or malformed.");
  memcpy(j->chunk_sig, ext + nl, SIG_HEX);
  if (EVP_DigestInit_ex(j->chunk_sha, EVP_sha256(), NULL) != 1) return fail(j, "CryptoError", "sha256 init");
  return 0;
}

/* The chunk in progress was read whole: its declared signature against the chain's, then it is the chain's. */
static int chunk_signed(job_t *j) {
  uint8_t h[32], mac[32];
  unsigned int hn = 0, mn = 0;
  if (EVP_DigestFinal_ex(j->chunk_sha, h, &hn) != 1 || hn != 32) return fail(j, "CryptoError", "sha256 final");
  char sts[sizeof j->sts_prefix + SIG_HEX + 1 + 64 + 1 + 64];
  size_t n = j->sts_prefix_len;
  memcpy(sts, j->sts_prefix, n);
  memcpy(sts + n, j->prev_sig, SIG_HEX), n += SIG_HEX, sts[n++] = '\n';
  memcpy(sts + n, EMPTY_SHA256, 64), n += 64, sts[n++] = '\n';
  to_hex(h, 32, sts + n), n += 64;
  if (!HMAC(EVP_sha256(), j->sig_key, sizeof j->sig_key, (const uint8_t *)sts, n, mac, &mn) || mn != 32) return fail(j, "CryptoError", "hmac");
  char want[SIG_HEX];
  to_hex(mac, 32, want);
  if (differ((const uint8_t *)want, (const uint8_t *)j->chunk_sig, SIG_HEX)) return fail(j, "SignatureDoesNotMatch", "The aws-chunked chunk signature does not match.");
  memcpy(j->prev_sig, j->chunk_sig, SIG_HEX);
  return 0;
}

/* An aws-chunk header line (without CR LF): its size; a signed chunk's signature, other extensions ignored. */
static int chunk_header(job_t *j, const char *l, size_t n) {
  size_t i = 0, e = n;
  for (size_t k = 0; k < n; k++)
    if (l[k] == ';') { e = k; break; }
  const size_t semi = e; /* n when there are no extensions */
  while (i < e && is_space(l[i])) i++;
  while (e > i && is_space(l[e - 1])) e--;
  if (e == i || e - i > 8) return fail(j, "IncompleteBody", "Malformed aws-chunked chunk header.");
  uint32_t size = 0;
  for (size_t k = i; k < e; k++) {
    int v = hexval((unsigned char)l[k]);
    if (v < 0) return fail(j, "IncompleteBody", "Malformed aws-chunked chunk header.");
    size = size * 16 + (uint32_t)v;
  }
  if (size > MAX_AWS_CHUNK) return fail(j, "InvalidRequest", "aws-chunked chunk size %u exceeds the %u byte limit.", size, MAX_AWS_CHUNK);
  if (j->signed_chunks) {
    if (chunk_signature(j, semi < n ? l + semi + 1 : l + n, semi < n ? n - semi - 1 : 0)) return -1;
    if (size == 0 && chunk_signed(j)) return -1;
    /* the trailer's lines are hashed for its signature, as a chunk's data is */
    if (size == 0 && j->signed_trailer && EVP_DigestInit_ex(j->chunk_sha, EVP_sha256(), NULL) != 1) return fail(j, "CryptoError", "sha256 init");
  }
  if (size == 0) j->fstate = F_TRAILER;
  else j->fstate = F_DATA, j->fremaining = size;
  return 0;
}

/* The trailer is complete: its checksum (if any) against the plaintext's, then the held last chunk may go. */
static int trailer_done(job_t *j) {
  j->fstate = F_DONE;
  if (j->decoded != (uint64_t)j->length) return fail(j, "IncompleteBody", "Decoded %llu bytes, x-amz-decoded-content-length is %lld.", (unsigned long long)j->decoded, (long long)j->length);
  if (j->check_crc && (j->crc & 0xffffffffUL) != j->want_crc) return fail(j, "BadDigest", "The CRC32 you specified did not match the calculated checksum.");
  if (j->held) j->held = 0, j->out_committed = j->out_len;
  return 0;
}

/* A signed trailer is complete: its signature against the chain's (after the final chunk's), then as any trailer. */
static int signed_trailer_done(job_t *j) {
  if (!j->trailer_sig_seen) return fail(j, "SignatureDoesNotMatch", "The aws-chunked trailer signature is missing.");
  uint8_t h[32], mac[32];
  unsigned int hn = 0, mn = 0;
  if (EVP_DigestFinal_ex(j->chunk_sha, h, &hn) != 1 || hn != 32) return fail(j, "CryptoError", "sha256 final");
  static const char head[] = "AWS4-HMAC-SHA256-TRAILER\n";
  const size_t skip = sizeof "AWS4-HMAC-SHA256-PAYLOAD\n" - 1; /* sts_prefix's first line; date and scope follow */
  char sts[sizeof j->sts_prefix + SIG_HEX + 1 + 64];
  size_t n = sizeof head - 1;
  memcpy(sts, head, n);
  memcpy(sts + n, j->sts_prefix + skip, j->sts_prefix_len - skip), n += j->sts_prefix_len - skip;
  memcpy(sts + n, j->prev_sig, SIG_HEX), n += SIG_HEX, sts[n++] = '\n';
  to_hex(h, 32, sts + n), n += 64;
  if (!HMAC(EVP_sha256(), j->sig_key, sizeof j->sig_key, (const uint8_t *)sts, n, mac, &mn) || mn != 32) return fail(j, "CryptoError", "hmac");
  char want[SIG_HEX];
  to_hex(mac, 32, want);
  if (differ((const uint8_t *)want, (const uint8_t *)j->chunk_sig, SIG_HEX)) return fail(j, "SignatureDoesNotMatch", "The aws-chunked trailer signature does not match.");
  return trailer_done(j);
}

/* One trailer line (without CR LF): name:value; an empty line ends the trailer. */
static int trailer_line(job_t *j, const char *l, size_t n) {
  j->trailer_bytes += n;
  if (j->trailer_bytes > MAX_TRAILER) return fail(j, "InvalidRequest", "The aws-chunked trailer is too long.");
  if (n == 0) return j->signed_trailer ? signed_trailer_done(j) : trailer_done(j);
  /* signed chunks without a signed trailer carry none: the final chunk is followed by CR LF (src/s3/chunked.ts's final-crlf) */
  if (j->signed_chunks && !j->signed_trailer) return fail(j, "IncompleteBody", "Malformed aws-chunked framing: expected CRLF after chunk data.");
  const char *colon = memchr(l, ':', n);
  if (!colon || colon == l) return fail(j, "IncompleteBody", "Malformed aws-chunked trailer line.");
  size_t ns = 0, ne = (size_t)(colon - l), vs = ne + 1, ve = n;
  while (ns < ne && is_space(l[ns])) ns++;
  while (ne > ns && is_space(l[ne - 1])) ne--;
  while (vs < ve && is_space(l[vs])) vs++;
  while (ve > vs && is_space(l[ve - 1])) ve--;
  if (j->signed_trailer) {
    static const char sig_name[] = "x-amz-trailer-signature";
    if (j->trailer_sig_seen) return fail(j, "IncompleteBody", "Trailer header after x-amz-trailer-signature.");
    if (ne - ns == sizeof sig_name - 1 && strncasecmp(l + ns, sig_name, sizeof sig_name - 1) == 0) {
      if (ve - vs != SIG_HEX) return fail(j, "SignatureDoesNotMatch", "The aws-chunked trailer signature is malformed.");
      memcpy(j->chunk_sig, l + vs, SIG_HEX), j->trailer_sig_seen = 1;
      return 0;
    }
    /* every other line is signed as received, with a LF after it (src/s3/chunked.ts) */
    if (EVP_DigestUpdate(j->chunk_sha, l, n) != 1 || EVP_DigestUpdate(j->chunk_sha, "\n", 1) != 1) return fail(j, "CryptoError", "sha256 update");
  }
  static const char prefix[] = "x-amz-checksum-";
  size_t pl = sizeof prefix - 1;
  if (ne - ns < pl || strncasecmp(l + ns, prefix, pl) != 0) return 0; /* not a checksum: not ours to judge */
  if (ne - ns != pl + 5 || strncasecmp(l + ns + pl, "crc32", 5) != 0) return fail(j, "InvalidTrailer", "a checksum trailer other than the declared x-amz-checksum-crc32");
  if (j->check_crc) return fail(j, "InvalidTrailer", "x-amz-checksum-crc32 twice");
  /* 4 bytes in base64: 6 symbols and "==" */
  if (ve - vs != 8 || l[vs + 6] != '=' || l[vs + 7] != '=') return fail(j, "InvalidTrailer", "Value for x-amz-checksum-crc32 trailing header is invalid.");
  unsigned long v = 0;
  for (size_t k = 0; k < 6; k++) {
    int d = b64val((unsigned char)l[vs + k]);
    if (d < 0) return fail(j, "InvalidTrailer", "Value for x-amz-checksum-crc32 trailing header is invalid.");
    v = (v << 6) | (unsigned long)d;
  }
  j->want_crc = (v >> 4) & 0xffffffffUL, j->check_crc = 1;
  return 0;
}

/* Append to the line in progress; 1 with the line (CR stripped) in fline/fline_len when a LF ended it. */
static int line_byte(job_t *j, uint8_t c, size_t limit, const char *what) {
  if (c == '\n') {
    if (j->fline_len > 0 && j->fline[j->fline_len - 1] == '\r') j->fline_len--;
    return 1;
  }
  if (j->fline_len >= limit) return fail(j, "InvalidRequest", "The aws-chunked %s is too long.", what);
  j->fline[j->fline_len++] = (char)c;
  return 0;
}

/* n bytes of an aws-chunked body: the framing read, the chunks' data sealed (take). */
int deframe(job_t *j, const uint8_t *b, size_t n) {
  while (n > 0) {
    switch (j->fstate) {
      case F_HEADER:
      case F_TRAILER: {
        int header = j->fstate == F_HEADER;
        int r = line_byte(j, *b, MAX_FLINE, header ? "chunk header" : "trailer");
        b++, n--;
        if (r < 0) return -1;
        if (r == 1) {
          size_t len = j->fline_len;
          j->fline_len = 0;
          if (header ? chunk_header(j, j->fline, len) : trailer_line(j, j->fline, len)) return -1;
        }
        break;
      }
      case F_DATA: {
        size_t k = n < j->fremaining ? n : j->fremaining;
        if (j->decoded + k > (uint64_t)j->length) return fail(j, "IncompleteBody", "The aws-chunked body is longer than x-amz-decoded-content-length.");
        if (take(j, b, k)) return -1;
        if (j->signed_chunks && EVP_DigestUpdate(j->chunk_sha, b, k) != 1) return fail(j, "CryptoError", "sha256 update");
        j->decoded += k, j->fremaining -= (uint32_t)k, b += k, n -= k;
        if (j->fremaining == 0) {
          if (j->signed_chunks && chunk_signed(j)) return -1;
          j->fstate = F_CRLF, j->crlf_seen = 0;
        }
        break;
      }
      case F_CRLF: {
        uint8_t c = *b++;
        n--;
        if (c == (j->crlf_seen == 0 ? '\r' : '\n')) j->crlf_seen++;
        else if (j->crlf_seen == 0 && c == '\n') j->crlf_seen = 2; /* a bare LF, as the Node path tolerates */
        else return fail(j, "IncompleteBody", "Malformed aws-chunked framing: expected CRLF after chunk data.");
        if (j->crlf_seen == 2) j->fstate = F_HEADER;
        break;
      }
      case F_DONE:
        /* some clients append a CRLF; anything else after the end is an error */
        for (; n > 0; b++, n--)
          if (*b != '\r' && *b != '\n') return fail(j, "IncompleteBody", "Unexpected data after the final aws-chunked chunk.");
        break;
    }
  }
  return 0;
}

/* All input taken: the framing must have ended (a trailer without its blank line is let go, as the Node path does). */
int deframe_end(job_t *j) {
  if (j->fstate == F_TRAILER && (!j->signed_chunks || j->signed_trailer)) {
    if (j->fline_len > 0) {
      size_t len = j->fline_len;
      if (j->fline[len - 1] == '\r') len--;
      j->fline_len = 0;
      if (trailer_line(j, j->fline, len)) return -1;
    }
    if (j->fstate == F_TRAILER && (j->signed_trailer ? signed_trailer_done(j) : trailer_done(j))) return -1;
  }
  if (j->fstate != F_DONE) return fail(j, "IncompleteBody", "The request body ended before the final aws-chunked chunk.");
  return 0;
}
