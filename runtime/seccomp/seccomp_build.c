/* Building squib's seccomp programs with libseccomp (docs/security.md
 * "Seccomp"): used at build time by seccomp_gen (which writes them into
 * the squib binary), by squib itself where no prebuilt programs exist
 * (cross builds), and by the test that checks both agree. */
#include <errno.h>
#include <linux/filter.h>
#include <seccomp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "seccomp_build.h"
#include "seccomp_lists.h"

static int add_rule(scmp_filter_ctx ctx, const struct sqb_sc_rule *r, struct sqb_diag *diag)
{
	int nr = seccomp_syscall_resolve_name(r->name);
	int rc = 0;

	if (nr == __NR_SCMP_ERROR) {
		sqb_sc_diag_set(diag, "seccomp", "unknown system call '%s' in the %s list", r->name,
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
		sqb_sc_diag_set(diag, "seccomp", "libseccomp refused the rule for '%s' (%s)",
				r->name, strerror(-rc));
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

int sqb_sc_build_kind(enum sqb_confine_kind kind, struct sock_fprog *out, struct sqb_diag *diag)
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
		rc = export_prog(ctx, out);
	seccomp_release(ctx);
	return rc;
}

char *sqb_sc_syscall_name(int nr)
{
	return seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, nr);
}
