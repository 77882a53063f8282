/*
 * lakecrypt's native data plane (issue #22, design b): moves a body between two file descriptors on a thread of
 * its own, with AES-256-GCM per 64 KiB chunk, while JavaScript keeps HTTP, auth, keys and policy.
 *
 *   pump({ inFd, outFd, length, mode, ... }, (err, { bytesIn, bytesOut }) => ...)
 *
 * modes:
 *   pass      bytes forwarded unchanged (the floor of a native relay without crypto)
 *   aes-pass  bytes forwarded unchanged, AES-256-GCM computed over every byte with `key`, a fresh nonce and a tag per
 *             64 KiB (what bench/lib/relay.ts aesPass() costs the Node relays; the output is dropped)
 *   seal      plaintext in, sealed chunks out (docs/FORMAT.md 2.2: DEK per block, nonce = 0^8 || uint32(chunk in block),
 *             aad = aadPrefix(52: "LKC1" || datasetId || oid) || uint32(part) || uint32(block) || uint32(chunk) || flags)
 *   open      sealed chunks in, plaintext out; a chunk's plaintext is written only after its tag verified, the first
 *             failure ends the pump with code ChunkAuthFailed (nothing of that chunk written)
 *
 * `length` is the part's plaintext size for seal/open (open reads length + 16 per chunk), the byte count for the pass
 * modes, or -1 for the pass modes: until end of file on inFd. A ranged open (`from`, `to`: plaintext offsets within
 * the part, 0 <= from < to <= length) reads only the sealed chunks holding [from, to) — the first is the chunk holding
 * `from`, whose block, chunk index and AAD follow from its offset as in a whole read — and writes only those bytes of
 * their verified plaintext. The pump never reads past the input it was given, so a
 * keep-alive connection's next request stays in the socket for its owner. `pre` holds input bytes the caller already
 * read from inFd's stream (node:http buffered them): they are taken first. The fds are non-blocking sockets owned
 * by libuv: the caller stops libuv's reads on inFd and leaves outFd alone until the callback; the thread waits in
 * poll() on EAGAIN. `control` (an Int32Array) lets JavaScript stop the pump: control[0] != 0 ends it (code Stopped)
 * before the next chunk is processed and during any wait.
 *
 * Verification before the commit (seal): `sha256` (32 bytes: a SigV4 signed payload's hash), `md5` (16 bytes: a
 * Content-MD5) and `crc32` (a number: the request's x-amz-checksum-crc32) are what the plaintext must hash to. The
 * pump hashes every plaintext byte it takes and compares before the last chunk is sealed out: a mismatch ends it
 * with code XAmzContentSHA256Mismatch, BadContentMD5 or BadDigest, nothing of the last chunk written, so the backend
 * never receives the whole body and nothing commits. CRC-32 is node's own zlib (Chromium's, with its carry-less multiply code: the exported
 * Cr_z_crc32, taken weakly: `CRC32` is false when this node has none, and then crc32 is refused); SHA-256 is
 * OpenSSL's EVP (SHA-NI where the CPU has it).
 *
 * An aws-chunked body (seal with `awsChunked` and `inputLength`: STREAMING-UNSIGNED-PAYLOAD-TRAILER, or with `chunkKey`,
 * `chunkSeed` and `chunkDateScope` too: STREAMING-AWS4-HMAC-SHA256-PAYLOAD, each chunk's signature checked, and with
 * `signedTrailer` STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER, the trailer's signature and its CRC32 checked too) is read
 * as its framing by native/aws-chunked.c, whose top comment has the rules. The result carries the CRC-32 computed.
 * With `httpChunked` instead of `inputLength` the aws-chunks come inside HTTP chunked transfer coding, whose framing
 * native/http-chunked.c reads first; the body ends where that framing does, and the pump reads no byte past it.
 *
 * Revocation between blocks (docs/FORMAT.md 2.4: no byte of a block is released once a revocation is known until the
 * key service was consulted again): `gate` (an Int32Array of 3) and `onGate(block, generation)`. JavaScript keeps
 * gate[0] equal to the key service's cache generation (one store when it moves). Before the first chunk of each block
 * the thread compares it with the generation the pump started under; when it moved, the thread writes out what is
 * already verified, asks `onGate` on the JavaScript thread and waits (reading nothing more, releasing nothing of the
 * block) until JavaScript answers with Atomics.store(gate, 2, 1) (go on, under that generation) or -1 (code
 * KeyRevoked). The answer travels through the array, never through a pointer to the job, so a late answer after a
 * stop touches nothing freed. Cost when nothing moves: one atomic load per chunk start.
 *
 * The revocation bound inside a block (open, with a gate): `freshUntil` (a BigInt64Array of 1, shared by every read
 * of a key service) holds the CLOCK_MONOTONIC time, in ns as process.hrtime.bigint(), up to which the key state is
 * confirmed (the epoch watch's last confirmation plus the bound; JavaScript writes it). Before each chunk the thread
 * reads the clock: past that time it asks onGate as for a moved gate (writes out what is verified, releases nothing
 * more until the answer), so a stream stops at the bound however late the JavaScript thread's timers run. A
 * JavaScript answer is a recheck, which waits for a fresh confirmation (or refuses with KeyStateStale). Cost: one
 * vDSO clock read per 64 KiB (31 ns on this VM: 0.5 µs per MiB, against ~0.9 CPU-ms per MiB for the whole read).
 *
 * No allocation per chunk: one 1 MiB input buffer and one output buffer per pump, reads of up to 1 MiB (`readSize`,
 * 4 KiB to 1 MiB; in the gateway's own A/B, bench/ab.ts both orders, 1 MiB reads cost 0.03-0.08 CPU-ms per MiB less
 * than 256 KiB at equal throughput, GET and PUT; an earlier aes-pass floor run on a loaded machine had favoured
 * 256 KiB), writes of up to 1 MiB. Seal reads and writes 256 KiB at a time (SEAL_IO) unless `readSize` says
 * otherwise: only the pages a pump touches are resident, and an upload's peak RSS is what issue #22 bounds (session
 * 18, bench/README.md "Memory": -1.4 MiB at a 1 GiB upload's peak for +0.04-0.08 CPU-ms per MiB, throughput within
 * 3%); open keeps 1 MiB, where 256 KiB cost +0.08-0.16 CPU-ms per MiB. Overlapping reads and writes (an event-style
 * ring, a writer thread) was measured and not adopted: bench/README.md "Data-plane designs". Key material is copied
 * into the job and wiped when it ends (the cipher context is freed, which cleanses it). OpenSSL's EVP comes from the node binary itself, which exports its symbols: nothing is linked.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <malloc.h>
#include <node_api.h>
#include <openssl/evp.h>
#include <poll.h>
#include <stdarg.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/socket.h>
#include <unistd.h>

#include "pump.h"

/*
 * The 1 MiB buffers of finished pumps, kept for the next ones. A fresh pair per pump cost, for every ranged or
 * small read, page faults on first touch and, when freed at the top of the heap, glibc's trim of it: munmap with
 * TLB shoot-downs to the other cores (3-4% of the gateway's CPU in a 1 MiB range-read loop, perf record;
 * bench/README.md "Ranged reads through the pump"). One pair is kept (2 MiB of RSS until the idle trim), wiped where
 * it held plaintext: enough for reads one after another; a second kept pair sat idle beside a lone large transfer
 * that followed concurrent ones (the benchmark's 5 GiB upload: 2 MiB more at its peak; bench/README.md "Memory",
 * session 17). trim() (the idle trim) frees it.
 */
#define POOL_KEEP 1
static pthread_mutex_t pool_mu = PTHREAD_MUTEX_INITIALIZER;
static uint8_t *pool_in[POOL_KEEP], *pool_out[POOL_KEEP];
static int pool_n_in, pool_n_out;

static uint8_t *take_buf(uint8_t **pool, int *n, size_t size) {
  uint8_t *b = NULL;
  pthread_mutex_lock(&pool_mu);
  if (*n > 0) b = pool[--*n];
  pthread_mutex_unlock(&pool_mu);
  return b ? b : malloc(size);
}

static void give_buf(uint8_t **pool, int *n, uint8_t *b) {
  if (!b) return;
  pthread_mutex_lock(&pool_mu);
  if (*n < POOL_KEEP) pool[(*n)++] = b, b = NULL;
  pthread_mutex_unlock(&pool_mu);
  free(b);
}

static void free_pool(void) {
  pthread_mutex_lock(&pool_mu);
  while (pool_n_in > 0) free(pool_in[--pool_n_in]);
  while (pool_n_out > 0) free(pool_out[--pool_n_out]);
  pthread_mutex_unlock(&pool_mu);
}



int fail(job_t *j, const char *code, const char *fmt, ...) {
  if (!j->err_code) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(j->err_msg, sizeof j->err_msg, fmt, ap);
    va_end(ap);
    j->err_code = code;
  }
  return -1;
}

static int stopped(job_t *j) {
  if (j->control && __atomic_load_n(j->control, __ATOMIC_ACQUIRE) != 0) return fail(j, "Stopped", "stopped by the caller");
  return 0;
}

/* Wait until fd is ready for `events`, in slices so that a stop request is seen while waiting. */
static int wait_fd(job_t *j, int fd, short events) {
  int waited = 0;
  for (;;) {
    if (stopped(j)) return -1;
    struct pollfd p = { .fd = fd, .events = events };
    int r = poll(&p, 1, WAIT_SLICE_MS);
    if (r > 0) return 0; /* ready, or an error/hang-up the next read or write reports */
    if (r < 0 && errno != EINTR) return fail(j, "EIO", "poll: %s", strerror(errno));
    waited += WAIT_SLICE_MS;
    if (j->idle_ms > 0 && waited >= j->idle_ms) return fail(j, "ETIMEDOUT", "no progress for %d ms", j->idle_ms);
  }
}

static const char *errno_code(int e) {
  switch (e) {
    case EPIPE: return "EPIPE";
    case ECONNRESET: return "ECONNRESET";
    case EBADF: return "EBADF";
    case ENOTCONN: return "ENOTCONN";
    default: return "EIO";
  }
}

static int write_all(job_t *j, const uint8_t *b, size_t n) {
  while (n > 0) {
    /* MSG_NOSIGNAL: a peer gone is an EPIPE to report, never a signal (node ignores SIGPIPE anyway) */
    ssize_t w = send(j->out_fd, b, n, MSG_NOSIGNAL);
    if (w < 0 && errno == ENOTSOCK) w = write(j->out_fd, b, n);
    if (w > 0) {
      b += w;
      n -= (size_t)w;
      j->bytes_out += (uint64_t)w;
    } else if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      if (wait_fd(j, j->out_fd, POLLOUT)) return -1;
    } else if (w < 0 && errno == EINTR) {
      continue;
    } else {
      int e = w < 0 ? errno : EPIPE;
      return fail(j, errno_code(e), "write: %s", strerror(e));
    }
  }
  return 0;
}

/* Write the output that may be released (open: verified chunks only) and keep a chunk still in progress. */
static int flush_out(job_t *j) {
  if (j->out_committed == 0) return 0;
  if (write_all(j, j->out, j->out_committed)) return -1;
  size_t rest = j->out_len - j->out_committed;
  if (rest) memmove(j->out, j->out + j->out_committed, rest);
  j->out_len = rest;
  j->out_committed = 0;
  return 0;
}

/* Plaintext bytes of the chunk starting at plain_done: 64 KiB, or what is left of the part. 0 once the part is done. */
static uint32_t chunk_len(job_t *j) {
  if (j->length < 0) return CHUNK;
  uint64_t left = j->end_plain - j->plain_done;
  return left < CHUNK ? (uint32_t)left : CHUNK;
}

static void be32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8), p[3] = (uint8_t)v;
}

typedef struct gate_call { uint32_t block; int32_t generation; } gate_call_t;

/* On the JavaScript thread: onGate(block, generation). */
static void call_js_gate(napi_env env, napi_value cb, void *context, void *data) {
  (void)context;
  gate_call_t *g = data;
  if (env != NULL) {
    napi_value undef, argv[2];
    napi_get_undefined(env, &undef);
    napi_create_uint32(env, g->block, &argv[0]);
    napi_create_int32(env, g->generation, &argv[1]);
    napi_call_function(env, undef, cb, 2, argv, NULL);
  }
  free(g);
}

/* Ask JavaScript (onGate) whether the pump may go on, the gate's value being `now`; wait for the answer. */
static int ask_gate(job_t *j, int32_t now) {
  if (flush_out(j)) return -1; /* chunks verified before the change may go; nothing of this chunk yet */
  __atomic_store_n(&j->gate[2], 0, __ATOMIC_RELEASE);
  gate_call_t *g = malloc(sizeof *g);
  if (!g) return fail(j, "Internal", "out of memory");
  g->block = j->block, g->generation = now;
  if (napi_call_threadsafe_function(j->gate_tsfn, g, napi_tsfn_blocking) != napi_ok) return free(g), fail(j, "Internal", "could not call onGate");
  struct timespec ms = { 0, 1000000 };
  int waited_us = 0;
  int32_t answer;
  while ((answer = __atomic_load_n(&j->gate[2], __ATOMIC_ACQUIRE)) == 0) {
    if (stopped(j)) return -1;
    if (j->idle_ms > 0 && waited_us / 1000 >= j->idle_ms) return fail(j, "ETIMEDOUT", "onGate did not answer within %d ms", j->idle_ms);
    nanosleep(&ms, NULL); /* rare (a key state change), short: a sleep loop is simpler than a futex here */
    waited_us += 1000;
  }
  if (answer < 0) return fail(j, "KeyRevoked", "refused before block %u", j->block);
  j->gate_seen = now;
  return 0;
}

/* Before a block's first chunk: the key state moved since the pump started (or last asked)? Then JavaScript decides. */
static int gate_check(job_t *j) {
  int32_t now = __atomic_load_n(&j->gate[0], __ATOMIC_ACQUIRE);
  return now == j->gate_seen ? 0 : ask_gate(j, now);
}

/* Before any chunk: the key state no longer confirmed (the bound passed since the last confirmation)? Ask too. */
static int fresh_check(job_t *j) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  int64_t ns = (int64_t)t.tv_sec * 1000000000LL + t.tv_nsec;
  if (ns <= __atomic_load_n(j->fresh_until, __ATOMIC_ACQUIRE)) return 0;
  return ask_gate(j, __atomic_load_n(&j->gate[0], __ATOMIC_ACQUIRE));
}

static int begin_chunk(job_t *j) {
  if (stopped(j)) return -1;
  if (j->gate && j->chunk == 0 && gate_check(j)) return -1;
  if (j->fresh_until && fresh_check(j)) return -1;
  uint8_t nonce[12] = { 0 };
  be32(nonce + 8, j->chunk);
  const uint8_t *key = NULL;
  if (j->mode == M_AES_PASS) key = j->key; /* as relay.ts: the key schedule redone per chunk */
  else if (j->chunk == 0 || !j->key_set) {
    if (j->block >= j->ndeks) return fail(j, "NoDek", "no DEK for block %u", j->block);
    key = j->deks + 32u * j->block;
    j->key_set = 1;
  }
  if (EVP_CipherInit_ex(j->ctx, NULL, NULL, key, nonce, -1) != 1) return fail(j, "CryptoError", "cipher init");
  if (j->mode == M_SEAL || j->mode == M_OPEN) {
    int outl;
    be32(j->aad + AAD_PREFIX, j->part);
    be32(j->aad + AAD_PREFIX + 4, j->block);
    be32(j->aad + AAD_PREFIX + 8, j->chunk);
    j->aad[AAD_PREFIX + 12] = (uint64_t)j->length == j->plain_done + chunk_len(j) ? 1 : 0;
    if (EVP_CipherUpdate(j->ctx, NULL, &outl, j->aad, AAD_LEN) != 1) return fail(j, "CryptoError", "aad");
  }
  j->chunk_open = 1;
  j->in_chunk = 0;
  j->tag_have = 0;
  return 0;
}

/* Equal in time independent of where they differ. */
int differ(const uint8_t *a, const uint8_t *b, size_t n) {
  uint8_t d = 0;
  for (size_t i = 0; i < n; i++) d |= a[i] ^ b[i];
  return d != 0;
}

/* seal, before the last chunk goes: the plaintext's digests against the expected ones */
static int verify_plaintext(job_t *j) {
  if (j->sha) {
    uint8_t got[32];
    unsigned int n = 0;
    if (EVP_DigestFinal_ex(j->sha, got, &n) != 1 || n != 32) return fail(j, "CryptoError", "sha256 final");
    if (differ(got, j->want_sha, 32)) return fail(j, "XAmzContentSHA256Mismatch", "the body's SHA-256 is not the signed payload hash");
  }
  if (j->md5) {
    uint8_t got[16];
    unsigned int n = 0;
    if (EVP_DigestFinal_ex(j->md5, got, &n) != 1 || n != 16) return fail(j, "CryptoError", "md5 final");
    if (differ(got, j->want_md5, 16)) return fail(j, "BadContentMD5", "the body's MD5 is not its Content-MD5");
  }
  if (j->check_crc && (j->crc & 0xffffffffUL) != j->want_crc) return fail(j, "BadDigest", "the body's CRC-32 is not x-amz-checksum-crc32");
  return 0;
}

/* The chunk in progress is complete (all its input taken): finish the cipher, then step to the next chunk. */
static int end_chunk(job_t *j) {
  int outl;
  uint8_t fin[16];
  if (j->mode == M_AES_PASS) {
    if (EVP_EncryptFinal_ex(j->ctx, fin, &outl) != 1 || EVP_CIPHER_CTX_ctrl(j->ctx, EVP_CTRL_GCM_GET_TAG, TAG, j->tag) != 1)
      return fail(j, "CryptoError", "final");
  } else if (j->mode == M_SEAL) {
    if (EVP_EncryptFinal_ex(j->ctx, fin, &outl) != 1 || EVP_CIPHER_CTX_ctrl(j->ctx, EVP_CTRL_GCM_GET_TAG, TAG, j->out + j->out_len) != 1)
      return fail(j, "CryptoError", "final");
    j->out_len += TAG;
    /* the last chunk leaves only if the plaintext is what the request said it is */
    if (j->plain_done + j->in_chunk == (uint64_t)j->length) {
      if (verify_plaintext(j)) {
        j->out_len = j->out_committed;
        return -1;
      }
      if (j->chunked) j->held = 1; /* and an aws-chunked body's trailer is still to come: out_committed stays */
    }
    if (!j->held) j->out_committed = j->out_len;
  } else if (j->mode == M_OPEN) {
    if (EVP_CIPHER_CTX_ctrl(j->ctx, EVP_CTRL_GCM_SET_TAG, TAG, j->tag) != 1) return fail(j, "CryptoError", "set tag");
    if (EVP_DecryptFinal_ex(j->ctx, fin, &outl) != 1) {
      j->err_chunk = (int64_t)(j->plain_done / CHUNK);
      j->out_len = j->out_committed; /* the failed chunk's plaintext is dropped, never written */
      return fail(j, "ChunkAuthFailed", "chunk %lld of the part failed authentication", (long long)j->err_chunk);
    }
    /* a range's first and last chunks: only the bytes asked for are released */
    uint64_t lo = j->plain_done, hi = j->plain_done + j->in_chunk;
    if (j->out_from > lo || j->out_to < hi) {
      uint64_t a = j->out_from > lo ? j->out_from : lo, b = j->out_to < hi ? j->out_to : hi;
      size_t keep = b > a ? (size_t)(b - a) : 0;
      if (keep && a > lo) memmove(j->out + j->out_committed, j->out + j->out_committed + (a - lo), keep);
      j->out_len = j->out_committed + keep;
    }
    j->out_committed = j->out_len;
  }
  j->plain_done += j->in_chunk;
  j->chunk_open = 0;
  if (++j->chunk == j->block_chunks) j->chunk = 0, j->block++;
  return 0;
}

/* Take n input bytes through the chunk state machine (seal/open write into out; the pass modes write nothing). */
int take(job_t *j, const uint8_t *b, size_t n) {
  while (n > 0) {
    if (j->mode == M_PASS) return 0;
    if (!j->chunk_open) {
      if (chunk_len(j) == 0) return fail(j, "TrailingData", "input longer than the part");
      if (begin_chunk(j)) return -1;
    }
    uint32_t want = chunk_len(j) - j->in_chunk;
    int outl;
    if (want > 0) {
      uint32_t k = n < want ? (uint32_t)n : want;
      if (j->mode == M_AES_PASS) {
        if (EVP_EncryptUpdate(j->ctx, j->scratch, &outl, b, (int)k) != 1) return fail(j, "CryptoError", "update");
      } else {
        if (j->out_len + k + TAG > OUT_CAP) return fail(j, "Internal", "output buffer overrun");
        if (EVP_CipherUpdate(j->ctx, j->out + j->out_len, &outl, b, (int)k) != 1) return fail(j, "CryptoError", "update");
        if (j->sha && EVP_DigestUpdate(j->sha, b, k) != 1) return fail(j, "CryptoError", "sha256 update");
        if (j->md5 && EVP_DigestUpdate(j->md5, b, k) != 1) return fail(j, "CryptoError", "md5 update");
        if (j->compute_crc) j->crc = Cr_z_crc32(j->crc, b, k);
        j->out_len += (size_t)outl;
        if (j->out_len > j->out_used) j->out_used = j->out_len;
      }
      j->in_chunk += k, b += k, n -= k;
      if (j->mode != M_OPEN && j->in_chunk == chunk_len(j) && end_chunk(j)) return -1;
    } else { /* open: the chunk's tag */
      uint32_t k = TAG - j->tag_have;
      if (n < k) k = (uint32_t)n;
      memcpy(j->tag + j->tag_have, b, k);
      j->tag_have += k, b += k, n -= k;
      if (j->tag_have == TAG && end_chunk(j)) return -1;
    }
    /* room for one whole chunk and its tag before the next one starts */
    if (!j->chunk_open && j->out_committed >= j->flush_at && flush_out(j)) return -1;
  }
  return 0;
}

/* Bytes of input this pump must read in all (-1: until EOF). */
static int64_t input_total(job_t *j) {
  if (j->te) return -1;
  if (j->chunked) return j->wire_len;
  if (j->length < 0) return -1;
  if (j->mode != M_OPEN) return j->length;
  uint64_t plain = j->end_plain - j->plain_done; /* plain_done: the first chunk's offset, a multiple of CHUNK */
  return (int64_t)(plain + TAG * ((plain + CHUNK - 1) / CHUNK));
}

static int consume(job_t *j, const uint8_t *b, size_t n) {
  return j->te ? te_deframe(j, b, n) : j->chunked ? deframe(j, b, n) : take(j, b, n);
}

static int finish_chunks_at_eof(job_t *j) {
  if (j->chunked && deframe_end(j)) return -1;
  /* the pass modes until EOF: a last partial chunk still gets its tag; sealed/opened parts must be whole */
  if (j->chunk_open && j->mode == M_AES_PASS) return end_chunk(j);
  if (j->mode == M_SEAL || j->mode == M_OPEN) {
    if (j->chunk_open || j->end_plain != j->plain_done) return fail(j, "UnexpectedEOF", "input ended inside a chunk");
  }
  return 0;
}

static int run(job_t *j) {
  int64_t total = input_total(j);
  uint64_t left = total < 0 ? UINT64_MAX : (uint64_t)total;
  if (j->pre_len) {
    if (j->pre_len > left) return fail(j, "TrailingData", "more bytes already read than the body holds");
    j->bytes_in += j->pre_len;
    left -= j->pre_len;
    if (consume(j, j->pre, j->pre_len)) return -1;
    if (j->mode == M_PASS || j->mode == M_AES_PASS) {
      if (write_all(j, j->pre, j->pre_len)) return -1;
    }
  }
  while (left > 0 && !(j->te && te_done(j))) {
    uint64_t bound = j->te ? te_read_bound(j) : left;
    size_t want = bound < j->read_size ? (size_t)bound : j->read_size;
    ssize_t r = read(j->in_fd, j->in, want);
    if (r > 0) {
      if ((size_t)r > j->in_used) j->in_used = (size_t)r;
      j->bytes_in += (uint64_t)r;
      if (total >= 0) left -= (uint64_t)r;
      if (consume(j, j->in, (size_t)r)) return -1;
      if (j->mode == M_PASS || j->mode == M_AES_PASS) {
        if (write_all(j, j->in, (size_t)r)) return -1;
      }
    } else if (r == 0) {
      if (total >= 0) return fail(j, "UnexpectedEOF", "input ended %llu bytes early", (unsigned long long)left);
      if (j->te) return fail(j, "UnexpectedEOF", "input ended before the last chunk of its transfer coding");
      break;
    } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
      /* nothing to read now: what is ready goes out before waiting, so a slow input never holds back output */
      if (flush_out(j) || wait_fd(j, j->in_fd, POLLIN)) return -1;
    } else if (errno != EINTR) {
      int e = errno;
      return fail(j, errno_code(e), "read: %s", strerror(e));
    }
  }
  if (finish_chunks_at_eof(j) || flush_out(j)) return -1;
  if (j->shutdown_out) shutdown(j->out_fd, SHUT_WR);
  return 0;
}

static void wipe_free(job_t *j) {
  explicit_bzero(j->key, sizeof j->key);
  if (j->deks) explicit_bzero(j->deks, 32 * j->ndeks), free(j->deks);
  if (j->mode == M_OPEN && j->out) explicit_bzero(j->out, j->out_used); /* plaintext */
  if (j->mode == M_SEAL && j->in) explicit_bzero(j->in, j->in_used);
  if (j->pre) explicit_bzero(j->pre, j->pre_len), free(j->pre);
  if (j->ctx) EVP_CIPHER_CTX_free(j->ctx);
  if (j->sha) EVP_MD_CTX_free(j->sha);
  if (j->md5) EVP_MD_CTX_free(j->md5);
  if (j->chunk_sha) EVP_MD_CTX_free(j->chunk_sha);
  explicit_bzero(j->sig_key, sizeof j->sig_key);
  give_buf(pool_in, &pool_n_in, j->in);
  give_buf(pool_out, &pool_n_out, j->out);
  free(j->scratch);
  free(j);
}

static void *thread_main(void *arg) {
  job_t *j = arg;
  /* a bad or short input still releases the chunks verified before it (as the engine does); a stop releases nothing more */
  if (run(j) && j->err_code && (!strcmp(j->err_code, "ChunkAuthFailed") || !strcmp(j->err_code, "UnexpectedEOF") || !strcmp(j->err_code, "TrailingData"))) {
    const char *code = j->err_code;
    j->err_code = NULL;
    char msg[sizeof j->err_msg];
    memcpy(msg, j->err_msg, sizeof msg);
    flush_out(j);
    j->err_code = code; /* the input's failure is the one reported, even when the flush failed too */
    memcpy(j->err_msg, msg, sizeof msg);
  }
  if (j->gate_tsfn) napi_release_threadsafe_function(j->gate_tsfn, napi_tsfn_release);
  /* the callback frees the job on the JavaScript thread, perhaps before the call below returns: nothing of j after it */
  napi_threadsafe_function done = j->tsfn;
  napi_call_threadsafe_function(done, j, napi_tsfn_blocking);
  napi_release_threadsafe_function(done, napi_tsfn_release);
  return NULL;
}

/* On the JavaScript thread: callback(err, { bytesIn, bytesOut }). */
static void call_js(napi_env env, napi_value cb, void *context, void *data) {
  (void)context;
  job_t *j = data;
  if (env != NULL) {
    napi_value undef, err, info, v;
    napi_get_undefined(env, &undef);
    napi_create_object(env, &info);
    napi_create_double(env, (double)j->bytes_in, &v);
    napi_set_named_property(env, info, "bytesIn", v);
    napi_create_double(env, (double)j->bytes_out, &v);
    napi_set_named_property(env, info, "bytesOut", v);
    if (j->compute_crc) {
      napi_create_uint32(env, (uint32_t)(j->crc & 0xffffffffUL), &v);
      napi_set_named_property(env, info, "crc32", v);
    }
    if (j->err_code) {
      napi_value code, msg;
      napi_create_string_utf8(env, j->err_code, NAPI_AUTO_LENGTH, &code);
      napi_create_string_utf8(env, j->err_msg, NAPI_AUTO_LENGTH, &msg);
      napi_create_error(env, code, msg, &err);
      napi_create_double(env, (double)j->bytes_in, &v);
      napi_set_named_property(env, err, "bytesIn", v);
      napi_create_double(env, (double)j->bytes_out, &v);
      napi_set_named_property(env, err, "bytesOut", v);
      if (j->err_chunk >= 0) {
        napi_create_double(env, (double)j->err_chunk, &v);
        napi_set_named_property(env, err, "chunk", v);
      }
    } else {
      err = undef;
    }
    if (j->control_ref) napi_delete_reference(env, j->control_ref);
    if (j->gate_ref) napi_delete_reference(env, j->gate_ref);
    if (j->fresh_ref) napi_delete_reference(env, j->fresh_ref);
    napi_value argv[2] = { err, info };
    napi_call_function(env, undef, cb, 2, argv, NULL);
  }
  wipe_free(j);
}

/* ---- argument reading ---- */

static napi_value throw_type(napi_env env, const char *msg) {
  napi_throw_type_error(env, "ERR_INVALID_ARG", msg);
  return NULL;
}

static int prop(napi_env env, napi_value o, const char *name, napi_value *out) {
  bool has = false;
  napi_has_named_property(env, o, name, &has);
  if (!has) return 0;
  napi_get_named_property(env, o, name, out);
  napi_valuetype t;
  napi_typeof(env, *out, &t);
  return t != napi_undefined && t != napi_null;
}

static int get_int(napi_env env, napi_value o, const char *name, int64_t *out) {
  napi_value v;
  if (!prop(env, o, name, &v)) return 0;
  double d;
  if (napi_get_value_double(env, v, &d) != napi_ok) return -1;
  *out = (int64_t)d;
  return (double)*out == d ? 1 : -1;
}

/* A typed array of `type` with at least `min` elements: 1 (its data and value), 0 when absent, -1 when anything else. */
static int get_typed(napi_env env, napi_value o, const char *name, napi_typedarray_type type, size_t min, void **data, napi_value *value) {
  if (!prop(env, o, name, value)) return 0;
  bool is = false;
  napi_typedarray_type t;
  size_t n, off;
  napi_value ab;
  if (napi_is_typedarray(env, *value, &is) != napi_ok || !is) return -1;
  if (napi_get_typedarray_info(env, *value, &t, &n, data, &ab, &off) != napi_ok || t != type || n < min) return -1;
  return 1;
}

/* A Buffer or Uint8Array: its bytes (borrowed: copy before the call returns). */
static int get_bytes(napi_env env, napi_value o, const char *name, uint8_t **data, size_t *len) {
  napi_value v;
  if (!prop(env, o, name, &v)) return 0;
  bool is;
  napi_is_typedarray(env, v, &is);
  if (!is) return -1;
  napi_typedarray_type t;
  napi_value ab;
  size_t off;
  if (napi_get_typedarray_info(env, v, &t, len, (void **)data, &ab, &off) != napi_ok || t != napi_uint8_array) return -1;
  return 1;
}

static napi_value pump(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  napi_valuetype t0, t1;
  if (argc < 2 || napi_typeof(env, argv[0], &t0) != napi_ok || t0 != napi_object || napi_typeof(env, argv[1], &t1) != napi_ok || t1 != napi_function)
    return throw_type(env, "pump(options, callback)");
  napi_value o = argv[0], v;

  char mode[16] = { 0 };
  size_t ml;
  if (!prop(env, o, "mode", &v) || napi_get_value_string_utf8(env, v, mode, sizeof mode, &ml) != napi_ok) return throw_type(env, "mode: pass, aes-pass, seal or open");
  enum mode m;
  if (!strcmp(mode, "pass")) m = M_PASS;
  else if (!strcmp(mode, "aes-pass")) m = M_AES_PASS;
  else if (!strcmp(mode, "seal")) m = M_SEAL;
  else if (!strcmp(mode, "open")) m = M_OPEN;
  else return throw_type(env, "mode: pass, aes-pass, seal or open");

  int64_t in_fd, out_fd, length, part = 1, block_size = 8 << 20, idle = DEFAULT_IDLE_MS, read_size = DEFAULT_READ;
  if (get_int(env, o, "inFd", &in_fd) != 1 || in_fd < 0) return throw_type(env, "inFd: a file descriptor");
  if (get_int(env, o, "outFd", &out_fd) != 1 || out_fd < 0) return throw_type(env, "outFd: a file descriptor");
  if (get_int(env, o, "length", &length) != 1 || length < -1) return throw_type(env, "length: bytes, or -1 for until end of file");
  if (length < 0 && (m == M_SEAL || m == M_OPEN)) return throw_type(env, "length: seal and open need the part's plaintext size");
  int64_t from = 0, to = length;
  int has_from = get_int(env, o, "from", &from), has_to = get_int(env, o, "to", &to);
  if (has_from < 0 || has_to < 0) return throw_type(env, "from, to: plaintext offsets within the part");
  if ((has_from || has_to) && (m != M_OPEN || from < 0 || to > length || from >= to)) return throw_type(env, "from, to: open only, 0 <= from < to <= length");
  if (get_int(env, o, "partNumber", &part) < 0 || part < 1 || part > 0xffffffffLL) return throw_type(env, "partNumber: 1..2^32-1");
  if (get_int(env, o, "blockSize", &block_size) < 0 || block_size < CHUNK || block_size % CHUNK || block_size > (8 << 20))
    return throw_type(env, "blockSize: a multiple of 65536 up to 8 MiB");
  if (get_int(env, o, "idleMs", &idle) < 0 || idle < 0) return throw_type(env, "idleMs: milliseconds (0: no limit)");
  if (m == M_SEAL) read_size = SEAL_IO;
  if (get_int(env, o, "readSize", &read_size) < 0 || read_size < 4096 || read_size > IN_CAP) return throw_type(env, "readSize: 4 KiB to 1 MiB");

  uint8_t *key = NULL, *deks = NULL, *aadp = NULL, *pre = NULL;
  size_t key_len = 0, deks_len = 0, aadp_len = 0, pre_len = 0;
  if (get_bytes(env, o, "key", &key, &key_len) < 0) return throw_type(env, "key: a Buffer");
  if (get_bytes(env, o, "deks", &deks, &deks_len) < 0) return throw_type(env, "deks: a Buffer");
  if (get_bytes(env, o, "aadPrefix", &aadp, &aadp_len) < 0) return throw_type(env, "aadPrefix: a Buffer");
  if (get_bytes(env, o, "pre", &pre, &pre_len) < 0) return throw_type(env, "pre: a Buffer");
  if (m == M_AES_PASS && key_len != 32) return throw_type(env, "key: 32 bytes for aes-pass");
  if (m == M_SEAL || m == M_OPEN) {
    /* block 0 up to the last block read (a range's: the one holding to - 1) */
    uint64_t blocks = ((uint64_t)to + (uint64_t)block_size - 1) / (uint64_t)block_size;
    if (deks_len == 0 || deks_len % 32 || deks_len / 32 < blocks) return throw_type(env, "deks: 32 bytes per block of the part (up to the last one read)");
    if (aadp_len != AAD_PREFIX) return throw_type(env, "aadPrefix: 52 bytes (\"LKC1\" || datasetId || oid)");
  }

  napi_value ctl, gate_v, fresh_v, on_gate = NULL;
  int32_t *control = NULL, *gate = NULL;
  int64_t *fresh_until = NULL;
  napi_ref control_ref = NULL;
  if (get_typed(env, o, "control", napi_int32_array, 1, (void **)&control, &ctl) < 0) return throw_type(env, "control: an Int32Array");
  int has_gate = get_typed(env, o, "gate", napi_int32_array, 3, (void **)&gate, &gate_v);
  if (has_gate < 0) return throw_type(env, "gate: an Int32Array of 3");
  if (has_gate) {
    napi_valuetype ft;
    if (!prop(env, o, "onGate", &on_gate) || napi_typeof(env, on_gate, &ft) != napi_ok || ft != napi_function) return throw_type(env, "onGate: a function, with gate");
  }
  int has_fresh = get_typed(env, o, "freshUntil", napi_bigint64_array, 1, (void **)&fresh_until, &fresh_v);
  if (has_fresh < 0) return throw_type(env, "freshUntil: a BigInt64Array");
  if (has_fresh && (!gate || m != M_OPEN)) return throw_type(env, "freshUntil: open only, with gate");
  bool shut = false;
  if (prop(env, o, "shutdown", &v)) napi_get_value_bool(env, v, &shut);
  uint8_t *want_sha = NULL, *want_md5 = NULL;
  size_t want_sha_len = 0, want_md5_len = 0;
  if (get_bytes(env, o, "md5", &want_md5, &want_md5_len) < 0 || (want_md5 && (want_md5_len != 16 || m != M_SEAL))) return throw_type(env, "md5: 16 bytes, seal only");
  int64_t want_crc = -1;
  if (get_bytes(env, o, "sha256", &want_sha, &want_sha_len) < 0 || (want_sha && (want_sha_len != 32 || m != M_SEAL))) return throw_type(env, "sha256: 32 bytes, seal only");
  int has_crc = get_int(env, o, "crc32", &want_crc);
  if (has_crc < 0 || (has_crc && (m != M_SEAL || want_crc < 0 || want_crc > 0xffffffffLL || !Cr_z_crc32))) return throw_type(env, "crc32: 0..2^32-1, seal only, when CRC32 is true");
  bool chunked = false;
  int64_t wire_len = -1;
  if (prop(env, o, "awsChunked", &v)) napi_get_value_bool(env, v, &chunked);
  uint8_t *chunk_key = NULL, *chunk_seed = NULL, *date_scope = NULL;
  size_t chunk_key_len = 0, chunk_seed_len = 0, date_scope_len = 0;
  if (get_bytes(env, o, "chunkKey", &chunk_key, &chunk_key_len) < 0 || get_bytes(env, o, "chunkSeed", &chunk_seed, &chunk_seed_len) < 0 ||
      get_bytes(env, o, "chunkDateScope", &date_scope, &date_scope_len) < 0)
    return throw_type(env, "chunkKey, chunkSeed, chunkDateScope: Buffers");
  static const char sts_head[] = "AWS4-HMAC-SHA256-PAYLOAD\n";
  bool signed_chunks = chunk_key || chunk_seed || date_scope;
  if (signed_chunks && (!chunked || chunk_key_len != 32 || chunk_seed_len != SIG_HEX || date_scope_len == 0 || sizeof sts_head - 1 + date_scope_len + 1 > sizeof ((job_t *)0)->sts_prefix))
    return throw_type(env, "chunkKey (32 bytes), chunkSeed (64 hex characters), chunkDateScope (date \\n scope): together, with awsChunked");
  bool signed_trailer = false;
  if (prop(env, o, "signedTrailer", &v)) napi_get_value_bool(env, v, &signed_trailer);
  if (signed_trailer && !signed_chunks) return throw_type(env, "signedTrailer: with chunkKey, chunkSeed, chunkDateScope");
  /* unsigned chunks and a signed trailer declare their checksum in the trailer; signed chunks without one may have it
     (and a Content-MD5) in the headers */
  if (signed_trailer && has_crc) return throw_type(env, "signedTrailer: without crc32 (the trailer declares it)");
  bool te = false;
  if (prop(env, o, "httpChunked", &v)) napi_get_value_bool(env, v, &te);
  int has_wire = chunked ? get_int(env, o, "inputLength", &wire_len) : 0;
  if (chunked && (m != M_SEAL || want_sha || (!signed_chunks && (want_md5 || has_crc)) || !Cr_z_crc32 || has_wire < 0 || (has_wire ? te || wire_len < 0 : !te)))
    return throw_type(env, "awsChunked: seal only, with inputLength or httpChunked, without sha256 (and unsigned: without md5 or crc32), when CRC32 is true");
  if (te && !chunked) return throw_type(env, "httpChunked: with awsChunked (pre, if any, is the body's raw bytes from its first)");

  job_t *j = calloc(1, sizeof *j);
  if (!j) return throw_type(env, "out of memory");
  j->mode = m;
  j->in_fd = (int)in_fd, j->out_fd = (int)out_fd, j->length = length;
  if (length >= 0) {
    /* a ranged open starts at the chunk holding `from` and ends with the one holding to - 1 */
    uint64_t first = (uint64_t)from / CHUNK, end = ((uint64_t)to + CHUNK - 1) / CHUNK * CHUNK;
    j->plain_done = first * CHUNK;
    j->end_plain = end < (uint64_t)length ? end : (uint64_t)length;
    j->out_from = (uint64_t)from, j->out_to = (uint64_t)to;
  }
  j->shutdown_out = shut, j->idle_ms = (int)idle, j->read_size = (size_t)read_size;
  j->flush_at = m == M_SEAL ? SEAL_IO : OUT_FLUSH;
  j->part = (uint32_t)part, j->block_chunks = (uint32_t)(block_size / CHUNK);
  j->block = (uint32_t)(j->plain_done / CHUNK / j->block_chunks), j->chunk = (uint32_t)(j->plain_done / CHUNK % j->block_chunks);
  j->err_chunk = -1;
  if (key_len == 32) memcpy(j->key, key, 32);
  if (deks_len) {
    j->deks = malloc(deks_len), j->ndeks = deks_len / 32;
    if (j->deks) memcpy(j->deks, deks, deks_len);
  }
  if (aadp_len) memcpy(j->aad, aadp, AAD_PREFIX);
  if (pre_len) {
    j->pre = malloc(pre_len), j->pre_len = pre_len;
    if (j->pre) memcpy(j->pre, pre, pre_len);
  }
  j->in = take_buf(pool_in, &pool_n_in, IN_CAP);
  if (m == M_SEAL || m == M_OPEN) j->out = take_buf(pool_out, &pool_n_out, OUT_CAP);
  if (m == M_AES_PASS) j->scratch = malloc(CHUNK);
  if (want_sha) {
    memcpy(j->want_sha, want_sha, 32);
    j->sha = EVP_MD_CTX_new();
    if (j->sha && EVP_DigestInit_ex(j->sha, EVP_sha256(), NULL) != 1) EVP_MD_CTX_free(j->sha), j->sha = NULL;
  }
  if (want_md5) {
    memcpy(j->want_md5, want_md5, 16);
    j->md5 = EVP_MD_CTX_new();
    if (j->md5 && EVP_DigestInit_ex(j->md5, EVP_md5(), NULL) != 1) EVP_MD_CTX_free(j->md5), j->md5 = NULL;
  }
  if (has_crc) j->check_crc = 1, j->want_crc = (unsigned long)want_crc;
  if (chunked) j->chunked = 1, j->wire_len = wire_len, j->fstate = F_HEADER, j->te = te;
  if (has_crc || (chunked && (!signed_chunks || signed_trailer))) j->compute_crc = 1, j->crc = Cr_z_crc32(0UL, NULL, 0);
  if (signed_chunks) {
    j->signed_chunks = 1, j->signed_trailer = signed_trailer;
    memcpy(j->sig_key, chunk_key, 32);
    memcpy(j->prev_sig, chunk_seed, SIG_HEX);
    memcpy(j->sts_prefix, sts_head, sizeof sts_head - 1);
    memcpy(j->sts_prefix + sizeof sts_head - 1, date_scope, date_scope_len);
    j->sts_prefix_len = sizeof sts_head - 1 + date_scope_len;
    j->sts_prefix[j->sts_prefix_len++] = '\n';
    j->chunk_sha = EVP_MD_CTX_new();
  }
  if (m != M_PASS) {
    j->ctx = EVP_CIPHER_CTX_new();
    if (j->ctx && EVP_CipherInit_ex(j->ctx, EVP_aes_256_gcm(), NULL, NULL, NULL, m == M_OPEN ? 0 : 1) != 1) {
      EVP_CIPHER_CTX_free(j->ctx);
      j->ctx = NULL;
    }
  }
  if (!j->in || (deks_len && !j->deks) || (pre_len && !j->pre) || (want_sha && !j->sha) || (want_md5 && !j->md5) || (signed_chunks && !j->chunk_sha) || ((m == M_SEAL || m == M_OPEN) && !j->out) || (m == M_AES_PASS && !j->scratch) ||
      (m != M_PASS && !j->ctx)) {
    wipe_free(j);
    return throw_type(env, "out of memory (or no AES-256-GCM in this OpenSSL)");
  }
  if (control) {
    napi_create_reference(env, ctl, 1, &control_ref); /* the array stays alive while the thread reads it */
    j->control = control, j->control_ref = control_ref;
  }
  if (gate) {
    napi_value gname;
    napi_create_string_utf8(env, "lakecrypt.dataplane.gate", NAPI_AUTO_LENGTH, &gname);
    if (napi_create_threadsafe_function(env, on_gate, NULL, gname, 0, 1, NULL, NULL, NULL, call_js_gate, &j->gate_tsfn) != napi_ok) {
      if (control_ref) napi_delete_reference(env, control_ref);
      wipe_free(j);
      return throw_type(env, "could not create the onGate callback");
    }
    napi_create_reference(env, gate_v, 1, &j->gate_ref);
    j->gate = gate;
    j->gate_seen = gate[0]; /* the generation the caller validated the keys under */
  }
  if (fresh_until) {
    napi_create_reference(env, fresh_v, 1, &j->fresh_ref); /* alive while the thread reads it */
    j->fresh_until = fresh_until;
  }

  napi_value name;
  napi_create_string_utf8(env, "lakecrypt.dataplane.pump", NAPI_AUTO_LENGTH, &name);
  if (napi_create_threadsafe_function(env, argv[1], NULL, name, 0, 1, NULL, NULL, NULL, call_js, &j->tsfn) != napi_ok) {
    if (control_ref) napi_delete_reference(env, control_ref);
    if (j->gate_ref) napi_delete_reference(env, j->gate_ref), napi_release_threadsafe_function(j->gate_tsfn, napi_tsfn_abort);
    if (j->fresh_ref) napi_delete_reference(env, j->fresh_ref);
    wipe_free(j);
    return throw_type(env, "could not create the completion callback");
  }
  pthread_t th;
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  int rc = pthread_create(&th, &attr, thread_main, j);
  pthread_attr_destroy(&attr);
  if (rc != 0) {
    napi_release_threadsafe_function(j->tsfn, napi_tsfn_abort);
    if (control_ref) napi_delete_reference(env, control_ref);
    if (j->gate_ref) napi_delete_reference(env, j->gate_ref), napi_release_threadsafe_function(j->gate_tsfn, napi_tsfn_abort);
    if (j->fresh_ref) napi_delete_reference(env, j->fresh_ref);
    wipe_free(j);
    napi_throw_error(env, "EAGAIN", "could not start the pump thread");
    return NULL;
  }
  return NULL;
}

/*
 * trim(): give the allocator's free pages back to the system (glibc malloc_trim(0): the top of every arena and the
 * free pages inside them). Node's Buffers, the sockets' read buffers and the pumps' 1 MiB buffers live in malloc's
 * arenas; after a burst of Node-path transfers glibc keeps tens of MiB it no longer uses (bench/README.md "Memory"),
 * which only a trim returns. Returns true when memory was released. The gateway calls it when it goes idle
 * (src/ops/memory-trim.ts): it walks the arenas under their locks, a millisecond or so.
 */
static napi_value trim(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value r;
  free_pool();
  napi_get_boolean(env, malloc_trim(0) != 0, &r);
  return r;
}

/*
 * lowMemory(): V8's memory-reducing collections (native/heap.cc), which also release the young generation's idle
 * semi-space and V8's pooled pages; false when the addon was built without native/heap.cc (no C++ compiler: the gateway
 * then collects with global.gc()). The JavaScript thread only: the call runs on the current isolate.
 */
#ifdef LC_NO_V8_HEAP
static int lc_low_memory(void) { return 0; }
#else
int lc_low_memory(void);
#endif

static napi_value low_memory(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value r;
  napi_get_boolean(env, lc_low_memory() != 0, &r);
  return r;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_value fn, n;
  napi_create_function(env, "pump", NAPI_AUTO_LENGTH, pump, NULL, &fn);
  napi_set_named_property(env, exports, "pump", fn);
  napi_create_function(env, "trim", NAPI_AUTO_LENGTH, trim, NULL, &fn);
  napi_set_named_property(env, exports, "trim", fn);
  napi_create_function(env, "lowMemory", NAPI_AUTO_LENGTH, low_memory, NULL, &fn);
  napi_set_named_property(env, exports, "lowMemory", fn);
  napi_create_uint32(env, CHUNK, &n);
  napi_set_named_property(env, exports, "CHUNK", n);
  if (Cr_z_crc32) Cr_z_crc32(0UL, NULL, 0); /* zlib's idiom: picks its CPU-specific code once */
  napi_get_boolean(env, Cr_z_crc32 != NULL, &n);
  napi_set_named_property(env, exports, "CRC32", n);
  /* the loader refuses a build without it: an older pump would ignore chunkKey and check no chunk signature */
  napi_get_boolean(env, true, &n);
  napi_set_named_property(env, exports, "SIGNED_CHUNKS", n);
  /* ... and without it: an older pump would ignore freshUntil and stream past the revocation bound */
  napi_set_named_property(env, exports, "FRESH_UNTIL", n);
  /* ... and without it: an older pump would refuse httpChunked, and such uploads would fail instead of going native */
  napi_set_named_property(env, exports, "HTTP_CHUNKED", n);
  /* ... and without it: an older pump would ignore signedTrailer and refuse the trailer such bodies end with */
  napi_set_named_property(env, exports, "SIGNED_TRAILER", n);
  return exports;
}

NAPI_MODULE(dataplane, init)
