/* squib-snap: offline snapshot tool.  main() looks the subcommand up in the
 * const table below (its order is the order of `squib-snap --help`) and runs
 * it; each subcommand lives in its own cmd_<name>.c (docs/squib-snap.md). */
#include <stdio.h>
#include <string.h>

#include "snaptool.h"

const struct st_command st_commands[] = {
    {"inspect", cmd_inspect, "show header, sections, memory, vCPUs, devices, config",
     "usage: squib-snap inspect FILE [--json] [--vcpus] [--devices] [--memory]\n"
     "                          [--parent FILE]... [--no-parents]\n"
     "  Show a snapshot: header and identity, sections, memory regions with page\n"
     "  statistics, vCPUs with key registers, devices, config, metadata, working set.\n"
     "  --vcpus, --devices, --memory show only these parts, in full detail\n"
     "  (all registers, device state bytes, extent runs).\n"
     "  --json          stable machine-readable output (docs/squib-snap.md)\n"
     "  --parent FILE   where to look for parent snapshots (repeatable)\n"
     "  --no-parents    do not open the parent chain\n"},
    {"verify", cmd_verify, "check every checksum, bound and the parent chain",
     "usage: squib-snap verify FILE [--parent FILE]... [--memory-file MEM] [--quiet]\n"
     "                         [--decode]\n"
     "  Check header, directory, every section and extent checksum, index\n"
     "  invariants, zero filler, and every parent in the chain.  An extent is\n"
     "  checked by the checksum of its stored bytes; --decode also decodes\n"
     "  every extent (proves each chunk decodes to exactly its pages).\n"
     "  Exit 0 when sound; else exit 1 and one line per problem:\n"
     "    SECTION at 0xOFFSET: reason\n"
     "  --memory-file MEM  FILE is a STATE file; also check that MEM is its\n"
     "                     companion MEMORY file (identity) and verify MEM\n"
     "                     with its parent chain (--parent paths first)\n"
     "  --max-problems N   stop after N problems (default 100)\n"},
    {"diff", cmd_diff, "show what changed from A to B; write B as a diff on A",
     "usage: squib-snap diff A B [--json] [--all] [--output D [--codec C] [--dedup]]\n"
     "                       [--parent FILE]...\n"
     "  Changed page ranges, registers per vCPU (name: old -> new), devices,\n"
     "  config and metadata.  Text output lists the first 16 page ranges unless\n"
     "  --all.  --output D writes B as a diff snapshot whose parent is A.\n"},
    {"merge", cmd_merge, "flatten BASE + DIFFs into one snapshot",
     "usage: squib-snap merge BASE DIFF... -o OUT [--diff] [--codec C] [--dedup]\n"
     "                        [--chunk-size N] [--force]\n"
     "                        [--state STATE --state-out NEWSTATE]\n"
     "  Layers are given bottom to top; each DIFF's parent must be the layer\n"
     "  before it (checked by identity).  Without --diff OUT is a full snapshot;\n"
     "  with --diff, the DIFFs are squashed into one diff whose parent is BASE.\n"
     "  OUT is written atomically and never over an input.\n"
     "  Stored chunks already in OUT's codec are copied, not encoded again,\n"
     "  unless a codec level (lz4:1, zstd:3), --chunk-size or --dedup is given.\n"
     "  --state STATE (the state file of the top layer) --state-out NEWSTATE:\n"
     "  also write NEWSTATE, a copy of STATE paired with OUT, so that the two\n"
     "  load as one snapshot.  Without them OUT has no companion.\n"},
    {"extract", cmd_extract, "dense raw memory, one vCPU's registers, a device's state",
     "usage: squib-snap extract FILE --memory OUT.raw [--region N] [--force]\n"
     "       squib-snap extract FILE --vcpu N [--json]\n"
     "       squib-snap extract FILE --device ID -o OUT [--force]\n"
     "  --memory   regions concatenated in order (Firecracker memory file layout),\n"
     "             or only region N\n"
     "  --vcpu     all records and decoded registers of vCPU N\n"
     "  --device   the raw state bytes of device ID (or index)\n"
     "  --parent FILE  where to look for parents (repeatable)\n"},
    {"import", cmd_import, "wrap a raw memory file into a snapshot",
     "usage: squib-snap import --memory RAW -o OUT [--layout GPA:SIZE,...]\n"
     "                         [--codec none|lz4|zstd[:LEVEL]] [--dedup]\n"
     "                         [--chunk-size N] [--arch x86_64|aarch64]\n"
     "                         [--page-size 4096|16384] [--force]\n"
     "  RAW holds the regions concatenated in order (a Firecracker memory file);\n"
     "  default layout: one region at guest address 0.  Sizes take K/M/G.\n"},
    {"repack", cmd_repack, "re-encode with another codec, dedup or chunk size",
     "usage: squib-snap repack FILE -o OUT [--codec none|lz4|zstd[:LEVEL]] [--dedup]\n"
     "                         [--chunk-size N] [--parent FILE]... [--force]\n"
     "                         [--state STATE --state-out NEWSTATE]\n"
     "  Kind and parent are kept: a diff stays a diff on the same parent.\n"
     "  Chunks already in the codec asked for are copied, as for merge.\n"
     "  --state/--state-out: as for merge (STATE is FILE's state file).\n"},
    {"pair", cmd_pair, "check that a STATE file and a MEMORY file belong together",
     "usage: squib-snap pair STATE MEM [--parent FILE]... [--quiet] [--decode]\n"
     "  Checks roles, that STATE names MEM as its companion (uuid + digest),\n"
     "  and verifies both files; a diff MEM with its parent chain, looked for\n"
     "  in the --parent files first, then at the path MEM names.  --decode as\n"
     "  for verify.\n"},
};
const unsigned int st_ncommands = sizeof(st_commands) / sizeof(st_commands[0]);

static void usage(FILE *f)
{
	fprintf(f, "usage: squib-snap COMMAND [ARGS]   (squib-snap COMMAND --help)\n\ncommands:\n");
	for (unsigned int i = 0; i < st_ncommands; i++)
		fprintf(f, "  %-8s %s\n", st_commands[i].name, st_commands[i].summary);
	fprintf(f, "\nexit status: 0 ok, 1 bad snapshot or refused operation, 2 usage error\n");
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return ST_USAGE;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
		if (argc > 2)
			for (unsigned int i = 0; i < st_ncommands; i++)
				if (!strcmp(argv[2], st_commands[i].name)) {
					fputs(st_commands[i].usage, stdout);
					return ST_OK;
				}
		usage(stdout);
		return ST_OK;
	}
	if (!strcmp(argv[1], "--version")) {
		printf("squib-snap (squib) format version %d\n", SQB_SNAP_FORMAT_VERSION);
		return ST_OK;
	}
	for (unsigned int i = 0; i < st_ncommands; i++) {
		if (!strcmp(argv[1], st_commands[i].name)) {
			st_cmd = st_commands[i].name;
			return st_commands[i].run(argc - 1, argv + 1);
		}
	}
	fprintf(stderr, "squib-snap: unknown command '%s'\n", argv[1]);
	usage(stderr);
	return ST_USAGE;
}
