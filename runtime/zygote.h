/* squib --zygote FD (docs/fleet.md "Zygote"): one relocated, initialised
 * squib that forks the members of a fleet's pools, so that the pages no
 * member writes (relocated read-only data, libc's data, the early heap)
 * are shared between them instead of copied into each.
 *
 *   spawner (child subreaper) ──socketpair FD──> zygote (one thread, no VM)
 *     request: argv\0argv\0...  + SCM_RIGHTS {stdin, stdout, stderr}
 *     answer:  int32 pid (> 0) or -errno
 *   zygote ─fork─> helper ─fork─> member; the helper answers and exits, so
 *   the member is re-parented to the spawner, which waits for it as for any
 *   child.  The member then runs main() with the request's argv: it creates
 *   its own VM, threads and seccomp filters.
 */
#ifndef SQB_RUNTIME_ZYGOTE_H
#define SQB_RUNTIME_ZYGOTE_H

/* Serve requests on fd until the spawner closes it.  Returns in the zygote
 * (1: end, exit status 0; -1: could not serve, status 1), or 0 in a member,
 * with *argc / *argv set to the request's command line (argv[0] included)
 * and fds 0-2 replaced by the request's. */
int sqb_zygote_serve(int fd, int *argc, char ***argv);

#endif
