/* SPDX-License-Identifier: MIT */
/*
 * The embedded STUN server of tern-signal: it answers Binding requests on UDP (RFC 8489 §6.3)
 * with the sender's transport address in XOR-MAPPED-ADDRESS, so that peers on a LAN learn a
 * server-reflexive candidate with no outside server. No authentication, no RFC 5780 behaviour
 * discovery (CHANGE-REQUEST is treated as an unknown comprehension-required attribute: a 420,
 * as RFC 5780 §7.2 wants from a server without a second address), no ALTERNATE-SERVER. Built on the
 * project's codec (src/stun/).
 */
#include "signaling.h"
#include "stun/stun.h"

#include <string.h>

#define SOFTWARE "tern-signal"

static size_t finish(tern_stun_writer_t *sw, tern_wbuf_t *w)
{
    tern_stun_put_fingerprint(sw);
    size_t len = 0;
    if (tern_stun_writer_end(sw, &len) != TERN_OK || w->err)
        return 0;
    return len;
}

size_t tern_signal_stun_answer(tern_ctx_t *ctx, const uint8_t *in, size_t len,
                               const tern_addr_t *from, uint8_t *out, size_t cap)
{
    (void)ctx;
    tern_stun_msg_t m;
    if (!tern_stun_is_message(in, len) || tern_stun_parse(in, len, &m) != TERN_OK)
        return 0;
    /* Only requests are answered (RFC 8489 §6.3: indications never get a response, and
     * responses to nothing we sent are dropped). */
    if (m.msg_class != TERN_STUN_REQUEST)
        return 0;
    /* A FINGERPRINT that does not match means this is not STUN after all (§14.7). */
    if ((m.present & TERN_STUN_HAS_FINGERPRINT) && tern_stun_check_fingerprint(&m) != TERN_OK)
        return 0;
    tern_wbuf_t w;
    tern_wbuf_init(&w, NULL, out, cap);
    tern_stun_writer_t sw;
    uint16_t unknown[TERN_STUN_MAX_UNKNOWN + 1];
    size_t n_unknown = m.unknown_required_count;
    memcpy(unknown, m.unknown_required, n_unknown * sizeof unknown[0]);
    if (m.present & TERN_STUN_HAS_CHANGE_REQUEST)
        unknown[n_unknown++] = TERN_STUN_ATTR_CHANGE_REQUEST;
    if (n_unknown > 0) {
        /* §6.3.1.1: unknown comprehension-required attributes get a 420 listing them. */
        tern_stun_writer_begin(&sw, &w, TERN_STUN_ERROR, m.method, m.tid);
        tern_stun_put_error_code(&sw, TERN_STUN_ERR_UNKNOWN_ATTRIBUTE, NULL);
        tern_stun_put_unknown_attributes(&sw, unknown, n_unknown);
    } else if (m.method != TERN_STUN_BINDING) {
        /* Allocate and the other TURN methods belong to a TURN server, which this is not. */
        tern_stun_writer_begin(&sw, &w, TERN_STUN_ERROR, m.method, m.tid);
        tern_stun_put_error_code(&sw, TERN_STUN_ERR_BAD_REQUEST, "only Binding is served");
    } else {
        tern_stun_writer_begin(&sw, &w, TERN_STUN_SUCCESS, TERN_STUN_BINDING, m.tid);
        tern_stun_put_xor_addr(&sw, TERN_STUN_ATTR_XOR_MAPPED_ADDRESS, from);
    }
    tern_stun_put_string(&sw, TERN_STUN_ATTR_SOFTWARE, SOFTWARE);
    return finish(&sw, &w);
}
