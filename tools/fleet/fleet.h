/* squib-fleet internals (tools/fleet/, docs/fleet.md): one squib process per
 * VM, spawned pre-warmed (--prewarm) into its own folder, driven over its
 * API socket.  Shared by the daemon, the CLI and bench/fleet_bench.c.
 *
 *   pool[shape] ── proc WARMING ──socket up──> WARM ──clone──> CLONE
 *                      │  died / timed out: replaced     │ died: EXITED
 *                      └──────────────── reap ───────────┴──> gone
 *   clone = proc + snapshot identity (dev, inode, size, ctime) at load
 *
 * Uses only public headers (include/squib/).
 */
#ifndef SQB_FLEET_H
#define SQB_FLEET_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct sqb_fleet_shape {
	unsigned int vcpus;
	uint64_t mem_mib;
};

enum sqb_fleet_pstate {
	SQB_FLEET_WARMING = 0, /* spawned, its shell and socket not up yet */
	SQB_FLEET_WARM,	       /* in a pool: shell ready, no snapshot */
	SQB_FLEET_CLONE,       /* a snapshot loaded and resumed */
	SQB_FLEET_EXITED,      /* the process is gone (reap removes it) */
	SQB_FLEET_LOADED,      /* in a loaded pool: its snapshot loaded, not resumed */
};

/* What identifies a snapshot file's contents without reading them: a file
 * replaced (rename) gets another inode, one rewritten in place another
 * ctime; either makes clones loaded before it "stale". */
struct sqb_fleet_ident {
	uint64_t dev, ino, size;
	int64_t ctime_ns;
};

struct sqb_fleet_proc {
	pid_t pid;
	enum sqb_fleet_pstate state;
	char id[32];
	char dir[200]; /* its folder: api.sock, serial.log, squib.log */
	char sock[220];
	int stdin_fd; /* the guest's serial input (squib's stdin), -1: none */
	int out_fd;   /* serial output pipe when spawned with out_pipe, else -1 */
	struct sqb_fleet_shape shape;
	int prewarmed;
	int from_zygote; /* forked by a zygote (sqb_fleet_spawn_via) */
	uint64_t spawned_ns, ready_ns;
	int exit_status; /* wait status once EXITED */
};

uint64_t sqb_fleet_now_ns(void);

/* Spawn squib into dir (created) with --api-sock dir/api.sock, prewarmed
 * with shape when prewarm, serial output to dir/serial.log (or a pipe read
 * through p->out_fd when out_pipe), stderr to dir/squib.log, squib's log
 * (Info) to dir/vmm.log, stdin from a
 * pipe (p->stdin_fd).  The child dies with its parent (PR_SET_PDEATHSIG). */
/* The environment a pool member (or a zygote) is exec'd with: ours, with
 * GLIBC_TUNABLES=...:glibc.malloc.tcache_count=0 (docs/fleet.md "Load
 * leftovers").  NULL when out of memory; free with the function below. */
char **sqb_fleet_member_env(void);
void sqb_fleet_member_env_free(char **env);

int sqb_fleet_spawn(struct sqb_fleet_proc *p, const char *squib, const char *dir, const char *id,
		    const struct sqb_fleet_shape *shape, int prewarm, int out_pipe);
/* A squib zygote (squib --zygote FD, docs/fleet.md "Zygote"): pool members
 * forked from one initialised squib share the pages none of them writes.
 * Starting one makes the caller a child subreaper (PR_SET_CHILD_SUBREAPER):
 * the members become the caller's children, waited for as usual.  Every
 * member shares the zygote's address-space layout (docs/security.md). */
struct sqb_fleet_zygote {
	pid_t pid;
	int fd; /* SOCK_SEQPACKET to the zygote */
};
int sqb_fleet_zygote_start(struct sqb_fleet_zygote *z, const char *squib);
/* Close its socket (the zygote exits) and wait for it. */
void sqb_fleet_zygote_stop(struct sqb_fleet_zygote *z);
/* sqb_fleet_spawn, the member forked by z instead (z NULL: exec squib).  A
 * zygote that did not answer within 10 s, or could not be reached, is not
 * asked again (its fd closed and set to -1, so it exits): that request
 * fails, later ones exec squib. */
int sqb_fleet_spawn_via(struct sqb_fleet_proc *p, struct sqb_fleet_zygote *z, const char *squib,
			const char *dir, const char *id, const struct sqb_fleet_shape *shape,
			int prewarm, int out_pipe);
/* 1 once the API socket accepts a connection, 0 not yet. */
int sqb_fleet_ready(struct sqb_fleet_proc *p);
/* Wait until ready (polling), up to timeout_ms; 0, -ETIMEDOUT or -ECHILD. */
int sqb_fleet_wait_ready(struct sqb_fleet_proc *p, int timeout_ms);
/* SIGKILL (pid checked > 1), wait, close its descriptors. */
void sqb_fleet_kill(struct sqb_fleet_proc *p);

/* Remove the folder's files squib-fleet made (api.sock, serial.log,
 * squib.log, vmm.log) and the folder if it is then empty. */
void sqb_fleet_remove_dir(const struct sqb_fleet_proc *p);

/* One HTTP/1.1 request on a fresh connection: status or -errno; body gets
 * the response body (NUL-terminated, truncated to cap). */
int sqb_fleet_http(const char *sock, const char *method, const char *path, const char *json,
		   char *body, size_t cap, int timeout_ms);
/* The same in two halves, so many squib processes work at once: send
 * returns a connected fd (or -errno), recv reads the answer and closes. */
int sqb_fleet_http_send(const char *sock, const char *method, const char *path, const char *json);
int sqb_fleet_http_recv(int fd, char *body, size_t cap, int timeout_ms);
/* The PUT /snapshot/load body for a File backend, resumed. */
int sqb_fleet_load_body(char *buf, size_t cap, const char *state, const char *mem);
/* The same with "resume_vm": false when !resume (a member loaded ahead). */
int sqb_fleet_load_body_resume(char *buf, size_t cap, const char *state, const char *mem,
			       int resume);
/* The PATCH /vm body that resumes such a member. */
#define SQB_FLEET_RESUME_BODY "{\"state\":\"Resumed\"}"

/* Snapshot shape from the state file's CONF section; 0 or -errno/-SQB_E*
 * with why (a sentence). */
int sqb_fleet_snapshot_shape(const char *state, struct sqb_fleet_shape *out, char *why,
			     size_t whylen);
int sqb_fleet_ident(const char *path, struct sqb_fleet_ident *out);
int sqb_fleet_ident_equal(const struct sqb_fleet_ident *a, const struct sqb_fleet_ident *b);

/* Host capacity: can n more clones of shape fit, each reserving
 * reserve_mib of private memory beyond its shared pages?  0, or -ENOMEM /
 * -EMFILE with why (numbers included). */
int sqb_fleet_host_check(unsigned int n, const struct sqb_fleet_shape *shape, uint64_t reserve_mib,
			 unsigned int open_fds, char *why, size_t whylen);

/* /proc/PID/smaps_rollup in KiB: Pss, Pss_Anon, Pss_File, Pss_Shmem,
 * Private_Dirty (-1 each where absent); 0 or -errno. */
struct sqb_fleet_mem {
	long pss, pss_anon, pss_file, pss_shmem, private_dirty, rss;
};
int sqb_fleet_smaps(pid_t pid, struct sqb_fleet_mem *out);

/* Append to a serial pipe's reader until needle shows or timeout_ms
 * passes: 0 or -ETIMEDOUT.  buf/len keep what was read (for a later call). */
int sqb_fleet_wait_text(int fd, char *buf, size_t cap, size_t *len, const char *needle,
			int timeout_ms);

/* Boot kernel (args) in a fresh squib of shape in dir, wait for
 * ready_text on its serial output, pause and write a Full snapshot to
 * state/mem: the golden image clones come from.  0 or -errno with why. */
int sqb_fleet_golden(const char *squib, const char *dir, const char *kernel, const char *args,
		     const struct sqb_fleet_shape *shape, const char *ready_text, const char *state,
		     const char *mem, char *why, size_t whylen);
/* The same with one more configuration request before the start (put_path
 * and put_body; NULL: none), e.g. PUT /entropy {} for a virtio-rng device. */
int sqb_fleet_golden_cfg(const char *squib, const char *dir, const char *kernel, const char *args,
			 const struct sqb_fleet_shape *shape, const char *put_path,
			 const char *put_body, const char *ready_text, const char *state,
			 const char *mem, char *why, size_t whylen);

#endif
