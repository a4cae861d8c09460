/* Tests of the shared error strings and the atomic-file / fault-injection
 * helpers every snapshot writer relies on. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "io.h"
#include "squib/errors.h"

static void test_strerror_names_every_code(void **state)
{
	(void)state;
	for (int e = SQB_EBADMAGIC; e < SQB_ERROR_MAX_; e++) {
		const char *s = sqb_strerror(-e);
		assert_non_null(s);
		assert_string_not_equal(s, "unknown error");
	}
	assert_string_equal(sqb_strerror(-ENOSPC), strerror(ENOSPC));
	assert_string_equal(sqb_strerror(0), "success");
	assert_string_equal(sqb_strerror(-99999), "unknown error");
}

static char *read_all(const char *path)
{
	static char buf[256];
	int fd = open(path, O_RDONLY);
	ssize_t n;

	if (fd < 0)
		return NULL;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	buf[n < 0 ? 0 : n] = 0;
	return buf;
}

static int write_atomically(const char *path, const char *text)
{
	struct sqb_afile af;
	int err = sqb_afile_open(&af, path);

	if (err)
		return err;
	err = sqb_pwrite_full(af.fd, text, strlen(text), 0);
	if (err) {
		sqb_afile_abort(&af);
		return err;
	}
	return sqb_afile_commit(&af);
}

static void test_afile_keeps_old_content_on_failure(void **state)
{
	char dir[] = "/tmp/sqb-common-XXXXXX";
	char path[128];
	static const char *const faults[] = { "enospc", "fsync", "rename" };

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/file", dir);
	assert_int_equal(write_atomically(path, "old"), 0);
	for (size_t i = 0; i < sizeof(faults) / sizeof(faults[0]); i++) {
		setenv("SQB_FAULT", faults[i], 1);
		assert_true(write_atomically(path, "new content") < 0);
		unsetenv("SQB_FAULT");
		assert_string_equal(read_all(path), "old");
	}
	/* short writes and EINTR are retried: the content arrives whole */
	setenv("SQB_FAULT", "short_write,eintr", 1);
	assert_int_equal(write_atomically(path, "new content"), 0);
	unsetenv("SQB_FAULT");
	assert_string_equal(read_all(path), "new content");
	/* no temporary file is left behind */
	char cmd[200];
	snprintf(cmd, sizeof(cmd), "test $(ls %s | wc -l) -eq 1", dir);
	assert_int_equal(system(cmd), 0);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_strerror_names_every_code),
		cmocka_unit_test(test_afile_keeps_old_content_on_failure),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
