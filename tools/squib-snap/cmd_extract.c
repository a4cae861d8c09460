/* squib-snap extract: guest memory as a dense raw file (regions in order,
 * Firecracker's memory-file layout; sqb_snap_export_raw), one vCPU's
 * records and decoded registers, or one device's raw state bytes. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "snaptool.h"

static int extract_memory(sqb_snap *s, const char *out, long region)
{
	uint64_t total = 0;
	int err;

	if (region >= (long)sqb_snap_region_count(s))
		return st_fail(ST_FAIL, "%s has %u region%s; no region %ld", sqb_snap_path(s),
			       sqb_snap_region_count(s), sqb_snap_region_count(s) == 1 ? "" : "s",
			       region);
	if (!sqb_snap_region_count(s))
		return st_fail(ST_FAIL, "%s holds no memory (role %s)", sqb_snap_path(s),
			       st_role_name(sqb_snap_get_info(s)->role));
	for (unsigned int r = 0; r < sqb_snap_region_count(s); r++) {
		struct sqb_region rg;

		sqb_snap_region(s, r, &rg);
		if (region < 0 || (long)r == region)
			total += rg.size;
	}
	st_progress_start("extract", 0, total);
	err = sqb_snap_export_raw(s, out, (int)region);
	st_progress_stop();
	if (err == -EEXIST)
		return st_fail(ST_FAIL, "refusing to write %s: it is an input", out);
	if (err) {
		char what[512];

		snprintf(what, sizeof(what), "cannot extract memory of %s to %s", sqb_snap_path(s),
			 out);
		return st_fail_located(what, err, s);
	}
	printf("wrote %s: %llu bytes\n", out, (unsigned long long)total);
	return 0;
}

static void hex_field(yajl_gen g, const char *key, const uint8_t *p, uint32_t len)
{
	static const char hx[] = "0123456789abcdef";
	char *h = malloc(2 * (size_t)len + 1);

	if (!h)
		return;
	for (uint32_t k = 0; k < len; k++) {
		h[2 * k] = hx[p[k] >> 4];
		h[2 * k + 1] = hx[p[k] & 15];
	}
	h[2 * (size_t)len] = 0;
	st_jkv_str(g, key, h);
	free(h);
}

/* Registers plus every record in full (records are small: XSAVE is a few KiB). */
static void vcpu_json(const sqb_snap *s, uint64_t idx, const struct sqb_record *recs,
		      unsigned int n, const struct st_reg *regs, unsigned int nr)
{
	yajl_gen g = st_json_new();

	if (!g)
		return;
	st_jmap(g);
	st_jkv_u64(g, "index", idx);
	st_jkv_str(g, "arch", st_arch_name(sqb_snap_get_info(s)->arch));
	st_jkey(g, "registers");
	st_jmap(g);
	for (unsigned int i = 0; i < nr; i++)
		st_jkv_hex(g, regs[i].name, regs[i].value);
	st_jmap_end(g);
	st_jkey(g, "records");
	st_jarr(g);
	for (unsigned int i = 0; i < n; i++) {
		const char *nm = sqb_record_tag_name(recs[i].tag);
		char tmp[16];

		snprintf(tmp, sizeof(tmp), "0x%04x", recs[i].tag);
		st_jmap(g);
		st_jkv_str(g, "tag", nm ? nm : tmp);
		st_jkv_u64(g, "tag_id", recs[i].tag);
		st_jkv_bool(g, "critical", recs[i].flags & SQB_RECF_CRITICAL);
		st_jkv_u64(g, "length", recs[i].len);
		hex_field(g, "data_hex", recs[i].data, recs[i].len);
		st_jmap_end(g);
	}
	st_jarr_end(g);
	st_jmap_end(g);
	st_json_end(g);
	printf("\n");
}

static int extract_vcpu(sqb_snap *s, uint64_t idx, int json)
{
	static struct st_reg regs[ST_MAX_REGS];
	struct sqb_record *recs;
	unsigned int n, nr;
	struct sqb_diag d;
	void *back;
	int err;

	if (sqb_snap_section_find(s, SQB_SEC_VCPU, (uint32_t)idx) < 0 || idx > UINT32_MAX)
		return st_fail(ST_FAIL, "%s has no vCPU %llu (it has %u)", sqb_snap_path(s),
			       (unsigned long long)idx, sqb_snap_vcpu_count(s));
	if ((err = sqb_snap_records(s, SQB_SEC_VCPU, (uint32_t)idx, &recs, &n, &back, &d)))
		return st_fail_diag(sqb_snap_path(s), err, &d);
	nr = st_decode_regs(sqb_snap_get_info(s)->arch, recs, n, regs, ST_MAX_REGS);
	if (json) {
		vcpu_json(s, idx, recs, n, regs, nr);
	} else {
		printf("vcpu %llu (%s)\n", (unsigned long long)idx,
		       st_arch_name(sqb_snap_get_info(s)->arch));
		for (unsigned int i = 0; i < nr; i++)
			printf("  %-12s 0x%016llx\n", regs[i].name,
			       (unsigned long long)regs[i].value);
		for (unsigned int i = 0; i < n; i++) {
			const char *nm = sqb_record_tag_name(recs[i].tag);

			printf("  record %-16s %u bytes\n", nm ? nm : "(unknown)", recs[i].len);
		}
	}
	free(recs);
	free(back);
	return 0;
}

static int extract_device(sqb_snap *s, const char *id, const char *out, int force)
{
	unsigned int n = sqb_snap_device_count(s);
	const char *in[1] = {sqb_snap_path(s)};
	char *tmp = NULL;
	int rc = ST_FAIL;

	for (unsigned int i = 0; i < n; i++) {
		struct sqb_device dev;
		struct sqb_diag d;
		void *back;
		int fd, err = sqb_snap_device(s, i, &dev, &back, &d);
		char *end;
		unsigned long num = strtoul(id, &end, 10);

		if (err)
			return st_fail_diag(sqb_snap_path(s), err, &d);
		if (strcmp(dev.id, id) && (*end || end == id || num != i)) {
			free(back);
			continue;
		}
		if (st_check_output(out, force, in, 1)) {
			free(back);
			return ST_FAIL;
		}
		/* atomic: temporary beside out, then rename */
		if (asprintf(&tmp, "%s.tmpXXXXXX", out) < 0 || (fd = mkstemp(tmp)) < 0) {
			rc = st_fail(ST_FAIL, "cannot create %s: %s", out, strerror(errno));
		} else {
			ssize_t w = write(fd, dev.state, dev.state_len);

			if (w != (ssize_t)dev.state_len || fsync(fd) || close(fd) ||
			    rename(tmp, out)) {
				rc = st_fail(ST_FAIL, "cannot write %s: %s", out, strerror(errno));
				unlink(tmp);
			} else {
				printf("wrote %s: state of device %s (type %u version %u), %zu "
				       "bytes\n",
				       out, dev.id, dev.type, dev.version, dev.state_len);
				rc = 0;
			}
		}
		free(tmp);
		free(back);
		return rc;
	}
	return st_fail(ST_FAIL, "%s has no device '%s' (inspect --devices lists them)",
		       sqb_snap_path(s), id);
}

int cmd_extract(int argc, char **argv)
{
	static const struct option lo[] = {
	    {"memory", required_argument, NULL, 'm'}, {"region", required_argument, NULL, 'r'},
	    {"vcpu", required_argument, NULL, 'v'},   {"device", required_argument, NULL, 'd'},
	    {"json", no_argument, NULL, 'j'},	      {"output", required_argument, NULL, 'o'},
	    {"force", no_argument, NULL, 'f'},	      {"parent", required_argument, NULL, 'p'},
	    {"help", no_argument, NULL, 'h'},	      {0}};
	const char *mem = NULL, *dev = NULL, *out = NULL, *parents[ST_MAX_PARENTS];
	uint64_t vcpu = UINT64_MAX, region = UINT64_MAX;
	unsigned int np = 0, modes;
	int json = 0, force = 0, opt, rc;
	sqb_snap *s;

	while ((opt = getopt_long(argc, argv, "hjfo:p:", lo, NULL)) != -1) {
		switch (opt) {
		case 'm':
			mem = optarg;
			break;
		case 'r':
			if (st_parse_u64(optarg, &region) || region > 1024)
				return st_usage("bad region '%s'", optarg);
			break;
		case 'v':
			if (st_parse_u64(optarg, &vcpu) || vcpu > UINT32_MAX)
				return st_usage("bad vcpu index '%s'", optarg);
			break;
		case 'd':
			dev = optarg;
			break;
		case 'j':
			json = 1;
			break;
		case 'o':
			out = optarg;
			break;
		case 'f':
			force = 1;
			break;
		case 'p':
			if (st_add_parent(parents, &np, optarg))
				return ST_USAGE;
			break;
		case 'h':
			return st_help();
		default:
			return st_usage("bad arguments");
		}
	}
	if (optind != argc - 1)
		return st_usage(optind == argc ? "missing FILE" : "too many arguments");
	modes = !!mem + (vcpu != UINT64_MAX) + !!dev;
	if (modes != 1)
		return st_usage("give exactly one of --memory, --vcpu, --device");
	if (region != UINT64_MAX && !mem)
		return st_usage("--region goes with --memory");
	if (dev && !out)
		return st_usage("--device needs -o OUT");
	if (mem) {
		const char *in[1] = {argv[optind]};

		if (st_check_output(mem, force, in, 1))
			return ST_FAIL;
	}
	/* vCPU and device state never need the parent chain */
	if (st_open(&s, argv[optind], parents, np, !mem))
		return ST_FAIL;
	if (mem)
		rc = extract_memory(s, mem, region == UINT64_MAX ? -1 : (long)region);
	else if (dev)
		rc = extract_device(s, dev, out, force);
	else
		rc = extract_vcpu(s, vcpu, json);
	sqb_snap_free(s);
	return rc;
}
