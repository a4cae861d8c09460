/* Golden files: every tests/golden/valid/ file opens, verifies (with its
 * chain) and reads back; every tests/golden/invalid/ file fails with the
 * error invalid.txt names for it, and every file there is listed.
 *   test_golden <tests/golden dir> */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "squib/snapfmt.h"
#include "snap_patch.h"

static const char *golden;

static void first_diag(void *ctx, int err, const struct sqb_diag *d)
{
	(void)err;
	*(struct sqb_diag *)ctx = *d;
}

/* First error of open + full chain verify, or 0; diag filled on error. */
static int check_file(const char *path, struct sqb_diag *d)
{
	sqb_snap *s;
	int err = sqb_snap_open(&s, path, NULL, d);
	struct sqb_diag vd;

	if (err)
		return err;
	err = sqb_snap_verify(s, SQB_VERIFY_CHAIN, 1, first_diag, d);
	/* every page of every region reads back */
	for (unsigned int r = 0; r < sqb_snap_region_count(s) && !err; r++) {
		struct sqb_region reg;
		uint8_t *buf;

		sqb_snap_region(s, r, &reg);
		buf = malloc(reg.size);
		err = buf ? sqb_snap_read(s, reg.gpa, buf, reg.size, &vd) : -1;
		free(buf);
	}
	sqb_snap_free(s);
	return err;
}

static void test_valid_files_open_verify_and_read(void **state)
{
	char dpath[600], path[1200];
	struct dirent *de;
	unsigned int n = 0;
	DIR *dir;

	(void)state;
	snprintf(dpath, sizeof(dpath), "%s/valid", golden);
	dir = opendir(dpath);
	assert_non_null(dir);
	while ((de = readdir(dir))) {
		struct sqb_diag d = {0};
		sqb_snap *s;
		int err;

		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dpath, de->d_name);
		err = check_file(path, &d);
		if (err)
			fail_msg("%s: %s (%s at 0x%llx: %s)", de->d_name, sqb_strerror(err),
				 d.section, (unsigned long long)d.offset, d.reason);
		assert_int_equal(sqb_snap_open(&s, path, NULL, NULL), 0);
		assert_int_equal(sqb_snap_get_info(s)->read_only, 0);
		sqb_snap_free(s);
		n++;
	}
	closedir(dir);
	assert_true(n >= 8);
}

static void test_invalid_files_fail_with_expected_code(void **state)
{
	char mpath[600], path[1200], line[512], dpath[600];
	char names[128][64];
	unsigned int n = 0;
	struct dirent *de;
	FILE *m;
	DIR *dir;

	(void)state;
	snprintf(mpath, sizeof(mpath), "%s/invalid.txt", golden);
	m = fopen(mpath, "r");
	assert_non_null(m);
	while (fgets(line, sizeof(line), m)) {
		char name[64], code[32];
		struct sqb_diag d = {0};
		int want = 0, got;

		if (line[0] == '#' || sscanf(line, "%63s %31s", name, code) != 2)
			continue;
		assert_true(n < 128);
		snprintf(names[n++], sizeof(names[0]), "%s", name);
		if (sqbt_err_code(code, &want))
			fail_msg("%s: unknown expected code %s", name, code);
		snprintf(path, sizeof(path), "%s/invalid/%s", golden, name);
		got = check_file(path, &d);
		if (got != want)
			fail_msg("%s: expected %s, got %s (%s: %s)", name, code, sqb_strerror(got),
				 d.section, d.reason);
		/* parsers say where: a section name and a reason */
		assert_true(d.section[0] && d.reason[0]);
	}
	fclose(m);
	assert_true(n >= 20);
	/* nothing in invalid/ escapes the manifest */
	snprintf(dpath, sizeof(dpath), "%s/invalid", golden);
	dir = opendir(dpath);
	assert_non_null(dir);
	while ((de = readdir(dir))) {
		unsigned int i;

		if (de->d_name[0] == '.')
			continue;
		for (i = 0; i < n && strcmp(names[i], de->d_name); i++)
			;
		if (i == n)
			fail_msg("invalid/%s is not listed in invalid.txt", de->d_name);
	}
	closedir(dir);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_valid_files_open_verify_and_read),
	    cmocka_unit_test(test_invalid_files_fail_with_expected_code),
	};

	if (argc != 2) {
		fprintf(stderr, "usage: test_golden <tests/golden dir>\n");
		return 2;
	}
	golden = argv[1];
	return cmocka_run_group_tests(tests, NULL, NULL);
}
