/* Per-thread seccomp filters for squib (docs/security.md "Seccomp"): builds
 * one BPF program per thread kind from seccomp_lists.c with libseccomp, or
 * reads a compiled program (--seccomp-filter), installs it at each thread's
 * entry and reports a forbidden call by name before the process dies. */

#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <seccomp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>

#include "seccomp_lists.h"
#include "sqb_confine.h"

#define NR_NAMES 512 /* x86_64 numbers stay below this */

static struct {
	int enabled;
	struct sock_fprog prog[SQB_CONFINE_NKINDS];
	char *names[NR_NAMES]; /* resolved up front: the handler cannot malloc */
	void *store;	       /* after setup: programs and names in one mapping */
	size_t store_len;
} g;

static _Thread_local int t_kind = -1;

static const char *const kind_names[SQB_CONFINE_NKINDS] = {
    [SQB_CONFINE_API] = "api",
    [SQB_CONFINE_VCPU] = "vcpu",
    [SQB_CONFINE_EVLOOP] = "evloop",
    [SQB_CONFINE_WATCH] = "uffd-watch",
};

const char *sqb_confine_kind_name(enum sqb_confine_kind kind)
{
	return (unsigned int)kind < SQB_CONFINE_NKINDS ? kind_names[kind] : "?";
}

int sqb_confine_enabled(void)
{
	return g.enabled;
}

static void diag_set(struct sqb_diag *d, const char *where, const char *fmt, const char *a,
		     const char *b)
{
	if (!d)
		return;
	d->offset = UINT64_MAX;
	snprintf(d->section, sizeof(d->section), "%s", where);
	snprintf(d->reason, sizeof(d->reason), fmt, a, b);
}

/* ---- building the programs ---- */

static int add_rule(scmp_filter_ctx ctx, const struct sqb_sc_rule *r, struct sqb_diag *diag)
{
	int nr = seccomp_syscall_resolve_name(r->name);
	int rc = 0;

	if (nr == __NR_SCMP_ERROR) {
		diag_set(diag, "seccomp", "unknown system call '%s' in the %s list", r->name,
			 "built-in");
		return -EINVAL;
	}
	switch (r->arg) {
	case SQB_SC_ANY:
		rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 0);
		break;
	case SQB_SC_NOEXEC: /* mmap(addr, len, prot, ...) and mprotect(addr, len, prot) */
		rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 1,
				      SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0));
		break;
	case SQB_SC_AF_UNIX:
		rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 1, SCMP_A0(SCMP_CMP_EQ, AF_UNIX));
		break;
	case SQB_SC_IOCTLS:
		/* the kernel reads the request as 32 bits: compare those only */
		for (const unsigned long *q = r->ioctls; *q && !rc; q++)
			rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 1,
					      SCMP_A1(SCMP_CMP_MASKED_EQ, 0xffffffffUL, *q));
		break;
	case SQB_SC_EACCES:
		rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EACCES), nr, 0);
		break;
	case SQB_SC_ARG0_EQ:
		for (const unsigned long *q = r->ioctls; *q && !rc; q++)
			rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 1, SCMP_A0(SCMP_CMP_EQ, *q));
		break;
	}
	if (rc < 0)
		diag_set(diag, "seccomp", "libseccomp refused the rule for '%s' (%s)", r->name,
			 strerror(-rc));
	return rc;
}

/* libseccomp 2.5 exports to an fd only: go through a memfd. */
static int export_prog(scmp_filter_ctx ctx, struct sock_fprog *out)
{
	int fd = memfd_create("squib-seccomp", MFD_CLOEXEC);
	struct stat st;
	void *buf = NULL;
	int rc;

	if (fd < 0)
		return -errno;
	rc = seccomp_export_bpf(ctx, fd);
	if (rc < 0)
		goto out;
	if (fstat(fd, &st) < 0 || st.st_size <= 0 || st.st_size % sizeof(struct sock_filter)) {
		rc = -EIO;
		goto out;
	}
	buf = malloc(st.st_size);
	if (!buf || pread(fd, buf, st.st_size, 0) != st.st_size) {
		rc = buf ? -EIO : -ENOMEM;
		free(buf);
		goto out;
	}
	out->filter = buf;
	out->len = (unsigned short)(st.st_size / sizeof(struct sock_filter));
	rc = 0;
out:
	close(fd);
	return rc;
}

static int build_kind(enum sqb_confine_kind kind, struct sqb_diag *diag)
{
	scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_TRAP);
	int rc = 0;

	if (!ctx)
		return -ENOMEM;
	/* no_new_privs is set by the hook itself; a 32-bit entry is denied */
	seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 0);
	for (const struct sqb_sc_rule *r = sqb_sc_lists[kind]; r->name && !rc; r++)
		rc = add_rule(ctx, r, diag);
	for (const struct sqb_sc_rule *r = sqb_sc_common; r->name && !rc; r++)
		rc = add_rule(ctx, r, diag);
	if (!rc)
		rc = export_prog(ctx, &g.prog[kind]);
	seccomp_release(ctx);
	return rc;
}

/* --seccomp-filter FILE: a classic BPF program as the kernel takes it
 * (struct sock_filter[], host byte order, 1..4096 instructions; what
 * libseccomp's seccomp_export_bpf writes), for every thread. */
static int read_prog_file(const char *path, struct sqb_diag *diag)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	struct stat st;
	void *buf = NULL;
	int rc = -EINVAL;

	if (fd < 0) {
		rc = -errno;
		diag_set(diag, "seccomp-filter", "cannot open %s: %s", path, strerror(-rc));
		return rc;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		diag_set(diag, "seccomp-filter", "%s: %s", path, "not a regular file");
		goto out;
	}
	if (st.st_size <= 0 || st.st_size % sizeof(struct sock_filter) ||
	    st.st_size / sizeof(struct sock_filter) > BPF_MAXINSNS) {
		diag_set(diag, "seccomp-filter", "%s: %s", path,
			 "size is not 1..4096 BPF instructions of 8 bytes");
		goto out;
	}
	buf = malloc(st.st_size);
	if (!buf || pread(fd, buf, st.st_size, 0) != st.st_size) {
		rc = buf ? -EIO : -ENOMEM;
		diag_set(diag, "seccomp-filter", "cannot read %s: %s", path, strerror(-rc));
		free(buf);
		goto out;
	}
	for (int k = 0; k < SQB_CONFINE_NKINDS; k++) {
		g.prog[k].filter = buf;
		g.prog[k].len = (unsigned short)(st.st_size / sizeof(struct sock_filter));
	}
	rc = 0;
out:
	close(fd);
	return rc;
}

/* ---- reporting a denied call ---- */

static void put(const char *s)
{
	ssize_t r = write(2, s, strlen(s));
	(void)r;
}

static void on_sigsys(int sig, siginfo_t *si, void *uc_)
{
	ucontext_t *uc = uc_;
	char num[16], *p = num + sizeof(num);
	int nr = si->si_syscall;
	unsigned int v = (unsigned int)nr;

	(void)sig;
	*--p = 0;
	do
		*--p = (char)('0' + v % 10);
	while (v /= 10);
	put("squib: seccomp: thread '");
	put(t_kind >= 0 ? kind_names[t_kind] : "(filter inherited from its creator)");
	put("' made a forbidden system call ");
	put(p);
	put(" (");
	put(nr >= 0 && nr < NR_NAMES && g.names[nr] ? g.names[nr] : "unknown");
	put("); squib exits with SIGSYS\n");
	/* SA_RESETHAND made SIGSYS default and it is blocked here: the same
	 * call traps again and the kernel then kills the whole process. */
#if defined(__aarch64__)
	syscall(nr, uc->uc_mcontext.regs[0], uc->uc_mcontext.regs[1], uc->uc_mcontext.regs[2],
		uc->uc_mcontext.regs[3], uc->uc_mcontext.regs[4], uc->uc_mcontext.regs[5]);
#else
	syscall(nr, uc->uc_mcontext.gregs[REG_RDI], uc->uc_mcontext.gregs[REG_RSI],
		uc->uc_mcontext.gregs[REG_RDX], uc->uc_mcontext.gregs[REG_R10],
		uc->uc_mcontext.gregs[REG_R8], uc->uc_mcontext.gregs[REG_R9]);
#endif
	syscall(SYS_tgkill, getpid(), syscall(SYS_gettid), SIGSYS);
	_exit(128 + SIGSYS);
}

/* ---- public ---- */

void sqb_confine_reset(void)
{
	if (g.store) { /* everything lives in the one mapping */
		munmap(g.store, g.store_len);
	} else if (g.prog[0].filter == g.prog[1].filter) { /* one file for all kinds */
		free(g.prog[0].filter);
		for (int i = 0; i < NR_NAMES; i++)
			free(g.names[i]);
	} else {
		for (int k = 0; k < SQB_CONFINE_NKINDS; k++)
			free(g.prog[k].filter);
		for (int i = 0; i < NR_NAMES; i++)
			free(g.names[i]);
	}
	memset(&g, 0, sizeof(g));
}

/* The programs were malloc'd while libseccomp's build state was live, and
 * some 400 names after it: small live blocks scattered over a freed heap
 * keep every page they sit on (136 KiB per process, docs/fleet.md). Copy
 * them into one read-only mapping and free the heap copies, so the heap
 * can be trimmed; each idle VM of a fleet pays for what stays. */
static int compact(void)
{
	size_t len = 0, off = 0;
	int shared = g.prog[0].filter == g.prog[1].filter;
	char *p;

	for (int k = 0; k < SQB_CONFINE_NKINDS; k++)
		if (k == 0 || !shared)
			len += g.prog[k].len * sizeof(struct sock_filter);
	for (int i = 0; i < NR_NAMES; i++)
		if (g.names[i])
			len += strlen(g.names[i]) + 1;
	p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return -errno;
	for (int k = 0; k < SQB_CONFINE_NKINDS; k++) {
		size_t n = g.prog[k].len * sizeof(struct sock_filter);

		if (k > 0 && shared) {
			g.prog[k].filter = g.prog[0].filter;
			continue;
		}
		memcpy(p + off, g.prog[k].filter, n);
		free(g.prog[k].filter);
		g.prog[k].filter = (struct sock_filter *)(void *)(p + off);
		off += n;
	}
	for (int i = 0; i < NR_NAMES; i++) {
		size_t n;

		if (!g.names[i])
			continue;
		n = strlen(g.names[i]) + 1;
		memcpy(p + off, g.names[i], n);
		free(g.names[i]);
		g.names[i] = p + off;
		off += n;
	}
	g.store = p;
	g.store_len = len;
	mprotect(p, len, PROT_READ); /* nothing writes them again */
	return 0;
}

int sqb_confine_setup(const struct sqb_confine_opts *o, struct sqb_diag *diag)
{
	struct sigaction sa = {.sa_sigaction = on_sigsys, .sa_flags = SA_SIGINFO | SA_RESETHAND};
	int rc = 0;

	sqb_confine_reset();
	if (!o || o->version != SQB_CONFINE_OPTS_VERSION)
		return -EINVAL;
	if (!o->enabled)
		return 0;
	if (o->filter_file)
		rc = read_prog_file(o->filter_file, diag);
	for (int k = 0; k < SQB_CONFINE_NKINDS && !rc && !o->filter_file; k++)
		rc = build_kind(k, diag);
	if (rc < 0) {
		sqb_confine_reset();
		return rc;
	}
	for (int i = 0; i < NR_NAMES; i++)
		g.names[i] = seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, i);
	rc = compact();
	if (rc < 0 || sigaction(SIGSYS, &sa, NULL) < 0) {
		rc = rc < 0 ? rc : -errno;
		sqb_confine_reset();
		return rc;
	}
	g.enabled = 1;
	return 0;
}

int sqb_confine_thread(enum sqb_confine_kind kind)
{
	char name[16];

	if ((unsigned int)kind >= SQB_CONFINE_NKINDS)
		return -EINVAL;
	if (kind != SQB_CONFINE_API) { /* the main thread keeps the program's name */
		snprintf(name, sizeof(name), "squib-%s", kind_names[kind]);
		prctl(PR_SET_NAME, name, 0, 0, 0);
	}
	if (!g.enabled)
		return 0;
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return -errno;
	if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &g.prog[kind]) < 0)
		return -errno;
	t_kind = kind;
	return 0;
}
