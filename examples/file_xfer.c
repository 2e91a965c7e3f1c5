/* SPDX-License-Identifier: MIT */
/*
 * The parts tern-send and tern-recv share (file_xfer.h): the file protocol's JSON messages
 * (examples/web/FILE-PROTOCOL.md, version 2) parsed with jansson and sent as text messages, the
 * check of names that come from the peer, SHA-256 over OpenSSL's EVP, hashing a file range in
 * slices from loop timers, the progress line and summary, and the shared command line.
 */
#include "file_xfer.h"

#include <jansson.h>

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

/* ------------------------------------------------------------------------------------------ */
/* Messages                                                                                   */
/* ------------------------------------------------------------------------------------------ */

static void say(char *why, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void say(char *why, size_t cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, cap, fmt, ap);
    va_end(ap);
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static bool parse_hash(const json_t *v, uint8_t out[FX_SHA256_LEN])
{
    if (!json_is_string(v) || json_string_length(v) != 2 * FX_SHA256_LEN)
        return false;
    const char *s = json_string_value(v);
    for (size_t i = 0; i < FX_SHA256_LEN; i++) {
        int hi = hex_value(s[2 * i]), lo = hex_value(s[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return false;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return true;
}

static bool parse_count(const json_t *v, uint64_t *out)
{
    if (!json_is_integer(v) || json_integer_value(v) < 0 ||
        (uint64_t)json_integer_value(v) > FX_MAX_SIZE)
        return false;
    *out = (uint64_t)json_integer_value(v);
    return true;
}

/* An optional string field: absent is fine, another JSON type is not. */
static bool take_string(const json_t *obj, const char *key, char **out, size_t *len)
{
    const json_t *v = json_object_get(obj, key);
    if (!v)
        return true;
    if (!json_is_string(v))
        return false;
    size_t n = json_string_length(v);
    *out = malloc(n + 1);
    if (!*out)
        return false;
    memcpy(*out, json_string_value(v), n);
    (*out)[n] = '\0';
    if (len)
        *len = n;
    return true;
}

static int parse_file(const json_t *o, fx_msg_t *m, char *why, size_t cap)
{
    const json_t *version = json_object_get(o, "version");
    if (!json_is_integer(version)) {
        say(why, cap, "file without an integer version");
        return -1;
    }
    m->version = (int64_t)json_integer_value(version);
    if (!json_is_string(json_object_get(o, "name")) ||
        !take_string(o, "name", &m->name, &m->name_len)) {
        say(why, cap, "file without a name");
        return -1;
    }
    if (!parse_count(json_object_get(o, "size"), &m->size)) {
        say(why, cap, "file without a size from 0 to 2^53-1");
        return -1;
    }
    if (!take_string(o, "mime", &m->mime, NULL)) {
        say(why, cap, "mime is not a string");
        return -1;
    }
    const json_t *h = json_object_get(o, "sha256");
    if (h && !(m->has_sha256 = parse_hash(h, m->sha256))) {
        say(why, cap, "sha256 is not 64 hex digits");
        return -1;
    }
    return 0;
}

static int parse_offset_msg(const json_t *o, fx_msg_t *m, bool with_hash, char *why, size_t cap)
{
    if (!parse_count(json_object_get(o, "offset"), &m->offset)) {
        say(why, cap, "offset is not an integer from 0 to 2^53-1");
        return -1;
    }
    const json_t *h = with_hash ? json_object_get(o, "sha256") : NULL;
    if (h && !(m->has_sha256 = parse_hash(h, m->sha256))) {
        say(why, cap, "sha256 is not 64 hex digits");
        return -1;
    }
    if (with_hash && m->offset > 0 && !m->has_sha256) {
        say(why, cap, "accept of a prefix without its sha256");
        return -1;
    }
    return 0;
}

static int parse_done(const json_t *o, fx_msg_t *m, char *why, size_t cap)
{
    const json_t *ok = json_object_get(o, "ok");
    if (!json_is_boolean(ok)) {
        say(why, cap, "done without a boolean ok");
        return -1;
    }
    m->ok = json_is_true(ok);
    const json_t *size = json_object_get(o, "size");
    if (size && !(m->has_size = parse_count(size, &m->size))) {
        say(why, cap, "done with a bad size");
        return -1;
    }
    const json_t *h = json_object_get(o, "sha256");
    if (h && !(m->has_sha256 = parse_hash(h, m->sha256))) {
        say(why, cap, "sha256 is not 64 hex digits");
        return -1;
    }
    if (!take_string(o, "message", &m->message, NULL)) {
        say(why, cap, "message is not a string");
        return -1;
    }
    return 0;
}

static int parse_typed(const json_t *o, const char *type, fx_msg_t *m, char *why, size_t cap)
{
    if (strcmp(type, "file") == 0) {
        m->type = FX_MSG_FILE;
        return parse_file(o, m, why, cap);
    }
    if (strcmp(type, "accept") == 0) {
        m->type = FX_MSG_ACCEPT;
        return parse_offset_msg(o, m, true, why, cap);
    }
    if (strcmp(type, "start") == 0) {
        m->type = FX_MSG_START;
        return parse_offset_msg(o, m, false, why, cap);
    }
    if (strcmp(type, "end") == 0) {
        m->type = FX_MSG_END;
        if (!(m->has_sha256 = parse_hash(json_object_get(o, "sha256"), m->sha256))) {
            say(why, cap, "end without a sha256 of 64 hex digits");
            return -1;
        }
        return 0;
    }
    if (strcmp(type, "done") == 0) {
        m->type = FX_MSG_DONE;
        return parse_done(o, m, why, cap);
    }
    if (strcmp(type, "error") == 0) {
        m->type = FX_MSG_ERROR;
        if (!take_string(o, "message", &m->message, NULL)) {
            say(why, cap, "message is not a string");
            return -1;
        }
        return 0;
    }
    m->type = FX_MSG_UNKNOWN;
    return 0;
}

int fx_msg_parse(const uint8_t *data, size_t len, fx_msg_t *out, char *why, size_t why_cap)
{
    memset(out, 0, sizeof *out);
    if (len > FX_MAX_TEXT) {
        say(why, why_cap, "a text message longer than %d bytes", FX_MAX_TEXT);
        return -1;
    }
    json_error_t jerr;
    /* NULs allowed so that a name with one is refused by the name check, with its reason. */
    json_t *o = json_loadb((const char *)data, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
    if (!o || !json_is_object(o) || !json_is_string(json_object_get(o, "type"))) {
        say(why, why_cap, o ? "a JSON message without a string type" : "text that is not JSON");
        json_decref(o);
        return -1;
    }
    int rc = parse_typed(o, json_string_value(json_object_get(o, "type")), out, why, why_cap);
    json_decref(o);
    if (rc != 0)
        fx_msg_clear(out);
    return rc;
}

void fx_msg_clear(fx_msg_t *m)
{
    free(m->name);
    free(m->mime);
    free(m->message);
    memset(m, 0, sizeof *m);
}

static const char *const msg_type_names[] = {
    [FX_MSG_FILE] = "file", [FX_MSG_ACCEPT] = "accept", [FX_MSG_START] = "start",
    [FX_MSG_END] = "end",   [FX_MSG_DONE] = "done",     [FX_MSG_ERROR] = "error",
};

/* Add a field; false if the value could not be made (not UTF-8, no memory). */
static bool put(json_t *o, const char *key, json_t *value)
{
    return value && json_object_set_new(o, key, value) == 0;
}

static json_t *hash_value(const uint8_t sha256[FX_SHA256_LEN])
{
    char hex[FX_HEX_LEN];
    fx_hex(sha256, hex);
    return json_string(hex);
}

/* The fields each type carries, as FILE-PROTOCOL.md names them. */
static bool put_fields(json_t *o, const fx_msg_t *m)
{
    switch (m->type) {
    case FX_MSG_FILE:
        return put(o, "version", json_integer((json_int_t)m->version)) &&
               put(o, "name", json_stringn(m->name ? m->name : "", m->name_len)) &&
               put(o, "size", json_integer((json_int_t)m->size)) &&
               (!m->mime || put(o, "mime", json_string(m->mime))) &&
               (!m->has_sha256 || put(o, "sha256", hash_value(m->sha256)));
    case FX_MSG_ACCEPT:
        return put(o, "offset", json_integer((json_int_t)m->offset)) &&
               (!m->has_sha256 || put(o, "sha256", hash_value(m->sha256)));
    case FX_MSG_START:
        return put(o, "offset", json_integer((json_int_t)m->offset));
    case FX_MSG_END:
        return m->has_sha256 && put(o, "sha256", hash_value(m->sha256));
    case FX_MSG_DONE:
        return put(o, "ok", json_boolean(m->ok)) &&
               (!m->has_size || put(o, "size", json_integer((json_int_t)m->size))) &&
               (!m->has_sha256 || put(o, "sha256", hash_value(m->sha256))) &&
               (!m->message || put(o, "message", json_string(m->message)));
    case FX_MSG_ERROR:
        return !m->message || put(o, "message", json_string(m->message));
    default:
        return false;
    }
}

char *fx_msg_encode(const fx_msg_t *m)
{
    if (m->type <= FX_MSG_UNKNOWN || m->type > FX_MSG_ERROR)
        return NULL;
    json_t *o = json_object();
    char *text = NULL;
    if (o && put(o, "type", json_string(msg_type_names[m->type])) && put_fields(o, m))
        text = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return text;
}

int fx_send_msg(tern_dc_t *dc, tern_time_t now, const fx_msg_t *m)
{
    char *text = fx_msg_encode(m);
    if (!text)
        return TERN_ERR_INVALID_ARG;
    int rc = tern_dc_send_text(dc, now, text, strlen(text));
    free(text);
    return rc;
}

/* The fx_send_* functions lend their strings to a message that only reads them. */
int fx_send_file(tern_dc_t *dc, tern_time_t now, const char *name, uint64_t size)
{
    /* A name that is not UTF-8 cannot be encoded: such a file cannot be offered. */
    fx_msg_t m = {.type = FX_MSG_FILE,
                  .version = FX_VERSION,
                  .name = (char *)name,
                  .name_len = strlen(name),
                  .size = size};
    return fx_send_msg(dc, now, &m);
}

int fx_send_accept(tern_dc_t *dc, tern_time_t now, uint64_t offset,
                   const uint8_t sha256[FX_SHA256_LEN])
{
    fx_msg_t m = {.type = FX_MSG_ACCEPT, .offset = offset, .has_sha256 = true};
    memcpy(m.sha256, sha256, FX_SHA256_LEN);
    return fx_send_msg(dc, now, &m);
}

int fx_send_start(tern_dc_t *dc, tern_time_t now, uint64_t offset)
{
    fx_msg_t m = {.type = FX_MSG_START, .offset = offset};
    return fx_send_msg(dc, now, &m);
}

int fx_send_end(tern_dc_t *dc, tern_time_t now, const uint8_t sha256[FX_SHA256_LEN])
{
    fx_msg_t m = {.type = FX_MSG_END, .has_sha256 = true};
    memcpy(m.sha256, sha256, FX_SHA256_LEN);
    return fx_send_msg(dc, now, &m);
}

int fx_send_done(tern_dc_t *dc, tern_time_t now, bool ok, uint64_t size,
                 const uint8_t sha256[FX_SHA256_LEN], const char *message)
{
    fx_msg_t m = {.type = FX_MSG_DONE,
                  .ok = ok,
                  .size = size,
                  .has_size = true,
                  .has_sha256 = true,
                  .message = (char *)message};
    memcpy(m.sha256, sha256, FX_SHA256_LEN);
    return fx_send_msg(dc, now, &m);
}

int fx_send_error(tern_dc_t *dc, tern_time_t now, const char *message)
{
    fx_msg_t m = {.type = FX_MSG_ERROR, .message = (char *)message};
    int rc = fx_send_msg(dc, now, &m);
    if (rc == TERN_ERR_INVALID_ARG) {
        /* A message quoting a bad name may not be UTF-8. */
        m.message = "refused (the reason is not UTF-8)";
        rc = fx_send_msg(dc, now, &m);
    }
    return rc;
}

/* ------------------------------------------------------------------------------------------ */
/* Names                                                                                      */
/* ------------------------------------------------------------------------------------------ */

/* Length of the UTF-8 sequence at s (RFC 3629 §4), or 0 if it is not well-formed. */
static size_t utf8_sequence(const unsigned char *s, size_t left)
{
    if (s[0] < 0x80)
        return 1;
    size_t n = s[0] >= 0xf0 && s[0] <= 0xf4 ? 4 : s[0] >= 0xe0 ? 3 : s[0] >= 0xc2 ? 2 : 0;
    if (n == 0 || s[0] > 0xf4 || n > left)
        return 0;
    for (size_t i = 1; i < n; i++)
        if ((s[i] & 0xc0) != 0x80)
            return 0;
    /* No overlong forms, no surrogates, nothing past U+10FFFF. */
    if ((s[0] == 0xe0 && s[1] < 0xa0) || (s[0] == 0xed && s[1] >= 0xa0) ||
        (s[0] == 0xf0 && s[1] < 0x90) || (s[0] == 0xf4 && s[1] >= 0x90))
        return 0;
    return n;
}

static const char *component_problem(const char *c, size_t len)
{
    static const size_t suffix = sizeof FX_PART_SUFFIX - 1;
    if (len == 0)
        return "the name has an empty component";
    if (len == 1 && c[0] == '.')
        return "a component is \".\"";
    if (len == 2 && c[0] == '.' && c[1] == '.')
        return "a component is \"..\"";
    if (len > FX_MAX_COMPONENT)
        return "a component is longer than 255 bytes";
    if (len >= suffix && memcmp(c + len - suffix, FX_PART_SUFFIX, suffix) == 0)
        return "a component ends in " FX_PART_SUFFIX " (the receiver's partial files)";
    return NULL;
}

const char *fx_name_problem(const char *name, size_t len)
{
    if (!name || len == 0)
        return "the name is empty";
    if (len > FX_MAX_NAME)
        return "the name is longer than 4096 bytes";
    if (name[0] == '/')
        return "the name is an absolute path";
    const unsigned char *s = (const unsigned char *)name;
    size_t start = 0, depth = 0;
    for (size_t i = 0; i <= len;) {
        if (i == len || s[i] == '/') {
            const char *why = component_problem(name + start, i - start);
            if (why)
                return why;
            if (++depth > FX_MAX_DEPTH)
                return "the name has more than 64 components";
            start = ++i;
            continue;
        }
        if (s[i] < 0x20 || s[i] == 0x7f)
            return "the name has a control character";
        if (s[i] == '\\')
            return "the name has a backslash";
        size_t n = utf8_sequence(s + i, len - i);
        if (n == 0)
            return "the name is not UTF-8";
        i += n;
    }
    return NULL;
}

void fx_quote(const char *name, size_t len, char *out, size_t cap)
{
    size_t o = 0;
    out[o++] = '"';
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)name[i];
        bool plain = c >= 0x20 && c < 0x7f && c != '"' && c != '\\';
        size_t need = plain ? 1 : 4;
        if (o + need + 5 > cap) {
            memcpy(out + o, "...", 3);
            o += 3;
            break;
        }
        if (plain)
            out[o++] = (char)c;
        else
            o += (size_t)snprintf(out + o, cap - o, "\\x%02x", c);
    }
    out[o++] = '"';
    out[o] = '\0';
}

/* ------------------------------------------------------------------------------------------ */
/* SHA-256                                                                                    */
/* ------------------------------------------------------------------------------------------ */

void fx_hex(const uint8_t sha256[FX_SHA256_LEN], char out[FX_HEX_LEN])
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < FX_SHA256_LEN; i++) {
        out[2 * i] = digits[sha256[i] >> 4];
        out[2 * i + 1] = digits[sha256[i] & 15];
    }
    out[2 * FX_SHA256_LEN] = '\0';
}

EVP_MD_CTX *fx_md_new(void)
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    if (md && fx_md_reset(md) != 0) {
        EVP_MD_CTX_free(md);
        md = NULL;
    }
    return md;
}

int fx_md_reset(EVP_MD_CTX *md)
{
    return EVP_DigestInit_ex(md, EVP_sha256(), NULL) == 1 ? 0 : -1;
}

int fx_digest_copy(const EVP_MD_CTX *md, uint8_t out[FX_SHA256_LEN])
{
    EVP_MD_CTX *copy = EVP_MD_CTX_new();
    unsigned int n = 0;
    int rc = copy && EVP_MD_CTX_copy_ex(copy, md) == 1 && EVP_DigestFinal_ex(copy, out, &n) == 1 &&
                     n == FX_SHA256_LEN
                 ? 0
                 : -1;
    EVP_MD_CTX_free(copy);
    return rc;
}

static void hash_step(void *arg)
{
    fx_hash_job_t *job = arg;
    static uint8_t buf[256 << 10];
    job->timer = NULL;
    uint64_t budget = FX_HASH_SLICE;
    int err = 0;
    while (job->pos < job->end && budget > 0) {
        uint64_t want = job->end - job->pos;
        if (want > sizeof buf)
            want = sizeof buf;
        ssize_t n = pread(job->fd, buf, (size_t)want, (off_t)job->pos);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            err = n < 0 ? errno : EIO; /* shorter than announced: it changed under us */
            break;
        }
        if (EVP_DigestUpdate(job->md, buf, (size_t)n) != 1) {
            err = EIO;
            break;
        }
        job->pos += (uint64_t)n;
        budget = budget > (uint64_t)n ? budget - (uint64_t)n : 0;
    }
    if (err == 0 && job->pos < job->end &&
        tern_loop_add_timer(job->loop, 0, hash_step, job, &job->timer) == TERN_OK)
        return;
    if (err == 0 && job->pos < job->end)
        err = ENOMEM;
    job->done(job->arg, err);
}

int fx_hash_start(fx_hash_job_t *job, tern_loop_t *loop, int fd, EVP_MD_CTX *md, uint64_t from,
                  uint64_t to, void (*done)(void *arg, int err), void *arg)
{
    *job = (fx_hash_job_t){
        .loop = loop, .fd = fd, .pos = from, .end = to, .md = md, .done = done, .arg = arg};
    return tern_loop_add_timer(loop, 0, hash_step, job, &job->timer) == TERN_OK ? 0 : -1;
}

void fx_hash_cancel(fx_hash_job_t *job)
{
    if (job->timer)
        tern_loop_cancel_timer(job->loop, job->timer);
    job->timer = NULL;
}

bool fx_hash_running(const fx_hash_job_t *job)
{
    return job->timer != NULL;
}

/* ------------------------------------------------------------------------------------------ */
/* Progress                                                                                   */
/* ------------------------------------------------------------------------------------------ */

void fx_format_bytes(uint64_t n, char *out, size_t cap)
{
    static const char *units[] = {"KiB", "MiB", "GiB", "TiB", "PiB"};
    if (n < 1024) {
        snprintf(out, cap, "%llu B", (unsigned long long)n);
        return;
    }
    double v = (double)n / 1024;
    size_t u = 0;
    while (v >= 1024 && u + 1 < sizeof units / sizeof units[0]) {
        v /= 1024;
        u++;
    }
    snprintf(out, cap, "%.*f %s", v < 10 ? 2 : v < 100 ? 1 : 0, v, units[u]);
}

void fx_progress_init(fx_progress_t *p, const char *prog, const char *verb, bool enabled,
                      tern_time_t now)
{
    *p = (fx_progress_t){.prog = prog,
                         .verb = verb,
                         .enabled = enabled,
                         .tty = isatty(STDERR_FILENO) == 1,
                         .out = stderr,
                         .start = now,
                         .last_line = now,
                         .last_sample = now};
}

static void format_eta(double seconds, char *out, size_t cap)
{
    if (!(seconds >= 0) || seconds > 359999) {
        snprintf(out, cap, "--:--");
        return;
    }
    unsigned s = (unsigned)(seconds + 0.5);
    if (s >= 3600)
        snprintf(out, cap, "%u:%02u:%02u", s / 3600, s / 60 % 60, s % 60);
    else
        snprintf(out, cap, "%u:%02u", s / 60, s % 60);
}

static void sample_rate(fx_progress_t *p, tern_time_t now)
{
    double dt = (double)(now - p->last_sample) / 1e6;
    if (dt < 0.2)
        return;
    double inst = (double)(p->moved - p->sample_moved) / dt;
    /* Smoothed over about a second of samples, so that the ETA does not jump about. */
    p->rate = p->last_sample == p->start ? inst : 0.7 * p->rate + 0.3 * inst;
    p->sample_moved = p->moved;
    p->last_sample = now;
}

void fx_progress_tick(fx_progress_t *p, tern_time_t now)
{
    if (!p->enabled)
        return;
    sample_rate(p, now);
    if (!p->tty && now - p->last_line < (tern_time_t)FX_PROGRESS_LINE_MS * 1000)
        return;
    p->last_line = now;
    char done[32], total[32], eta[32];
    fx_format_bytes(p->done, done, sizeof done);
    fx_format_bytes(p->total, total, sizeof total);
    double left = (double)(p->total - (p->done < p->total ? p->done : p->total));
    format_eta(p->rate > 0 ? left / p->rate : -1, eta, sizeof eta);
    unsigned pct = p->total ? (unsigned)((double)p->done * 100.0 / (double)p->total) : 100;
    if (p->tty) {
        char bar[21];
        unsigned fill = pct / 5;
        for (unsigned i = 0; i < 20; i++)
            bar[i] = i < fill ? '#' : '-';
        bar[20] = '\0';
        fprintf(p->out, "\r\033[K[%s] %3u%% %s / %s  %.1f MB/s  ETA %s  %u/%u files", bar, pct,
                done, total, p->rate / 1e6, eta, p->files_done, p->files_total);
        p->drawn = true;
    } else {
        fprintf(p->out, "%s: %s %s of %s (%u%%), %.1f MB/s, ETA %s, %u of %u files\n", p->prog,
                p->verb, done, total, pct, p->rate / 1e6, eta, p->files_done, p->files_total);
    }
    fflush(p->out);
}

void fx_progress_clear(fx_progress_t *p)
{
    if (p->drawn) {
        fputs("\r\033[K", p->out);
        fflush(p->out);
        p->drawn = false;
    }
}

void fx_print(fx_progress_t *p, const char *fmt, ...)
{
    va_list ap;
    fx_progress_clear(p);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    fflush(stdout);
}

const char *fx_path_type(const tern_pc_t *pc, char *detail, size_t cap)
{
    tern_pc_pair_info_t info;
    if (!pc || tern_pc_selected_pair(pc, &info) != TERN_OK || !info.local_type ||
        !info.remote_type) {
        snprintf(detail, cap, "no pair selected");
        return "unknown";
    }
    char l[TERN_ADDR_STRLEN], r[TERN_ADDR_STRLEN];
    tern_addr_format(&info.local, l, sizeof l);
    tern_addr_format(&info.remote, r, sizeof r);
    snprintf(detail, cap, "local %s %s, remote %s %s", info.local_type, l, info.remote_type, r);
    if (strcmp(info.local_type, "relay") == 0 || strcmp(info.remote_type, "relay") == 0)
        return "relay";
    if (strcmp(info.local_type, "host") == 0 && strcmp(info.remote_type, "host") == 0)
        return "host";
    return "srflx";
}

/* ------------------------------------------------------------------------------------------ */
/* Command line                                                                               */
/* ------------------------------------------------------------------------------------------ */

static char *percent_decode(const char *s, size_t n)
{
    char *out = malloc(n + 1);
    size_t o = 0;
    for (size_t i = 0; out && i < n; i++) {
        if (s[i] != '%') {
            out[o++] = s[i];
            continue;
        }
        int hi = i + 2 < n ? hex_value(s[i + 1]) : -1, lo = i + 2 < n ? hex_value(s[i + 2]) : -1;
        if (hi < 0 || lo < 0 || (hi | lo) == 0) {
            free(out);
            return NULL;
        }
        out[o++] = (char)(hi << 4 | lo);
        i += 2;
    }
    if (out)
        out[o] = '\0';
    return out;
}

/* SCHEME:[USER:PASS@]HOST[:PORT][?QUERY], as tern-signal's --ice-server takes it. */
static bool parse_ice_server(const char *arg, tern_ice_server_t *out)
{
    const char *colon = strchr(arg, ':');
    const char *at = colon ? strrchr(colon, '@') : NULL;
    *out = (tern_ice_server_t){0};
    if (!colon)
        return false;
    if (!at)
        return (out->url = strdup(arg)) != NULL;
    const char *sep = memchr(colon + 1, ':', (size_t)(at - colon - 1));
    if (!sep)
        return false;
    char *user = percent_decode(colon + 1, (size_t)(sep - colon - 1));
    char *pass = percent_decode(sep + 1, (size_t)(at - sep - 1));
    size_t scheme = (size_t)(colon - arg) + 1;
    char *url = malloc(scheme + strlen(at + 1) + 1);
    if (!user || !pass || !url || !*user) {
        free(user);
        free(pass);
        free(url);
        return false;
    }
    memcpy(url, arg, scheme);
    strcpy(url + scheme, at + 1);
    *out = (tern_ice_server_t){.url = url, .username = user, .credential = pass};
    return true;
}

int fx_cli_option(fx_cli_t *c, const char *prog, int argc, char **argv, int *i)
{
    const char *a = argv[*i];
    const char *value = *i + 1 < argc ? argv[*i + 1] : NULL;
    bool valued = strcmp(a, "--signal") == 0 || strcmp(a, "--ice-server") == 0 ||
                  strcmp(a, "--bind") == 0 || strcmp(a, "--ca") == 0;
    if (valued && !value) {
        fprintf(stderr, "%s: %s needs a value\n", prog, a);
        return -1;
    }
    if (strcmp(a, "--signal") == 0) {
        c->url = value;
    } else if (strcmp(a, "--ice-server") == 0) {
        if (c->ice_count == FX_MAX_LIST || !parse_ice_server(value, &c->ice[c->ice_count])) {
            fprintf(stderr, "%s: bad or too many --ice-server '%s'\n", prog, value);
            return -1;
        }
        c->ice_count++;
    } else if (strcmp(a, "--bind") == 0) {
        if (c->bind_count == FX_MAX_LIST) {
            fprintf(stderr, "%s: at most %d --bind\n", prog, FX_MAX_LIST);
            return -1;
        }
        c->binds[c->bind_count++] = value;
    } else if (strcmp(a, "--ca") == 0) {
        c->ca = value;
    } else if (strcmp(a, "--offer") == 0) {
        c->role = TERN_SIGNALING_ROLE_OFFER;
    } else if (strcmp(a, "--answer") == 0) {
        c->role = TERN_SIGNALING_ROLE_ANSWER;
    } else if (strcmp(a, "--loopback") == 0) {
        c->loopback = true;
    } else if (strcmp(a, "--relay") == 0) {
        c->relay_only = true;
    } else if (strcmp(a, "--insecure") == 0) {
        c->insecure = true;
    } else if (strcmp(a, "--quiet") == 0 || strcmp(a, "-q") == 0) {
        c->quiet = true;
    } else {
        return 0;
    }
    if (valued)
        (*i)++;
    return 1;
}

void fx_cli_usage(FILE *f)
{
    fprintf(f, "  --signal URL       the room: ws://HOST:PORT/ws/ROOM or wss://... (required)\n"
               "  --offer            always offer (default: offer to newcomers, answer others)\n"
               "  --answer           never offer\n"
               "  --ice-server URL   SCHEME:[USER:PASS@]HOST[:PORT][?QUERY], SCHEME one of stun,\n"
               "                     turn, turns (repeatable; replaces the room's servers)\n"
               "  --relay            use TURN relays only (W3C iceTransportPolicy relay)\n"
               "  --bind ADDR        bind ICE sockets only to this local address (repeatable)\n"
               "  --loopback         gather loopback candidates too\n"
               "  --insecure         wss: do not verify the server's certificate\n"
               "  --ca FILE          wss: trust the certificates in this PEM file\n"
               "  --quiet, -q        no progress display\n");
}

void fx_cli_configs(const fx_cli_t *c, tern_pc_config_t *pc_cfg, tern_signaling_config_t *cfg)
{
    *pc_cfg = (tern_pc_config_t){
        .ice_servers = c->ice,
        .ice_server_count = c->ice_count,
        .include_loopback = c->loopback,
        .bind_addresses = c->binds,
        .bind_address_count = c->bind_count,
        .ice_transport_policy_relay = c->relay_only,
    };
    *cfg = (tern_signaling_config_t){
        .url = c->url,
        .role = c->role,
        .pc_config = pc_cfg,
        .tls_ca_file = c->ca,
        .tls_insecure = c->insecure,
    };
}

void fx_cli_free(fx_cli_t *c)
{
    for (size_t i = 0; i < c->ice_count; i++) {
        free((char *)c->ice[i].url);
        free((char *)c->ice[i].username);
        free((char *)c->ice[i].credential);
    }
    c->ice_count = 0;
}

/* ------------------------------------------------------------------------------------------ */
/* Signals                                                                                    */
/* ------------------------------------------------------------------------------------------ */

static struct {
    void (*fn)(void *arg, int signo);
    void *arg;
} signal_watch;

static void on_signalfd(void *arg, int fd, unsigned events)
{
    struct signalfd_siginfo info;
    (void)arg;
    (void)events;
    if (read(fd, &info, sizeof info) == (ssize_t)sizeof info && signal_watch.fn)
        signal_watch.fn(signal_watch.arg, (int)info.ssi_signo);
}

int fx_watch_signals(tern_loop_t *loop, void (*fn)(void *arg, int signo), void *arg)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    if (sigprocmask(SIG_BLOCK, &set, NULL) != 0)
        return -1;
    int fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    if (fd < 0)
        return -1;
    signal_watch.fn = fn;
    signal_watch.arg = arg;
    if (tern_loop_watch_fd(loop, fd, TERN_FD_READABLE, on_signalfd, NULL, NULL) != TERN_OK) {
        close(fd);
        return -1;
    }
    return fd;
}
