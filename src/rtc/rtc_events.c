/* SPDX-License-Identifier: MIT */
/*
 * The pc's own events (state changes, local candidates, negotiation needed), in a bounded ring.
 * Data channel events are not copied here: they come straight from the channel manager.
 */
#include "rtc/rtc.h"

#include <string.h>

int tern_rtc_queue_event(tern_pc_t *pc, const rtc_event_t *ev)
{
    rtc_event_queue_t *q = &pc->events;
    if (q->count == q->cap) {
        if (q->cap >= RTC_MAX_QUEUED_EVENTS) {
            TERN_LOG_WARN(pc->ctx, "pc", "pc %u event queue full, event %d dropped", pc->id,
                          ev->type);
            return TERN_ERR_AGAIN;
        }
        size_t cap = q->cap ? q->cap * 2 : 8;
        rtc_event_t *ring = tern_calloc(pc->ctx, cap, sizeof *ring);
        if (!ring)
            return TERN_ERR_NOMEM;
        for (size_t i = 0; i < q->count; i++)
            ring[i] = q->ring[(q->head + i) % q->cap];
        tern_free(pc->ctx, q->ring);
        q->ring = ring;
        q->cap = cap;
        q->head = 0;
    }
    q->ring[(q->head + q->count) % q->cap] = *ev;
    q->count++;
    return TERN_OK;
}

int tern_rtc_queue_state_event(tern_pc_t *pc, tern_event_type_t type, int value)
{
    rtc_event_t ev = {.type = type, .value = value};
    return tern_rtc_queue_event(pc, &ev);
}

bool tern_rtc_pop_event(tern_pc_t *pc, tern_event_t *out)
{
    rtc_event_queue_t *q = &pc->events;
    if (q->count == 0)
        return false;
    pc->current_event = q->ring[q->head];
    q->head = (q->head + 1) % q->cap;
    q->count--;

    const rtc_event_t *ev = &pc->current_event;
    memset(out, 0, sizeof *out);
    out->type = ev->type;
    switch (ev->type) {
    case TERN_EV_ICE_CANDIDATE:
        out->u.ice_candidate.candidate = ev->candidate;
        out->u.ice_candidate.mid = ev->mid;
        out->u.ice_candidate.mline_index = ev->mline_index;
        break;
    case TERN_EV_ICE_GATHERING_STATE:
        out->u.ice_gathering_state = (tern_ice_gathering_state_t)ev->value;
        break;
    case TERN_EV_ICE_CONNECTION_STATE:
        out->u.ice_state = (tern_ice_state_t)ev->value;
        break;
    case TERN_EV_CONNECTION_STATE:
        out->u.pc_state = (tern_pc_state_t)ev->value;
        break;
    case TERN_EV_SIGNALING_STATE:
        out->u.signaling_state = (tern_signaling_state_t)ev->value;
        break;
    default:
        break;
    }
    return true;
}

void tern_rtc_events_dispose(tern_pc_t *pc)
{
    tern_free(pc->ctx, pc->events.ring);
    memset(&pc->events, 0, sizeof pc->events);
}
