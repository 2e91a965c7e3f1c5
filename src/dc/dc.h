/* SPDX-License-Identifier: MIT */
/*
 * Data channels (RFC 8831) over one SCTP association, opened with DCEP (RFC 8832) or negotiated
 * out of band. The manager (tern_dcm_t) owns every channel of one peer connection: it assigns
 * stream ids by DTLS role (RFC 8832 §6), sends and answers DATA_CHANNEL_OPEN, keeps each
 * channel's send queue (buffered_amount, bounded per pc) and feeds the association fairly
 * (round-robin between channels), turns SCTP messages and stream resets into the public events
 * (TERN_EV_DATA_CHANNEL, TERN_EV_DC_*), and closes channels by stream reset (RFC 8831 §6.7).
 * The public tern_dc_* functions of tern.h are implemented here. The DCEP codec is exposed for
 * tests and the fuzzer.
 *
 * Lifetime of a tern_dc_t (CONVENTIONS.md §3): from its creation, or its TERN_EV_DATA_CHANNEL
 * event, until the tern_dcm_poll_event call after the one that returned its TERN_EV_DC_CLOSE;
 * tern_dcm_free ends every channel.
 *
 * Scope: no channel priority scheduling (the priority field is carried, not acted on); the
 * deprecated partial-message PPIDs 52 and 54 are dropped; no SCTP stream adding, so ids are
 * limited to the streams the association negotiated (1024 with browsers).
 */
#ifndef TERN_DC_DC_H
#define TERN_DC_DC_H

#include "sctp/sctp.h"
#include "util/util.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- DCEP codec (RFC 8832 §5) ---- */

/** Payload protocol identifiers (RFC 8831 §8, IANA "SCTP Payload Protocol Identifiers"). */
#define TERN_PPID_DCEP 50
#define TERN_PPID_STRING 51
#define TERN_PPID_STRING_PARTIAL 52 /* deprecated, dropped */
#define TERN_PPID_BINARY 53
#define TERN_PPID_BINARY_PARTIAL 54 /* deprecated, dropped */
#define TERN_PPID_STRING_EMPTY 56
#define TERN_PPID_BINARY_EMPTY 57

/** DCEP message types (RFC 8832 §8.2.1). */
#define TERN_DCEP_ACK 0x02
#define TERN_DCEP_OPEN 0x03

/** Channel types of DATA_CHANNEL_OPEN (RFC 8832 §5.1); bit 0x80 means unordered. */
#define TERN_DCEP_CHANNEL_RELIABLE 0x00
#define TERN_DCEP_CHANNEL_PARTIAL_RELIABLE_REXMIT 0x01
#define TERN_DCEP_CHANNEL_PARTIAL_RELIABLE_TIMED 0x02
#define TERN_DCEP_CHANNEL_UNORDERED 0x80

/** Fixed part of DATA_CHANNEL_OPEN, before the label and protocol. */
#define TERN_DCEP_OPEN_HEADER_LEN 12

/** A parsed DCEP message; label and protocol point into the parsed buffer (not NUL-ended). */
typedef struct tern_dcep_msg {
    uint8_t type; /**< TERN_DCEP_OPEN or TERN_DCEP_ACK */
    /* The fields below are only meaningful for TERN_DCEP_OPEN. */
    uint8_t channel_type;
    uint16_t priority;
    uint32_t reliability; /**< retransmissions or milliseconds, per channel_type */
    const uint8_t *label;
    uint16_t label_len;
    const uint8_t *protocol;
    uint16_t protocol_len;
} tern_dcep_msg_t;

/**
 * Parse a DCEP message (the payload of a PPID 50 SCTP message).
 * @return 0; TERN_ERR_PARSE if truncated, of an unknown type, of an unknown channel type, or
 *         with lengths that do not match the message (extra bytes after the protocol are
 *         refused too). out is unchanged on error.
 */
int tern_dcep_parse(const uint8_t *data, size_t len, tern_dcep_msg_t *out);

/**
 * Append a DCEP message (OPEN with its label and protocol, or ACK) to w.
 * @return 0; TERN_ERR_INVALID_ARG for another type or an unknown channel type;
 *         TERN_ERR_NOMEM if w could not grow (w.err is set).
 */
int tern_dcep_encode(const tern_dcep_msg_t *msg, tern_wbuf_t *w);

/* ---- the manager ---- */

typedef struct tern_dcm tern_dcm_t;

/** Manager configuration; all zero means defaults. Copied. */
typedef struct tern_dcm_config {
    uint16_t max_channels;     /**< channels alive at once (both sides); 0: 1024 */
    size_t max_buffered_bytes; /**< sum of every channel's buffered_amount; 0: 16 MiB */
    /**
     * Called after tern_dc_send, tern_dc_send_text or tern_dc_close (which the application
     * calls on the channel, not on the pc) queued something, so that the pc can put itself on
     * the context's to-drain list. Must not call back into the manager. May be NULL.
     */
    void (*on_pending)(void *owner);
    void *owner;
    tern_pc_t *pc; /**< returned by tern_dc_pc(); not used otherwise */
} tern_dcm_config_t;

/** Counters of one manager. */
typedef struct tern_dcm_stats {
    uint64_t messages_sent, messages_received, bytes_sent, bytes_received;
    uint64_t messages_dropped; /**< unknown PPID, unknown stream, closed channel, bad DCEP */
    uint64_t opens_refused;    /**< DCEP OPEN on an id in use, or past max_channels */
} tern_dcm_stats_t;

/**
 * Create a manager with no channel.
 * @param cfg  may be NULL; copied.
 * @return 0; TERN_ERR_INVALID_ARG for a NULL out; TERN_ERR_NOMEM.
 */
int tern_dcm_new(tern_ctx_t *ctx, const tern_dcm_config_t *cfg, tern_dcm_t **out);

/** Free the manager and every channel (no event). The association is not touched. NULL ok. */
void tern_dcm_free(tern_dcm_t *m);

/**
 * Create a channel (W3C createDataChannel). It stays connecting until it has an id and the
 * association is up; then an in-band channel sends DATA_CHANNEL_OPEN and is open at once
 * (RFC 8832 §6 lets data follow the OPEN before the ACK; an unordered channel sends ordered
 * until the ACK arrives), a negotiated one simply opens. TERN_EV_DC_OPEN follows.
 * @param label  NUL-terminated, copied, at most 65535 bytes.
 * @param init   may be NULL; its protocol is copied (at most 65535 bytes).
 * @param out    receives the channel, owned by the manager.
 * @return 0; TERN_ERR_INVALID_ARG for a NULL or too long label or protocol, a negotiated id
 *         over 65534 or already in use, or a bad reliability; TERN_ERR_TOO_LARGE past
 *         max_channels; TERN_ERR_INVALID_STATE once closed (tern_dcm_close_all);
 *         TERN_ERR_NOMEM.
 */
int tern_dcm_create_channel(tern_dcm_t *m, tern_time_t now, const char *label,
                            const tern_dc_init_t *init, tern_dc_t **out);

/**
 * Set the DTLS role, which decides the ids of in-band channels: the DTLS client uses even
 * stream ids, the server odd ones (RFC 8832 §6). Channels waiting for an id get one now.
 * @return 0; TERN_ERR_INVALID_STATE if a different role was already set.
 */
int tern_dcm_set_dtls_role(tern_dcm_t *m, bool dtls_client);

/**
 * Hand the manager its association, once DTLS is up (the association may still be
 * connecting: channels open on TERN_SCTP_EV_CONNECTED). The manager borrows it; the owner
 * frees it after the manager, or calls tern_dcm_detach first.
 * @param remote_max_message_size  the remote a=max-message-size; 0 means 65536 (RFC 8841 §6).
 *        A send larger than it fails with TERN_ERR_TOO_LARGE.
 * @return 0; TERN_ERR_INVALID_STATE if the DTLS role is not set or already attached to another
 *         association; TERN_ERR_INVALID_ARG for a NULL sctp.
 */
int tern_dcm_attach(tern_dcm_t *m, tern_time_t now, tern_sctp_t *sctp,
                    size_t remote_max_message_size);

/**
 * Forget the association (it is about to be freed): every channel not closed yet closes
 * (TERN_EV_DC_CLOSE). Safe to call when not attached.
 */
void tern_dcm_detach(tern_dcm_t *m, tern_time_t now);

/**
 * Feed one event of the association. MESSAGE carries data or DCEP; STREAM_RESET closes
 * channels; SEND_READY and CONNECTED let queued data and pending OPENs go; CLOSED and FAILED
 * close every channel (FAILED with TERN_EV_DC_ERROR first). Message data is copied (the SCTP
 * event's data only lives until the next call on the association), so poll the manager's
 * events after feeding to keep that copy short-lived; at most 65536 messages or 64 MiB wait,
 * beyond which messages are dropped and counted.
 * @return 0; TERN_ERR_INVALID_ARG for NULL. Bad peer input is dropped and counted, never an
 *         error.
 */
int tern_dcm_handle_sctp_event(tern_dcm_t *m, tern_time_t now, const tern_sctp_event_t *ev);

/**
 * Take the next event in the public shape: TERN_EV_DATA_CHANNEL, TERN_EV_DC_OPEN, _MESSAGE,
 * _BUFFERED_AMOUNT_LOW, _CLOSING, _CLOSE, _ERROR. Pointers inside (message data) are valid
 * until the next call to this function. A channel whose TERN_EV_DC_CLOSE was returned is freed
 * by the next call to this function.
 *
 * Order, as W3C has it: a channel the peer opens gives TERN_EV_DATA_CHANNEL then
 * TERN_EV_DC_OPEN (it is open at both); our own gives TERN_EV_DC_OPEN. A close the peer starts
 * gives TERN_EV_DC_CLOSING then TERN_EV_DC_CLOSE; tern_dc_close gives TERN_EV_DC_CLOSE only
 * (the state is closing at once). A failed association gives TERN_EV_DC_ERROR
 * ("sctp-failure") then TERN_EV_DC_CLOSE for each open channel. A buffered-amount-low event
 * comes when a channel's buffered amount falls from above its threshold to at or below it.
 * @return false when there is none.
 */
bool tern_dcm_poll_event(tern_dcm_t *m, tern_event_t *out);

/**
 * Hand queued messages to the association as far as it takes them (round-robin between
 * channels). Called by the manager itself after sends and on SEND_READY; exposed for a driver
 * that wants to push after draining. @return 0.
 */
int tern_dcm_flush(tern_dcm_t *m, tern_time_t now);

/**
 * Close every channel (pc close): each open channel resets its stream, then every channel
 * ends with TERN_EV_DC_CLOSE when its reset completes or when the association goes. New
 * channels are refused afterwards. @return 0.
 */
int tern_dcm_close_all(tern_dcm_t *m, tern_time_t now);

/** @return channels alive (not yet freed). */
size_t tern_dcm_channel_count(const tern_dcm_t *m);

/** Copy the manager's counters. */
void tern_dcm_get_stats(const tern_dcm_t *m, tern_dcm_stats_t *out);

#endif
