/* Per-thread seccomp filters for squib (docs/security.md "Seccomp"): one
 * BPF program per thread kind, built from seccomp_lists.c with libseccomp
 * at build time (seccomp_gen; SQB_SECCOMP_PREBUILT) or, where that cannot
 * run (cross builds), at start-up in a child process; or a compiled program
 * read from a file (--seccomp-filter).  Installs it at each thread's entry
 * and reports a forbidden call by name before the process dies. */

#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <ucontext.h>
#include <unistd.h>

#include "seccomp_build.h"
#include "seccomp_lists.h"
#include "sqb_confine.h"
#ifdef SQB_SECCOMP_PREBUILT
#include "seccomp_prebuilt.h"
#endif

#define NR_NAMES 512 /* x86_64 numbers stay below this */

static struct {
	int enabled;
	struct sock_fprog prog[SQB_CONFINE_NKINDS];
#ifndef SQB_SECCOMP_PREBUILT
	/* resolved up front: the handler cannot malloc.  A prebuilt squib reads
	 * the names from its read-only tables: without the 4 KiB array here, the
	 * reset's memset and the set-up write one .bss page less in every VM
	 * process (docs/fleet.md "Threads, stacks and .bss") */
	char *names[NR_NAMES];
#endif
	void *store; /* built programs and names, one read-only mapping */
	size_t store_len;
	void *file_buf; /* --seccomp-filter: the program, shared by every kind */
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

/* --seccomp-filter FILE: a classic BPF program as the kernel takes it
 * (struct sock_filter[], host byte order, 1..4096 instructions; what
 * libseccomp's seccomp_export_bpf writes), for every thread.  The reasons
 * begin as Firecracker's FilterError does ("Filter file open error: ...",
 * "Filter deserialization failed: ..."; firecracker/src/seccomp.rs), which
 * main prefixes with "Seccomp error: " (test_invalid_bpf). */
static int read_prog_file(const char *path, struct sqb_diag *diag)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	struct stat st;
	void *buf = NULL;
	int rc = -EINVAL;

	if (fd < 0) {
		char why[96];

		rc = -errno;
		snprintf(why, sizeof(why), "%s (os error %d)", strerror(-rc), -rc);
		sqb_sc_diag_set(diag, "seccomp-filter", "Filter file open error: %s: %s", path,
				why);
		return rc;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		sqb_sc_diag_set(diag, "seccomp-filter", "Filter deserialization failed: %s: %s",
				path, "not a regular file");
		goto out;
	}
	if (st.st_size <= 0 || st.st_size % sizeof(struct sock_filter) ||
	    st.st_size / sizeof(struct sock_filter) > BPF_MAXINSNS) {
		sqb_sc_diag_set(diag, "seccomp-filter", "Filter deserialization failed: %s: %s",
				path, "size is not 1..4096 BPF instructions of 8 bytes");
		goto out;
	}
	buf = malloc(st.st_size);
	if (!buf || pread(fd, buf, st.st_size, 0) != st.st_size) {
		rc = buf ? -EIO : -ENOMEM;
		sqb_sc_diag_set(diag, "seccomp-filter",
				"Filter deserialization failed: cannot read %s: %s", path,
				strerror(-rc));
		free(buf);
		goto out;
	}
	g.file_buf = buf;
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

static const char *name_of(int nr)
{
	if (nr < 0 || nr >= NR_NAMES)
		return "unknown";
#ifdef SQB_SECCOMP_PREBUILT
	if (sqb_sc_pb_name_off[nr])
		return sqb_sc_pb_names + sqb_sc_pb_name_off[nr] - 1;
	return "unknown";
#else
	return g.names[nr] ? g.names[nr] : "unknown";
#endif
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
	put(name_of(nr));
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
	if (g.store)
		munmap(g.store, g.store_len);
	free(g.file_buf);
	memset(&g, 0, sizeof(g));
}

#ifndef SQB_SECCOMP_PREBUILT
/* ---- building in a child process ----
 * libseccomp's build allocates and frees a lot; the programs and some 400
 * names kept afterwards would sit scattered over that freed heap and keep
 * every page they touch (about 136 KiB per squib, docs/fleet.md "Numbers").
 * A child builds them into a shared mapping and exits; this process's heap
 * never sees the churn. Layout: store_hdr | NKINDS x BPF_MAXINSNS
 * instructions | STORE_NAMES bytes of names; untouched pages cost nothing. */

#define STORE_NAMES 16384

struct store_hdr {
	int rc;
	struct sqb_diag diag;
	unsigned short len[SQB_CONFINE_NKINDS];
	unsigned short name_off[NR_NAMES]; /* 1 + offset in the names area; 0: none */
};

#define STORE_PROGS (((sizeof(struct store_hdr) + 63) / 64) * 64)
#define STORE_NAMES_AT                                                                             \
	(STORE_PROGS + SQB_CONFINE_NKINDS * BPF_MAXINSNS * sizeof(struct sock_filter))
#define STORE_LEN (STORE_NAMES_AT + STORE_NAMES)

static void build_child(char *p, int build)
{
	struct store_hdr *h = (struct store_hdr *)(void *)p;
	struct sock_filter *progs = (struct sock_filter *)(void *)(p + STORE_PROGS);
	size_t off = 0;
	int rc = 0;

	for (int k = 0; k < SQB_CONFINE_NKINDS && build && !rc; k++) {
		rc = sqb_sc_build_kind(k, &g.prog[k], &h->diag);
		if (!rc && g.prog[k].len > BPF_MAXINSNS) {
			sqb_sc_diag_set(&h->diag, "seccomp",
					"the %s program has more than %s instructions",
					kind_names[k], "4096");
			rc = -E2BIG;
		}
		if (!rc) {
			memcpy(progs + (size_t)k * BPF_MAXINSNS, g.prog[k].filter,
			       g.prog[k].len * sizeof(struct sock_filter));
			h->len[k] = g.prog[k].len;
		}
	}
	for (int i = 0; i < NR_NAMES && !rc; i++) {
		char *n = sqb_sc_syscall_name(i);
		size_t l = n ? strlen(n) + 1 : 0;

		if (n && off + l <= STORE_NAMES) { /* a name that does not fit is "unknown" */
			memcpy(p + STORE_NAMES_AT + off, n, l);
			h->name_off[i] = (unsigned short)(off + 1);
			off += l;
		}
		free(n);
	}
	h->rc = rc;
}

static int build_store(int build, struct sqb_diag *diag)
{
	char *p = mmap(NULL, STORE_LEN, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	struct store_hdr *h;
	pid_t pid;
	int st = 0, rc;

	if (p == MAP_FAILED)
		return -errno;
	h = (struct store_hdr *)(void *)p;
	h->rc = -ECHILD;
	pid = fork();
	if (pid == 0) {
		build_child(p, build);
		_exit(0);
	}
	rc = pid < 0 ? -errno : 0;
	while (pid > 0 && waitpid(pid, &st, 0) < 0) {
		if (errno == EINTR)
			continue;
		if (errno == ECHILD) { /* SIGCHLD ignored (inherited): h->rc tells */
			st = 0;
			break;
		}
		rc = -errno;
		break;
	}
	if (!rc)
		rc = WIFEXITED(st) && WEXITSTATUS(st) == 0 ? h->rc : -ECHILD;
	if (rc < 0) {
		if (diag && h->diag.reason[0])
			*diag = h->diag;
		else
			sqb_sc_diag_set(diag, "seccomp", "the filter builder process failed: %s%s",
					strerror(-rc), "");
		munmap(p, STORE_LEN);
		return rc;
	}
	for (int k = 0; k < SQB_CONFINE_NKINDS && build; k++) {
		g.prog[k].filter =
		    (struct sock_filter *)(void *)(p + STORE_PROGS) + (size_t)k * BPF_MAXINSNS;
		g.prog[k].len = h->len[k];
	}
	for (int i = 0; i < NR_NAMES; i++)
		g.names[i] = h->name_off[i] ? p + STORE_NAMES_AT + h->name_off[i] - 1 : NULL;
	g.store = p;
	g.store_len = STORE_LEN;
	mprotect(p, STORE_LEN, PROT_READ); /* nothing writes them again */
	return 0;
}
#else
/* The programs seccomp_gen built into the binary: nothing to build. */
static int build_store(int build, struct sqb_diag *diag)
{
	(void)diag;
	for (int k = 0; k < SQB_CONFINE_NKINDS && build; k++) {
		g.prog[k].filter =
		    (struct sock_filter *)(uintptr_t)(sqb_sc_pb_insns + sqb_sc_pb_off[k]);
		g.prog[k].len = sqb_sc_pb_len[k];
	}
	return 0;
}
#endif

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
	if (!rc)
		rc = build_store(!o->filter_file, diag);
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
	/* the main thread keeps the program's name; a vCPU thread has named
	 * itself Firecracker's way ("fc_vcpu N", vmm.c) */
	if (kind != SQB_CONFINE_API && kind != SQB_CONFINE_VCPU) {
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
