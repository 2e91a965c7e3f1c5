/* SPDX-License-Identifier: MIT */
/*
 * What tern-send and tern-recv share: the file protocol's messages (examples/web/
 * FILE-PROTOCOL.md, version 2: parse and send), the check of a name that came from the peer,
 * SHA-256 helpers, a hash of a file range done in slices from the loop (so that a long prefix
 * never stalls the connection's timers), the progress line (a bar on a terminal, periodic
 * lines otherwise), the one-line summary with the path type, and the command-line options
 * both programs take (the room, ICE servers, addresses).
 *
 * Scope: POSIX files only; no fsync before the rename; no file modes or times carried over.
 */
#ifndef TERN_EXAMPLES_FILE_XFER_H
#define TERN_EXAMPLES_FILE_XFER_H

#include <tern/signaling.h>
#include <tern/tern.h>

#include <openssl/evp.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* ---- the protocol's constants (FILE-PROTOCOL.md) ---- */

#define FX_SUBPROTOCOL "tern-file/2"
#define FX_SUBPROTOCOL_V1 "tern-file/1"
#define FX_VERSION 2
/* Largest binary message: fits every max-message-size (RFC 8841 §6.1 default when absent). */
#define FX_MAX_CHUNK 65536
#define FX_MAX_TEXT 65536
#define FX_MAX_NAME 4096
#define FX_MAX_COMPONENT 255
#define FX_MAX_DEPTH 64
/* JSON integers stay exact in every implementation (JavaScript's Number.MAX_SAFE_INTEGER). */
#define FX_MAX_SIZE ((UINT64_C(1) << 53) - 1)
/* Suffix of tern-recv's partial files; peers may not name a file with it. */
#define FX_PART_SUFFIX ".tern-part"
#define FX_SHA256_LEN 32
#define FX_HEX_LEN 65

/* ---- messages ---- */

typedef enum {
    FX_MSG_UNKNOWN = 0, /* a JSON object with a type this side does not handle */
    FX_MSG_FILE,
    FX_MSG_ACCEPT,
    FX_MSG_START,
    FX_MSG_END,
    FX_MSG_DONE,
    FX_MSG_ERROR,
} fx_msg_type_t;

/* One text message, parsed. Strings are owned by the message (fx_msg_clear frees them). */
typedef struct fx_msg {
    fx_msg_type_t type;
    int64_t version; /* file */
    char *name;      /* file, NUL-terminated; name_len excludes the NUL */
    size_t name_len; /* may differ from strlen(name) if the peer put a NUL in it */
    uint64_t size;   /* file, done (has_size) */
    bool has_size;   /* done */
    char *mime;      /* file; NULL if absent */
    uint64_t offset; /* accept, start */
    uint8_t sha256[FX_SHA256_LEN];
    bool has_sha256; /* file, accept, end (required), done */
    bool ok;         /* done */
    char *message;   /* error, done; NULL if absent */
} fx_msg_t;

/*
 * Parse a text message. Fields of known types are checked (types, ranges, 64 hex digits);
 * unknown fields are ignored; a well-formed object of another type is FX_MSG_UNKNOWN.
 * @return 0; -1 with a reason in why (for an `error` answer) if it is not one of our messages.
 */
int fx_msg_parse(const uint8_t *data, size_t len, fx_msg_t *out, char *why, size_t why_cap);
void fx_msg_clear(fx_msg_t *m);

/*
 * The JSON text of m (compact, malloc'd): its type's fields, the optional ones only when
 * present. NULL for FX_MSG_UNKNOWN, an end without its sha256, a string that is not UTF-8, or
 * no memory. fx_msg_parse reads it back to the same message.
 */
char *fx_msg_encode(const fx_msg_t *m);

/* Send messages (JSON text). Each returns what tern_dc_send_text returned (0 or an error), or
 * TERN_ERR_INVALID_ARG if the message cannot be encoded. */
int fx_send_msg(tern_dc_t *dc, tern_time_t now, const fx_msg_t *m);
int fx_send_file(tern_dc_t *dc, tern_time_t now, const char *name, uint64_t size);
int fx_send_accept(tern_dc_t *dc, tern_time_t now, uint64_t offset,
                   const uint8_t sha256[FX_SHA256_LEN]);
int fx_send_start(tern_dc_t *dc, tern_time_t now, uint64_t offset);
int fx_send_end(tern_dc_t *dc, tern_time_t now, const uint8_t sha256[FX_SHA256_LEN]);
int fx_send_done(tern_dc_t *dc, tern_time_t now, bool ok, uint64_t size,
                 const uint8_t sha256[FX_SHA256_LEN], const char *message);
int fx_send_error(tern_dc_t *dc, tern_time_t now, const char *message);

/* ---- names from the peer ---- */

/*
 * Check a name from the peer against FILE-PROTOCOL.md's rules (relative, '/'-separated, no
 * "." or ".." or empty component, no backslash or control character, bounded lengths and
 * depth, no component ending in FX_PART_SUFFIX).
 * @return NULL if the name is acceptable, else a static reason ("a component is \"..\"").
 */
const char *fx_name_problem(const char *name, size_t len);

/*
 * Write name quoted for a terminal or a log: "name", with control characters, quotes,
 * backslashes and bytes above 0x7e as \xNN, cut with "..." to fit cap (at least 8).
 */
void fx_quote(const char *name, size_t len, char *out, size_t cap);

/* ---- SHA-256 ---- */

void fx_hex(const uint8_t sha256[FX_SHA256_LEN], char out[FX_HEX_LEN]);
/* The digest so far of a running hash (the hash itself goes on). @return 0; -1. */
int fx_digest_copy(const EVP_MD_CTX *md, uint8_t out[FX_SHA256_LEN]);
/* A fresh SHA-256 context; NULL on failure. */
EVP_MD_CTX *fx_md_new(void);
/* Start over (after a mismatching prefix). @return 0; -1. */
int fx_md_reset(EVP_MD_CTX *md);

/*
 * Hash bytes [from, to) of fd into md, FX_HASH_SLICE bytes per loop iteration, then call
 * done(arg, 0), or done(arg, errno) if a read fails or the file is shorter. done runs from a
 * loop timer, never inside fx_hash_start.
 */
typedef struct fx_hash_job {
    tern_loop_t *loop;
    tern_timer_t *timer;
    int fd;
    uint64_t pos, end;
    EVP_MD_CTX *md;
    void (*done)(void *arg, int err);
    void *arg;
} fx_hash_job_t;

#define FX_HASH_SLICE (8u << 20)

/* @return 0; -1 if the timer cannot be made. */
int fx_hash_start(fx_hash_job_t *job, tern_loop_t *loop, int fd, EVP_MD_CTX *md, uint64_t from,
                  uint64_t to, void (*done)(void *arg, int err), void *arg);
/* Stop a job that has not called done yet (no-op otherwise). */
void fx_hash_cancel(fx_hash_job_t *job);
bool fx_hash_running(const fx_hash_job_t *job);

/* ---- progress and summary ---- */

typedef struct fx_progress {
    const char *prog; /* "tern-send" */
    const char *verb; /* "sent" / "received" */
    bool enabled;     /* false: --quiet */
    bool tty;         /* out is a terminal: one line redrawn in place */
    FILE *out;        /* stderr; a test points it elsewhere */
    tern_time_t start, last_line, last_sample;
    uint64_t total; /* bytes of the files announced */
    uint64_t done;  /* bytes of them in place (resumed ones included) */
    uint64_t moved; /* bytes carried in this run */
    uint64_t sample_moved;
    double rate; /* bytes per second, smoothed */
    unsigned files_done, files_total;
    bool drawn; /* a progress line is on the terminal */
} fx_progress_t;

/* How often fx_progress_tick should run: a terminal's bar, or a plain line's period. */
#define FX_PROGRESS_TTY_MS 250
#define FX_PROGRESS_LINE_MS 5000

void fx_progress_init(fx_progress_t *p, const char *prog, const char *verb, bool enabled,
                      tern_time_t now);
/* Redraw the bar (terminal) or print a line (when FX_PROGRESS_LINE_MS have passed). */
void fx_progress_tick(fx_progress_t *p, tern_time_t now);
/* Erase the bar before printing anything else on the terminal. */
void fx_progress_clear(fx_progress_t *p);
/* Print to stdout (a result line), erasing the bar first; flushed at once. */
void fx_print(fx_progress_t *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* "1.50 GiB", "512 B". */
void fx_format_bytes(uint64_t n, char *out, size_t cap);

/*
 * The path a pc's data takes, for the summary: "host" (both ends host candidates), "relay"
 * (either end a TURN relay), "srflx" (direct through a NAT: server or peer reflexive), or
 * "unknown"; detail gets "local TYPE ADDR, remote TYPE ADDR".
 */
const char *fx_path_type(const tern_pc_t *pc, char *detail, size_t cap);

/* ---- command line shared by both programs ---- */

#define FX_MAX_LIST 16

typedef struct fx_cli {
    const char *url;
    tern_signaling_role_t role;
    tern_ice_server_t ice[FX_MAX_LIST];
    size_t ice_count;
    const char *binds[FX_MAX_LIST];
    size_t bind_count;
    bool loopback, insecure, quiet, relay_only;
    const char *ca;
} fx_cli_t;

/*
 * Take argv[*i] (and its value) if it is a shared option, advancing *i past the value.
 * @return 1 if taken; 0 if not a shared option; -1 if its value is missing or bad (printed).
 */
int fx_cli_option(fx_cli_t *c, const char *prog, int argc, char **argv, int *i);
/* The shared options' lines for a usage text. */
void fx_cli_usage(FILE *f);
/* Fill a pc and a signaling configuration from the options (pointers into c). */
void fx_cli_configs(const fx_cli_t *c, tern_pc_config_t *pc_cfg, tern_signaling_config_t *cfg);
void fx_cli_free(fx_cli_t *c);

/*
 * Block SIGINT and SIGTERM and watch them through a signalfd on the loop: fn(arg, signo) runs
 * on the loop thread. One watch per process. @return the fd (close it after tern_loop_free),
 * or -1.
 */
int fx_watch_signals(tern_loop_t *loop, void (*fn)(void *arg, int signo), void *arg);

#endif
