/* squib-fleet: the daemon (pools of pre-warmed squib processes) and its CLI
 * (clone, list, stop, reap, input, shutdown); docs/fleet.md describes the
 * model and the request lines the CLI sends over <dir>/fleet.sock. */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "fleet.h"
#include "fleet_daemon.h"

static void usage(FILE *f)
{
	fprintf(
	    f, "usage: squib-fleet daemon --dir DIR --squib PATH\n"
	       "                          [--pool vcpus=N,mem_mib=M,count=K]... [--reserve-mib R]\n"
	       "                          [--loaded count=K,state=STATE,mem=MEM [--loaded-extra "
	       "JSON]]...\n"
	       "                          [--zygote]\n"
	       "       squib-fleet clone --dir DIR --snapshot STATE --mem MEM [-n N] [--no-pool]\n"
	       "                         [--load-extra 'JSON members, {id} {dir} per clone']\n"
	       "       squib-fleet list|reap|shutdown --dir DIR\n"
	       "       squib-fleet stop --dir DIR ID|all\n"
	       "       squib-fleet input --dir DIR ID|all TEXT\n"
	       "Keeps pools of pre-warmed squib processes and restores clones of a snapshot\n"
	       "into them, one squib process per VM (docs/fleet.md).  Answers are JSON.\n");
}

static int parse_pool(const char *arg, struct sqb_fleet_pool_opt *p)
{
	char buf[128], *save = NULL;

	memset(p, 0, sizeof(*p));
	if (strlen(arg) >= sizeof(buf))
		return -1;
	strcpy(buf, arg);
	for (char *kv = strtok_r(buf, ",", &save); kv; kv = strtok_r(NULL, ",", &save)) {
		char *eq = strchr(kv, '='), *end;
		unsigned long long v;

		if (!eq || !eq[1] || eq[1] == '-')
			return -1;
		*eq = 0;
		errno = 0;
		v = strtoull(eq + 1, &end, 10);
		if (*end || errno)
			return -1;
		if (!strcmp(kv, "vcpus") && v >= 1 && v <= 32)
			p->shape.vcpus = (unsigned int)v;
		else if (!strcmp(kv, "mem_mib") && v >= 1 && v <= (1ULL << 20))
			p->shape.mem_mib = v;
		else if (!strcmp(kv, "count") && v <= 1024)
			p->count = (unsigned int)v;
		else
			return -1;
	}
	return p->shape.vcpus && p->shape.mem_mib ? 0 : -1;
}

/* --loaded count=K,state=STATE,mem=MEM: a pool whose members hold the
 * snapshot loaded ahead (paths without commas; the shape is read from the
 * snapshot by the daemon). */
static int parse_loaded(char *arg, struct sqb_fleet_pool_opt *p)
{
	char *save = NULL;

	int have_count = 0;

	memset(p, 0, sizeof(*p));
	for (char *kv = strtok_r(arg, ",", &save); kv; kv = strtok_r(NULL, ",", &save)) {
		char *eq = strchr(kv, '='), *end;

		if (!eq || !eq[1])
			return -1;
		*eq = 0;
		if (!strcmp(kv, "state")) {
			p->state = eq + 1;
		} else if (!strcmp(kv, "mem")) {
			p->mem = eq + 1;
		} else if (!strcmp(kv, "count")) {
			unsigned long v;

			errno = 0;
			v = strtoul(eq + 1, &end, 10);
			if (*end || errno || eq[1] == '-' || v > 1024)
				return -1;
			p->count = (unsigned int)v;
			have_count = 1;
		} else {
			return -1;
		}
	}
	return p->state && p->mem && have_count ? 0 : -1;
}

/* One request line, the answer to stdout; 0 unless the answer is an error. */
static int request(const char *dir, const char *line)
{
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	char buf[65536];
	size_t len = 0;
	int fd, bad;

	if ((size_t)snprintf(a.sun_path, sizeof(a.sun_path), "%s/fleet.sock", dir) >=
	    sizeof(a.sun_path)) {
		fprintf(stderr, "squib-fleet: %s/fleet.sock: path too long\n", dir);
		return 1;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		fprintf(stderr, "squib-fleet: no daemon at %s: %s\n", a.sun_path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return 1;
	}
	if (send(fd, line, strlen(line), MSG_NOSIGNAL) < 0 || send(fd, "\n", 1, MSG_NOSIGNAL) < 0) {
		fprintf(stderr, "squib-fleet: send: %s\n", strerror(errno));
		close(fd);
		return 1;
	}
	for (;;) { /* clones of many VMs take a while: wait up to 10 minutes */
		struct pollfd pf = {fd, POLLIN, 0};
		ssize_t r;

		if (poll(&pf, 1, 600000) <= 0)
			break;
		if (len == sizeof(buf) - 1) {
			fwrite(buf, 1, len, stdout);
			len = 0;
		}
		r = read(fd, buf + len, sizeof(buf) - 1 - len);
		if (r <= 0)
			break;
		len += (size_t)r;
	}
	close(fd);
	buf[len] = 0;
	bad = !len || !strncmp(buf, "{\"error\"", 8) || strstr(buf, "\"ok\":0,");
	printf("%s\n", buf);
	return bad;
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
	    {"dir", required_argument, NULL, 'd'},
	    {"squib", required_argument, NULL, 's'},
	    {"pool", required_argument, NULL, 'p'},
	    {"reserve-mib", required_argument, NULL, 'r'},
	    {"snapshot", required_argument, NULL, 'S'},
	    {"mem", required_argument, NULL, 'm'},
	    {"no-pool", no_argument, NULL, 'N'},
	    {"load-extra", required_argument, NULL, 'x'},
	    {"zygote", no_argument, NULL, 'Z'},
	    {"loaded", required_argument, NULL, 'L'},
	    {"loaded-extra", required_argument, NULL, 'X'},
	    {"help", no_argument, NULL, 'h'},
	    {0},
	};
	struct sqb_fleet_opts o = {.reserve_mib = 8};
	const char *cmd, *state = NULL, *mem = NULL, *extra = NULL;
	char line[8192];
	unsigned long n = 1;
	int ch, nopool = 0;

	if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		usage(argc < 2 ? stderr : stdout);
		return argc < 2;
	}
	cmd = argv[1];
	optind = 2;
	while ((ch = getopt_long(argc, argv, "n:", lo, NULL)) != -1) {
		switch (ch) {
		case 'd':
			o.dir = optarg;
			break;
		case 's':
			o.squib = optarg;
			break;
		case 'p':
			if (o.npools >= 8 || parse_pool(optarg, &o.pools[o.npools]) < 0) {
				fprintf(stderr,
					"squib-fleet: --pool wants vcpus=1..32,mem_mib=M,"
					"count=0..1024 (8 pools at most), got '%s'\n",
					optarg);
				return 2;
			}
			o.npools++;
			break;
		case 'r':
			o.reserve_mib = strtoull(optarg, NULL, 10);
			break;
		case 'S':
			state = optarg;
			break;
		case 'm':
			mem = optarg;
			break;
		case 'n':
			n = strtoul(optarg, NULL, 10);
			break;
		case 'N':
			nopool = 1;
			break;
		case 'x':
			extra = optarg;
			break;
		case 'Z':
			o.zygote = 1;
			break;
		case 'L':
			if (o.npools >= 8 || parse_loaded(optarg, &o.pools[o.npools]) < 0) {
				fprintf(stderr,
					"squib-fleet: --loaded wants count=0..1024,state=STATE,"
					"mem=MEM (no commas in the paths; 8 pools at most)\n");
				return 2;
			}
			o.npools++;
			break;
		case 'X':
			if (!o.npools || !o.pools[o.npools - 1].state ||
			    o.pools[o.npools - 1].extra) {
				fprintf(stderr,
					"squib-fleet: --loaded-extra follows a --loaded, once\n");
				return 2;
			}
			o.pools[o.npools - 1].extra = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (!o.dir) {
		fprintf(stderr, "squib-fleet: --dir is required\n");
		return 2;
	}
	if (!strcmp(cmd, "daemon")) {
		if (!o.squib) {
			fprintf(stderr, "squib-fleet: daemon needs --squib PATH\n");
			return 2;
		}
		return sqb_fleet_daemon(&o);
	}
	if (!strcmp(cmd, "clone")) {
		if (!state || !mem || n < 1 || strpbrk(state, "\t\n") || strpbrk(mem, "\t\n") ||
		    (extra && strpbrk(extra, "\t\n"))) {
			fprintf(stderr, "squib-fleet: clone needs --snapshot, --mem and -n >= 1 "
					"(no tabs or newlines in them)\n");
			return 2;
		}
		if ((size_t)snprintf(line, sizeof(line), "clone\t%s\t%s\t%lu\t%d%s%s", state, mem,
				     n, nopool, extra ? "\t" : "",
				     extra ? extra : "") >= sizeof(line)) {
			fprintf(stderr, "squib-fleet: clone request too long\n");
			return 2;
		}
	} else if (!strcmp(cmd, "list") || !strcmp(cmd, "reap") || !strcmp(cmd, "shutdown") ||
		   !strcmp(cmd, "pool-pids")) {
		snprintf(line, sizeof(line), "%s", cmd);
	} else if (!strcmp(cmd, "stop") && optind + 1 == argc) {
		snprintf(line, sizeof(line), "stop\t%s", argv[optind]);
	} else if (!strcmp(cmd, "input") && optind + 2 == argc) {
		snprintf(line, sizeof(line), "input\t%s\t%s", argv[optind], argv[optind + 1]);
	} else {
		usage(stderr);
		return 2;
	}
	return request(o.dir, line);
}
