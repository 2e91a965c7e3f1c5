/* SPDX-License-Identifier: MIT */
/*
 * What the loop does for a pc's ICE servers (io_turn.c): it resolves their host names on the
 * resolver's helper thread and hands the addresses to the pc (tern_pc_set_ice_server_addr), and
 * it runs the TCP and TLS connections the pc asks for to reach TURN servers (the stream seam of
 * tern.h: tern_pc_poll_stream_request and friends).
 */
#ifndef TERN_IO_IO_TURN_H
#define TERN_IO_IO_TURN_H

#include "io/io_loop.h"

/* Start resolving the pc's named ICE servers. 0; TERN_ERR_NOMEM. */
int tern_io_turn_attach(tern_loop_t *loop, tern_io_pc_t *e);

/* Open, write and close the pc's connections as it asks (part of draining it). */
void tern_io_turn_drain(tern_loop_t *loop, tern_io_pc_t *e);

/* Cancel the resolutions, close the connections, free the state. NULL state is a no-op. */
void tern_io_turn_detach(tern_loop_t *loop, tern_io_pc_t *e);

#endif
