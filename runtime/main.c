/* squib: the microVM monitor binary.  Parses Firecracker-style flags, sets
 * up logging and metrics, optionally pre-warms a VM shell (--prewarm,
 * docs/fleet.md), applies --config-file and boots, then serves the API
 * socket until the guest resets or a signal arrives. */
#include <errno.h>
#include <getopt.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "api/api_server.h"
#include "api/ctl.h"
#include "api/http.h"
#include "seccomp/sqb_confine.h"
#include "squib/snapfmt.h"
#include "zygote.h"

static void usage(FILE *f)
{
	fprintf(f, "usage: squib [--api-sock PATH] [--config-file FILE] [--no-api]\n"
		   "             [--log-path FILE] [--level Error|Warning|Info|Debug|Trace|Off]\n"
		   "             [--show-level] [--show-log-origin] [--module NAME]\n"
		   "             [--metrics-path FILE] [--id ID] [--boot-timer]\n"
		   "             [--start-time-us US] [--start-time-cpu-us US]\n"
		   "             [--parent-cpu-time-us US]\n"
		   "             [--http-api-max-payload-size BYTES] [--no-serial-input]\n"
		   "             [--mmds-size-limit BYTES] [--metadata JSON_FILE]\n"
		   "             [--snapshot-mem-format squib|raw]\n"
		   "             [--no-seccomp] [--seccomp-filter BPF_FILE]\n"
		   "             [--prewarm vcpus=N,mem_mib=M[,dirty=0|1]] | --zygote FD\n"
		   "             [--version] [--snapshot-version]\n"
		   "             [--describe-snapshot STATE_FILE] [--help]\n"
		   "Starts a microVM monitor driven by a Firecracker-compatible REST API\n"
		   "(HTTP/1.1 over the Unix socket PATH, default /run/squib.socket).\n");
}

struct opts {
	const char *api_sock, *config_file, *log_path, *level, *metrics_path, *id;
	const char *seccomp_filter, *metadata;
	size_t mmds_limit; /* --mmds-size-limit; without it the API payload limit */
	int mmds_limit_set;
	struct sqb_vm_shape prewarm; /* vcpu_count 0: none */
	int no_api, show_level, serial_input, raw_mem, no_seccomp;
	size_t max_payload;
	const char *module; /* --module: only log lines from this source */
	int show_origin;    /* --show-log-origin */
	int boot_timer;	    /* --boot-timer */
	int enable_pci;	    /* --enable-pci: virtio devices on PCI (dev_pci.c) */
	/* Firecracker's jailer passes these (env.rs exec_command): the
	 * startup metrics then count from the jailer's start */
	int have_start, have_start_cpu;
	uint64_t start_us, start_cpu_us, parent_cpu_us;
	/* acted on once the whole command line parsed (main.rs) */
	int snapshot_version;
	const char *describe; /* --describe-snapshot */
};

/* main.rs: `s.parse::<u64>()`, and the same words when it fails. */
static int parse_u64_arg(const char *name, const char *arg, uint64_t *out)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(arg, &end, 10);
	if (!*arg || *end || errno || ((arg[0] < '0' || arg[0] > '9') && arg[0] != '+')) {
		fprintf(stderr, "squib: '%s' parameter expected to be of 'u64' type.\n", name);
		return -1;
	}
	*out = v;
	return 0;
}

/* --id: validators.rs validate_instance_id, 1..64 bytes of letters, digits
 * and '-' (ASCII here, as squib-jailer; Rust's is_alphanumeric also takes
 * non-ASCII letters).  The id starts every log line: a newline or control
 * character in it would forge lines. */
static int check_id(const char *id)
{
	size_t n = strlen(id);

	if (n < 1 || n > 64) {
		fprintf(
		    stderr,
		    "squib: Invalid instance ID: Invalid len (%zu);  the length must be between "
		    "1 and 64\n",
		    n);
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)id[i];

		if (c == '-' || (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
		    (c >= 'A' && c <= 'Z'))
			continue;
		if (c >= 0x21 && c < 0x7f)
			fprintf(stderr,
				"squib: Invalid instance ID: Invalid char (%c) at position %zu\n",
				c, i);
		else
			fprintf(
			    stderr,
			    "squib: Invalid instance ID: Invalid char (byte 0x%02x) at position "
			    "%zu\n",
			    c, i);
		return -1;
	}
	return 0;
}

/* --describe-snapshot: the state file's format version, in the form
 * --snapshot-version prints (main.rs print_snapshot_data_format). */
static int describe_snapshot(const char *path)
{
	struct sqb_open_opts oo = SQB_OPEN_OPTS_INIT;
	struct sqb_diag d = {0};
	sqb_snap *s = NULL;
	int err;

	oo.no_parents = 1;
	oo.no_external = 1;
	err = sqb_snap_open(&s, path, &oo, &d);
	if (err < 0) {
		char why[300];

		fprintf(stderr, "squib: --describe-snapshot %s: %s\n", path,
			d.reason[0] ? sqb_diag_format(&d, why, sizeof(why)) : sqb_strerror(err));
		return 1;
	}
	printf("v%u.0.0\n", (unsigned int)sqb_snap_get_info(s)->write_version);
	sqb_snap_free(s);
	return 0;
}

/* --prewarm vcpus=N,mem_mib=M[,dirty=0|1] (docs/fleet.md "Shells"). */
static int parse_prewarm(const char *arg, struct sqb_vm_shape *sh)
{
	char buf[128], *save = NULL;

	*sh = (struct sqb_vm_shape){0};
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
		if (!strcmp(kv, "vcpus") && v >= 1 && v <= SQB_VM_MAX_VCPUS)
			sh->vcpu_count = (unsigned int)v;
		else if (!strcmp(kv, "mem_mib") && v >= 1 && v <= (1ULL << 20))
			sh->mem_size_mib = v;
		else if (!strcmp(kv, "dirty") && v <= 1)
			sh->track_dirty_pages = (int)v;
		else
			return -1;
	}
	return sh->vcpu_count && sh->mem_size_mib ? 0 : -1;
}

/* arg_parser.rs's rules, checked before getopt sees the line (getopt would
 * take `--api-sock=x`, abbreviations, a value that starts with `--`, a
 * repeated flag, and stop at a stray word): every word before a "--" is a
 * known `--name`, given once, followed by its value where it takes one;
 * `--no-api` wants `--config-file`; `--no-seccomp` excludes
 * `--seccomp-filter`.  Words after "--" are left alone, as Firecracker
 * keeps them aside.  Returns the number of words to parse, or -1 (the
 * error printed in Firecracker's words). */
static int fc_arg_check(int argc, char **argv, const struct option *lo)
{
	char msg[512];
	int end = 1, seen[64] = {0};

	while (end < argc && strcmp(argv[end], "--"))
		end++;
	for (int i = 1; i < end; i++) {
		const char *a = argv[i], *name = a + 2;
		int k = 0;

		if (strncmp(a, "--", 2)) {
			snprintf(msg, sizeof(msg),
				 "Found argument '%s' which wasn't expected, "
				 "or isn't valid in this context.",
				 a);
			goto bad;
		}
		while (lo[k].name && strcmp(lo[k].name, name))
			k++;
		if (!lo[k].name) {
			snprintf(msg, sizeof(msg),
				 "Found argument '%s' which wasn't expected, "
				 "or isn't valid in this context.",
				 name);
			goto bad;
		}
		if (k < 64 && seen[k]++) {
			snprintf(msg, sizeof(msg), "The argument '%s' was provided more than once.",
				 name);
			goto bad;
		}
		if (lo[k].has_arg == required_argument) {
			if (i + 1 >= end || !strncmp(argv[i + 1], "--", 2)) {
				snprintf(
				    msg, sizeof(msg),
				    "The argument '%s' requires a value, but none was supplied.",
				    name);
				goto bad;
			}
			i++;
		}
	}
	/* validate_requirements walks the flags by name: no-api, no-seccomp */
	for (int i = 1; i < end; i++) {
		if (strcmp(argv[i], "--no-api"))
			continue;
		for (int j = 1; j < end; j++)
			if (!strcmp(argv[j], "--config-file"))
				goto have_config;
		snprintf(msg, sizeof(msg), "Argument 'config-file' required, but not found.");
		goto bad;
	}
have_config:
	for (int i = 1; i < end; i++) {
		if (strcmp(argv[i], "--no-seccomp"))
			continue;
		for (int j = 1; j < end; j++)
			if (!strcmp(argv[j], "--seccomp-filter")) {
				snprintf(msg, sizeof(msg),
					 "Argument 'seccomp-filter' cannot be used together with "
					 "argument 'no-seccomp'.");
				goto bad;
			}
	}
	return end;
bad:
	fprintf(stderr, "squib: Arguments parsing error: %s \n\nFor more information try --help.\n",
		msg);
	return -1;
}

/* 0, or the exit code: FcExitCode's ArgParsing (153) for a command line
 * arg_parser.rs refuses, BadConfiguration (152) for a --level it cannot
 * read, 1 for a value squib refuses. */
static int parse_opts(int argc, char **argv, struct opts *o)
{
	static const struct option lo[] = {
	    {"api-sock", required_argument, NULL, 'a'},
	    {"config-file", required_argument, NULL, 'c'},
	    {"no-api", no_argument, NULL, 'n'},
	    {"log-path", required_argument, NULL, 'l'},
	    {"level", required_argument, NULL, 'L'},
	    {"show-level", no_argument, NULL, 's'},
	    {"metrics-path", required_argument, NULL, 'm'},
	    {"id", required_argument, NULL, 'i'},
	    {"http-api-max-payload-size", required_argument, NULL, 'p'},
	    {"no-serial-input", no_argument, NULL, 'S'},
	    {"snapshot-mem-format", required_argument, NULL, 'F'},
	    {"no-seccomp", no_argument, NULL, 'X'},
	    {"seccomp-filter", required_argument, NULL, 'f'},
	    {"prewarm", required_argument, NULL, 'P'},
	    {"mmds-size-limit", required_argument, NULL, 'M'},
	    {"metadata", required_argument, NULL, 'D'},
	    {"show-log-origin", no_argument, NULL, 'O'},
	    {"module", required_argument, NULL, 'o'},
	    {"boot-timer", no_argument, NULL, 'B'},
	    {"enable-pci", no_argument, NULL, 'e'},
	    {"start-time-us", required_argument, NULL, 'T'},
	    {"start-time-cpu-us", required_argument, NULL, 'C'},
	    {"parent-cpu-time-us", required_argument, NULL, 'R'},
	    {"snapshot-version", no_argument, NULL, 'v'},
	    {"describe-snapshot", required_argument, NULL, 'd'},
	    {"version", no_argument, NULL, 'V'},
	    {"help", no_argument, NULL, 'h'},
	    {0},
	};
	int ch;

	*o = (struct opts){.api_sock = "/run/squib.socket",
			   .serial_input = 1,
			   .max_payload = SQB_HTTP_MAX_PAYLOAD};
	/* arg_parser.rs: --help, then --version, anywhere before a "--", win
	 * over every other argument, valid or not */
	for (int i = 1; i < argc && strcmp(argv[i], "--"); i++)
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			usage(stdout);
			exit(0);
		}
	for (int i = 1; i < argc && strcmp(argv[i], "--"); i++)
		if (!strcmp(argv[i], "--version")) {
			printf("squib %s (backend %s)\n", SQB_VERSION_STRING,
			       sqb_runtime_backend_name());
			exit(0);
		}
	argc = fc_arg_check(argc, argv, lo);
	if (argc < 0)
		return 153;
	while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (ch) {
		case 'a':
			o->api_sock = optarg;
			break;
		case 'c':
			o->config_file = optarg;
			break;
		case 'n':
			o->no_api = 1;
			break;
		case 'l':
			o->log_path = optarg;
			break;
		case 'L':
			o->level = optarg;
			break;
		case 's':
			o->show_level = 1;
			break;
		case 'm':
			o->metrics_path = optarg;
			break;
		case 'i':
			if (check_id(optarg) < 0)
				return -1;
			o->id = optarg;
			break;
		case 'S':
			o->serial_input = 0;
			break;
		case 'F':
			if (strcmp(optarg, "squib") && strcmp(optarg, "raw")) {
				fprintf(stderr, "squib: --snapshot-mem-format is squib or raw\n");
				return -1;
			}
			o->raw_mem = !strcmp(optarg, "raw");
			break;
		case 'p': {
			char *end;
			unsigned long v = strtoul(optarg, &end, 10);
			if (*end || v < 1 || v > (16UL << 20)) {
				fprintf(stderr,
					"squib: --http-api-max-payload-size must be 1..16777216\n");
				return -1;
			}
			o->max_payload = v;
			break;
		}
		case 'M': {
			char *end;
			unsigned long long v;

			errno = 0;
			v = strtoull(optarg, &end, 10);
			if (*end || errno || !*optarg || optarg[0] == '-' || v > (1ULL << 30)) {
				fprintf(stderr, "squib: --mmds-size-limit must be 0..1073741824\n");
				return -1;
			}
			o->mmds_limit = (size_t)v;
			o->mmds_limit_set = 1;
			break;
		}
		case 'D':
			o->metadata = optarg;
			break;
		case 'X':
			o->no_seccomp = 1;
			break;
		case 'f':
			o->seccomp_filter = optarg;
			break;
		case 'P':
			if (parse_prewarm(optarg, &o->prewarm) < 0) {
				fprintf(stderr,
					"squib: --prewarm wants vcpus=1..%d,mem_mib=1..1048576"
					"[,dirty=0|1], got '%s'\n",
					SQB_VM_MAX_VCPUS, optarg);
				return -1;
			}
			break;
		case 'O':
			o->show_origin = 1;
			break;
		case 'o':
			o->module = optarg;
			break;
		case 'B':
			o->boot_timer = 1;
			break;
		case 'e':
			o->enable_pci = 1;
			break;
		case 'T':
			if (parse_u64_arg("start-time-us", optarg, &o->start_us) < 0)
				return -1;
			o->have_start = 1;
			break;
		case 'C':
			if (parse_u64_arg("start-time-cpu-us", optarg, &o->start_cpu_us) < 0)
				return -1;
			o->have_start_cpu = 1;
			break;
		case 'R':
			if (parse_u64_arg("parent-cpu-time-us", optarg, &o->parent_cpu_us) < 0)
				return -1;
			break;
		case 'v':
			o->snapshot_version = 1;
			break;
		case 'd':
			o->describe = optarg;
			break;
		case 'V': /* taken before the loop */
		case 'h':
			break;
		default:
			usage(stderr);
			return -1;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "squib: unexpected argument '%s'\n", argv[optind]);
		return -1;
	}
	/* main.rs's order: an invalid command line fails before either */
	if (o->snapshot_version) {
		/* the data format version of the files this squib writes */
		printf("v%u.0.0\n", (unsigned int)SQB_SNAP_FORMAT_VERSION);
		exit(0);
	}
	if (o->describe)
		exit(describe_snapshot(o->describe));
	/* main.rs: MainError::InvalidLogLevel, exit code 152 */
	if (o->level) {
		enum sqb_ctl_level lvl;

		if (sqb_ctl_level_parse(o->level, &lvl) < 0) {
			fprintf(stderr,
				"squib: Invalid value for logger level: Failed to parse string to "
				"level filter: %s.Possible values: [Error, Warning, Info, Debug]\n",
				o->level);
			return 152;
		}
	}
	return 0;
}

/* SIGTERM always ends squib promptly (issue 17).  The event loop reads
 * termination signals from a signalfd; should it be held up (a blocked
 * handler, a teardown that never ends), this watchdog ends the process a
 * bounded time after the signal arrived: Firecracker dies on SIGTERM at
 * once, squib allows its loop this long to exit cleanly. */
#define SQB_TERM_GRACE_MS 5000

static uint64_t term_since_ms; /* atomic: 0, or when termination began */
static int fatal_taken;	       /* atomic: a fatal signal's handler runs (below) */
static pthread_t wd_thread;    /* the watchdog, once wd_running */
static int wd_running;

static uint64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void term_begin(void)
{
	uint64_t zero = 0;

	__atomic_compare_exchange_n(&term_since_ms, &zero, mono_ms(), 0, __ATOMIC_RELAXED,
				    __ATOMIC_RELAXED);
}

/* The watchdog thread owns the termination signals: it sleeps in
 * sigwaitinfo (no periodic wake-ups: an idle VM of a fleet costs the host
 * nothing while it waits), tells the event loop through term_efd, and ends
 * the process if the loop has not finished SQB_TERM_GRACE_MS later.  A
 * teardown the loop starts on its own (exit_requested) wakes it with a
 * thread-directed SIGTERM so that teardown is bounded too. */
static sigset_t term_set;
static int term_efd = -1;

static void *term_watchdog(void *arg)
{
	(void)arg;
	for (;;) {
		uint64_t since = __atomic_load_n(&term_since_ms, __ATOMIC_RELAXED);
		uint64_t one = 1;

		if (!since) {
			if (sigwaitinfo(&term_set, NULL) < 0)
				continue; /* EINTR */
			/* a fatal signal's handler woke us to bound its exit: no
			 * clean shutdown, only the deadline */
			if (__atomic_load_n(&fatal_taken, __ATOMIC_SEQ_CST))
				continue;
			term_begin();
			sqb_ctl_note_termination();
			if (write(term_efd, &one, sizeof(one)) < 0) {
				/* a full counter is already readable */
			}
			continue;
		}
		uint64_t now = mono_ms();
		if (now - since > SQB_TERM_GRACE_MS) {
			sqb_ctl_log(SQB_CTL_ERROR,
				    "squib did not stop within %d ms of a termination signal; "
				    "exiting now. exit_code=1",
				    SQB_TERM_GRACE_MS);
			_exit(1);
		}
		uint64_t left = since + SQB_TERM_GRACE_MS + 1 - now;
		struct timespec nap = {(time_t)(left / 1000), (long)(left % 1000) * 1000000L};
		nanosleep(&nap, NULL);
	}
	return NULL;
}

/* Firecracker's signal handlers (vmm/src/signal_handler.rs): SIGBUS,
 * SIGSEGV, SIGXFSZ, SIGXCPU, SIGHUP and SIGILL store their metric, log
 * "Shutting down VM after intercepting signal N, code C." at Error, write
 * the metrics and exit with FcExitCode's number; SIGPIPE counts and logs
 * "Received signal 13, code C." and squib goes on (the write sees EPIPE);
 * SIGSYS from a seccomp filter stores seccomp.num_faults and logs the bad
 * syscall, then squib's own report (seccomp_confine.c) ends the process
 * with SIGSYS; a SIGSYS sent by someone else ends it with exit code 2. */
static struct sqb_ctl *sig_ctl;		/* for the metrics line */
static struct sigaction confine_sigsys; /* seccomp_confine.c's report, if any */

static int fatal_code(int sig)
{
	switch (sig) {
	case SIGBUS:
		return 149;
	case SIGSEGV:
		return 150;
	case SIGXFSZ:
		return 151;
	case SIGXCPU:
		return 154;
	case SIGHUP:
		return 156;
	case SIGILL:
		return 157;
	default:
		return 2; /* UnexpectedError */
	}
}

/* Like Firecracker's exit_with_code, the metrics line is written from the
 * handler, which is not async-signal-safe (it allocates): should the signal
 * have hit inside malloc, the watchdog ends the process SQB_TERM_GRACE_MS
 * later (exit code 1) instead of leaving it hung. */
static void flush_for_exit(void)
{
	term_begin();
	if (__atomic_load_n(&wd_running, __ATOMIC_SEQ_CST))
		pthread_kill(wd_thread, SIGTERM);
	if (sig_ctl && sig_ctl->metrics_set)
		sqb_ctl_metrics_flush(sig_ctl);
}

static void on_fatal_signal(int sig, siginfo_t *si, void *uc)
{
	if (__atomic_exchange_n(&fatal_taken, 1, __ATOMIC_SEQ_CST))
		_exit(fatal_code(sig));
	if (sig == SIGSYS) {
		sqb_ctl_signal_metric(SIGSYS);
		sqb_ctl_log(SQB_CTL_ERROR,
			    "Shutting down VM after intercepting signal %d, code %d.", si->si_signo,
			    si->si_code);
		if (si->si_code != 1 /* SYS_SECCOMP */) {
			flush_for_exit();
			_exit(2);
		}
		sqb_ctl_log(SQB_CTL_ERROR,
			    "Shutting down VM after intercepting a bad syscall (%d).",
			    si->si_syscall);
		flush_for_exit();
		if (confine_sigsys.sa_flags & SA_SIGINFO && confine_sigsys.sa_sigaction)
			confine_sigsys.sa_sigaction(sig, si, uc); /* does not return */
		_exit(148);					  /* BadSyscall */
	}
	sqb_ctl_signal_metric(sig);
	sqb_ctl_log(SQB_CTL_ERROR, "Shutting down VM after intercepting signal %d, code %d.",
		    si->si_signo, si->si_code);
	flush_for_exit();
	_exit(fatal_code(sig));
}

static void on_sigpipe(int sig, siginfo_t *si, void *uc)
{
	int saved = errno;

	(void)sig;
	(void)uc;
	sqb_ctl_signal_metric(SIGPIPE);
	/* not when the log itself is the broken pipe (its reader left): that
	 * line would raise the next SIGPIPE */
	if (!sqb_ctl_log_broken())
		sqb_ctl_log(SQB_CTL_ERROR, "Received signal %d, code %d.", si->si_signo,
			    si->si_code);
	errno = saved;
}

/* After confine(): SIGSYS wraps the seccomp report it installed. */
static int install_signal_handlers(struct sqb_ctl *c)
{
	static const int fatal[] = {SIGBUS, SIGSEGV, SIGXFSZ, SIGXCPU, SIGHUP, SIGILL, SIGSYS};
	struct sigaction sa = {.sa_sigaction = on_fatal_signal, .sa_flags = SA_SIGINFO};

	sig_ctl = c;
	/* every other handled signal waits while one runs (sa_mask); SIGSYS
	 * stays at its default once taken, as the seccomp report needs */
	sigemptyset(&sa.sa_mask);
	for (size_t i = 0; i < sizeof(fatal) / sizeof(fatal[0]); i++)
		sigaddset(&sa.sa_mask, fatal[i]);
	for (size_t i = 0; i < sizeof(fatal) / sizeof(fatal[0]); i++) {
		sa.sa_flags = SA_SIGINFO | (fatal[i] == SIGSYS ? SA_RESETHAND : 0);
		if (sigaction(fatal[i], &sa, fatal[i] == SIGSYS ? &confine_sigsys : NULL) < 0)
			return -1;
	}
	/* vcpu.rs: Firecracker kicks its vCPUs with SIGRTMIN (35 under musl,
	 * 34 under glibc) through a handler that does nothing, so either one
	 * sent to the process leaves it running (test_signals.py
	 * test_handled_signals sends 35).  squib kicks with SIGUSR2; these two
	 * are ignored, which never interrupts a vCPU or a drain. */
	if (signal(SIGRTMIN, SIG_IGN) == SIG_ERR || signal(35, SIG_IGN) == SIG_ERR)
		return -1;
	sa.sa_sigaction = on_sigpipe;
	sa.sa_flags = SA_SIGINFO | SA_RESTART;
	sigemptyset(&sa.sa_mask);
	return sigaction(SIGPIPE, &sa, NULL);
}

/* Blocks the termination signals in every thread (the watchdog takes them
 * with sigwaitinfo) and returns the eventfd the event loop polls. */
static int block_signals(void)
{
	signal(SIGPIPE, SIG_IGN); /* until install_signal_handlers */
	sigemptyset(&term_set);
	sigaddset(&term_set, SIGTERM);
	sigaddset(&term_set, SIGINT);
	sigaddset(&term_set, SIGQUIT); /* SIGHUP: Firecracker's fatal handler */
	if (pthread_sigmask(SIG_BLOCK, &term_set, NULL))
		return -1;
	term_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	return term_efd;
}

/* Seccomp on by default, as Firecracker (docs/security.md): the main thread
 * is confined before it opens the API socket; every later thread at its
 * entry. */
static int confine(const struct opts *o)
{
	struct sqb_confine_opts co = SQB_CONFINE_OPTS_INIT;
	struct sqb_diag d = {0};
	int rc;

	co.enabled = !o->no_seccomp;
#if defined(__SANITIZE_THREAD__)
	/* ThreadSanitizer's runtime makes system calls of its own (its
	 * background thread, shadow memory) that no list here can name: a TSan
	 * build runs unfiltered, and says so.  Release and ASan builds are the
	 * filtered ones (docs/confinement.md). */
	if (co.enabled && !o->seccomp_filter) {
		co.enabled = 0;
		sqb_ctl_log(SQB_CTL_WARN, "seccomp: off in a ThreadSanitizer build");
	}
#endif
	co.filter_file = o->seccomp_filter;
	rc = sqb_confine_setup(&co, &d);
	if (rc == 0)
		rc = sqb_confine_thread(SQB_CONFINE_API);
	if (rc < 0) {
		/* main.rs MainError::SeccompFilter's "Seccomp error: {0}" */
		sqb_ctl_log(SQB_CTL_ERROR, "Seccomp error: %s",
			    d.reason[0] ? d.reason : strerror(-rc));
		fprintf(stderr, "squib: Seccomp error: %s\n",
			d.reason[0] ? d.reason : strerror(-rc));
	}
	return rc;
}

int main(int argc, char **argv)
{
	struct timespec t0;
	struct sqb_ctl ctl;
	struct sqb_api *api = NULL;
	struct opts o;
	char err[1024];
	int sig_fd, rc = 1;
	pthread_t wd;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	/* one malloc arena: the threads allocate little and rarely, and each
	 * further arena costs an idle VM of a fleet a dirty page or two */
	mallopt(M_ARENA_MAX, 1);
	if (argc >= 2 && !strcmp(argv[1], "--zygote")) {
		/* a fleet's zygote (docs/fleet.md "Zygote"): returns only in a
		 * member, with the member's command line */
		char *end;
		long zfd = argc == 3 ? strtol(argv[2], &end, 10) : -1;

		if (argc != 3 || *end || zfd < 3 || zfd > 1000000) {
			fprintf(stderr, "squib: --zygote FD stands alone, FD >= 3: a connected "
					"SOCK_SEQPACKET socket\n");
			return 1;
		}
		rc = sqb_zygote_serve((int)zfd, &argc, &argv);
		if (rc != 0)
			return rc > 0 ? 0 : 1;
		/* a member: its start-up (process_startup_time_us) begins now */
		clock_gettime(CLOCK_MONOTONIC, &t0);
		rc = 1; /* a failure below ends the member with 1, not 0 */
	}
	rc = parse_opts(argc, argv, &o);
	if (rc)
		return rc < 0 ? 1 : rc;
	rc = 1;
	sqb_ctl_init(&ctl);
	ctl.pci = o.enable_pci && sqb_vm_pci_supported();
	if (o.id) {
		snprintf(ctl.id, sizeof(ctl.id), "%s", o.id);
		sqb_ctl_log_set_id(o.id);
	}
	ctl.raw_mem_default = o.raw_mem;
	ctl.boot_timer = o.boot_timer;
	/* main.rs: without --mmds-size-limit the store may be as large as the
	 * API's payload limit */
	ctl.mmds_limit = o.mmds_limit_set ? o.mmds_limit : o.max_payload;
	ctl.mmds_limit_set = 1; /* 0 is a limit too: every document is refused */
	/* main.rs: --show-level and --show-log-origin only turn the parts on
	 * (the logger starts with both off) */
	if ((o.log_path || o.level || o.show_level || o.show_origin || o.module) &&
	    sqb_ctl_log_configure(o.log_path, o.level, o.show_level ? 1 : -1,
				  o.show_origin ? 1 : -1, o.module, err, sizeof(err)) < 0) {
		/* main.rs MainError::LoggerInitialization */
		fprintf(stderr, "squib: Could not initialize logger: %s\n", err);
		goto out_early;
	}
	/* main.rs logs "Running Firecracker v<version>" first thing after the
	 * logger is set up; test_logging.py test_log_config wants "Running
	 * Firecracker" in the log's first line.  squib keeps its own name and
	 * version after it. */
	sqb_ctl_log(SQB_CTL_INFO, "Running Firecracker-compatible squib v%s, API socket %s",
		    SQB_VERSION_STRING, o.no_api ? "(none)" : o.api_sock);
	if (o.metrics_path) {
		if (sqb_ctl_metrics_open(o.metrics_path, err, sizeof(err)) < 0) {
			/* main.rs MainError::MetricsInitialization */
			sqb_ctl_log(SQB_CTL_ERROR,
				    "Could not initialize metrics: Cannot initialize the metrics "
				    "system due to bad user input: %s",
				    err);
			fprintf(
			    stderr,
			    "squib: Could not initialize metrics: Cannot initialize the metrics "
			    "system due to bad user input: %s\n",
			    err);
			goto out_early;
		}
		ctl.metrics_set = 1;
		ctl.metrics_path = strdup(o.metrics_path);
	}
	sig_fd = block_signals();
	if (sig_fd < 0) {
		perror("squib: eventfd");
		goto out_early;
	}
	if (confine(&o) < 0)
		goto out;
	if (install_signal_handlers(&ctl) < 0) {
		perror("squib: sigaction");
		goto out;
	}
	/* building the filters left about 200 KiB of freed heap: give it back,
	 * each idle VM of a fleet pays for what stays (docs/fleet.md) */
	malloc_trim(0);
	/* signals are blocked already: the watchdog inherits the mask, and
	 * the API thread's seccomp filter (created after confine) */
	if (pthread_create(&wd, NULL, term_watchdog, NULL) != 0) {
		perror("squib: watchdog thread");
		goto out;
	}
	pthread_detach(wd);
	wd_thread = wd;
	__atomic_store_n(&wd_running, 1, __ATOMIC_SEQ_CST);
	if (o.prewarm.vcpu_count) {
		/* the shell before the socket: a fleet reads the socket's
		 * appearance as "warm" (docs/fleet.md) */
		struct sqb_diag d = {0};
		int e = sqb_vm_shell_create(&ctl.shell, &o.prewarm, &d);

		if (e < 0) {
			sqb_ctl_log(SQB_CTL_ERROR, "--prewarm: cannot create the VM shell: %s%s%s",
				    sqb_strerror(e), d.reason[0] ? ": " : "", d.reason);
			fprintf(stderr, "squib: --prewarm: cannot create the VM shell: %s%s%s\n",
				sqb_strerror(e), d.reason[0] ? ": " : "", d.reason);
			goto out;
		}
	}
	if (!o.no_api && sqb_api_open(&api, o.api_sock, o.max_payload, err, sizeof(err)) < 0) {
		sqb_ctl_log(SQB_CTL_ERROR, "%s", err);
		fprintf(stderr, "squib: %s\n", err);
		goto out;
	}
	{
		struct timespec t1;
		clock_gettime(CLOCK_MONOTONIC, &t1);
		/* signed arithmetic: tv_nsec goes down across a second boundary */
		ctl.startup_us = sqb_ctl_elapsed_us(&t0, &t1);
		/* metrics.rs ProcessTimeReporter: from the jailer's start when
		 * it passed one (both CLOCK_MONOTONIC), else from main() */
		if (o.have_start) {
			uint64_t now =
			    (uint64_t)t1.tv_sec * 1000000u + (uint64_t)t1.tv_nsec / 1000u;
			ctl.startup_us = now > o.start_us ? now - o.start_us : 0;
		}
		/* CPU time this process used up to here (with --start-time-cpu-us:
		 * since that reading, plus the jailer's --parent-cpu-time-us) */
		if (!clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t1)) {
			uint64_t cpu =
			    (uint64_t)t1.tv_sec * 1000000u + (uint64_t)t1.tv_nsec / 1000u;

			ctl.startup_cpu_us = cpu;
			if (o.have_start_cpu)
				ctl.startup_cpu_us =
				    (cpu > o.start_cpu_us ? cpu - o.start_cpu_us : 0) +
				    o.parent_cpu_us;
		}
	}
	if (o.enable_pci && !ctl.pci)
		sqb_ctl_log(SQB_CTL_WARN,
			    "--enable-pci: squib has no PCI transport on this "
			    "architecture or hypervisor; every virtio device stays on virtio-mmio "
			    "(docs/api-compat.md)");
	/* api_server/mod.rs: once the socket is bound; Firecracker's test
	 * framework (microvm.py spawn) waits for this line when it logs at
	 * Info or Debug */
	if (!o.no_api)
		sqb_ctl_log(SQB_CTL_INFO, "API server started.");
	/* rpc_interface.rs build_microvm_from_requests: the --metadata
	 * document goes in once the API server runs (so its start line is
	 * already in the log, which Firecracker's test framework waits for),
	 * and either outcome is logged (test_cmd_line_start.py) */
	if (o.metadata) {
		if (sqb_ctl_mmds_put_file(&ctl, o.metadata, err, sizeof(err)) < 0) {
			sqb_ctl_log(SQB_CTL_ERROR, "%s", err);
			fprintf(stderr, "squib: --metadata: %s\n", err);
			goto out;
		}
		sqb_ctl_log(SQB_CTL_INFO, "Successfully added metadata to mmds from file");
	}
	/* the socket listens: a client connecting now finds its request
	 * queued while the host is asked what the first VM needs (~0.3-0.5 ms
	 * here, otherwise inside its first PUT /snapshot/load or InstanceStart) */
	if (!ctl.shell)
		sqb_vm_host_warm();
	if (o.config_file && sqb_ctl_apply_config_file(&ctl, o.config_file, err, sizeof(err)) < 0) {
		sqb_ctl_log(SQB_CTL_ERROR, "%s", err);
		fprintf(stderr, "squib: %s\n", err);
		goto out;
	}
	rc = sqb_api_run(&ctl, api, sig_fd, o.serial_input);
	if (ctl.exit_requested && !__atomic_load_n(&term_since_ms, __ATOMIC_RELAXED)) {
		term_begin();		   /* the teardown below is bounded too */
		pthread_kill(wd, SIGTERM); /* the watchdog starts counting */
	}
	if (ctl.metrics_set)
		sqb_ctl_metrics_flush(&ctl);
out:
	sqb_api_close(api);
	sqb_vm_free(ctl.shell);
	ctl.shell = NULL;
	sqb_ctl_destroy(&ctl);
	/* sig_fd (term_efd) stays open: the watchdog may still write to it, and
	 * the process ends here */
	/* Firecracker's last line, word for word: its test framework reads the
	 * exit code from it (microvm.py get_exit_code, docs/api-compat.md) */
	if (rc == 0)
		sqb_ctl_log(SQB_CTL_INFO, "Firecracker exiting successfully. exit_code=0");
	else
		sqb_ctl_log(SQB_CTL_ERROR, "Firecracker exiting with error. exit_code=%d", rc);
	return rc;
out_early:
	/* a bad --metadata, logger or metrics argument: the store and the
	 * rest go before the process does (no leak report in ASan builds) */
	sqb_ctl_destroy(&ctl);
	return 1;
}
