/* SPDX-License-Identifier: MIT */
/*
 * The srtp layer's internal API: RTP header views (RFC 3550 §5.1, header extensions RFC 8285),
 * RTCP compound packets (RFC 3550 §6.4, feedback RFC 4585 §6), the RFC 7983 classification of
 * a datagram on the shared socket (with RFC 5761 §4 to tell RTCP from RTP), and SRTP/SRTCP
 * sessions on libsrtp2 (RFC 3711; AEAD RFC 7714) keyed from DTLS-SRTP (RFC 5764 §4.2).
 *
 * Files: srtp_rtp.c (RTP headers, extension elements, the demultiplexer), srtp_rtcp.c (RTCP
 * packets, reports, SDES, BYE, APP, feedback), srtp.c (sessions).
 *
 * Parsers take untrusted bytes, check every length against the datagram and fill a view that
 * points into it (borrowed); every parser has a writer, and parse -> write -> parse gives the
 * same view (fuzz/fuzz_rtp_header.c, fuzz/fuzz_rtcp.c check this).
 *
 * Scope: the peer connection carries no media yet (tern v1 is data channels only), so nothing
 * above uses this layer but its tests and fuzzers. Two profiles (AES128_CM_HMAC_SHA1_80 and
 * AEAD_AES_128_GCM), no MKI, no key rotation (a new session per DTLS handshake), no RTP
 * packetizers, no RTCP XR bodies (RFC 3611: the packet is split out, its body left alone).
 * libsrtp2 keeps process-wide state (its crypto kernel, started once by the first session, and
 * one idle session that keeps an NSS-based build's crypto loaded; neither is ever freed) and
 * allocates through the C library, not the context's allocator.
 */
#ifndef TERN_SRTP_SRTP_H
#define TERN_SRTP_SRTP_H

#include "util/util.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- RFC 7983 demultiplexing ---- */

/** What a datagram on the ICE socket is, by its first byte (RFC 7983 §7). */
typedef enum {
    TERN_DEMUX_DROP = 0,     /**< none of the protocols below: drop it */
    TERN_DEMUX_STUN,         /**< 0..3 */
    TERN_DEMUX_ZRTP,         /**< 16..19 */
    TERN_DEMUX_DTLS,         /**< 20..63 */
    TERN_DEMUX_TURN_CHANNEL, /**< 64..79 */
    TERN_DEMUX_RTP,          /**< 128..191, second byte (M|PT) outside 192..223 */
    TERN_DEMUX_RTCP,         /**< 128..191, second byte 192..223 (RFC 5761 §4) */
} tern_demux_t;

/**
 * Classify a datagram by its first bytes only; the protocol's parser still has the last word.
 * @param data  borrowed; may be NULL when len is 0.
 * @return the class; TERN_DEMUX_DROP for an empty datagram, or one byte in the RTP range.
 */
tern_demux_t tern_srtp_demux(const uint8_t *data, size_t len);

/** The class's name ("stun", "rtcp", ...), for logs and tests. */
const char *tern_srtp_demux_name(tern_demux_t d);

/* ---- RTP headers (srtp_rtp.c) ---- */

#define TERN_RTP_VERSION 2           /* RFC 3550 §5.1 */
#define TERN_RTP_HEADER_MIN 12       /* RFC 3550 §5.1: the fixed header */
#define TERN_RTP_MAX_CSRC 15         /* the CC field is 4 bits */
#define TERN_RTP_EXT_ONE_BYTE 0xBEDE /* RFC 8285 §4.2 */
#define TERN_RTP_EXT_TWO_BYTE 0x1000 /* RFC 8285 §4.3: 0x100 and 4 bits of appbits */

/** A parsed RTP packet. Pointers are borrowed from the parsed datagram. */
typedef struct tern_rtp_header {
    bool padding;
    bool extension;
    bool marker;
    uint8_t csrc_count;
    uint8_t payload_type; /**< 7 bits */
    uint16_t sequence;
    uint32_t timestamp;
    uint32_t ssrc;
    uint32_t csrc[TERN_RTP_MAX_CSRC];
    uint16_t ext_profile; /**< "defined by profile" (0xBEDE, 0x100X, ...), when extension */
    const uint8_t *ext;   /**< the extension's data, when extension */
    size_t ext_len;       /**< bytes, a multiple of 4 */
    size_t header_len;    /**< where the payload starts */
    const uint8_t *payload;
    size_t payload_len;  /**< without padding */
    uint8_t padding_len; /**< the count in the last byte, with padding (1..255) */
} tern_rtp_header_t;

/**
 * Parse a plain RTP packet: version 2, the CSRC list and the extension inside the datagram,
 * and with the P bit a padding count of 1 or more that fits the payload (RFC 3550 §5.1).
 * @param data  borrowed; `out` points into it.
 * @param out   filled on success; untouched on failure.
 * @return 0; TERN_ERR_PARSE.
 */
int tern_rtp_parse(const uint8_t *data, size_t len, tern_rtp_header_t *out);

/**
 * Parse only the header of an RTP packet whose payload is encrypted (SRTP, RFC 3711 §3.1):
 * padding is not looked at (it sits under the cipher), the payload is everything after the
 * header. Returns as tern_rtp_parse.
 */
int tern_rtp_parse_header(const uint8_t *data, size_t len, tern_rtp_header_t *out);

/**
 * Write an RTP packet from a view: the fixed header, h->csrc_count CSRCs, the extension (with
 * h->extension: h->ext_profile and h->ext_len bytes of h->ext, ext_len a multiple of 4 and at
 * most 262140), h->payload_len bytes of h->payload and, with h->padding, h->padding_len bytes
 * of padding (zeros, then the count).
 * @return 0; TERN_ERR_INVALID_ARG for a view no packet has (csrc_count > 15, payload_type >
 *         127, ext_len not a multiple of 4, padding with padding_len 0); TERN_ERR_NOMEM (w's
 *         error).
 */
int tern_rtp_write(const tern_rtp_header_t *h, tern_wbuf_t *w);

/** One RFC 8285 header extension element. */
typedef struct tern_rtp_ext_elem {
    uint8_t id;          /**< 1..14 (one-byte form), 1..255 (two-byte form) */
    const uint8_t *data; /**< borrowed */
    size_t len;          /**< 1..16 (one-byte form), 0..255 (two-byte form) */
} tern_rtp_ext_elem_t;

/** A cursor over the elements of an extension; `err` is set by a malformed element. */
typedef struct tern_rtp_ext_iter {
    const uint8_t *p;
    const uint8_t *end;
    bool two_byte;
    bool err;
} tern_rtp_ext_iter_t;

/**
 * Start reading the elements of a parsed header's extension.
 * @return 0; TERN_ERR_NOT_FOUND without an extension; TERN_ERR_UNSUPPORTED for a profile that
 *         is neither RFC 8285 form.
 */
int tern_rtp_ext_iter_init(tern_rtp_ext_iter_t *it, const tern_rtp_header_t *h);

/**
 * Take the next element, skipping padding bytes (RFC 8285 §4.1). The one-byte form stops at
 * ID 15 (RFC 8285 §4.2: "processing of the entire extension should terminate").
 * @return true with *out filled; false at the end, or on a malformed element (it->err set).
 */
bool tern_rtp_ext_next(tern_rtp_ext_iter_t *it, tern_rtp_ext_elem_t *out);

/**
 * Append one element in the given form. The caller pads the whole extension to a multiple of
 * 4 bytes with tern_rtp_ext_pad.
 * @return 0; TERN_ERR_INVALID_ARG (an id or length the form cannot carry).
 */
int tern_rtp_ext_write(tern_wbuf_t *w, bool two_byte, const tern_rtp_ext_elem_t *e);

/** Append zero bytes (padding, RFC 8285 §4.1) until `len` bytes from `start` are a multiple
 *  of 4. */
void tern_rtp_ext_pad(tern_wbuf_t *w, size_t start);

/* ---- RTCP (srtp_rtcp.c) ---- */

/* Packet types (RFC 3550 §12.1, RFC 4585 §6.1, RFC 3611). */
#define TERN_RTCP_SR 200
#define TERN_RTCP_RR 201
#define TERN_RTCP_SDES 202
#define TERN_RTCP_BYE 203
#define TERN_RTCP_APP 204
#define TERN_RTCP_RTPFB 205
#define TERN_RTCP_PSFB 206
#define TERN_RTCP_XR 207

#define TERN_RTCP_HEADER_LEN 4
#define TERN_RTCP_MAX_COUNT 31 /* the RC/SC field is 5 bits */
#define TERN_RTCP_REPORT_BLOCK_LEN 24

/** One packet of a compound: its common header and its body. Pointers are borrowed. */
typedef struct tern_rtcp_packet {
    bool padding;
    uint8_t count; /**< RC, SC or FMT (5 bits) */
    uint8_t type;
    const uint8_t *body; /**< after the 4-byte header, padding excluded */
    size_t body_len;
    uint8_t padding_len; /**< with padding: the count in the last byte (4-aligned, >= 1) */
    size_t len;          /**< the whole packet: (length + 1) * 4 */
} tern_rtcp_packet_t;

/** A cursor over a compound packet; `err` is set by a malformed packet. */
typedef struct tern_rtcp_iter {
    const uint8_t *p;
    const uint8_t *end;
    bool err;
} tern_rtcp_iter_t;

void tern_rtcp_iter_init(tern_rtcp_iter_t *it, const uint8_t *data, size_t len);

/**
 * Take the next packet: version 2, a length inside the datagram, a padding count that fits
 * the body, and padding only on the last packet (RFC 3550 §6.4.1 A.2).
 * @return true with *out filled; false at the end of the datagram or on error (it->err).
 */
bool tern_rtcp_next(tern_rtcp_iter_t *it, tern_rtcp_packet_t *out);

/**
 * Check a whole compound packet (RFC 3550 §6.1, A.2): every packet well formed and together
 * exactly the datagram. The first packet must be SR or RR unless reduced_size (RFC 5506 §3.1
 * allows any single packet, as browsers send feedback).
 * @return the number of packets (>= 1); TERN_ERR_PARSE.
 */
int tern_rtcp_check_compound(const uint8_t *data, size_t len, bool reduced_size);

/**
 * Append one packet: its header (version 2, count, type, length) then body_len bytes of body,
 * then padding_len bytes of padding (zeros and the count) when padding_len > 0.
 * @return 0; TERN_ERR_INVALID_ARG (count > 31, body plus padding not a multiple of 4, or the
 *         packet over 262144 bytes).
 */
int tern_rtcp_write_packet(tern_wbuf_t *w, uint8_t type, uint8_t count, const uint8_t *body,
                           size_t body_len, uint8_t padding_len);

/** A reception report block (RFC 3550 §6.4.1). */
typedef struct tern_rtcp_report {
    uint32_t ssrc;
    uint8_t fraction_lost;
    int32_t cumulative_lost; /**< 24-bit signed */
    uint32_t highest_seq;
    uint32_t jitter;
    uint32_t lsr;
    uint32_t dlsr;
} tern_rtcp_report_t;

/** A sender report or a receiver report (RFC 3550 §6.4.1, §6.4.2). */
typedef struct tern_rtcp_report_packet {
    bool is_sr;
    uint32_t ssrc;
    /* sender info, SR only */
    uint64_t ntp;
    uint32_t rtp_timestamp;
    uint32_t packet_count;
    uint32_t octet_count;
    uint8_t report_count;
    tern_rtcp_report_t reports[TERN_RTCP_MAX_COUNT];
    const uint8_t *extension; /**< profile-specific extension after the blocks (borrowed) */
    size_t extension_len;
} tern_rtcp_report_packet_t;

/**
 * Read an SR or RR body. @return 0; TERN_ERR_PARSE (short body); TERN_ERR_INVALID_ARG (not an
 * SR or RR packet).
 */
int tern_rtcp_parse_report(const tern_rtcp_packet_t *p, tern_rtcp_report_packet_t *out);

/** Append an SR or RR packet (no padding). @return 0; TERN_ERR_INVALID_ARG. */
int tern_rtcp_write_report(tern_wbuf_t *w, const tern_rtcp_report_packet_t *r);

/** One SDES item (RFC 3550 §6.5). */
typedef struct tern_rtcp_sdes_item {
    uint32_t ssrc; /**< of the chunk it belongs to */
    uint8_t type;  /**< CNAME = 1 ... PRIV = 8 */
    const uint8_t *text;
    uint8_t len;
} tern_rtcp_sdes_item_t;

/** A cursor over the items of an SDES packet's chunks. */
typedef struct tern_rtcp_sdes_iter {
    const uint8_t *base; /* the body's start: chunks are 32-bit aligned from here */
    const uint8_t *p;
    const uint8_t *end;
    unsigned chunks_left;
    bool in_chunk;
    uint32_t ssrc;
    bool err;
} tern_rtcp_sdes_iter_t;

/** Start on an SDES packet. @return 0; TERN_ERR_INVALID_ARG if it is not one. */
int tern_rtcp_sdes_iter_init(tern_rtcp_sdes_iter_t *it, const tern_rtcp_packet_t *p);

/**
 * Take the next item: each chunk is an SSRC, items, an END (0) item and zeros to the next
 * 32-bit boundary (RFC 3550 §6.5). A chunk with no item before END yields nothing.
 * @return true with *out filled; false at the end, or on error (it->err).
 */
bool tern_rtcp_sdes_next(tern_rtcp_sdes_iter_t *it, tern_rtcp_sdes_item_t *out);

/**
 * Append an SDES packet of n items; consecutive items of one SSRC share a chunk (each chunk
 * ends with END and zeros to a 32-bit boundary).
 * @return 0; TERN_ERR_INVALID_ARG (an item of type 0, more than 31 chunks, or over 262144
 *         bytes); TERN_ERR_NOMEM.
 */
int tern_rtcp_write_sdes(tern_wbuf_t *w, const tern_rtcp_sdes_item_t *items, size_t n);

/** A BYE packet (RFC 3550 §6.6). */
typedef struct tern_rtcp_bye {
    uint8_t count;
    uint32_t ssrc[TERN_RTCP_MAX_COUNT];
    const uint8_t *reason; /**< borrowed; NULL if none */
    uint8_t reason_len;
} tern_rtcp_bye_t;

/** @return 0; TERN_ERR_PARSE; TERN_ERR_INVALID_ARG (not a BYE). */
int tern_rtcp_parse_bye(const tern_rtcp_packet_t *p, tern_rtcp_bye_t *out);
/** Append a BYE (the reason padded with zeros). @return 0; TERN_ERR_INVALID_ARG. */
int tern_rtcp_write_bye(tern_wbuf_t *w, const tern_rtcp_bye_t *b);

/** A feedback message (RTPFB or PSFB, RFC 4585 §6.1) or an APP packet (RFC 3550 §6.7). */
typedef struct tern_rtcp_fb {
    uint8_t fmt; /**< FMT (feedback) or subtype (APP) */
    uint32_t sender_ssrc;
    uint32_t media_ssrc; /**< feedback only */
    char name[5];        /**< APP only: four ASCII characters */
    const uint8_t *fci;  /**< feedback control information, or APP data; borrowed */
    size_t fci_len;
} tern_rtcp_fb_t;

#define TERN_RTCP_FMT_NACK 1  /* RTPFB, RFC 4585 §6.2.1 */
#define TERN_RTCP_FMT_PLI 1   /* PSFB, RFC 4585 §6.3.1 */
#define TERN_RTCP_FMT_FIR 4   /* PSFB, RFC 5104 §4.3.1 */
#define TERN_RTCP_FMT_AFB 15  /* PSFB, RFC 4585 §6.4 (REMB lives here) */
#define TERN_RTCP_FMT_TWCC 15 /* RTPFB, draft-holmer-rmcat-transport-wide-cc-extensions */

/** Read an RTPFB, PSFB or APP packet. @return 0; TERN_ERR_PARSE; TERN_ERR_INVALID_ARG. */
int tern_rtcp_parse_fb(const tern_rtcp_packet_t *p, tern_rtcp_fb_t *out);
/** Append an RTPFB, PSFB (type) or APP packet; fci_len a multiple of 4. */
int tern_rtcp_write_fb(tern_wbuf_t *w, uint8_t type, const tern_rtcp_fb_t *f);

/**
 * Expand a generic NACK's FCI (RFC 4585 §6.2.1) into the sequence numbers it names, in order,
 * at most cap of them.
 * @return how many were written (>= 0); TERN_ERR_PARSE if fci_len is not a multiple of 4.
 */
int tern_rtcp_nack_sequences(const tern_rtcp_fb_t *f, uint16_t *out, size_t cap);

/* ---- SRTP sessions (srtp.c) ---- */

/** Protection profiles, as DTLS-SRTP negotiates them (RFC 5764 §4.1.2, RFC 7714 §14.2). */
typedef enum {
    TERN_SRTP_PROFILE_AES128_CM_SHA1_80 = 0x0001,
    TERN_SRTP_PROFILE_AEAD_AES_128_GCM = 0x0007,
} tern_srtp_profile_t;

/** Bytes protect may add: the auth tag, or the GCM tag, plus SRTCP's 4-byte index. */
#define TERN_SRTP_MAX_OVERHEAD 148 /* libsrtp2's SRTP_MAX_TRAILER_LEN + 4, rounded up */

/** Session keys. Copied (and the copies zeroed when freed). */
typedef struct tern_srtp_config {
    tern_srtp_profile_t profile;
    const uint8_t *local_key;  /**< 16 bytes: what we protect with */
    const uint8_t *local_salt; /**< 14 bytes (AES-CM) or 12 (GCM) */
    const uint8_t *remote_key; /**< 16 bytes: what we unprotect with */
    const uint8_t *remote_salt;
    /** Replay window in packets (RFC 3711 §3.3.2); 0: 1024, as browsers use. */
    uint16_t replay_window;
} tern_srtp_config_t;

typedef struct tern_srtp tern_srtp_t;

/** What a session dropped, and why. */
typedef struct tern_srtp_stats {
    uint64_t protected_rtp, protected_rtcp;
    uint64_t unprotected_rtp, unprotected_rtcp;
    uint64_t malformed;   /**< not an RTP/RTCP packet (our parser refused it) */
    uint64_t auth_failed; /**< bad tag */
    uint64_t replayed;    /**< seen before, or too old for the window */
    uint64_t other_failed;
} tern_srtp_stats_t;

/**
 * Make a session: an outbound stream for any local SSRC and an inbound one for any remote SSRC.
 * @return 0; TERN_ERR_INVALID_ARG (unknown profile, missing keys); TERN_ERR_CRYPTO (libsrtp2
 *         refused: its crypto kernel failed to start, or GCM is missing); TERN_ERR_NOMEM.
 */
int tern_srtp_new(tern_ctx_t *ctx, const tern_srtp_config_t *cfg, tern_srtp_t **out);

/** Free a session. NULL is a no-op. */
void tern_srtp_free(tern_srtp_t *s);

/**
 * Protect an RTP packet in place: buf holds *len bytes of plain RTP and has room for cap;
 * cap - *len must be at least TERN_SRTP_MAX_OVERHEAD.
 * @return 0 with *len the SRTP length; TERN_ERR_PARSE (not RTP); TERN_ERR_TOO_LARGE (no room);
 *         TERN_ERR_CRYPTO.
 */
int tern_srtp_protect_rtp(tern_srtp_t *s, uint8_t *buf, size_t *len, size_t cap);
/**
 * The same for an RTCP compound packet (SRTCP, RFC 3711 §3.4). Only what libsrtp2 reads is
 * checked (the first header and the sender SSRC); TERN_ERR_PARSE if that is not RTCP.
 */
int tern_srtp_protect_rtcp(tern_srtp_t *s, uint8_t *buf, size_t *len, size_t cap);

/**
 * Unprotect a received SRTP packet in place (buf holds *len bytes of peer input). Malformed,
 * unauthenticated and replayed packets are refused and counted.
 * @return 0 with *len the RTP length; TERN_ERR_PARSE (not SRTP); TERN_ERR_CRYPTO (bad tag,
 *         replay, or another libsrtp2 refusal).
 */
int tern_srtp_unprotect_rtp(tern_srtp_t *s, uint8_t *buf, size_t *len);
/**
 * The same for SRTCP. Before the tag is checked only the clear first header and SSRC can be;
 * the decrypted compound is left for tern_rtcp_next to judge (the peer holds the keys, but
 * it is still peer input).
 */
int tern_srtp_unprotect_rtcp(tern_srtp_t *s, uint8_t *buf, size_t *len);

void tern_srtp_get_stats(const tern_srtp_t *s, tern_srtp_stats_t *out);

#endif
