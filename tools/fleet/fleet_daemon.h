/* squib-fleet daemon options (fleet_daemon.c, docs/fleet.md). */
#ifndef SQB_FLEET_DAEMON_H
#define SQB_FLEET_DAEMON_H

#include "fleet.h"

struct sqb_fleet_pool_opt {
	struct sqb_fleet_shape shape;
	unsigned int count; /* pre-warmed processes kept ready */
	/* --loaded: members hold this snapshot loaded, not resumed (the
	 * shape is the snapshot's); extra: load members, {id} {dir} each */
	const char *state, *mem, *extra;
};

struct sqb_fleet_opts {
	const char *dir;   /* fleet.sock, vms/<id>/ */
	const char *squib; /* the squib binary */
	struct sqb_fleet_pool_opt pools[8];
	unsigned int npools;
	uint64_t reserve_mib; /* private memory a clone may write, for the host check */
	int zygote;	      /* --zygote: pool members forked by a squib zygote */
};

/* Serve until a "shutdown" request; every squib it started ends with it. */
int sqb_fleet_daemon(const struct sqb_fleet_opts *o);

#endif
