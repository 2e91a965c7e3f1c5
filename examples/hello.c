/* SPDX-License-Identifier: MIT */
/*
 * tern-hello: the smallest complete tern program. Two peer connections in one process connect
 * over loopback, one opens a data channel, says hello, the other answers, and both close.
 * Signaling is a function call here; across machines it goes through tern-signal.
 */
#include <tern/tern.h>

#include <stdio.h>
#include <string.h>

typedef struct peer {
    const char *name;
    tern_pc_t *pc;
    struct peer *other;
    tern_loop_t *loop;
} peer_t;

/* Trickle ICE: every local candidate goes straight to the other peer. */
static void on_ice_candidate(tern_pc_t *pc, void *user, const char *candidate, const char *mid,
                             int mline_index)
{
    (void)pc;
    (void)mline_index;
    peer_t *self = user;
    tern_pc_add_ice_candidate(self->other->pc, tern_loop_now(self->loop), candidate, mid);
}

static void on_open(tern_dc_t *dc, void *user)
{
    peer_t *self = user;
    printf("%s: channel \"%s\" open\n", self->name, tern_dc_label(dc));
    if (strcmp(self->name, "alice") == 0)
        tern_dc_send_text(dc, tern_loop_now(self->loop), "hello, bob", 10);
}

/* A channel the other side created; its open callback follows, as in the W3C API. */
static void on_data_channel(tern_pc_t *pc, void *user, tern_dc_t *dc)
{
    (void)pc;
    peer_t *self = user;
    printf("%s: the peer created channel \"%s\"\n", self->name, tern_dc_label(dc));
}

static void on_message(tern_dc_t *dc, void *user, const uint8_t *data, size_t len, bool is_text)
{
    peer_t *self = user;
    printf("%s: received %s \"%.*s\"\n", self->name, is_text ? "text" : "binary", (int)len,
           (const char *)data);
    if (strcmp(self->name, "bob") == 0)
        tern_dc_send_text(dc, tern_loop_now(self->loop), "hello, alice", 12);
    else
        tern_loop_stop(self->loop); /* the round trip is done */
}

static bool timed_out;

static void give_up(void *loop)
{
    timed_out = true;
    tern_loop_stop(loop);
}

static const tern_pc_callbacks_t callbacks = {
    .on_ice_candidate = on_ice_candidate,
    .on_data_channel = on_data_channel,
    .on_open = on_open,
    .on_message = on_message,
};

/* Offer/answer exchange: what a signaling server would carry. */
static int negotiate(tern_ctx_t *ctx, peer_t *offerer, peer_t *answerer)
{
    tern_time_t now = tern_loop_now(offerer->loop);
    char *offer = NULL, *answer = NULL;
    int err = tern_pc_create_offer(offerer->pc, now, &offer);
    if (!err)
        err = tern_pc_set_local_description(offerer->pc, now, TERN_SDP_OFFER, offer);
    if (!err)
        err = tern_pc_set_remote_description(answerer->pc, now, TERN_SDP_OFFER, offer);
    if (!err)
        err = tern_pc_create_answer(answerer->pc, now, &answer);
    if (!err)
        err = tern_pc_set_local_description(answerer->pc, now, TERN_SDP_ANSWER, answer);
    if (!err)
        err = tern_pc_set_remote_description(offerer->pc, now, TERN_SDP_ANSWER, answer);
    if (err)
        fprintf(stderr, "negotiation failed: %s (%s)\n", tern_strerror(err),
                tern_pc_last_error(offerer->pc));
    tern_free(ctx, offer);
    tern_free(ctx, answer);
    return err;
}

int main(void)
{
    tern_ctx_t *ctx = NULL;
    tern_loop_t *loop = NULL;
    peer_t alice = {.name = "alice"}, bob = {.name = "bob"};
    static const char *const loopback[] = {"127.0.0.1"};
    tern_pc_config_t cfg = {.bind_addresses = loopback, .bind_address_count = 1};
    tern_dc_t *dc;
    int err = tern_ctx_new(NULL, &ctx);
    if (!err)
        err = tern_loop_new(ctx, &loop);
    alice.loop = bob.loop = loop;
    alice.other = &bob;
    bob.other = &alice;
    if (!err)
        err = tern_pc_new(ctx, &cfg, tern_loop_now(loop), &alice.pc);
    if (!err)
        err = tern_pc_new(ctx, &cfg, tern_loop_now(loop), &bob.pc);
    if (!err)
        err = tern_loop_add_pc(loop, alice.pc, &callbacks, &alice);
    if (!err)
        err = tern_loop_add_pc(loop, bob.pc, &callbacks, &bob);
    if (!err)
        err = tern_pc_create_data_channel(alice.pc, tern_loop_now(loop), "greetings", NULL, &dc);
    if (!err)
        err = negotiate(ctx, &alice, &bob);
    if (!err)
        err = tern_loop_add_timer(loop, 10000, give_up, loop, NULL);
    if (!err)
        err = tern_loop_run(loop);
    if (err)
        fprintf(stderr, "tern-hello: %s\n", tern_strerror(err));
    else if (timed_out)
        fprintf(stderr, "tern-hello: no answer within 10 s\n");
    tern_loop_free(loop);
    tern_pc_free(alice.pc);
    tern_pc_free(bob.pc);
    tern_ctx_free(ctx);
    return err || timed_out ? 1 : 0;
}
