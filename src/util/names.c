/* SPDX-License-Identifier: MIT */
/* Names of error codes and of the W3C states, as the public header spells them. */
#include "tern/tern.h"

#include <string.h>

#define ERR_LIST(X)                                                                               \
    X(TERN_OK, "success")                                                                         \
    X(TERN_ERR_INVALID_ARG, "invalid argument")                                                   \
    X(TERN_ERR_INVALID_STATE, "invalid state")                                                    \
    X(TERN_ERR_NOMEM, "out of memory")                                                            \
    X(TERN_ERR_PARSE, "parse error")                                                              \
    X(TERN_ERR_TRUNCATED, "truncated input")                                                      \
    X(TERN_ERR_TOO_LARGE, "too large")                                                            \
    X(TERN_ERR_AGAIN, "try again")                                                                \
    X(TERN_ERR_NOT_FOUND, "not found")                                                            \
    X(TERN_ERR_CLOSED, "closed")                                                                  \
    X(TERN_ERR_UNSUPPORTED, "unsupported")                                                        \
    X(TERN_ERR_CRYPTO, "cryptographic failure")                                                   \
    X(TERN_ERR_IO, "i/o error")                                                                   \
    X(TERN_ERR_INTERNAL, "internal error")

const char *tern_strerror(int err)
{
#define X(code, text)                                                                             \
    case code:                                                                                    \
        return text;
    switch (err) { ERR_LIST(X) }
#undef X
    return "unknown error";
}

const char *tern_err_name(int err)
{
#define X(code, text)                                                                             \
    case code:                                                                                    \
        return #code;
    switch (err) { ERR_LIST(X) }
#undef X
    return "TERN_ERR_UNKNOWN";
}

static const char *pick(const char *const *names, size_t count, unsigned v)
{
    return v < count ? names[v] : "unknown";
}

#define PICK(names, v) pick(names, sizeof names / sizeof names[0], (unsigned)(v))

const char *tern_pc_state_name(tern_pc_state_t s)
{
    static const char *const names[] = {"new",          "connecting", "connected",
                                        "disconnected", "failed",     "closed"};
    return PICK(names, s);
}

const char *tern_ice_state_name(tern_ice_state_t s)
{
    static const char *const names[] = {"new",          "checking", "connected", "completed",
                                        "disconnected", "failed",   "closed"};
    return PICK(names, s);
}

const char *tern_ice_gathering_state_name(tern_ice_gathering_state_t s)
{
    static const char *const names[] = {"new", "gathering", "complete"};
    return PICK(names, s);
}

const char *tern_signaling_state_name(tern_signaling_state_t s)
{
    static const char *const names[] = {"stable",
                                        "have-local-offer",
                                        "have-remote-offer",
                                        "have-local-pranswer",
                                        "have-remote-pranswer",
                                        "closed"};
    return PICK(names, s);
}

const char *tern_dc_state_name(tern_dc_state_t s)
{
    static const char *const names[] = {"connecting", "open", "closing", "closed"};
    return PICK(names, s);
}

static const char *const sdp_type_names[] = {"offer", "answer", "pranswer", "rollback"};

const char *tern_sdp_type_name(tern_sdp_type_t t)
{
    return PICK(sdp_type_names, t);
}

int tern_sdp_type_parse(const char *name, tern_sdp_type_t *out)
{
    for (unsigned i = 0; name && i < sizeof sdp_type_names / sizeof sdp_type_names[0]; i++) {
        if (strcmp(name, sdp_type_names[i]) == 0) {
            *out = (tern_sdp_type_t)i;
            return TERN_OK;
        }
    }
    return TERN_ERR_PARSE;
}
