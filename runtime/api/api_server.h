/* The API socket server (private to the squib binary). */
#ifndef SQB_API_SERVER_H
#define SQB_API_SERVER_H

#include <stddef.h>

struct sqb_api;
struct sqb_ctl;

int sqb_api_open(struct sqb_api **out, const char *path, size_t max_payload, char *err,
		 size_t errlen);
void sqb_api_close(struct sqb_api *s);
/* Serve until the VM stops or a signal arrives on sig_fd; s may be NULL
 * (--no-api).  Returns the process exit code. */
int sqb_api_run(struct sqb_ctl *c, struct sqb_api *s, int sig_fd, int use_stdin);

#endif
