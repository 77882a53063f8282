/*
 * What native/dataplane.c (the pump: threads, sockets, AES-GCM per chunk) and native/aws-chunked.c (the aws-chunked
 * framing and its chunk signatures) share: the job a pump runs and the few functions each calls in the other. Every
 * function here is hidden (the build passes -fvisibility=hidden): none is exported from the addon, so none can be
 * interposed by a symbol of the same name in the node binary.
 */
#ifndef LAKECRYPT_PUMP_H
#define LAKECRYPT_PUMP_H
#include <node_api.h>
#include <openssl/evp.h>
#include <stddef.h>
#include <stdint.h>

#define CHUNK 65536u
#define TAG 16u
#define AAD_PREFIX 52u
#define AAD_LEN 65u
#define IN_CAP (1u << 20)
#define DEFAULT_READ IN_CAP
#define OUT_FLUSH (1u << 20)
#define SEAL_IO (1u << 18)          /* seal: reads and writes of 256 KiB (see dataplane.c's top comment) */
#define OUT_CAP (OUT_FLUSH + CHUNK + TAG)
#define WAIT_SLICE_MS 100
#define DEFAULT_IDLE_MS 120000

enum mode { M_PASS, M_AES_PASS, M_SEAL, M_OPEN };
enum fstate { F_HEADER, F_DATA, F_CRLF, F_TRAILER, F_DONE };
#define MAX_FLINE 4096              /* an aws-chunk header line (src/s3/chunked.ts MAX_CHUNK_HEADER) */
#define MAX_TRAILER (16 * 1024)     /* all trailer lines (MAX_TRAILER_BYTES) */
#define MAX_AWS_CHUNK (16u << 20)   /* an aws-chunk's data (MAX_CHUNK_SIZE) */
#define SIG_HEX 64                  /* a SigV4 signature, lowercase hex */

typedef struct job {
  enum mode mode;
  int in_fd, out_fd;
  int64_t length;     /* plaintext (seal/open) or input bytes (pass modes); -1: until EOF (pass modes) */
  int shutdown_out;   /* shutdown(out_fd, SHUT_WR) once done (a TCP relay's half close) */
  int idle_ms;        /* a wait for the other side longer than this fails with ETIMEDOUT */
  size_t read_size;   /* bytes asked of one read (at most IN_CAP) */
  size_t flush_at;    /* seal/open: output written once this much is verified (OUT_FLUSH, seal SEAL_IO) */
  uint8_t key[32];    /* aes-pass */
  uint8_t *deks;      /* seal/open: 32 bytes per block */
  size_t ndeks;
  uint8_t aad[AAD_LEN];
  uint32_t part;
  uint32_t block_chunks; /* chunks per block */
  uint8_t *pre;
  size_t pre_len;
  volatile int32_t *control;
  napi_ref control_ref;
  volatile int32_t *gate; /* [0] generation (JS writes), [2] answer to onGate (JS writes: 1 go on, -1 refused) */
  napi_ref gate_ref;
  int32_t gate_seen;
  volatile int64_t *fresh_until; /* open with a gate: CLOCK_MONOTONIC ns up to which the key state is confirmed (JS writes) */
  napi_ref fresh_ref;
  napi_threadsafe_function gate_tsfn;
  napi_threadsafe_function tsfn;

  /* progress */
  uint64_t bytes_in, bytes_out;
  uint64_t plain_done;   /* plaintext offset (within the part) where the chunk in progress starts */
  uint64_t end_plain;    /* ... where the input ends: length, or a ranged open's last chunk's end */
  uint64_t out_from, out_to; /* open: the plaintext offsets released (a range's; else 0, length) */
  int key_set;           /* the cipher holds the block's key (a ranged open may start inside a block) */
  uint32_t block, chunk; /* position of the chunk in progress */
  uint32_t in_chunk;     /* plaintext bytes of the chunk in progress taken so far */
  uint32_t tag_have;     /* open: tag bytes of the chunk in progress taken so far */
  int chunk_open;        /* a cipher is set up for the chunk in progress */
  uint8_t tag[TAG];
  EVP_CIPHER_CTX *ctx;
  EVP_MD_CTX *sha;          /* seal: SHA-256 of the plaintext, when `sha256` is expected */
  uint8_t want_sha[32];
  EVP_MD_CTX *md5;          /* seal: MD5 of the plaintext, when `md5` is expected */
  uint8_t want_md5[16];
  int check_crc;            /* seal: CRC-32 of the plaintext, when `crc32` is expected */
  unsigned long crc, want_crc;
  int compute_crc;          /* seal: CRC-32 computed (check_crc, or an aws-chunked body's trailer to come) */

  /* seal of an aws-chunked body: the framing state (native/aws-chunked.c) */
  int chunked;
  int64_t wire_len;         /* framed bytes to read (the request's Content-Length) */
  int fstate;               /* F_HEADER, F_DATA, F_CRLF, F_TRAILER, F_DONE */
  uint32_t fremaining;      /* data bytes left in the aws-chunk in progress */
  int crlf_seen;
  char fline[MAX_FLINE + 1];
  size_t fline_len, trailer_bytes;
  uint64_t decoded;         /* plaintext bytes taken from the framing */
  int held;                 /* the last sealed chunk is held until the trailer was checked */
  /* ... whose chunks are signed (STREAMING-AWS4-HMAC-SHA256-PAYLOAD): native/aws-chunked.c */
  int signed_chunks;
  uint8_t sig_key[32];      /* the request's SigV4 signing key (wiped when the job ends) */
  char prev_sig[SIG_HEX];   /* the signature the next chunk's chains from: the request's, then each chunk's */
  char chunk_sig[SIG_HEX];  /* the signature the chunk in progress declared */
  char sts_prefix[192];     /* "AWS4-HMAC-SHA256-PAYLOAD\n" date "\n" scope "\n" */
  size_t sts_prefix_len;
  EVP_MD_CTX *chunk_sha;    /* SHA-256 of the chunk in progress's data (then of the signed trailer's lines) */
  int signed_trailer;       /* ... and a signed trailer follows (STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER) */
  int trailer_sig_seen;     /* its x-amz-trailer-signature line was read (into chunk_sig) */
  /* ... inside HTTP chunked transfer coding (no Content-Length: the end is the framing's): native/http-chunked.c */
  int te;
  int tstate, tdigits;
  size_t tcount;            /* bytes of the chunk extension or trailer in progress */
  uint64_t tremaining;      /* the chunk size being read, then its data bytes left */
  uint8_t *in, *out, *scratch;
  size_t out_len, out_committed;
  size_t in_used, out_used; /* the most of each buffer ever filled: what is wiped before it is kept or freed */

  /* outcome */
  const char *err_code;
  char err_msg[160];
  int64_t err_chunk; /* the chunk (within the part) that failed to open, else -1 */
} job_t;

/* node's zlib (Chromium's): resolved from the node binary when it exports it, else NULL */
extern unsigned long Cr_z_crc32(unsigned long crc, const unsigned char *buf, unsigned int len) __attribute__((weak));

/* Record the first failure (code and message) of the job; returns -1. */
int fail(job_t *j, const char *code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Take n plaintext bytes through the chunk state machine (native/dataplane.c). */
int take(job_t *j, const uint8_t *b, size_t n);
/* Equal in time independent of where they differ: 1 when a and b differ. */
int differ(const uint8_t *a, const uint8_t *b, size_t n);

/* native/aws-chunked.c: a hex digit's value, else -1 (both framings' sizes). */
int hexval(int c);
/* native/aws-chunked.c: n framed bytes read (their data taken), then the end of the input. */
int deframe(job_t *j, const uint8_t *b, size_t n);
int deframe_end(job_t *j);

/* native/http-chunked.c: n bytes of a body in chunked transfer coding (its chunks' data to deframe); whether its
   last chunk and trailer were read; how many bytes the next read may ask for without reaching past the body. */
int te_deframe(job_t *j, const uint8_t *b, size_t n);
int te_done(const job_t *j);
uint64_t te_read_bound(const job_t *j);

#endif
