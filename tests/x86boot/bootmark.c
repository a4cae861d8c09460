/* bootmark: time a VMM from process start to a marker on its console, for
 * the boot benchmark inside the test host (testhost/bench-boot.sh).
 *
 *   bootmark MARKER TIMEOUT_S LOG -- COMMAND [ARGS...]
 *
 * Runs COMMAND with stdout+stderr on a pipe (copied to LOG), and as soon as
 * a line containing MARKER appears prints
 *   BOOTMARK ms=<process start to marker> rss_anon_kb=.. rss_file_kb=.. rss_shmem_kb=..
 * (the child's /proc/PID/status at that moment), then kills it.  Exit 0 on
 * the marker, 1 if the child ended first, 3 on timeout. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double ms_since(const struct timespec *t0)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)(t.tv_sec - t0->tv_sec) * 1e3 + (t.tv_nsec - t0->tv_nsec) / 1e6;
}

static long status_kb(pid_t pid, const char *key)
{
	char path[64], line[256];
	long v = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, key, strlen(key)))
			v = strtol(line + strlen(key) + 1, NULL, 10);
	fclose(f);
	return v;
}

static pid_t child;

static void on_alarm(int sig)
{
	(void)sig;
	if (child > 0)
		kill(child, SIGKILL);
	_exit(3);
}

int main(int argc, char **argv)
{
	struct timespec t0;
	char line[4096];
	int fds[2], rc = 1;
	size_t len = 0;
	FILE *log, *in;
	pid_t pid;
	char c;

	if (argc < 6 || strcmp(argv[4], "--")) {
		fprintf(stderr, "usage: bootmark MARKER TIMEOUT_S LOG -- COMMAND [ARGS...]\n");
		return 2;
	}
	log = fopen(argv[3], "w");
	if (!log || pipe(fds) < 0)
		return perror("bootmark"), 2;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	pid = fork();
	if (pid == 0) {
		dup2(fds[1], 1);
		dup2(fds[1], 2);
		close(fds[0]);
		close(fds[1]);
		execvp(argv[5], argv + 5);
		perror(argv[5]);
		_exit(127);
	}
	close(fds[1]);
	child = pid;
	signal(SIGALRM, on_alarm);
	alarm((unsigned int)atoi(argv[2]));
	in = fdopen(fds[0], "r");
	while (in && fread(&c, 1, 1, in) == 1) {
		fputc(c, log);
		if (c != '\n' && len + 1 < sizeof(line)) {
			line[len++] = c;
			continue;
		}
		line[len] = 0;
		len = 0;
		if (strstr(line, argv[1])) {
			printf(
			    "BOOTMARK ms=%.1f rss_anon_kb=%ld rss_file_kb=%ld rss_shmem_kb=%ld\n",
			    ms_since(&t0), status_kb(pid, "RssAnon:"), status_kb(pid, "RssFile:"),
			    status_kb(pid, "RssShmem:"));
			rc = 0;
			break;
		}
	}
	if (rc)
		fprintf(stderr, "bootmark: %s ended before '%s'\n", argv[5], argv[1]);
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	fclose(log);
	return rc;
}
