/* SPDX-License-Identifier: MIT */
/* A user's program built against an installed tern: makes a context and a pc, writes an offer. */
#include <tern/tern.h>

#include <stdio.h>
#include <string.h>

int main(void)
{
    tern_ctx_t *ctx;
    tern_pc_t *pc;
    char *offer;
    if (tern_ctx_new(NULL, &ctx) != TERN_OK)
        return 1;
    int err = tern_pc_new(ctx, NULL, 1000000, &pc);
    if (!err)
        err = tern_pc_create_offer(pc, 1000000, &offer);
    if (!err) {
        err = strstr(offer, "webrtc-datachannel") ? 0 : 1;
        tern_free(ctx, offer);
    }
    tern_pc_free(pc);
    tern_ctx_free(ctx);
    printf("consumer: %s\n", err ? "failed" : "ok");
    return err ? 1 : 0;
}
