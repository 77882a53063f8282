/*
 * HTTP/1.1 chunked transfer coding around an aws-chunked body, read by the seal pump (native/dataplane.c): the AWS
 * SDK for JavaScript sends its stream uploads so (Transfer-Encoding: chunked, no Content-Length, the aws-chunks of
 * STREAMING-UNSIGNED-PAYLOAD-TRAILER inside). This file takes the outer framing off and hands the chunks' data to
 * native/aws-chunked.c (deframe), which reads the aws-chunked framing as it does for a body with a Content-Length.
 *
 * The body's end is its framing's: the last chunk `0\r\n`, trailer fields, a blank line. The pump must read no byte
 * past it (a keep-alive connection's next request is node:http's again afterwards), so it asks te_read_bound() how
 * many bytes are certainly still body before each read. The rules are RFC 9112 section 7.1 read strictly, as
 * node:http's own parser (llhttp, not lenient) reads them — node:http accepted the request's head, and whatever
 * follows the body is parsed by it again, so the two must agree on where the body ends: a size of hex digits
 * (at most 15: no overflow), extensions (`;` after optional whitespace; ignored up to CR LF, neither of which an
 * extension may hold), CR LF, the data, CR LF; trailer fields after the last chunk (ignored, 16 KiB at most), then
 * CR LF. A bare LF, anything else after the data, or an input that ends first is refused (IncompleteBody, or
 * UnexpectedEOF when the input ended), and the connection is not used again; nothing of the last sealed chunk has
 * left by then (aws-chunked.c holds it until its trailer was checked), so nothing commits.
 */
#include "pump.h"

enum { T_SIZE, T_BWS, T_EXT, T_SIZE_LF, T_DATA, T_DATA_CR, T_DATA_LF, T_TRAILER, T_FIELD, T_FIELD_LF, T_END_LF, T_DONE };
#define MAX_TE_EXT 4096
#define MAX_TE_DIGITS 15

static int bad(job_t *j, const char *what) {
  return fail(j, "IncompleteBody", "Malformed chunked transfer coding: %s.", what);
}

/* The one byte a state allows (`w`), then state `next`; anything else is refused. */
static int expect(job_t *j, uint8_t c, uint8_t w, int next, const char *what) {
  if (c != w) return bad(j, what);
  j->tstate = next;
  return 0;
}

/* n bytes of the body on the wire: the transfer coding read, its chunks' data passed on to deframe. */
int te_deframe(job_t *j, const uint8_t *b, size_t n) {
  while (n > 0) {
    if (j->tstate == T_DATA) {
      size_t k = (uint64_t)n < j->tremaining ? n : (size_t)j->tremaining;
      if (deframe(j, b, k)) return -1;
      j->tremaining -= k, b += k, n -= k;
      if (j->tremaining == 0) j->tstate = T_DATA_CR;
      continue;
    }
    uint8_t c = *b++;
    n--;
    switch (j->tstate) {
      case T_SIZE: {
        int v = hexval(c);
        if (v >= 0) {
          if (++j->tdigits > MAX_TE_DIGITS) return bad(j, "chunk size too long");
          j->tremaining = j->tremaining * 16 + (uint64_t)v;
        } else if (j->tdigits == 0) {
          return bad(j, "chunk size expected");
        } else if (c == '\r') {
          j->tstate = T_SIZE_LF;
        } else if (c == ';') {
          j->tstate = T_EXT, j->tcount = 0;
        } else if (c == ' ' || c == '\t') {
          j->tstate = T_BWS, j->tcount = 0;
        } else {
          return bad(j, "chunk size expected");
        }
        break;
      }
      case T_BWS: /* whitespace after the size only before an extension (RFC 9112: BWS ";") */
        if (c == ';') j->tstate = T_EXT;
        else if ((c != ' ' && c != '\t') || ++j->tcount > MAX_TE_EXT) return bad(j, "chunk extension expected after whitespace");
        break;
      case T_EXT:
        if (c == '\r') j->tstate = T_SIZE_LF;
        else if (c == '\n' || ++j->tcount > MAX_TE_EXT) return bad(j, "chunk extension");
        break;
      case T_SIZE_LF:
        if (c != '\n') return bad(j, "CR LF expected after the chunk size");
        j->tdigits = 0;
        if (j->tremaining == 0) j->tstate = T_TRAILER, j->tcount = 0;
        else j->tstate = T_DATA;
        break;
      case T_DATA_CR:
        if (expect(j, c, '\r', T_DATA_LF, "CR LF expected after the chunk data")) return -1;
        break;
      case T_DATA_LF:
        if (expect(j, c, '\n', T_SIZE, "CR LF expected after the chunk data")) return -1;
        break;
      case T_TRAILER:
        if (c == '\r') j->tstate = T_END_LF;
        else if (c == '\n') return bad(j, "bare LF in the trailer");
        else j->tstate = T_FIELD;
        if (++j->tcount > MAX_TRAILER) return bad(j, "trailer too long");
        break;
      case T_FIELD:
        if (c == '\r') j->tstate = T_FIELD_LF;
        else if (c == '\n') return bad(j, "bare LF in the trailer");
        if (++j->tcount > MAX_TRAILER) return bad(j, "trailer too long");
        break;
      case T_FIELD_LF:
        if (expect(j, c, '\n', T_TRAILER, "CR LF expected in the trailer")) return -1;
        break;
      case T_END_LF:
        if (expect(j, c, '\n', T_DONE, "CR LF expected at the end")) return -1;
        break;
      default: /* T_DONE: te_read_bound() never lets a read reach past the end */
        return bad(j, "data after the last chunk");
    }
  }
  return 0;
}

int te_done(const job_t *j) { return j->tstate == T_DONE; }

/*
 * Bytes the next read may ask for without reaching past the body: its plaintext still to come is on the wire after
 * this point (x-amz-decoded-content-length less what was taken), and inside a chunk's data so are the rest of that
 * data, its CR LF and the shortest end (`0\r\n\r\n`). At least 1: after the data, the short tail of framing is read a
 * few bytes at a time.
 */
uint64_t te_read_bound(const job_t *j) {
  uint64_t left = (uint64_t)j->length - j->decoded;
  if (j->tstate == T_DATA && j->tremaining + 7 > left) left = j->tremaining + 7;
  return left > 0 ? left : 1;
}
