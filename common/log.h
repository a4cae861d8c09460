/* Logging and the two error-propagation macros (private to squib modules).
 *
 * SQB_LOG_LEVEL in the environment (error, warn, info, debug) sets what is
 * printed to stderr; the default is warn.  Libraries log only at debug level
 * unless something is truly wrong; callers report errors to the user.
 */
#ifndef SQB_COMMON_LOG_H
#define SQB_COMMON_LOG_H

enum sqb_log_level { SQB_LOG_ERROR, SQB_LOG_WARN, SQB_LOG_INFO, SQB_LOG_DEBUG };

void sqb_log(enum sqb_log_level lvl, const char *file, int line, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
int sqb_log_enabled(enum sqb_log_level lvl);
/* Programs may redirect the libraries' log lines (default: stderr, level
 * from SQB_LOG_LEVEL).  fd is not closed by the library. */
void sqb_log_set_level(enum sqb_log_level lvl);
void sqb_log_set_fd(int fd);
/* Or hand each line (the message alone, no prefix or newline) to a sink
 * that writes it in its own format: squib's API logger does, so the log
 * has Firecracker's line shape throughout.  NULL: back to the fd. */
typedef void (*sqb_log_sink_fn)(enum sqb_log_level lvl, const char *file, int line,
				const char *msg);
void sqb_log_set_sink(sqb_log_sink_fn sink);

#define sqb_err(...)   sqb_log(SQB_LOG_ERROR, __FILE__, __LINE__, __VA_ARGS__)
#define sqb_warn(...)  sqb_log(SQB_LOG_WARN, __FILE__, __LINE__, __VA_ARGS__)
#define sqb_info(...)  sqb_log(SQB_LOG_INFO, __FILE__, __LINE__, __VA_ARGS__)
#define sqb_debug(...) sqb_log(SQB_LOG_DEBUG, __FILE__, __LINE__, __VA_ARGS__)

/* Return err (a negative code) if cond holds, logging file:line at debug. */
#define RETURN_ERROR_IF(cond, err, ...)                                               \
	do {                                                                          \
		if (cond) {                                                           \
			sqb_debug("%s: " __VA_ARGS__ "", #cond);                      \
			return (err);                                                 \
		}                                                                     \
	} while (0)

/* Evaluate expr (an int-returning call); return its value if negative. */
#define FORWARD_IF_ERROR(expr)                                                        \
	do {                                                                          \
		int fwd_err_ = (expr);                                                \
		if (fwd_err_ < 0) {                                                   \
			sqb_debug("forwarding %d from %s", fwd_err_, #expr);         \
			return fwd_err_;                                              \
		}                                                                     \
	} while (0)

#endif
