/* squib-snap internals shared by the subcommands: the command table, exit
 * codes, option helpers, snapshot opening with located errors, register
 * decoding, JSON output (yajl) and terminal progress.
 *
 *   main.c  argv[1] --> st_commands[] --> cmd_<name>(argc-1, argv+1)
 *                                         |-- st_open()      (diag on failure)
 *                                         |-- st_json_*()    (--json)
 *                                         '-- st_progress_*() (stderr tty, >1 s)
 */
#ifndef SQB_SNAPTOOL_H
#define SQB_SNAPTOOL_H

#include <stdint.h>
#include <stdio.h>
#include <yajl/yajl_gen.h>

#include "squib/errors.h"
#include "squib/snapfmt.h"

/* Exit codes (docs/squib-snap.md "Exit status"). */
#define ST_OK	 0
#define ST_FAIL	 1 /* bad snapshot, refused operation, I/O error */
#define ST_USAGE 2 /* bad arguments */

struct st_command {
	const char *name;
	int (*run)(int argc, char **argv);
	const char *summary;
	const char *usage; /* full --help text */
};
extern const struct st_command st_commands[];
extern const unsigned int st_ncommands;

int cmd_inspect(int argc, char **argv);
int cmd_verify(int argc, char **argv);
int cmd_diff(int argc, char **argv);
int cmd_merge(int argc, char **argv);
int cmd_extract(int argc, char **argv);
int cmd_import(int argc, char **argv);
int cmd_repack(int argc, char **argv);
int cmd_pair(int argc, char **argv);

/* ---- messages and option parsing (st_util.c) ---- */
extern const char *st_cmd; /* name of the running subcommand */
/* "squib-snap CMD: msg" on stderr; returns code. */
int st_fail(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define ST_MAX_PARENTS 64 /* --parent files one command accepts */

/* Append a --parent FILE; 0, or ST_USAGE (with the message) when full. */
int st_add_parent(const char **parents, unsigned int *np, const char *arg);

/* Usage error: message, hint to --help, returns ST_USAGE. */
int st_usage(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Print a located diagnostic (or the bare error) for `what`; returns ST_FAIL. */
int st_fail_diag(const char *what, int err, const struct sqb_diag *d);
/* An operation on s failed with err: for format errors, find and print the
 * first located problem (file, section, offset) as verify would. */
int st_fail_located(const char *what, int err, sqb_snap *s);
/* Print the help of the running command to stdout; returns ST_OK. */
int st_help(void);
/* Parse "none|lz4|zstd[:level]". */
int st_parse_codec(const char *s, enum sqb_codec *codec, int *level);
/* Parse a size with an optional K/M/G suffix (binary). */
int st_parse_size(const char *s, uint64_t *out);
int st_parse_u64(const char *s, uint64_t *out);
/* Refuse an existing output unless force; refuse any input as output. */
int st_check_output(const char *out, int force, const char *const *inputs, unsigned int n);
/* Path of `target` as a path hint stored in a file written at `out`
 * (`target` need not exist yet). */
char *st_hint_for(const char *out, const char *target);

/* Options shared by the commands that write snapshots. */
struct st_wopts {
	enum sqb_codec codec;
	int level;
	int dedup;
	uint64_t chunk;
	unsigned int threads;
	int force;
	const char *out;
};
/* Handles --codec --dedup --chunk-size --threads --force -o; returns 1 when
 * the option was one of these, 0 when not, -1 after a usage error. */
int st_wopt(struct st_wopts *w, int opt, const char *arg);
void st_wopts_apply(const struct st_wopts *w, struct sqb_write_opts *o);
#define ST_WOPT_LONGOPTS                                                                           \
	{"codec", required_argument, NULL, 'c'}, {"dedup", no_argument, NULL, 'D'},                \
	    {"chunk-size", required_argument, NULL, 'C'},                                          \
	    {"threads", required_argument, NULL, 'T'}, {"force", no_argument, NULL, 'f'},          \
	{                                                                                          \
		"output", required_argument, NULL, 'o'                                             \
	}

/* ---- opening (st_open.c) ---- */
/* Open path; parents are looked for first among the given files (in any
 * order: they are sorted into chain order by identity), then by the hint
 * stored in the file.  On failure prints a located message and returns
 * ST_FAIL. */
int st_open(sqb_snap **out, const char *path, const char *const *parents, unsigned int n,
	    int no_parents);
/* Same without printing: returns 0 or the library's error, fills d. */
int st_open_quiet(sqb_snap **out, const char *path, const char *const *parents, unsigned int n,
		  int no_parents, struct sqb_diag *d);
/* Open for reading: like st_open, but a missing parent only warns and the
 * file is opened alone (PARENT pages then cannot be read). */
int st_open_lenient(sqb_snap **out, const char *path, const char *const *parents, unsigned int n,
		    int no_parents);
/* Iterate the instances of sections of a type, in directory order. */
unsigned int st_instances(const sqb_snap *s, uint32_t type, uint32_t *inst, unsigned int max);
/* Info of a file without opening its parents (for chain checks). */
int st_peek(const char *path, struct sqb_snap_info *info);

const char *st_arch_name(enum sqb_arch a);
const char *st_hv_name(enum sqb_hv h);
const char *st_kind_name(enum sqb_snap_kind k);
const char *st_role_name(enum sqb_snap_role r);
const char *st_human(uint64_t bytes, char buf[32]);
/* Stored LINK hint (0 parent, 1 companion) or NULL; caller frees. */
char *st_link_hint(const sqb_snap *s, uint32_t instance);

/* Verify s and each parent layer, printing one line per problem (stdout);
 * returns the number of problems (cmd_verify.c).  decode: also decode every
 * extent (else its stored bytes' checksum is the check). */
unsigned int st_verify_chain(sqb_snap *s, unsigned int max, const char *label, int decode);
/* STATE/MEMORY companion check plus verification of both (cmd_pair.c). */
int st_pair_check(const char *state, const char *memf, const char *const *parents, unsigned int np,
		  int verbose, int decode);

/* ---- a new state file for a new memory file (st_state.c) ---- */
struct st_restate {
	const char *in, *out; /* --state, --state-out */
	sqb_snap *state;
	struct sqb_uuid uuid; /* the new state file's, chosen first */
	char *mem_hint;
};
#define ST_STATE_LONGOPTS                                                                          \
	{"state", required_argument, NULL, 0x100},                                                 \
	{                                                                                          \
		"state-out", required_argument, NULL, 0x101                                        \
	}
/* Open r->in, check it pairs with mem (the top layer, at mem_path) and set
 * o's companion fields for the memory file to be written at mem_out. */
int st_restate_prepare(struct st_restate *r, const sqb_snap *mem, const char *mem_path,
		       const char *mem_out, struct sqb_write_opts *o);
/* Write r->out naming (mu, md); on failure remove mem_out.  ST_OK/ST_FAIL. */
int st_restate_write(struct st_restate *r, const char *mem_out, const struct sqb_uuid *mu,
		     const struct sqb_digest *md);
void st_restate_free(struct st_restate *r);

/* ---- registers (st_regs.c) ---- */
struct st_reg {
	char name[24];
	uint64_t value;
	int key; /* shown in summaries */
};
#define ST_MAX_REGS 512
/* Decode the registers of one vCPU's record list (arch-specific). */
unsigned int st_decode_regs(enum sqb_arch arch, const struct sqb_record *recs, unsigned int n,
			    struct st_reg *out, unsigned int max);

/* ---- JSON (st_json.c) ---- */
yajl_gen st_json_new(void); /* writes to stdout as it goes */
int st_json_end(yajl_gen g);
void st_js(yajl_gen g, const char *s);
void st_jkv_str(yajl_gen g, const char *k, const char *v);
void st_jkv_u64(yajl_gen g, const char *k, uint64_t v);
void st_jkv_int(yajl_gen g, const char *k, long long v);
void st_jkv_bool(yajl_gen g, const char *k, int v);
void st_jkv_dbl(yajl_gen g, const char *k, double v);
void st_jkv_hex(yajl_gen g, const char *k, uint64_t v);
void st_jkv_null(yajl_gen g, const char *k);
void st_ju64(yajl_gen g, uint64_t v);
void st_jkey(yajl_gen g, const char *k);
void st_jmap(yajl_gen g);
void st_jmap_end(yajl_gen g);
void st_jarr(yajl_gen g);
void st_jarr_end(yajl_gen g);
/* Emit a byte string as JSON: UTF-8 text as is, else "hex:...". */
void st_jkv_bytes(yajl_gen g, const char *k, const void *p, size_t n);

/* ---- progress (st_progress.c) ---- */
/* Show "label: 40% 512 MiB read 3.1 s" on stderr after one second when
 * stderr is a terminal; progress comes from this process's I/O counters
 * (the library streams internally and has no progress callback).  The
 * percentage is shown when the bytes to read (or else to write) are known
 * in advance; pass 0, 0 when they are not. */
void st_progress_start(const char *label, uint64_t expect_read, uint64_t expect_write);
void st_progress_stop(void);

#endif
