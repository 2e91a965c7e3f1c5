/* SPDX-License-Identifier: MIT */
/*
 * Multicast DNS for ICE (RFC 6762, draft-ietf-mmusic-mdns-ice-candidates): the DNS message
 * codec (RFC 1035 §4: header, questions, resource records, name compression) with
 * tern_mdns_parse, tern_mdns_write_query and tern_mdns_write_response; and the agent's
 * resolver of ".local" remote candidates: a table of names (queued, querying, unresolved,
 * resolved and cached for their TTL), the candidates waiting for them, one-shot queries
 * multicast from the IPv4 host sockets and retransmitted a few times, answers matched to the
 * names asked. Why it works this way (what the browsers' responders accept and how they
 * answer) is explained in ice_mdns.h.
 */
#include "ice/ice_mdns.h"
#include "ice/ice_agent.h"

#include <string.h>

/* ------------------------------------------------------------------------------------------ */
/* The DNS message codec                                                                      */
/* ------------------------------------------------------------------------------------------ */

#define FLAG_QR 0x8000u /* RFC 1035 §4.1.1 */
#define FLAG_AA 0x0400u
#define CLASS_TOP_BIT                                                                              \
    0x8000u                /* QU in a question (RFC 6762 §5.4), cache-flush in a record (§10.2) */
#define NAME_WIRE_MAX 255  /* RFC 1035 §2.3.4, the length bytes and the root included */
#define LABEL_MAX 63       /* RFC 1035 §2.3.4 */
#define POINTER_MAX 0x3FFF /* 14 bits of offset (RFC 1035 §4.1.4) */
#define MIN_QUESTION_LEN 5 /* the root name, type and class */
#define MIN_RECORD_LEN 11  /* the root name, type, class, TTL and RDLENGTH */

/* A label byte tern keeps in the dotted text form: not a separator, not a control byte. */
static bool is_text_byte(uint8_t b)
{
    return b >= 0x20 && b != 0x7F && b != '.';
}

/*
 * Read the name at *pos (RFC 1035 §4.1.4). A pointer must point before the name, or before the
 * fragment a previous pointer led to, so every jump goes strictly backwards and a loop cannot
 * exist; a pointer into the header is refused too. *pos ends after the name's in-place part.
 * `text` (TERN_MDNS_NAME_MAX + 1 bytes, or NULL) receives the dotted form; *printable says
 * whether it is faithful (no '.' and no control byte inside a label).
 */
static int read_name(const uint8_t *msg, size_t len, size_t *pos, char *text, bool *printable)
{
    size_t p = *pos, fragment = *pos, resume = 0, wire = 0, tlen = 0;
    bool jumped = false;
    *printable = true;
    for (;;) {
        if (p >= len)
            return TERN_ERR_PARSE;
        uint8_t b = msg[p];
        if ((b & 0xC0) == 0xC0) {
            if (len - p < 2)
                return TERN_ERR_PARSE;
            size_t target = (size_t)(b & 0x3F) << 8 | msg[p + 1];
            if (target >= fragment || target < TERN_MDNS_HEADER_LEN)
                return TERN_ERR_PARSE;
            if (!jumped)
                resume = p + 2;
            jumped = true;
            p = fragment = target;
            continue;
        }
        if (b & 0xC0)
            return TERN_ERR_PARSE; /* extended label types (RFC 6891 §5) are not used by mDNS */
        p++;
        wire += 1u + b;
        if (wire > NAME_WIRE_MAX)
            return TERN_ERR_PARSE;
        if (b == 0)
            break;
        if (b > len - p)
            return TERN_ERR_PARSE;
        for (size_t i = 0; i < b; i++)
            *printable = *printable && is_text_byte(msg[p + i]);
        if (text) {
            /* wire <= 255 bounds the text to 253 characters. */
            if (tlen > 0)
                text[tlen++] = '.';
            memcpy(text + tlen, msg + p, b);
            tlen += b;
        }
        p += b;
    }
    if (text)
        text[tlen] = '\0';
    *pos = jumped ? resume : p;
    return TERN_OK;
}

static int read_question(const uint8_t *msg, size_t len, size_t *pos, tern_mdns_msg_t *out)
{
    tern_mdns_question_t q;
    bool printable;
    int ret = read_name(msg, len, pos, out ? q.name : NULL, &printable);
    if (ret != TERN_OK)
        return ret;
    if (len - *pos < 4)
        return TERN_ERR_PARSE;
    uint16_t qclass = tern_load_u16(msg + *pos + 2);
    q.type = tern_load_u16(msg + *pos);
    q.qclass = qclass & ~CLASS_TOP_BIT;
    q.unicast_response = (qclass & CLASS_TOP_BIT) != 0;
    *pos += 4;
    if (!out)
        return TERN_OK;
    if (printable && out->question_count < TERN_MDNS_MAX_QUESTIONS)
        out->questions[out->question_count++] = q;
    else
        out->skipped++;
    return TERN_OK;
}

/* The RDATA of an address record: 4 bytes for A, 16 for AAAA (RFC 1035 §3.4.1, RFC 3596). */
static int read_address(uint16_t type, const uint8_t *rdata, uint16_t rdlength, tern_addr_t *addr)
{
    memset(addr, 0, sizeof *addr);
    if (type == TERN_MDNS_TYPE_A && rdlength == 4) {
        addr->family = TERN_AF_INET;
        memcpy(addr->ip, rdata, 4);
        return TERN_OK;
    }
    if (type == TERN_MDNS_TYPE_AAAA && rdlength == 16) {
        addr->family = TERN_AF_INET6;
        memcpy(addr->ip, rdata, 16);
        return TERN_OK;
    }
    return TERN_ERR_PARSE;
}

static int read_record(const uint8_t *msg, size_t len, size_t *pos, tern_mdns_section_t section,
                       tern_mdns_msg_t *out)
{
    tern_mdns_record_t r;
    bool printable;
    int ret = read_name(msg, len, pos, out ? r.name : NULL, &printable);
    if (ret != TERN_OK)
        return ret;
    if (len - *pos < 10)
        return TERN_ERR_PARSE;
    const uint8_t *p = msg + *pos;
    uint16_t rclass = tern_load_u16(p + 2), rdlength = tern_load_u16(p + 8);
    r.type = tern_load_u16(p);
    r.rclass = rclass & ~CLASS_TOP_BIT;
    r.cache_flush = (rclass & CLASS_TOP_BIT) != 0;
    r.ttl = tern_load_u32(p + 4);
    r.section = section;
    if (len - *pos - 10 < rdlength)
        return TERN_ERR_PARSE;
    *pos += 10u + rdlength;
    bool address = r.rclass == TERN_MDNS_CLASS_IN &&
                   (r.type == TERN_MDNS_TYPE_A || r.type == TERN_MDNS_TYPE_AAAA);
    /* An address record of the wrong size is malformed, not merely unknown. */
    if (address && read_address(r.type, p + 10, rdlength, &r.addr) != TERN_OK)
        return TERN_ERR_PARSE;
    if (!out)
        return TERN_OK;
    if (address && printable && out->record_count < TERN_MDNS_MAX_RECORDS)
        out->records[out->record_count++] = r;
    else
        out->skipped++;
    return TERN_OK;
}

/* One pass over the message; with out NULL it only checks (so out stays untouched on error). */
static int walk_message(const uint8_t *data, size_t len, tern_mdns_msg_t *out)
{
    if (len < TERN_MDNS_HEADER_LEN)
        return TERN_ERR_PARSE;
    uint16_t flags = tern_load_u16(data + 2);
    uint16_t counts[4];
    for (int i = 0; i < 4; i++)
        counts[i] = tern_load_u16(data + 4 + 2 * i);
    /* RFC 6762 §18.3 and §18.11: a non-zero OPCODE or RCODE means the message is ignored. */
    if (((flags >> 11) & 0xF) != 0 || (flags & 0xF) != 0)
        return TERN_ERR_PARSE;
    size_t need = (size_t)counts[0] * MIN_QUESTION_LEN +
                  ((size_t)counts[1] + counts[2] + counts[3]) * MIN_RECORD_LEN;
    if (need > len - TERN_MDNS_HEADER_LEN)
        return TERN_ERR_PARSE;
    if (out) {
        memset(out, 0, sizeof *out);
        out->id = tern_load_u16(data);
        out->flags = flags;
        out->is_response = (flags & FLAG_QR) != 0;
        out->qdcount = counts[0];
        out->ancount = counts[1];
        out->nscount = counts[2];
        out->arcount = counts[3];
    }
    size_t pos = TERN_MDNS_HEADER_LEN;
    for (uint16_t i = 0; i < counts[0]; i++)
        if (read_question(data, len, &pos, out) != TERN_OK)
            return TERN_ERR_PARSE;
    static const tern_mdns_section_t sections[3] = {
        TERN_MDNS_SECTION_ANSWER, TERN_MDNS_SECTION_AUTHORITY, TERN_MDNS_SECTION_ADDITIONAL};
    for (int s = 0; s < 3; s++)
        for (uint16_t i = 0; i < counts[s + 1]; i++)
            if (read_record(data, len, &pos, sections[s], out) != TERN_OK)
                return TERN_ERR_PARSE;
    return TERN_OK;
}

int tern_mdns_parse(const uint8_t *data, size_t len, tern_mdns_msg_t *out)
{
    if ((!data && len) || !out)
        return TERN_ERR_INVALID_ARG;
    if (walk_message(data, len, NULL) != TERN_OK)
        return TERN_ERR_PARSE;
    return walk_message(data, len, out);
}

/* The length of a name in text form without one trailing dot; SIZE_MAX if too long. */
static size_t name_text_len(const char *name)
{
    size_t n = strnlen(name, TERN_MDNS_NAME_MAX + 2);
    if (n > 0 && name[n - 1] == '.')
        n--;
    return n > TERN_MDNS_NAME_MAX ? SIZE_MAX : n;
}

/* Check that a dotted name encodes (labels of 1..63 text bytes, 255 wire bytes at most). */
static bool name_encodable(const char *name, size_t n)
{
    if (n == SIZE_MAX)
        return false;
    size_t start = 0, wire = 1;
    for (size_t i = 0; i <= n && n > 0; i++) {
        if (i < n && name[i] != '.') {
            if (!is_text_byte((uint8_t)name[i]))
                return false;
            continue;
        }
        size_t label = i - start;
        if (label == 0 || label > LABEL_MAX)
            return false;
        wire += 1 + label;
        start = i + 1;
    }
    return wire <= NAME_WIRE_MAX;
}

/* Append a name the caller checked with name_encodable. */
static void put_name(tern_wbuf_t *w, const char *name, size_t n)
{
    size_t start = 0;
    for (size_t i = 0; i <= n && n > 0; i++) {
        if (i < n && name[i] != '.')
            continue;
        tern_wbuf_u8(w, (uint8_t)(i - start));
        tern_wbuf_bytes(w, name + start, i - start);
        start = i + 1;
    }
    tern_wbuf_u8(w, 0);
}

static void put_header(tern_wbuf_t *w, uint16_t id, uint16_t flags, const uint16_t counts[4])
{
    tern_wbuf_u16(w, id);
    tern_wbuf_u16(w, flags);
    for (int i = 0; i < 4; i++)
        tern_wbuf_u16(w, counts[i]);
}

int tern_mdns_write_query(uint8_t *buf, size_t cap, uint16_t id, const char *name, uint16_t type,
                          bool unicast_response)
{
    if (!buf || !name)
        return TERN_ERR_INVALID_ARG;
    size_t n = name_text_len(name);
    if (!name_encodable(name, n))
        return TERN_ERR_INVALID_ARG;
    tern_wbuf_t w;
    tern_wbuf_init(&w, NULL, buf, cap);
    static const uint16_t counts[4] = {1, 0, 0, 0};
    put_header(&w, id, 0, counts);
    put_name(&w, name, n);
    tern_wbuf_u16(&w, type);
    tern_wbuf_u16(&w, (uint16_t)(TERN_MDNS_CLASS_IN | (unicast_response ? CLASS_TOP_BIT : 0)));
    if (w.err)
        return TERN_ERR_TOO_LARGE;
    return (int)w.len;
}

static bool record_writable(const tern_mdns_record_t *r)
{
    if (r->type == TERN_MDNS_TYPE_A)
        return r->addr.family == TERN_AF_INET;
    if (r->type == TERN_MDNS_TYPE_AAAA)
        return r->addr.family == TERN_AF_INET6;
    return false;
}

/* The offset of an earlier record's name equal to this one, or 0 (offsets are >= 12). */
static size_t earlier_name(const tern_mdns_record_t *records, const size_t *offsets, size_t count,
                           const tern_mdns_record_t *r)
{
    for (size_t i = 0; i < count; i++)
        if (&records[i] != r && offsets[i] != 0 && offsets[i] <= POINTER_MAX &&
            strcmp(records[i].name, r->name) == 0)
            return offsets[i];
    return 0;
}

int tern_mdns_write_response(uint8_t *buf, size_t cap, uint16_t id,
                             const tern_mdns_record_t *records, size_t count, bool compress)
{
    if (!buf || (!records && count) || count > TERN_MDNS_MAX_RECORDS)
        return TERN_ERR_INVALID_ARG;
    uint16_t counts[4] = {0};
    for (size_t i = 0; i < count; i++) {
        const tern_mdns_record_t *r = &records[i];
        if (!record_writable(r) || r->section > TERN_MDNS_SECTION_ADDITIONAL ||
            !name_encodable(r->name, name_text_len(r->name)))
            return TERN_ERR_INVALID_ARG;
        counts[1 + r->section]++;
    }
    tern_wbuf_t w;
    tern_wbuf_init(&w, NULL, buf, cap);
    put_header(&w, id, FLAG_QR | FLAG_AA, counts);
    /* Where each record's name was written in full (0: not yet, or as a pointer). */
    size_t offsets[TERN_MDNS_MAX_RECORDS] = {0};
    for (int s = TERN_MDNS_SECTION_ANSWER; s <= TERN_MDNS_SECTION_ADDITIONAL; s++) {
        for (size_t i = 0; i < count; i++) {
            const tern_mdns_record_t *r = &records[i];
            if ((int)r->section != s)
                continue;
            size_t earlier = compress ? earlier_name(records, offsets, count, r) : 0;
            if (earlier) {
                tern_wbuf_u16(&w, (uint16_t)(0xC000u | earlier));
            } else {
                offsets[i] = w.len;
                put_name(&w, r->name, name_text_len(r->name));
            }
            tern_wbuf_u16(&w, r->type);
            tern_wbuf_u16(&w, (uint16_t)(r->rclass | (r->cache_flush ? CLASS_TOP_BIT : 0)));
            tern_wbuf_u32(&w, r->ttl);
            size_t alen = r->type == TERN_MDNS_TYPE_A ? 4 : 16;
            tern_wbuf_u16(&w, (uint16_t)alen);
            tern_wbuf_bytes(&w, r->addr.ip, alen);
        }
    }
    if (w.err)
        return TERN_ERR_TOO_LARGE;
    return (int)w.len;
}

static char lower_ascii(char c)
{
    return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

bool tern_mdns_name_equal(const char *a, const char *b)
{
    size_t na = name_text_len(a), nb = name_text_len(b);
    if (na != nb || na == SIZE_MAX)
        return false;
    for (size_t i = 0; i < na; i++)
        if (lower_ascii(a[i]) != lower_ascii(b[i]))
            return false;
    return true;
}

bool tern_mdns_is_local_name(const char *name)
{
    if (!name)
        return false;
    size_t n = name_text_len(name);
    static const char suffix[] = ".local";
    size_t s = sizeof suffix - 1;
    if (n == SIZE_MAX || n <= s || !name_encodable(name, n))
        return false;
    for (size_t i = 0; i < s; i++)
        if (lower_ascii(name[n - s + i]) != suffix[i])
            return false;
    return true;
}

/* ------------------------------------------------------------------------------------------ */
/* The agent's resolver                                                                       */
/* ------------------------------------------------------------------------------------------ */

#define MDNS_MAX_NAMES 16   /* names known at once: looked up, resolved (cached) or not */
#define MDNS_MAX_WAITING 16 /* remote candidates waiting for their name */
/*
 * When each query is sent, from the first one: a quick retry, then growing intervals (RFC 6762
 * §5.2). The quick retry is for Firefox: in tests/browser it left the first query for a new
 * name unanswered and answered the one 100 ms later (it registers names with its mDNS thread
 * asynchronously). Chromium sends at most one answer per name and second, which the later
 * queries leave room for.
 */
static const tern_time_t query_offsets_us[] = {0, 100000, 500000, 1500000, 3000000};
#define MDNS_GIVE_UP_US 5000000 /* no answer by then: the name is unresolved */
/* An unresolved name still takes a late answer this long (a busy responder delays answers
 * by up to 10 s, Chromium's kMaxScheduledDelay), then it and its candidates are forgotten. */
#define MDNS_LINGER_US 30000000
#define MDNS_MAX_TTL_S 3600 /* cache an answer at most an hour, whatever its TTL */

static const tern_addr_t mdns_group_v4 = {
    .family = TERN_AF_INET, .port = TERN_MDNS_PORT, .ip = {224, 0, 0, 251}}; /* RFC 6762 §3 */

typedef enum {
    NAME_FREE = 0,
    NAME_QUEUED,     /* waiting for a lookup slot or a socket to query from */
    NAME_QUERYING,   /* queries going out */
    NAME_UNRESOLVED, /* gave up; a late answer is still taken until `until` */
    NAME_RESOLVED,   /* `addr` is valid until `until` (the TTL) */
} name_state_t;

typedef struct mdns_name {
    name_state_t state;
    uint8_t sends;
    char name[TERN_MDNS_NAME_MAX + 1];
    tern_addr_t addr;
    tern_time_t first_sent;
    tern_time_t until; /* QUERYING: give up; UNRESOLVED: forget; RESOLVED: expire */
    tern_time_t used;  /* last asked for, to pick what to evict */
} mdns_name_t;

struct ice_mdns {
    mdns_name_t names[MDNS_MAX_NAMES];
    tern_ice_candidate_t waiting[MDNS_MAX_WAITING];
    size_t waiting_count;
};

/* Whether an entry counts: unresolved and resolved names end at `until`, even before
 * expire_names has freed them. */
static bool is_live(const mdns_name_t *n, tern_time_t now)
{
    if (n->state == NAME_UNRESOLVED || n->state == NAME_RESOLVED)
        return n->until > now;
    return n->state != NAME_FREE;
}

static mdns_name_t *find_name(ice_mdns_t *m, tern_time_t now, const char *name)
{
    for (size_t i = 0; i < MDNS_MAX_NAMES; i++)
        if (is_live(&m->names[i], now) && tern_mdns_name_equal(m->names[i].name, name))
            return &m->names[i];
    return NULL;
}

static bool has_waiting(const ice_mdns_t *m, const mdns_name_t *n)
{
    for (size_t i = 0; i < m->waiting_count; i++)
        if (tern_mdns_name_equal(m->waiting[i].hostname, n->name))
            return true;
    return false;
}

static void drop_waiting(tern_ice_t *ice, const mdns_name_t *n)
{
    ice_mdns_t *m = ice->mdns;
    size_t kept = 0;
    for (size_t i = 0; i < m->waiting_count; i++) {
        if (tern_mdns_name_equal(m->waiting[i].hostname, n->name))
            ICE_DEBUG(ice, "remote candidate %s dropped: name not resolved", n->name);
        else
            m->waiting[kept++] = m->waiting[i];
    }
    m->waiting_count = kept;
}

/* Forget what has run out: unresolved names past their linger time, answers past their TTL. */
static void expire_names(tern_ice_t *ice)
{
    ice_mdns_t *m = ice->mdns;
    for (size_t i = 0; i < MDNS_MAX_NAMES; i++) {
        mdns_name_t *n = &m->names[i];
        if ((n->state != NAME_UNRESOLVED && n->state != NAME_RESOLVED) || n->until > ice->now)
            continue;
        if (n->state == NAME_UNRESOLVED)
            drop_waiting(ice, n);
        n->state = NAME_FREE;
    }
}

/* Eviction order: an idle unresolved name, then the least recently used resolved one. */
static int eviction_rank(const ice_mdns_t *m, const mdns_name_t *n)
{
    if (n->state == NAME_FREE)
        return 0;
    if (n->state == NAME_UNRESOLVED && !has_waiting(m, n))
        return 1;
    if (n->state == NAME_RESOLVED)
        return 2;
    return -1; /* queued, querying, or unresolved with candidates: kept */
}

static mdns_name_t *new_name(tern_ice_t *ice, const char *name)
{
    ice_mdns_t *m = ice->mdns;
    mdns_name_t *best = NULL;
    int best_rank = -1;
    for (size_t i = 0; i < MDNS_MAX_NAMES; i++) {
        mdns_name_t *n = &m->names[i];
        int rank = eviction_rank(m, n);
        if (rank < 0)
            continue;
        if (!best || rank < best_rank || (rank == best_rank && n->used < best->used)) {
            best = n;
            best_rank = rank;
        }
    }
    if (!best)
        return NULL;
    memset(best, 0, sizeof *best);
    memcpy(best->name, name, name_text_len(name));
    best->state = NAME_QUEUED;
    best->used = ice->now;
    return best;
}

/* A waiting candidate, with the address its name resolved to, joins the check list. */
static int add_resolved(tern_ice_t *ice, const tern_ice_candidate_t *waiting,
                        const tern_addr_t *addr)
{
    tern_ice_candidate_t c = *waiting;
    uint16_t port = c.addr.port;
    c.addr = *addr;
    c.addr.port = port;
    int ret = tern_ice_add_remote(ice, &c);
    if (ret != TERN_OK)
        ICE_DEBUG(ice, "resolved candidate %s not added: %s", c.hostname, tern_strerror(ret));
    return ret;
}

static bool is_duplicate(const ice_mdns_t *m, const tern_ice_candidate_t *c)
{
    for (size_t i = 0; i < m->waiting_count; i++) {
        const tern_ice_candidate_t *w = &m->waiting[i];
        if (w->addr.port == c->addr.port && tern_mdns_name_equal(w->hostname, c->hostname))
            return true;
    }
    return false;
}

int tern_ice_mdns_add_candidate(tern_ice_t *ice, const tern_ice_candidate_t *c)
{
    if (!ice->mdns) {
        ice->mdns = tern_calloc(ice->ctx, 1, sizeof *ice->mdns);
        if (!ice->mdns)
            return TERN_ERR_NOMEM;
    }
    ice_mdns_t *m = ice->mdns;
    expire_names(ice);
    mdns_name_t *n = find_name(m, ice->now, c->hostname);
    if (n && n->state == NAME_RESOLVED) {
        /* Cached (RFC 6762 §5.1): the same name again, trickled and in a description, or
         * after an ICE restart. */
        n->used = ice->now;
        return add_resolved(ice, c, &n->addr);
    }
    if (is_duplicate(m, c))
        return TERN_OK;
    if (m->waiting_count >= MDNS_MAX_WAITING)
        return TERN_ERR_TOO_LARGE;
    if (!n) {
        n = new_name(ice, c->hostname);
        if (!n)
            return TERN_ERR_TOO_LARGE;
    } else if (n->state == NAME_UNRESOLVED) {
        /* A new candidate for a name given up on (after an ICE restart, say): ask again. */
        n->state = NAME_QUEUED;
    }
    n->used = ice->now;
    tern_ice_candidate_t *w = &m->waiting[m->waiting_count++];
    *w = *c;
    w->hostname[TERN_ICE_HOSTNAME_MAX] = '\0';
    w->foundation[TERN_ICE_FOUNDATION_MAX] = '\0';
    ICE_DEBUG(ice, "remote candidate %s waits for mDNS", n->name);
    return TERN_OK;
}

static bool can_query_from(const ice_local_t *l)
{
    /* IPv4 only (see ice_mdns.h); loopback interfaces do not multicast. */
    return l->c.type == TERN_ICE_CAND_HOST && l->base.family == TERN_AF_INET &&
           l->base.ip[0] != 127;
}

static bool has_query_socket(const tern_ice_t *ice)
{
    for (size_t i = 0; i < ice->local_count; i++)
        if (can_query_from(&ice->locals[i]))
            return true;
    return false;
}

static void send_query(tern_ice_t *ice, mdns_name_t *n)
{
    uint8_t query[TERN_MDNS_QUERY_MAX];
    /* ID 0 (RFC 6762 §18.1), one A question of class IN without the QU bit: see ice_mdns.h. */
    int len = tern_mdns_write_query(query, sizeof query, 0, n->name, TERN_MDNS_TYPE_A, false);
    if (len < 0)
        return;
    for (size_t i = 0; i < ice->local_count; i++) {
        if (!can_query_from(&ice->locals[i]))
            continue;
        if (tern_txq_push(&ice->txq, &ice->locals[i].base, &mdns_group_v4, query, (size_t)len) !=
            TERN_OK) {
            ice->stats.tx_dropped++;
            continue;
        }
        ice->stats.mdns_queries++;
    }
    ICE_TRACE(ice, "mdns query %u for %s", (unsigned)n->sends + 1, n->name);
}

static size_t count_querying(const ice_mdns_t *m)
{
    size_t k = 0;
    for (size_t i = 0; i < MDNS_MAX_NAMES; i++)
        k += m->names[i].state == NAME_QUERYING;
    return k;
}

static void start_queued(tern_ice_t *ice)
{
    ice_mdns_t *m = ice->mdns;
    size_t running = count_querying(m);
    if (!has_query_socket(ice))
        return;
    for (size_t i = 0; i < MDNS_MAX_NAMES && running < ice->cfg.max_mdns_lookups; i++) {
        mdns_name_t *n = &m->names[i];
        if (n->state != NAME_QUEUED)
            continue;
        n->state = NAME_QUERYING;
        n->sends = 0;
        n->first_sent = ice->now;
        n->until = ice->now + MDNS_GIVE_UP_US;
        running++;
    }
}

static void run_queries(tern_ice_t *ice)
{
    ice_mdns_t *m = ice->mdns;
    for (size_t i = 0; i < MDNS_MAX_NAMES; i++) {
        mdns_name_t *n = &m->names[i];
        if (n->state != NAME_QUERYING)
            continue;
        if (ice->now >= n->until) {
            ICE_DEBUG(ice, "mdns name %s not resolved", n->name);
            ice->stats.mdns_failed++;
            n->state = NAME_UNRESOLVED;
            n->until = ice->now + MDNS_LINGER_US;
            continue;
        }
        if (n->sends >= TERN_ARRAY_LEN(query_offsets_us) ||
            ice->now < n->first_sent + query_offsets_us[n->sends])
            continue;
        send_query(ice, n);
        /* After a long gap (the driver was late) one query stands for all that were due. */
        do
            n->sends++;
        while (n->sends < TERN_ARRAY_LEN(query_offsets_us) &&
               ice->now >= n->first_sent + query_offsets_us[n->sends]);
    }
}

void tern_ice_mdns_service(tern_ice_t *ice)
{
    if (!ice->mdns)
        return;
    expire_names(ice);
    run_queries(ice);
    start_queued(ice);
    run_queries(ice); /* the first query of the lookups just started */
}

tern_time_t tern_ice_mdns_deadline(const tern_ice_t *ice)
{
    tern_time_t d = TERN_TIME_NEVER;
    if (!ice->mdns)
        return d;
    for (size_t i = 0; i < MDNS_MAX_NAMES; i++) {
        const mdns_name_t *n = &ice->mdns->names[i];
        if (n->state != NAME_QUERYING)
            continue;
        tern_time_t next = n->until;
        if (n->sends < TERN_ARRAY_LEN(query_offsets_us))
            next = TERN_MIN(next, n->first_sent + query_offsets_us[n->sends]);
        d = TERN_MIN(d, next);
    }
    return d;
}

bool tern_ice_mdns_pending(const tern_ice_t *ice)
{
    const ice_mdns_t *m = ice->mdns;
    /* With every local address known and none to query from, no lookup can ever start. */
    if (!m || (ice->local_done && !has_query_socket(ice)))
        return false;
    for (size_t i = 0; i < MDNS_MAX_NAMES; i++) {
        const mdns_name_t *n = &m->names[i];
        if ((n->state == NAME_QUEUED || n->state == NAME_QUERYING) && has_waiting(m, n))
            return true;
    }
    return false;
}

void tern_ice_mdns_forget_candidates(tern_ice_t *ice)
{
    if (ice->mdns)
        ice->mdns->waiting_count = 0;
}

void tern_ice_mdns_free(tern_ice_t *ice)
{
    tern_free(ice->ctx, ice->mdns);
    ice->mdns = NULL;
}

static bool ip_is_multicast(const tern_addr_t *a)
{
    if (a->family == TERN_AF_INET)
        return (a->ip[0] & 0xF0) == 0xE0;
    return a->family == TERN_AF_INET6 && a->ip[0] == 0xFF;
}

bool tern_ice_mdns_claims(const tern_datagram_t *in)
{
    /* Only where it arrived tells: a peer's own socket may well use port 5353. */
    return ip_is_multicast(&in->local);
}

/*
 * RFC 6762 §11: an answer must come from port 5353 (§6) and from the local link, which a
 * datagram sent to the link-local group is. Unicast answers (legacy unicast, §6.7) are not
 * taken: the browsers never send them, and nothing would show they come from the link.
 */
static bool answer_acceptable(const tern_datagram_t *in, const tern_mdns_msg_t *msg)
{
    return ip_is_multicast(&in->local) && in->remote.port == TERN_MDNS_PORT && msg->is_response;
}

/* A name resolved: cache it, and its waiting candidates join the check list. */
static void resolve(tern_ice_t *ice, mdns_name_t *n, const tern_mdns_record_t *r)
{
    ice_mdns_t *m = ice->mdns;
    char a[TERN_ADDR_STRLEN];
    n->state = NAME_RESOLVED;
    n->addr = r->addr;
    n->until = ice->now + TERN_SEC(TERN_MIN(r->ttl, (uint32_t)MDNS_MAX_TTL_S));
    ice->stats.mdns_resolved++;
    ICE_DEBUG(ice, "mdns name %s is %s", n->name, tern_addr_log(ice->ctx, &n->addr, a));
    /* Each waiting candidate of the name leaves the list before it is added. */
    for (size_t i = 0; i < m->waiting_count;) {
        if (!tern_mdns_name_equal(m->waiting[i].hostname, n->name)) {
            i++;
            continue;
        }
        tern_ice_candidate_t c = m->waiting[i];
        m->waiting[i] = m->waiting[--m->waiting_count];
        add_resolved(ice, &c, &n->addr);
    }
}

/* Take one address record; returns whether it concerned a name the agent knows. */
static bool take_record(tern_ice_t *ice, const tern_mdns_record_t *r)
{
    mdns_name_t *n = find_name(ice->mdns, ice->now, r->name);
    if (!n)
        return false; /* never asked: ignored */
    if (r->ttl == 0) {
        /* A goodbye (RFC 6762 §10.1): the cached address goes, the candidates stay. */
        if (n->state == NAME_RESOLVED && tern_addr_equal(&n->addr, &r->addr))
            n->state = NAME_FREE;
        return true;
    }
    if (n->state == NAME_RESOLVED) {
        if (tern_addr_equal(&n->addr, &r->addr))
            n->until = ice->now + TERN_SEC(TERN_MIN(r->ttl, (uint32_t)MDNS_MAX_TTL_S));
        return true;
    }
    resolve(ice, n, r);
    return true;
}

void tern_ice_mdns_handle_input(tern_ice_t *ice, const tern_datagram_t *in)
{
    tern_mdns_msg_t msg;
    if (!ice->mdns || tern_mdns_parse(in->data, in->len, &msg) != TERN_OK ||
        !answer_acceptable(in, &msg)) {
        ice->stats.mdns_ignored++;
        return;
    }
    expire_names(ice);
    bool used = false;
    for (size_t i = 0; i < msg.record_count; i++)
        used |= take_record(ice, &msg.records[i]);
    if (!used)
        ice->stats.mdns_ignored++;
}

bool tern_ice_mdns_accepts(const tern_ice_t *ice, const tern_datagram_t *in)
{
    tern_mdns_msg_t msg;
    if (!ice->mdns || tern_mdns_parse(in->data, in->len, &msg) != TERN_OK ||
        !answer_acceptable(in, &msg))
        return false;
    for (size_t i = 0; i < msg.record_count; i++)
        if (find_name(ice->mdns, ice->now, msg.records[i].name))
            return true;
    return false;
}
