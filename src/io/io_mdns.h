/* SPDX-License-Identifier: MIT */
/*
 * The mDNS listener of a pc driver (io_mdns.c). The browsers answer mDNS queries only by
 * multicast to 224.0.0.251:5353 (see src/ice/ice_mdns.h), so a pc that resolves ".local"
 * candidates needs a socket bound to that group and port: the driver opens it when the pc
 * first sends to 224.0.0.251:5353, and what it receives goes to the pc like any datagram, with
 * `local` set to 224.0.0.251:5353.
 */
#ifndef TERN_IO_IO_MDNS_H
#define TERN_IO_IO_MDNS_H

#include "io/io_loop.h"

/* Socket slots a pc driver keeps free, after its UDP sockets, for the mDNS listener. */
#define TERN_IO_MDNS_SOCKS 1

/*
 * Called for every transmit of a pc before it is queued: a query to 224.0.0.251:5353 opens the
 * pc's listener if it has none yet (in the spare slot), joined to the group on the interfaces
 * of the pc's IPv4 sockets. A listener that cannot be opened is not tried again (warned once).
 */
void tern_io_mdns_on_transmit(tern_loop_t *loop, tern_io_pc_t *e, const tern_transmit_t *t);

#endif
