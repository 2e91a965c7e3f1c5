/* SPDX-License-Identifier: MIT */
/*
 * STUN message codec (RFC 8489) with the TURN attributes of RFC 8656, the ICE attributes of
 * RFC 8445 §16.1 and the NAT-discovery attributes of RFC 5780, shared by the ICE agent, the TURN
 * client and NAT behaviour discovery. It parses a datagram into a view that borrows from the
 * input (tern_stun_parse), writes messages through a bounds-checked writer over tern_wbuf_t
 * (tern_stun_writer_*, tern_stun_put_*), and checks MESSAGE-INTEGRITY (HMAC-SHA1),
 * MESSAGE-INTEGRITY-SHA256 (HMAC-SHA256) and FINGERPRINT (CRC-32 xor 0x5354554e).
 *
 * Scope (deliberately unsupported): the RFC 5389 / RFC 3489 "classic" format without the magic
 * cookie is refused; USERHASH and PASSWORD-ALGORITHMS are parsed only as opaque attributes (they
 * land in no field); SASLprep (RFC 4013) of long-term passwords is not applied: the caller hands
 * in the password as it is, which is right for the ASCII credentials TURN servers use in practice.
 */
#ifndef TERN_STUN_STUN_H
#define TERN_STUN_STUN_H

#include "util/util.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- constants ---- */

#define TERN_STUN_HEADER_LEN 20               /* RFC 8489 §5 */
#define TERN_STUN_MAGIC_COOKIE 0x2112A442u    /* RFC 8489 §5 */
#define TERN_STUN_TID_LEN 12                  /* RFC 8489 §5: 96-bit transaction id */
#define TERN_STUN_FINGERPRINT_XOR 0x5354554eu /* RFC 8489 §14.7 */
#define TERN_STUN_INTEGRITY_LEN 20            /* HMAC-SHA1, RFC 8489 §14.5 */
#define TERN_STUN_INTEGRITY_SHA256_LEN 32     /* HMAC-SHA256, RFC 8489 §14.6 */
#define TERN_STUN_LONG_TERM_KEY_LEN 16        /* MD5, RFC 8489 §9.2.2 */
#define TERN_STUN_MAX_UNKNOWN 16              /* unknown attribute types kept per message */
#define TERN_STUN_MAX_PEER_ADDRS 8            /* XOR-PEER-ADDRESS occurrences kept (RFC 8656 §9) */
/* Most bytes tern_stun_put_error_code writes as reason phrase (RFC 8489 §14.8: < 128 chars). */
#define TERN_STUN_MAX_REASON 127

/** Message class, from the C1/C0 bits of the type (RFC 8489 §5). */
typedef enum {
    TERN_STUN_REQUEST = 0,
    TERN_STUN_INDICATION = 1,
    TERN_STUN_SUCCESS = 2,
    TERN_STUN_ERROR = 3,
} tern_stun_class_t;

/* Methods (RFC 8489 §18.2, RFC 8656 §17). */
#define TERN_STUN_BINDING 0x001
#define TERN_STUN_ALLOCATE 0x003
#define TERN_STUN_REFRESH 0x004
#define TERN_STUN_SEND 0x006
#define TERN_STUN_DATA 0x007
#define TERN_STUN_CREATE_PERMISSION 0x008
#define TERN_STUN_CHANNEL_BIND 0x009

/* Attribute types (RFC 8489 §18.3, RFC 8656 §18, RFC 8445 §16.1, RFC 5780 §7). */
#define TERN_STUN_ATTR_MAPPED_ADDRESS 0x0001
#define TERN_STUN_ATTR_CHANGE_REQUEST 0x0003
#define TERN_STUN_ATTR_USERNAME 0x0006
#define TERN_STUN_ATTR_MESSAGE_INTEGRITY 0x0008
#define TERN_STUN_ATTR_ERROR_CODE 0x0009
#define TERN_STUN_ATTR_UNKNOWN_ATTRIBUTES 0x000A
#define TERN_STUN_ATTR_CHANNEL_NUMBER 0x000C
#define TERN_STUN_ATTR_LIFETIME 0x000D
#define TERN_STUN_ATTR_XOR_PEER_ADDRESS 0x0012
#define TERN_STUN_ATTR_DATA 0x0013
#define TERN_STUN_ATTR_REALM 0x0014
#define TERN_STUN_ATTR_NONCE 0x0015
#define TERN_STUN_ATTR_XOR_RELAYED_ADDRESS 0x0016
#define TERN_STUN_ATTR_REQUESTED_ADDRESS_FAMILY 0x0017
#define TERN_STUN_ATTR_EVEN_PORT 0x0018
#define TERN_STUN_ATTR_REQUESTED_TRANSPORT 0x0019
#define TERN_STUN_ATTR_DONT_FRAGMENT 0x001A
#define TERN_STUN_ATTR_MESSAGE_INTEGRITY_SHA256 0x001C
#define TERN_STUN_ATTR_PASSWORD_ALGORITHM 0x001D
#define TERN_STUN_ATTR_USERHASH 0x001E
#define TERN_STUN_ATTR_XOR_MAPPED_ADDRESS 0x0020
#define TERN_STUN_ATTR_RESERVATION_TOKEN 0x0022
#define TERN_STUN_ATTR_PRIORITY 0x0024
#define TERN_STUN_ATTR_USE_CANDIDATE 0x0025
#define TERN_STUN_ATTR_PADDING 0x0026
#define TERN_STUN_ATTR_RESPONSE_PORT 0x0027
#define TERN_STUN_ATTR_PASSWORD_ALGORITHMS 0x8002
#define TERN_STUN_ATTR_ALTERNATE_DOMAIN 0x8003
#define TERN_STUN_ATTR_SOFTWARE 0x8022
#define TERN_STUN_ATTR_ALTERNATE_SERVER 0x8023
#define TERN_STUN_ATTR_FINGERPRINT 0x8028
#define TERN_STUN_ATTR_ICE_CONTROLLED 0x8029
#define TERN_STUN_ATTR_ICE_CONTROLLING 0x802A
#define TERN_STUN_ATTR_RESPONSE_ORIGIN 0x802B
#define TERN_STUN_ATTR_OTHER_ADDRESS 0x802C

/* Error codes (RFC 8489 §14.8, RFC 8445 §7.3.1.1, RFC 8656 §18.2). */
#define TERN_STUN_ERR_TRY_ALTERNATE 300
#define TERN_STUN_ERR_BAD_REQUEST 400
#define TERN_STUN_ERR_UNAUTHORIZED 401
#define TERN_STUN_ERR_FORBIDDEN 403
#define TERN_STUN_ERR_UNKNOWN_ATTRIBUTE 420
#define TERN_STUN_ERR_ALLOCATION_MISMATCH 437
#define TERN_STUN_ERR_STALE_NONCE 438
#define TERN_STUN_ERR_ADDRESS_FAMILY_NOT_SUPPORTED 440
#define TERN_STUN_ERR_WRONG_CREDENTIALS 441
#define TERN_STUN_ERR_UNSUPPORTED_TRANSPORT 442
#define TERN_STUN_ERR_PEER_ADDRESS_FAMILY_MISMATCH 443
#define TERN_STUN_ERR_ALLOCATION_QUOTA 486
#define TERN_STUN_ERR_ROLE_CONFLICT 487
#define TERN_STUN_ERR_SERVER_ERROR 500
#define TERN_STUN_ERR_INSUFFICIENT_CAPACITY 508

/* Bits of tern_stun_msg_t.present, one per decoded attribute kind. */
#define TERN_STUN_HAS_MAPPED_ADDRESS (1u << 0)
#define TERN_STUN_HAS_XOR_MAPPED_ADDRESS (1u << 1)
#define TERN_STUN_HAS_USERNAME (1u << 2)
#define TERN_STUN_HAS_INTEGRITY (1u << 3)
#define TERN_STUN_HAS_INTEGRITY_SHA256 (1u << 4)
#define TERN_STUN_HAS_FINGERPRINT (1u << 5)
#define TERN_STUN_HAS_ERROR_CODE (1u << 6)
#define TERN_STUN_HAS_UNKNOWN_ATTRIBUTES (1u << 7)
#define TERN_STUN_HAS_PRIORITY (1u << 8)
#define TERN_STUN_HAS_USE_CANDIDATE (1u << 9)
#define TERN_STUN_HAS_ICE_CONTROLLED (1u << 10)
#define TERN_STUN_HAS_ICE_CONTROLLING (1u << 11)
#define TERN_STUN_HAS_SOFTWARE (1u << 12)
#define TERN_STUN_HAS_REALM (1u << 13)
#define TERN_STUN_HAS_NONCE (1u << 14)
#define TERN_STUN_HAS_LIFETIME (1u << 15)
#define TERN_STUN_HAS_XOR_RELAYED_ADDRESS (1u << 16)
#define TERN_STUN_HAS_XOR_PEER_ADDRESS (1u << 17)
#define TERN_STUN_HAS_DATA (1u << 18)
#define TERN_STUN_HAS_CHANNEL_NUMBER (1u << 19)
#define TERN_STUN_HAS_REQUESTED_TRANSPORT (1u << 20)
#define TERN_STUN_HAS_REQUESTED_ADDRESS_FAMILY (1u << 21)
#define TERN_STUN_HAS_EVEN_PORT (1u << 22)
#define TERN_STUN_HAS_DONT_FRAGMENT (1u << 23)
#define TERN_STUN_HAS_RESERVATION_TOKEN (1u << 24)
#define TERN_STUN_HAS_ALTERNATE_SERVER (1u << 25)
#define TERN_STUN_HAS_CHANGE_REQUEST (1u << 26)
#define TERN_STUN_HAS_RESPONSE_ORIGIN (1u << 27)
#define TERN_STUN_HAS_OTHER_ADDRESS (1u << 28)

/** A borrowed byte string inside a parsed message (not NUL-terminated). */
typedef struct tern_stun_bytes {
    const uint8_t *p;
    size_t len;
} tern_stun_bytes_t;

/**
 * A parsed STUN message. Every pointer borrows from the datagram given to tern_stun_parse and
 * is valid as long as it is. A field is meaningful only if its TERN_STUN_HAS_* bit is set in
 * `present`; of an attribute that occurs twice the first counts (RFC 8489 §14), except
 * XOR-PEER-ADDRESS, of which up to TERN_STUN_MAX_PEER_ADDRS are kept. Attributes after
 * MESSAGE-INTEGRITY other than MESSAGE-INTEGRITY-SHA256 and FINGERPRINT, and any after
 * FINGERPRINT, are ignored (RFC 8489 §14.5-§14.7).
 */
typedef struct tern_stun_msg {
    tern_stun_class_t msg_class;
    uint16_t method;
    uint8_t tid[TERN_STUN_TID_LEN];
    const uint8_t *data; /**< the whole message: header and attributes */
    size_t len;          /**< TERN_STUN_HEADER_LEN + the header's length field */
    uint32_t present;    /**< TERN_STUN_HAS_* bits */

    tern_addr_t mapped_address;
    tern_addr_t xor_mapped_address;
    tern_addr_t xor_relayed_address;
    tern_addr_t xor_peer_address[TERN_STUN_MAX_PEER_ADDRS];
    uint8_t xor_peer_address_count;
    tern_addr_t alternate_server;
    tern_addr_t response_origin;
    tern_addr_t other_address;

    tern_stun_bytes_t username; /**< UTF-8, at most 512 bytes (RFC 5389 §15.3) */
    tern_stun_bytes_t software;
    tern_stun_bytes_t realm;
    tern_stun_bytes_t nonce;
    tern_stun_bytes_t data_attr;         /**< DATA (RFC 8656 §18.4) */
    tern_stun_bytes_t reservation_token; /**< 8 bytes */

    uint16_t error_code;                                /**< 300..699 */
    tern_stun_bytes_t error_reason;                     /**< UTF-8 reason phrase */
    uint16_t unknown_attributes[TERN_STUN_MAX_UNKNOWN]; /**< the UNKNOWN-ATTRIBUTES list */
    uint8_t unknown_attributes_count;

    uint32_t priority;
    uint64_t ice_controlled;  /**< tie-breaker */
    uint64_t ice_controlling; /**< tie-breaker */
    uint32_t lifetime;        /**< seconds */
    uint16_t channel_number;
    uint8_t requested_transport;      /**< protocol number: 17 is UDP */
    uint8_t requested_address_family; /**< 0x01 IPv4, 0x02 IPv6 */
    bool even_port_reserve;           /**< the R bit of EVEN-PORT */
    uint32_t change_request;          /**< RFC 5780 flags: 0x4 change IP, 0x2 change port */

    /* Where the integrity and fingerprint attributes start (offset of their type field). */
    size_t integrity_off;
    const uint8_t *integrity; /**< TERN_STUN_INTEGRITY_LEN bytes */
    size_t integrity_sha256_off;
    const uint8_t *integrity_sha256; /**< integrity_sha256_len bytes */
    size_t integrity_sha256_len;     /**< 16..32, a multiple of 4 (RFC 8489 §14.6) */
    size_t fingerprint_off;
    uint32_t fingerprint;

    /**
     * Comprehension-required attributes (0x0000-0x7FFF) this codec does not know, for a 420
     * answer with UNKNOWN-ATTRIBUTES (RFC 8489 §6.3.1.1). The message still parses.
     */
    uint16_t unknown_required[TERN_STUN_MAX_UNKNOWN];
    uint8_t unknown_required_count;
} tern_stun_msg_t;

/* ---- parsing ---- */

/**
 * Tell STUN from other protocols on a shared socket, cheaply: at least a header, the first two
 * bits zero, the magic cookie, a length that is a multiple of 4 and matches `len`
 * (RFC 8489 §5, RFC 7983).
 * @param data  borrowed.
 * @return true if it looks like a STUN message (tern_stun_parse may still refuse it).
 */
bool tern_stun_is_message(const uint8_t *data, size_t len);

/**
 * Parse a STUN message, strictly: header, magic cookie, a length that matches the datagram,
 * every attribute inside the message with its padding, and well-formed values for every
 * attribute this codec decodes.
 * @param data  borrowed; `out` points into it.
 * @param out   filled on success; left untouched on failure.
 * @return 0; TERN_ERR_PARSE if the message is malformed.
 */
int tern_stun_parse(const uint8_t *data, size_t len, tern_stun_msg_t *out);

/**
 * Check MESSAGE-INTEGRITY (HMAC-SHA1 over the message up to the attribute, with the header
 * length covering it, RFC 8489 §14.5) in constant time.
 * @param key  the short-term password or the long-term key; borrowed.
 * @return 0 if it matches; TERN_ERR_NOT_FOUND if the message has none; TERN_ERR_CRYPTO if it
 *         does not match (or the HMAC cannot be computed).
 */
int tern_stun_check_integrity(const tern_stun_msg_t *m, const uint8_t *key, size_t key_len);

/**
 * Check MESSAGE-INTEGRITY-SHA256 (HMAC-SHA256, possibly truncated, RFC 8489 §14.6) in constant
 * time. @return as tern_stun_check_integrity.
 */
int tern_stun_check_integrity_sha256(const tern_stun_msg_t *m, const uint8_t *key, size_t key_len);

/**
 * Check FINGERPRINT (CRC-32 of the message up to the attribute, xor 0x5354554e, RFC 8489 §14.7).
 * @return 0 if it matches; TERN_ERR_NOT_FOUND if the message has none; TERN_ERR_PARSE if it
 *         does not match or is not the last attribute.
 */
int tern_stun_check_fingerprint(const tern_stun_msg_t *m);

/**
 * Derive the long-term credential key MD5(username ":" realm ":" password) (RFC 8489 §9.2.2),
 * for the TURN client. Strings are borrowed and used as given (no SASLprep).
 * @return 0; TERN_ERR_CRYPTO if OpenSSL fails.
 */
int tern_stun_long_term_key(const char *username, const char *realm, const char *password,
                            uint8_t out[TERN_STUN_LONG_TERM_KEY_LEN]);

/**
 * HMAC-SHA1 (sha256 false, 20 bytes out) or HMAC-SHA256 (32 bytes out) of a 20-byte header
 * followed by `rest`; the building block of the integrity attributes.
 * @return 0; TERN_ERR_CRYPTO if OpenSSL fails.
 */
int tern_stun_hmac(bool sha256, const uint8_t *key, size_t key_len, const uint8_t *header,
                   const uint8_t *rest, size_t rest_len, uint8_t *out);

/** @return a method's name for logs ("binding", "allocate", ...), "unknown" otherwise. */
const char *tern_stun_method_name(uint16_t method);

/**
 * Whether an attribute type is one tern_stun_parse decodes or knowingly skips (so it is not
 * "unknown" in the RFC 8489 §6.3 sense).
 */
bool tern_stun_attr_is_known(uint16_t type);

/* ---- writing ---- */

/**
 * A message being written into a tern_wbuf_t. Each put appends one attribute (with its padding)
 * and keeps the header's length field up to date, so the bytes form a valid message after every
 * call. Errors are sticky in the wbuf (w->err) and reported once by tern_stun_writer_end.
 */
typedef struct tern_stun_writer {
    tern_wbuf_t *w;
    size_t start; /**< offset of the header in w */
    int err;      /**< first failure of a put (TERN_ERR_INVALID_ARG, TERN_ERR_CRYPTO); 0 */
    /**
     * The padding byte; begin sets 0, as RFC 8489 §14 wants. Tests set 0x20 to reproduce the
     * RFC 5769 vectors, which were written under RFC 5389's "any value" padding.
     */
    uint8_t pad_byte;
} tern_stun_writer_t;

/**
 * Start a message at the end of `w`.
 * @param w    the buffer; borrowed for the writer's life.
 * @param tid  TERN_STUN_TID_LEN bytes (random for a request; the request's for a response).
 */
void tern_stun_writer_begin(tern_stun_writer_t *sw, tern_wbuf_t *w, tern_stun_class_t msg_class,
                            uint16_t method, const uint8_t tid[TERN_STUN_TID_LEN]);

/** Append an attribute with an opaque value (zero padding added). value may be NULL if len 0. */
void tern_stun_put_attr(tern_stun_writer_t *sw, uint16_t type, const void *value, size_t len);
/** Append a zero-length attribute (USE-CANDIDATE, DONT-FRAGMENT). */
void tern_stun_put_flag(tern_stun_writer_t *sw, uint16_t type);
/** Append a NUL-terminated string (USERNAME, SOFTWARE, REALM, NONCE). */
void tern_stun_put_string(tern_stun_writer_t *sw, uint16_t type, const char *s);
/** Append a 32-bit attribute (PRIORITY, LIFETIME, CHANGE-REQUEST). */
void tern_stun_put_u32(tern_stun_writer_t *sw, uint16_t type, uint32_t v);
/** Append a 64-bit attribute (ICE-CONTROLLING, ICE-CONTROLLED, RESERVATION-TOKEN). */
void tern_stun_put_u64(tern_stun_writer_t *sw, uint16_t type, uint64_t v);
/** Append CHANNEL-NUMBER (RFC 8656 §18.1: the number, then 16 RFFU bits). */
void tern_stun_put_channel_number(tern_stun_writer_t *sw, uint16_t channel);
/** Append REQUESTED-TRANSPORT (RFC 8656 §18.7: protocol, then 24 RFFU bits). */
void tern_stun_put_requested_transport(tern_stun_writer_t *sw, uint8_t protocol);
/** Append REQUESTED-ADDRESS-FAMILY (RFC 8656 §18.8): 0x01 IPv4, 0x02 IPv6. */
void tern_stun_put_requested_address_family(tern_stun_writer_t *sw, uint8_t family);
/** Append EVEN-PORT (RFC 8656 §18.5) with its R bit. */
void tern_stun_put_even_port(tern_stun_writer_t *sw, bool reserve);
/** Append a plain address attribute (MAPPED-ADDRESS, ALTERNATE-SERVER, OTHER-ADDRESS...). */
void tern_stun_put_addr(tern_stun_writer_t *sw, uint16_t type, const tern_addr_t *addr);
/** Append an XOR'ed address attribute (XOR-MAPPED-ADDRESS, XOR-PEER/RELAYED-ADDRESS). */
void tern_stun_put_xor_addr(tern_stun_writer_t *sw, uint16_t type, const tern_addr_t *addr);
/**
 * Append ERROR-CODE (RFC 8489 §14.8). code must be 300..699 (anything else fails the writer with
 * TERN_ERR_INVALID_ARG).
 * @param reason  NUL-terminated; NULL: a standard phrase for the code. Cut to TERN_STUN_MAX_REASON
 *                bytes at a UTF-8 boundary.
 */
void tern_stun_put_error_code(tern_stun_writer_t *sw, uint16_t code, const char *reason);
/** Append UNKNOWN-ATTRIBUTES with n types (n > 0). */
void tern_stun_put_unknown_attributes(tern_stun_writer_t *sw, const uint16_t *types, size_t n);
/**
 * Append MESSAGE-INTEGRITY: HMAC-SHA1 with `key` over the message so far, the header length
 * counting the attribute (RFC 8489 §14.5). Only MESSAGE-INTEGRITY-SHA256 and FINGERPRINT may
 * follow. A crypto failure fails the writer with TERN_ERR_CRYPTO.
 */
void tern_stun_put_integrity(tern_stun_writer_t *sw, const uint8_t *key, size_t key_len);
/** Append MESSAGE-INTEGRITY-SHA256 (32 bytes, RFC 8489 §14.6), as tern_stun_put_integrity. */
void tern_stun_put_integrity_sha256(tern_stun_writer_t *sw, const uint8_t *key, size_t key_len);
/** Append FINGERPRINT (RFC 8489 §14.7); the last attribute. */
void tern_stun_put_fingerprint(tern_stun_writer_t *sw);

/**
 * Finish a message.
 * @param len_out  may be NULL; receives the message's length (header included).
 * @return 0; TERN_ERR_TOO_LARGE if it did not fit (fixed storage, or over 65535 bytes of
 *         attributes) or growing the buffer failed; the first put failure (sw->err).
 */
int tern_stun_writer_end(tern_stun_writer_t *sw, size_t *len_out);

#endif
