/* SPDX-License-Identifier: MIT */
/*
 * Multicast DNS (RFC 6762) for ICE: resolving the "<uuid>.local" host names that Chromium and
 * Firefox put in place of host addresses (draft-ietf-mmusic-mdns-ice-candidates). Two parts:
 *
 * 1. A small DNS message codec (RFC 1035 §4, with the mDNS bits of RFC 6762 §18): a parser that
 *    keeps the questions and the A/AAAA records of a message, following name compression
 *    pointers only backwards (so never in a loop) and refusing anything malformed; and writers
 *    for a one-question query and for an address-record response (the latter for tests, fuzzing
 *    and in-test responders).
 *
 * 2. The agent's resolver (the tern_ice_mdns_* functions, for ice.c and ice_check.c): a remote
 *    candidate whose address is a ".local" name waits while the agent multicasts queries for it,
 *    and is added to the check list with the resolved address when an answer arrives. Meanwhile
 *    the browser's own checks reach us and make a peer-reflexive candidate, which the resolved
 *    one then upgrades (RFC 8445 §7.3.1.3); a name that never resolves costs nothing more.
 *
 * What the browsers' responders do, and so why the resolver works as it does (read from
 * Chromium's services/network/mdns_responder.cc and net/dns/dns_query.cc, and Firefox's
 * media/mtransport/mdns_service/src/lib.rs):
 * - Both answer only by multicast, to 224.0.0.251:5353 (Chromium also [ff02::fb]:5353 on its IPv6
 *   sockets), whatever the query's source port or QU bit: neither implements legacy unicast
 *   (RFC 6762 §6.7) nor unicast responses (§5.4). An answer therefore only reaches a socket
 *   bound to port 5353 that joined the group: io/ opens one when the agent first sends a query
 *   (a transmit to 224.0.0.251:5353), and hands what it receives to the agent with `local` set
 *   to the group address.
 * - Chromium refuses a query with more than one question, a compressed question name, or a
 *   question class other than exactly IN (so a QU bit, 0x8001, makes it ignore the query).
 *   Firefox answers A questions only (with an AAAA record when the name stands for an IPv6
 *   address). Chromium answers an A question for an IPv6 name with an NSEC record and puts the
 *   AAAA record in the additional section. So the agent sends one A question per message,
 *   class IN without the QU bit, and takes address records from every section.
 * - Firefox listens on IPv4 only; Chromium answers any name over IPv4. So queries go over IPv4,
 *   from every non-loopback IPv4 host socket (the kernel sends a multicast datagram out of the
 *   interface that owns the socket's address).
 * - Answers carry ID 0 (Chromium, RFC 6762 §18.1) or the query's ID (Firefox): the agent sends
 *   ID 0, so an answer's first byte is 0 and the RFC 7983 demultiplexer hands it to ICE like
 *   STUN; ICE tells it apart by where it arrived (the group address, never a host socket's:
 *   anything that arrives there is read as mDNS only, never as STUN).
 * - Both use a TTL of 120 s and set the cache-flush bit; Chromium spaces answers for one name
 *   at least 1 s apart.
 *
 * Scope: no responder (tern does not hide its own addresses), no continuous querying, no
 * known-answer suppression, no IPv6 queries (link-local sockets are never bound by io/), one
 * address per name (the browsers map each name to one address).
 */
#ifndef TERN_ICE_ICE_MDNS_H
#define TERN_ICE_ICE_MDNS_H

#include "ice/ice.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- the DNS message codec ---- */

#define TERN_MDNS_PORT 5353 /* RFC 6762 §3 */
/* Longest name in text form: 255 wire bytes (RFC 1035 §2.3.4) make at most 253 characters. */
#define TERN_MDNS_NAME_MAX 253
#define TERN_MDNS_HEADER_LEN 12 /* RFC 1035 §4.1.1 */
/* Largest query tern_mdns_write_query makes: header, a 255-byte name, type and class. */
#define TERN_MDNS_QUERY_MAX (TERN_MDNS_HEADER_LEN + 255 + 4)

#define TERN_MDNS_TYPE_A 1     /* RFC 1035 §3.2.2 */
#define TERN_MDNS_TYPE_AAAA 28 /* RFC 3596 §2.1 */
#define TERN_MDNS_TYPE_ANY 255 /* RFC 1035 §3.2.3 */
#define TERN_MDNS_CLASS_IN 1   /* RFC 1035 §3.2.4 */

/* Questions and address records kept from one message; the rest are checked and skipped. */
#define TERN_MDNS_MAX_QUESTIONS 4
#define TERN_MDNS_MAX_RECORDS 16

typedef enum {
    TERN_MDNS_SECTION_ANSWER,
    TERN_MDNS_SECTION_AUTHORITY,
    TERN_MDNS_SECTION_ADDITIONAL,
} tern_mdns_section_t;

/** One question. */
typedef struct tern_mdns_question {
    char name[TERN_MDNS_NAME_MAX + 1]; /**< dotted, without the root's trailing dot */
    uint16_t type;
    uint16_t qclass;       /**< without the QU bit */
    bool unicast_response; /**< the QU bit (RFC 6762 §5.4) */
} tern_mdns_question_t;

/** One address record (A or AAAA). */
typedef struct tern_mdns_record {
    char name[TERN_MDNS_NAME_MAX + 1]; /**< dotted, without the root's trailing dot */
    tern_mdns_section_t section;
    uint16_t type;    /**< TERN_MDNS_TYPE_A or TERN_MDNS_TYPE_AAAA */
    uint16_t rclass;  /**< without the cache-flush bit */
    bool cache_flush; /**< the top bit of the class (RFC 6762 §10.2) */
    uint32_t ttl;     /**< seconds */
    tern_addr_t addr; /**< family and IP from the RDATA; port 0 */
} tern_mdns_record_t;

/** A parsed message: the header and what tern keeps of it. */
typedef struct tern_mdns_msg {
    uint16_t id;
    uint16_t flags;
    bool is_response;                            /**< the QR bit */
    uint16_t qdcount, ancount, nscount, arcount; /**< as in the header */
    size_t question_count;                       /**< questions kept */
    tern_mdns_question_t questions[TERN_MDNS_MAX_QUESTIONS];
    size_t record_count; /**< address records kept */
    tern_mdns_record_t records[TERN_MDNS_MAX_RECORDS];
    /**
     * Well-formed entries not kept: records of other types or classes, names with a '.' or a
     * control byte inside a label, and entries past the caps above.
     */
    size_t skipped;
} tern_mdns_msg_t;

/**
 * Parse a DNS message. Every name (compression pointers must point strictly backwards, before
 * the name or fragment that refers to them, RFC 1035 §4.1.4), every record length and the
 * RDATA size of A (4) and AAAA (16) records are checked, and the counts must match the
 * message; bytes after the last record are ignored. Messages with a non-zero OPCODE or RCODE
 * are refused (RFC 6762 §18.3, §18.11: they must be ignored).
 * @param data  borrowed for the call.
 * @param out   filled on success; untouched on failure.
 * @return 0; TERN_ERR_PARSE if malformed or refused; TERN_ERR_INVALID_ARG for NULL arguments.
 */
int tern_mdns_parse(const uint8_t *data, size_t len, tern_mdns_msg_t *out);

/**
 * Write a query with one question (QR 0, OPCODE 0, no flags): what both browsers answer.
 * @param name  dotted, NUL-terminated; one trailing dot is allowed; labels of 1..63 bytes.
 * @param unicast_response  sets the QU bit (Chromium then ignores the query).
 * @return the length written; TERN_ERR_INVALID_ARG for a name that cannot be encoded;
 *         TERN_ERR_TOO_LARGE if cap is too small (TERN_MDNS_QUERY_MAX is always enough).
 */
int tern_mdns_write_query(uint8_t *buf, size_t cap, uint16_t id, const char *name, uint16_t type,
                          bool unicast_response);

/**
 * Write an authoritative response (QR 1, AA 1, no questions, RFC 6762 §6) with address
 * records, answers first, then authority, then additional records, each section in the order
 * given. With `compress`, a name equal to an earlier record's is written as a pointer to it.
 * @param records  type A with an IPv4 address or AAAA with an IPv6 address, class as given.
 * @return the length written; TERN_ERR_INVALID_ARG for a bad name or a type that does not
 *         match the address; TERN_ERR_TOO_LARGE if cap is too small.
 */
int tern_mdns_write_response(uint8_t *buf, size_t cap, uint16_t id,
                             const tern_mdns_record_t *records, size_t count, bool compress);

/** @return true if two names are equal, ASCII letters compared without case (RFC 6762 §16). */
bool tern_mdns_name_equal(const char *a, const char *b);

/**
 * @return true if `name` is a link-local mDNS name (RFC 6762 §3): at least two labels, the last
 *         one "local", and encodable (labels of 1..63 bytes, 255 bytes in all).
 */
bool tern_mdns_is_local_name(const char *name);

/* ---- the agent's resolver (ice.c, ice_check.c) ---- */

typedef struct ice_mdns ice_mdns_t;

/*
 * Take a remote candidate whose address is a ".local" name: it waits for the name, which is
 * looked up (or found in the cache, in which case it is added at once).
 * Returns 0; TERN_ERR_TOO_LARGE if the waiting list or the name table is full;
 * TERN_ERR_NOMEM.
 */
int tern_ice_mdns_add_candidate(tern_ice_t *ice, const tern_ice_candidate_t *c);

/* Whether a datagram belongs to tern_ice_mdns_handle_input: it arrived on a multicast group
 * (an mDNS socket), and so is never read as STUN. */
bool tern_ice_mdns_claims(const tern_datagram_t *in);

/* Read an mDNS datagram: answers for names being resolved release their waiting candidates.
 * Anything else is counted in stats.mdns_ignored. */
void tern_ice_mdns_handle_input(tern_ice_t *ice, const tern_datagram_t *in);

/* Whether an mDNS datagram answers a name the agent waits for (tern_ice_accepts). */
bool tern_ice_mdns_accepts(const tern_ice_t *ice, const tern_datagram_t *in);

/* Start, retransmit, give up and expire lookups (from tern_ice_service). */
void tern_ice_mdns_service(tern_ice_t *ice);

/* When tern_ice_mdns_service must run next; TERN_TIME_NEVER if never. */
tern_time_t tern_ice_mdns_deadline(const tern_ice_t *ice);

/* Whether a candidate still waits for a lookup that may succeed: ICE does not fail meanwhile. */
bool tern_ice_mdns_pending(const tern_ice_t *ice);

/* Forget the waiting candidates (ICE restart); lookups go on and fill the cache. */
void tern_ice_mdns_forget_candidates(tern_ice_t *ice);

/* Free the resolver's state. */
void tern_ice_mdns_free(tern_ice_t *ice);

#endif
