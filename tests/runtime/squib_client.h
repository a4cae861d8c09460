/* Test harness for the real `squib` binary: spawn it on a private API
 * socket with serial output captured to a file, talk HTTP/1.1 to it, wait
 * for serial text and for the process to exit. */
#ifndef SQB_TEST_SQUIB_CLIENT_H
#define SQB_TEST_SQUIB_CLIENT_H

#include <stddef.h>
#include <sys/types.h>

struct sqb_tc {
	pid_t pid;
	char dir[64];
	char sock[100];
	char serial[192];
	char errlog[192];
	int exited, status;
	int stdin_fd; /* write end of squib's stdin when spawned with tc_spawn_stdin */
};

/* Start squib with extra args (NULL-terminated; may be NULL).  With
 * api=0 no --api-sock is passed (for --no-api runs). Returns 0 or -1. */
int tc_spawn(struct sqb_tc *t, const char *squib, const char *const *extra, int api);
/* Same, with squib's stdin on a pipe whose write end is t->stdin_fd. */
int tc_spawn_stdin(struct sqb_tc *t, const char *squib, const char *const *extra, int api);
/* Same, with the API on and squib's stdout (the serial sink) on out_fd. */
int tc_spawn_out(struct sqb_tc *t, const char *squib, const char *const *extra, int out_fd);
/* One request on a fresh connection.  Returns the HTTP status or -1;
 * body (NUL-terminated) gets the response body. */
int tc_req(struct sqb_tc *t, const char *method, const char *path, const char *json, char *body,
	   size_t cap);
/* Send raw bytes on a fresh connection, half-close if shut_wr, and read the
 * reply until the server closes or timeout_ms passes.  Returns bytes read. */
int tc_raw(struct sqb_tc *t, const void *data, size_t len, int shut_wr, char *out, size_t cap,
	   int timeout_ms);
/* HTTP status of a raw reply, or -1. */
int tc_status_of(const char *reply);
int tc_connect(struct sqb_tc *t);
/* Wait until the serial file contains needle; 0 or -1 on timeout. */
int tc_wait_serial(struct sqb_tc *t, const char *needle, int timeout_ms);
/* Read the whole serial file (malloc'd, NUL-terminated). */
char *tc_read_file(const char *path);
/* Wait for exit; returns the exit code, or -1 on timeout / signal. */
int tc_wait_exit(struct sqb_tc *t, int timeout_ms);
void tc_stop(struct sqb_tc *t); /* SIGKILL if running, remove the temp dir */

#endif
