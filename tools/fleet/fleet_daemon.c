/* squib-fleet daemon (docs/fleet.md): pools of pre-warmed squib processes
 * per shape, refilled in the background; clone requests hand them out and
 * load one snapshot into N of them at once; a pool process that dies is
 * replaced; snapshot identity is checked on every request; state as JSON.
 * One request per connection on <dir>/fleet.sock: a line of tab-separated
 * words, answered with one JSON object. */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fleet.h"
#include "fleet_daemon.h"

#define MAX_VMS	      4096
#define MAX_POOLS     8
#define MAX_SNAPS     64
#define WARM_LIMIT_NS (20ULL * 1000000000ULL) /* a shell not up by then is replaced */
#define FAIL_LIMIT    5			      /* failed spawns in a row: a pool stops */
#define LOAD_LIMIT_NS (30ULL * 1000000000ULL) /* a loaded pool's load not answered: replaced */
/* Spawns per pass of the loop (every 20 ms or after the requests waiting):
 * refilling 1000 members takes seconds (a fork or a zygote round trip
 * each), and a clone request that comes meanwhile is served between two
 * batches instead of after all of them. */
#define REFILL_BATCH 32
#define SERVE_BATCH  64 /* requests served in one pass before the pools refill */

struct pool {
	struct sqb_fleet_shape shape;
	unsigned int target, fails;
	uint64_t handed_out, replaced, spawned;
	char error[300];
	/* a loaded pool (--loaded): its snapshot (index in snaps[]), loaded
	 * ahead into every member and resumed by a clone request; -1: a
	 * shape pool */
	int si;
	const char *extra;     /* its members' extra load members, or NULL */
	int snap_ok;	       /* its snapshot was found at the last check: loads may start */
	unsigned int gen_seen; /* the snapshot's generation at the last check */
};

struct snap {
	char state[PATH_MAX], mem[PATH_MAX];
	struct sqb_fleet_ident st, mem_id;
	unsigned int gen;
	char change[32]; /* "", "replaced" or "modified_in_place" */
};

struct vm {
	struct sqb_fleet_proc p;
	int pool; /* -1: spawned cold for a request */
	int snap; /* index in snaps[], -1 before a load */
	unsigned int gen;
	double load_ms;
	int load_fd;	  /* a loaded pool's load in flight (its answer), else -1 */
	uint64_t load_ns; /* when it was sent */
};

struct fleet {
	const struct sqb_fleet_opts *o;
	int lfd;
	unsigned int seq;
	struct pool pools[MAX_POOLS];
	unsigned int npools;
	struct vm *vms[MAX_VMS];
	unsigned int nvms;
	struct snap snaps[MAX_SNAPS];
	unsigned int nsnaps;
	int stop;
	struct sqb_fleet_zygote zyg; /* --zygote; pid 0: none (exec squib) */
};

/* ---- a bounded JSON builder for the answers ---- */

struct out {
	char *buf;
	size_t cap, len;
};

static void put(struct out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(struct out *o, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (o->len >= o->cap)
		return;
	va_start(ap, fmt);
	n = vsnprintf(o->buf + o->len, o->cap - o->len, fmt, ap);
	va_end(ap);
	o->len = n < 0 ? o->cap : o->len + (size_t)n;
}

static void put_str(struct out *o, const char *s)
{
	put(o, "\"");
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\')
			put(o, "\\%c", c);
		else if (c < 0x20)
			put(o, "\\u%04x", c);
		else
			put(o, "%c", c);
	}
	put(o, "\"");
}

static void logf_(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void logf_(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "squib-fleet: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* ---- processes ---- */

static struct vm *vm_new(struct fleet *f, int pool, int prewarm, char *why, size_t whylen)
{
	struct vm *v;
	char dir[PATH_MAX], id[32];
	const struct sqb_fleet_shape *shape = pool >= 0 ? &f->pools[pool].shape : NULL;
	int err;

	if (f->nvms >= MAX_VMS) {
		snprintf(why, whylen, "squib-fleet holds %d processes already", MAX_VMS);
		return NULL;
	}
	v = calloc(1, sizeof(*v));
	if (!v) {
		snprintf(why, whylen, "out of memory");
		return NULL;
	}
	snprintf(id, sizeof(id), "vm-%06u", ++f->seq);
	snprintf(dir, sizeof(dir), "%s/vms/%s", f->o->dir, id);
	/* only pool members come from the zygote: a cold process for a
	 * request is exec'd (its own layout) */
	err = sqb_fleet_spawn_via(&v->p, pool >= 0 && f->zyg.pid ? &f->zyg : NULL, f->o->squib, dir,
				  id, shape, prewarm, 0);
	if (err) {
		snprintf(why, whylen, "cannot spawn squib in %.400s: %s", dir, strerror(-err));
		free(v);
		return NULL;
	}
	v->pool = pool;
	v->snap = -1;
	v->load_fd = -1;
	f->vms[f->nvms++] = v;
	if (pool >= 0)
		f->pools[pool].spawned++;
	return v;
}

static void vm_remove(struct fleet *f, unsigned int i)
{
	struct vm *v = f->vms[i];

	if (v->load_fd >= 0)
		close(v->load_fd);
	sqb_fleet_kill(&v->p);
	sqb_fleet_remove_dir(&v->p);
	free(v);
	f->vms[i] = f->vms[--f->nvms];
}

/* The last line squib wrote to its log: why a shell failed. */
static void last_log_line(const struct vm *v, char *buf, size_t cap)
{
	char path[PATH_MAX], line[512];
	FILE *fp;

	buf[0] = 0;
	snprintf(path, sizeof(path), "%s/squib.log", v->p.dir);
	fp = fopen(path, "r");
	while (fp && fgets(line, sizeof(line), fp))
		if (line[0] != '\n')
			snprintf(buf, cap, "%.*s", (int)strcspn(line, "\n"), line);
	if (fp)
		fclose(fp);
}

static void reap(struct fleet *f)
{
	int st;
	pid_t pid;

	while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
		if (pid == f->zyg.pid) {
			/* pool members are exec'd from now on; those it forked
			 * are ours and live on */
			logf_(
			    "the zygote exited (status 0x%x); pool members are exec'd from now on",
			    st);
			f->zyg.pid = 0;
			sqb_fleet_zygote_stop(&f->zyg);
			continue;
		}
		for (unsigned int i = 0; i < f->nvms; i++) {
			struct vm *v = f->vms[i];

			if (v->p.pid != pid)
				continue;
			v->p.pid = 0;
			v->p.exit_status = st;
			if (v->p.state == SQB_FLEET_CLONE) {
				v->p.state = SQB_FLEET_EXITED;
				logf_("clone %s exited (status 0x%x)", v->p.id, st);
			} else if (v->pool >= 0) {
				struct pool *pl = &f->pools[v->pool];
				char why[300];

				last_log_line(v, why, sizeof(why));
				if (v->p.state == SQB_FLEET_WARMING) {
					pl->fails++;
					snprintf(pl->error, sizeof(pl->error),
						 "squib --prewarm exited before its socket came "
						 "up: %.200s",
						 why[0] ? why : "(no log line)");
				} else {
					pl->replaced++;
				}
				logf_("pool process %s died (status 0x%x); replacing it", v->p.id,
				      st);
				vm_remove(f, i);
			} else {
				v->p.state = SQB_FLEET_EXITED;
			}
			break;
		}
	}
}

static int preload_send(struct fleet *f, struct vm *v, char *why, size_t whylen);
static int preload_poll(struct fleet *f, struct vm *v, uint64_t now, char *why, size_t whylen);
static void loaded_pool_check(struct fleet *f, unsigned int p);

static void refill(struct fleet *f)
{
	uint64_t now = sqb_fleet_now_ns();
	unsigned int budget = REFILL_BATCH;

	for (unsigned int p = 0; p < f->npools; p++)
		if (f->pools[p].si >= 0)
			loaded_pool_check(f, p);
	for (unsigned int i = 0; i < f->nvms; i++) {
		struct vm *v = f->vms[i];

		if (v->p.state == SQB_FLEET_WARM && v->pool >= 0 && f->pools[v->pool].si >= 0) {
			/* a loaded pool's member: its load is sent, then its
			 * answer picked up in a later pass (never waited for) */
			struct pool *pl = &f->pools[v->pool];
			char why[800];
			int rc = 0;

			if (v->load_fd < 0 && pl->snap_ok && budget) {
				budget--;
				rc = preload_send(f, v, why, sizeof(why));
			} else if (v->load_fd >= 0) {
				rc = preload_poll(f, v, now, why, sizeof(why));
				if (rc == 1) {
					pl->fails = 0;
					pl->error[0] = 0;
				}
			}
			if (rc < 0) {
				logf_("%s: %s", v->p.id, why);
				snprintf(pl->error, sizeof(pl->error), "%.290s", why);
				pl->fails++;
				vm_remove(f, i--);
			}
			continue;
		}
		if (v->p.state != SQB_FLEET_WARMING)
			continue;
		if (sqb_fleet_ready(&v->p)) {
			if (v->pool >= 0 && f->pools[v->pool].si < 0)
				f->pools[v->pool].fails = 0;
		} else if (now - v->p.spawned_ns > WARM_LIMIT_NS) {
			logf_("%s: no API socket after %llu s; replacing it", v->p.id,
			      (unsigned long long)(WARM_LIMIT_NS / 1000000000ULL));
			if (v->pool >= 0)
				f->pools[v->pool].fails++;
			vm_remove(f, i--);
		}
	}
	for (unsigned int p = 0; p < f->npools; p++) {
		struct pool *pl = &f->pools[p];
		unsigned int have = 0;
		char why[300];

		for (unsigned int i = 0; i < f->nvms; i++)
			have +=
			    f->vms[i]->pool == (int)p && (f->vms[i]->p.state == SQB_FLEET_WARMING ||
							  f->vms[i]->p.state == SQB_FLEET_WARM ||
							  f->vms[i]->p.state == SQB_FLEET_LOADED);
		if (pl->fails >= FAIL_LIMIT)
			continue; /* stopped: status says why */
		while (have < pl->target && budget && vm_new(f, (int)p, 1, why, sizeof(why))) {
			have++;
			budget--;
		}
	}
}

/* ---- snapshots ---- */

/* The snapshot's entry, its identity checked now: a changed file bumps the
 * generation, so clones of the old one show as stale and new clones use
 * the new file (squib re-verifies it: its verification cache keys on the
 * same identity). */
static int snap_lookup(struct fleet *f, const char *state, const char *mem, char *why,
		       size_t whylen);
static int clone_body(char *dst, size_t cap, const char *base, const char *extra,
		      const struct vm *v);

/* Send a loaded pool's snapshot load to a member that came up, not
 * resumed (resume_vm false): a clone request then only resumes it.  0: in
 * flight (v->load_fd); <0: the member failed (why says how). */
static int preload_send(struct fleet *f, struct vm *v, char *why, size_t whylen)
{
	struct pool *pl = &f->pools[v->pool];
	const struct snap *sn = &f->snaps[pl->si];
	char base[2400], body[8192];

	if (sqb_fleet_load_body_resume(base, sizeof(base), sn->state, sn->mem, 0) ||
	    clone_body(body, sizeof(body), base, pl->extra, v)) {
		snprintf(why, whylen, "the load body is too long");
		return -ENAMETOOLONG;
	}
	v->load_fd = sqb_fleet_http_send(v->p.sock, "PUT", "/snapshot/load", body);
	if (v->load_fd < 0) {
		snprintf(why, whylen, "cannot send the load: %s", strerror(-v->load_fd));
		v->load_fd = -1;
		return -EIO;
	}
	v->load_ns = sqb_fleet_now_ns();
	v->gen = sn->gen; /* a newer generation meanwhile: dropped once loaded */
	return 0;
}

/* The answer to a member's load, if it came: 1 loaded, 0 not yet, <0
 * refused or no answer in 30 s. */
static int preload_poll(struct fleet *f, struct vm *v, uint64_t now, char *why, size_t whylen)
{
	struct pollfd pf = {v->load_fd, POLLIN, 0};
	char resp[1024];
	int st;

	if (poll(&pf, 1, 0) <= 0) {
		if (now - v->load_ns < LOAD_LIMIT_NS)
			return 0;
		snprintf(why, whylen, "no answer to the load in 30 s");
		return -ETIMEDOUT; /* vm_remove closes load_fd */
	}
	st = sqb_fleet_http_recv(v->load_fd, resp, sizeof(resp), 2000); /* closes it */
	v->load_fd = -1;
	if (st != 204) {
		snprintf(why, whylen, "loading %.300s ahead failed: %.400s",
			 f->snaps[f->pools[v->pool].si].state,
			 st > 0 ? resp : strerror(st < 0 ? -st : EIO));
		return -EIO;
	}
	v->p.state = SQB_FLEET_LOADED;
	return 1;
}

/* A loaded pool's snapshot, its identity checked (every pass): members
 * loaded from an older generation are dropped and the pool reloads. */
static void loaded_pool_check(struct fleet *f, unsigned int p)
{
	struct pool *pl = &f->pools[p];
	char why[600];

	pl->snap_ok = 0;
	if (snap_lookup(f, f->snaps[pl->si].state, f->snaps[pl->si].mem, why, sizeof(why)) < 0) {
		snprintf(pl->error, sizeof(pl->error), "%.290s", why);
		return; /* gone: members keep what they hold; no new loads */
	}
	if (f->snaps[pl->si].gen != pl->gen_seen) {
		/* a new file (seen here or by a clone request): earlier
		 * failures were the old one's (or a copy in progress); its
		 * shape may differ */
		pl->fails = 0;
		pl->error[0] = 0;
		if (sqb_fleet_snapshot_shape(f->snaps[pl->si].state, &pl->shape, why,
					     sizeof(why))) {
			snprintf(pl->error, sizeof(pl->error), "%.290s", why);
			return; /* read again next pass */
		}
		pl->gen_seen = f->snaps[pl->si].gen;
	}
	pl->snap_ok = 1;
	for (unsigned int i = 0; i < f->nvms; i++) {
		struct vm *v = f->vms[i];

		if (v->pool == (int)p && v->p.state == SQB_FLEET_LOADED &&
		    v->gen != f->snaps[pl->si].gen) {
			logf_("%s holds generation %u of %s; dropping it", v->p.id, v->gen,
			      f->snaps[pl->si].state);
			vm_remove(f, i--);
		}
	}
}

static int snap_lookup(struct fleet *f, const char *state, const char *mem, char *why,
		       size_t whylen)
{
	struct sqb_fleet_ident a, b;
	struct snap *s;
	unsigned int i;
	int err;

	if ((err = sqb_fleet_ident(state, &a)) || (err = sqb_fleet_ident(mem, &b))) {
		snprintf(why, whylen, "cannot stat the snapshot: %s", strerror(-err));
		return err;
	}
	for (i = 0; i < f->nsnaps; i++)
		if (!strcmp(f->snaps[i].state, state) && !strcmp(f->snaps[i].mem, mem))
			break;
	if (i == f->nsnaps) {
		if (f->nsnaps >= MAX_SNAPS) {
			snprintf(why, whylen, "squib-fleet tracks %d snapshots at most", MAX_SNAPS);
			return -ENOSPC;
		}
		s = &f->snaps[f->nsnaps++];
		memset(s, 0, sizeof(*s));
		snprintf(s->state, sizeof(s->state), "%s", state);
		snprintf(s->mem, sizeof(s->mem), "%s", mem);
		s->st = a;
		s->mem_id = b;
		return (int)i;
	}
	s = &f->snaps[i];
	if (!sqb_fleet_ident_equal(&s->st, &a) || !sqb_fleet_ident_equal(&s->mem_id, &b)) {
		int in_place = s->st.ino == a.ino && s->mem_id.ino == b.ino;

		snprintf(s->change, sizeof(s->change), "%s",
			 in_place ? "modified_in_place" : "replaced");
		logf_("snapshot %s changed on disk (%s); clones of generation %u are stale, new "
		      "clones load generation %u",
		      state, s->change, s->gen, s->gen + 1);
		s->gen++;
		s->st = a;
		s->mem_id = b;
	}
	return (int)i;
}

/* ---- requests ---- */

static int shape_pool(struct fleet *f, const struct sqb_fleet_shape *sh)
{
	for (unsigned int p = 0; p < f->npools; p++)
		if (f->pools[p].si < 0 && f->pools[p].shape.vcpus == sh->vcpus &&
		    f->pools[p].shape.mem_mib == sh->mem_mib)
			return (int)p;
	return -1;
}

/* The loaded pool of this snapshot (same paths), or -1. */
static int loaded_pool(struct fleet *f, int si)
{
	for (unsigned int p = 0; p < f->npools; p++)
		if (f->pools[p].si == si)
			return (int)p;
	return -1;
}

static unsigned int open_fds(void)
{
	unsigned int n = 0;
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;

	while (d && (e = readdir(d)))
		n += e->d_name[0] != '.';
	if (d)
		closedir(d);
	return n;
}

/* The load body for one clone: the common body with the request's extra
 * members appended, "{id}" and "{dir}" replaced by the clone's own (its
 * per-clone identity: vsock paths, MACs, seeds once squib takes them). */
static int clone_body(char *dst, size_t cap, const char *base, const char *extra,
		      const struct vm *v)
{
	size_t n = strlen(base) - 1; /* without the closing brace */

	if (!extra || !*extra)
		return snprintf(dst, cap, "%s", base) < (int)cap ? 0 : -ENAMETOOLONG;
	if (n + 2 >= cap)
		return -ENAMETOOLONG;
	memcpy(dst, base, n);
	dst[n++] = ',';
	for (const char *e = extra; *e; e++) {
		const char *sub = !strncmp(e, "{id}", 4)    ? v->p.id
				  : !strncmp(e, "{dir}", 5) ? v->p.dir
							    : NULL;
		size_t l = sub ? strlen(sub) : 1;

		if (n + l + 2 >= cap)
			return -ENAMETOOLONG;
		memcpy(dst + n, sub ? sub : e, l);
		n += l;
		e += sub ? (sub == v->p.id ? 3 : 4) : 0;
	}
	dst[n++] = '}';
	dst[n] = 0;
	return 0;
}

static void do_clone(struct fleet *f, char **w, int nw, struct out *o)
{
	struct sqb_fleet_shape sh;
	struct vm **take = NULL;
	int *fds = NULL;
	char why[600], body[2400], one[8192];
	unsigned long n;
	int nopool, pool, lpool, si = -1, err;
	unsigned int got = 0, ok = 0, pooled = 0, loaded = 0;
	uint64_t t0 = sqb_fleet_now_ns();

	reap(f); /* a member that died while the daemon waited is not handed out */
	if ((nw != 5 && nw != 6) || !(n = strtoul(w[3], NULL, 10)) || n > MAX_VMS) {
		put(o,
		    "{\"error\":\"clone wants: state, memory, count 1..%d, nopool[, extra load "
		    "members]\"}",
		    MAX_VMS);
		return;
	}
	nopool = !strcmp(w[4], "1");
	err = sqb_fleet_snapshot_shape(w[1], &sh, why, sizeof(why));
	if (!err && (si = snap_lookup(f, w[1], w[2], why, sizeof(why))) < 0)
		err = si;
	if (!err)
		err = sqb_fleet_host_check((unsigned int)n, &sh, f->o->reserve_mib, open_fds(), why,
					   sizeof(why));
	if (!err && (err = sqb_fleet_load_body(body, sizeof(body), w[1], w[2])))
		snprintf(why, sizeof(why), "snapshot paths too long");
	if (err) {
		put(o, "{\"error\":");
		put_str(o, why);
		put(o, "}");
		return;
	}
	if (f->nvms + n > MAX_VMS) {
		put(o, "{\"error\":\"%lu clones would exceed %d processes in this fleet\"}", n,
		    MAX_VMS);
		return;
	}
	pool = nopool ? -1 : shape_pool(f, &sh);
	/* a loaded pool serves requests without their own extra members (its
	 * members were loaded with the pool's) */
	lpool = nopool || nw == 6 ? -1 : loaded_pool(f, si);
	take = calloc(n, sizeof(*take));
	fds = calloc(n, sizeof(*fds));
	if (!take || !fds) {
		put(o, "{\"error\":\"out of memory\"}");
		goto out;
	}
	for (unsigned int i = 0; i < f->nvms && got < n && lpool >= 0; i++)
		if (f->vms[i]->pool == lpool && f->vms[i]->p.state == SQB_FLEET_LOADED &&
		    f->vms[i]->gen == f->snaps[si].gen)
			take[got++] = f->vms[i];
	loaded = got;
	for (unsigned int i = 0; i < f->nvms && got < n && pool >= 0; i++)
		if (f->vms[i]->pool == pool &&
		    (f->vms[i]->p.state == SQB_FLEET_WARM || sqb_fleet_ready(&f->vms[i]->p)))
			take[got++] = f->vms[i];
	pooled = got;
	for (; got < n; got++) /* cold: plain squib, no shell */
		if (!(take[got] = vm_new(f, -1, 0, why, sizeof(why))))
			break;
	for (unsigned int i = pooled; i < got; i++)
		if (sqb_fleet_wait_ready(&take[i]->p, 10000))
			take[i]->p.state = SQB_FLEET_EXITED; /* reported below */
	for (unsigned int i = 0; i < got; i++) {	     /* all loads in flight at once */
		if (i < loaded)				     /* loaded ahead: only resumed */
			fds[i] = sqb_fleet_http_send(take[i]->p.sock, "PATCH", "/vm",
						     SQB_FLEET_RESUME_BODY);
		else if (take[i]->p.state != SQB_FLEET_WARM)
			fds[i] = -ECHILD;
		else if (clone_body(one, sizeof(one), body, nw == 6 ? w[5] : NULL, take[i]))
			fds[i] = -ENAMETOOLONG;
		else
			fds[i] = sqb_fleet_http_send(take[i]->p.sock, "PUT", "/snapshot/load", one);
	}
	put(o, "{\"snapshot\":");
	put_str(o, w[1]);
	put(o, ",\"generation\":%u,\"clones\":[", f->snaps[si].gen);
	for (unsigned int i = 0; i < got; i++) {
		struct vm *v = take[i];
		char resp[1024];
		int st =
		    fds[i] >= 0 ? sqb_fleet_http_recv(fds[i], resp, sizeof(resp), 30000) : fds[i];

		if (i)
			put(o, ",");
		put(o, "{\"id\":\"%s\",\"pooled\":%s,\"loaded_ahead\":%s,", v->p.id,
		    i < pooled ? "true" : "false", i < loaded ? "true" : "false");
		if (st == 204) {
			if (v->pool >= 0)
				f->pools[v->pool].handed_out++;
			v->p.state = SQB_FLEET_CLONE;
			v->snap = si;
			v->gen = f->snaps[si].gen;
			v->load_ms = (double)(sqb_fleet_now_ns() - t0) / 1e6;
			v->pool = -1; /* no longer the pool's: the pool refills */
			put(o, "\"pid\":%d,\"api_sock\":", (int)v->p.pid);
			put_str(o, v->p.sock);
			put(o, ",\"dir\":");
			put_str(o, v->p.dir);
			put(o, ",\"ready_ms\":%.3f}", v->load_ms);
			ok++;
		} else {
			char msg[1100];
			snprintf(msg, sizeof(msg), "%s failed: %s", i < loaded ? "resume" : "load",
				 st > 0 ? resp : strerror(st < 0 ? -st : EIO));
			put(o, "\"error\":");
			put_str(o, msg);
			put(o, "}");
			v->p.state = SQB_FLEET_EXITED; /* never a half-loaded clone */
			sqb_fleet_kill(&v->p);
		}
	}
	put(o, "],\"requested\":%lu,\"ok\":%u,\"from_pool\":%u,\"from_loaded\":%u,\"wall_ms\":%.3f",
	    n, ok, pooled, loaded, (double)(sqb_fleet_now_ns() - t0) / 1e6);
	if (got < n) {
		put(o, ",\"error\":");
		put_str(o, why);
	}
	put(o, "}");
	for (unsigned int i = 0; i < f->nvms; i++) /* drop failed ones now */
		if (f->vms[i]->p.state == SQB_FLEET_EXITED && f->vms[i]->snap < 0)
			vm_remove(f, i--);
out:
	free(take);
	free(fds);
}

static const char *state_name(enum sqb_fleet_pstate s)
{
	static const char *const n[] = {"warming", "warm", "running", "exited", "loaded"};
	return n[s];
}

static void do_list(struct fleet *f, struct out *o)
{
	put(o, "{\"pools\":[");
	for (unsigned int p = 0; p < f->npools; p++) {
		struct pool *pl = &f->pools[p];
		unsigned int warm = 0, warming = 0, loaded = 0;

		for (unsigned int i = 0; i < f->nvms; i++)
			if (f->vms[i]->pool == (int)p) {
				warm += f->vms[i]->p.state == SQB_FLEET_WARM;
				warming += f->vms[i]->p.state == SQB_FLEET_WARMING;
				loaded += f->vms[i]->p.state == SQB_FLEET_LOADED;
			}
		put(o,
		    "%s{\"vcpus\":%u,\"mem_mib\":%llu,\"target\":%u,\"warm\":%u,\"warming\":%u,"
		    "\"handed_out\":%llu,\"replaced\":%llu,\"spawned\":%llu,\"failures_in_a_row\":%"
		    "u",
		    p ? "," : "", pl->shape.vcpus, (unsigned long long)pl->shape.mem_mib,
		    pl->target, warm, warming, (unsigned long long)pl->handed_out,
		    (unsigned long long)pl->replaced, (unsigned long long)pl->spawned, pl->fails);
		if (pl->si >= 0) {
			put(o, ",\"snapshot\":");
			put_str(o, f->snaps[pl->si].state);
			put(o, ",\"generation\":%u,\"loaded\":%u", f->snaps[pl->si].gen, loaded);
		}
		if (pl->error[0]) {
			put(o, ",\"error\":");
			put_str(o, pl->error);
		}
		put(o, "}");
	}
	put(o, "],\"clones\":[");
	for (unsigned int i = 0, k = 0; i < f->nvms; i++) {
		struct vm *v = f->vms[i];

		if (v->snap < 0)
			continue;
		put(o, "%s{\"id\":\"%s\",\"state\":\"%s\",\"pid\":%d,\"api_sock\":", k++ ? "," : "",
		    v->p.id, state_name(v->p.state), (int)v->p.pid);
		put_str(o, v->p.sock);
		put(o, ",\"snapshot\":");
		put_str(o, f->snaps[v->snap].state);
		put(o, ",\"generation\":%u,\"snapshot_stale\":%s", v->gen,
		    v->gen != f->snaps[v->snap].gen ? "true" : "false");
		if (v->gen != f->snaps[v->snap].gen)
			put(o, ",\"snapshot_change\":\"%s\"", f->snaps[v->snap].change);
		if (v->p.state == SQB_FLEET_EXITED)
			put(o, ",\"exit_status\":%d", v->p.exit_status);
		put(o, "}");
	}
	put(o, "]}");
}

static int match(const struct vm *v, const char *id)
{
	return !strcmp(id, "all") || !strcmp(id, v->p.id);
}

static void do_stop(struct fleet *f, char **w, int nw, struct out *o)
{
	unsigned int n = 0;

	for (unsigned int i = 0; nw == 2 && i < f->nvms; i++)
		if (f->vms[i]->snap >= 0 && match(f->vms[i], w[1])) {
			vm_remove(f, i--);
			n++;
		}
	put(o, "{\"stopped\":%u}", n);
}

static void do_reap(struct fleet *f, struct out *o)
{
	unsigned int n = 0;

	for (unsigned int i = 0; i < f->nvms; i++)
		if (f->vms[i]->snap >= 0 && f->vms[i]->p.state == SQB_FLEET_EXITED) {
			vm_remove(f, i--);
			n++;
		}
	put(o, "{\"reaped\":%u}", n);
}

/* Serial input for a clone (tests: ask a guest to check itself). */
static void do_input(struct fleet *f, char **w, int nw, struct out *o)
{
	unsigned int n = 0;

	for (unsigned int i = 0; nw == 3 && i < f->nvms; i++) {
		struct vm *v = f->vms[i];
		if (v->snap >= 0 && v->p.state == SQB_FLEET_CLONE && match(v, w[1]) &&
		    write(v->p.stdin_fd, w[2], strlen(w[2])) == (ssize_t)strlen(w[2]))
			n++;
	}
	put(o, "{\"sent\":%u}", n);
}

/* A pool process's pid (tests kill it to see it replaced). */
static void do_pool_pids(struct fleet *f, struct out *o)
{
	put(o, "{\"pids\":[");
	for (unsigned int i = 0, k = 0; i < f->nvms; i++)
		if (f->vms[i]->pool >= 0 && f->vms[i]->p.state == SQB_FLEET_WARM &&
		    f->vms[i]->p.pid > 1)
			put(o, "%s%d", k++ ? "," : "", (int)f->vms[i]->p.pid);
	put(o, "]}");
}

static void handle(struct fleet *f, char *line, struct out *o)
{
	char *w[8], *save = NULL;
	int nw = 0;

	line[strcspn(line, "\n")] = 0;
	for (char *t = strtok_r(line, "\t", &save); t && nw < 8; t = strtok_r(NULL, "\t", &save))
		w[nw++] = t;
	if (!nw)
		put(o, "{\"error\":\"empty request\"}");
	else if (!strcmp(w[0], "clone"))
		do_clone(f, w, nw, o);
	else if (!strcmp(w[0], "list"))
		do_list(f, o);
	else if (!strcmp(w[0], "stop"))
		do_stop(f, w, nw, o);
	else if (!strcmp(w[0], "reap"))
		do_reap(f, o);
	else if (!strcmp(w[0], "input"))
		do_input(f, w, nw, o);
	else if (!strcmp(w[0], "pool-pids"))
		do_pool_pids(f, o);
	else if (!strcmp(w[0], "shutdown")) {
		f->stop = 1;
		put(o, "{\"shutdown\":true}");
	} else {
		put(o, "{\"error\":\"unknown request\"}");
	}
}

/* One request if one is waiting: 1 served, 0 none (the listening socket
 * is non-blocking). */
static int serve_one(struct fleet *f)
{
	char line[8192];
	size_t len = 0;
	int c = accept4(f->lfd, NULL, NULL, SOCK_CLOEXEC);
	/* one client at a time: the whole line within 2 s (not 2 s per
	 * read: a client trickling bytes would hold the daemon for ever), and
	 * an answer it does not read gives up after 2 s too */
	const struct timeval snd = {2, 0};
	uint64_t end = sqb_fleet_now_ns() / 1000000 + 2000;
	struct out o;

	if (c < 0)
		return 0;
	(void)setsockopt(c, SOL_SOCKET, SO_SNDTIMEO, &snd, sizeof(snd));
	while (len < sizeof(line) - 1 && !memchr(line, '\n', len)) {
		struct pollfd pf = {c, POLLIN, 0};
		uint64_t t = sqb_fleet_now_ns() / 1000000;
		ssize_t r;

		if (t >= end || poll(&pf, 1, (int)(end - t)) <= 0)
			break;
		r = read(c, line + len, sizeof(line) - 1 - len);
		if (r <= 0)
			break;
		len += (size_t)r;
	}
	line[len] = 0;
	o.cap = 1 << 20;
	o.len = 0;
	o.buf = malloc(o.cap);
	if (o.buf) {
		handle(f, line, &o);
		if (o.len >= o.cap) /* never a cut JSON object */
			o.len = (size_t)snprintf(o.buf, o.cap, "{\"error\":\"answer too large\"}");
		for (size_t off = 0; off < o.len;) {
			ssize_t r = send(c, o.buf + off, o.len - off, MSG_NOSIGNAL);
			if (r <= 0)
				break;
			off += (size_t)r;
		}
		free(o.buf);
	}
	close(c);
	return 1;
}

static int listen_on(const char *path)
{
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	int fd;

	if (strlen(path) >= sizeof(a.sun_path))
		return -ENAMETOOLONG;
	strcpy(a.sun_path, path);
	unlink(path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(fd, 256) < 0) {
		int err = -errno;
		close(fd);
		return err;
	}
	return fd;
}

int sqb_fleet_daemon(const struct sqb_fleet_opts *o)
{
	static struct fleet f; /* large: not on the stack */
	char path[PATH_MAX];

	memset(&f, 0, sizeof(f));
	f.o = o;
	signal(SIGPIPE, SIG_IGN);
	for (unsigned int i = 0; i < o->npools && i < MAX_POOLS; i++) {
		struct pool *pl = &f.pools[i];
		char why[600];

		pl->shape = o->pools[i].shape;
		pl->target = o->pools[i].count;
		pl->si = -1;
		f.npools++;
		if (!o->pools[i].state)
			continue;
		/* a loaded pool: the shape is its snapshot's */
		pl->extra = o->pools[i].extra;
		if (sqb_fleet_snapshot_shape(o->pools[i].state, &pl->shape, why, sizeof(why)) ||
		    (pl->si = snap_lookup(&f, o->pools[i].state, o->pools[i].mem, why,
					  sizeof(why))) < 0) {
			logf_("--loaded %s: %s", o->pools[i].state, why);
			return 1;
		}
		for (unsigned int k = 0; k < i; k++)
			if (f.pools[k].si == pl->si) {
				logf_("--loaded %s: given twice (one pool per snapshot)",
				      o->pools[i].state);
				return 1;
			}
		pl->snap_ok = 1;
	}
	snprintf(path, sizeof(path), "%s/vms", o->dir);
	if ((mkdir(o->dir, 0700) < 0 && errno != EEXIST) ||
	    (mkdir(path, 0700) < 0 && errno != EEXIST)) {
		logf_("cannot create %s: %s", path, strerror(errno));
		return 1;
	}
	snprintf(path, sizeof(path), "%s/fleet.sock", o->dir);
	f.lfd = listen_on(path);
	if (f.lfd < 0) {
		logf_("cannot listen on %s: %s", path, strerror(-f.lfd));
		return 1;
	}
	if (o->zygote) {
		int err = sqb_fleet_zygote_start(&f.zyg, o->squib);

		if (err) {
			logf_("cannot start the zygote: %s", strerror(-err));
			close(f.lfd);
			unlink(path);
			return 1;
		}
	}
	logf_("listening on %s (%u pool(s)%s)", path, f.npools,
	      o->zygote ? ", members forked by a zygote" : "");
	while (!f.stop) {
		struct pollfd pf = {f.lfd, POLLIN, 0};

		reap(&f);
		refill(&f);
		/* requests first: every one waiting (up to a batch) before the
		 * pools refill again */
		if (poll(&pf, 1, 20) > 0)
			for (unsigned int k = 0; k < SERVE_BATCH && !f.stop && serve_one(&f); k++)
				reap(&f); /* a member that died meanwhile is not handed out */
	}
	while (f.nvms)
		vm_remove(&f, 0);
	sqb_fleet_zygote_stop(&f.zyg);
	close(f.lfd);
	unlink(path);
	return 0;
}
