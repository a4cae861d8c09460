/* PUT /cpu-config: Firecracker's custom CPU template (cpu_config/templates.rs,
 * templates_serde.rs, x86_64/custom_cpu_template.rs), parsed as strictly as
 * serde does and with its messages, stored until InstanceStart hands it to
 * sqb_vm_create (docs/cpu-templates.md).
 *
 *   body ──> kvm_capabilities ["N" | "!N"]
 *            cpuid_modifiers  [{leaf, subleaf, flags, modifiers [{register, bitmap}]}]
 *            msr_modifiers    [{addr, bitmap}]
 *        ──> struct sqb_cpu_template (squib/runtime.h) ──> c->cpu_config
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ctl.h"
#include "json_fields.h"

#define MSG_AFTER_START	    "The requested operation is not supported after starting the microVM."
#define CPU_CONFIG_FILE_MAX (1 << 20)

void sqb_cpu_template_free(struct sqb_cpu_template *t)
{
	if (!t)
		return;
	free(t->caps);
	free(t->cpuid);
	free(t->regs);
	free(t->msrs);
	free(t);
}

/* Rust's ParseIntError for from_str_radix / str::parse on an unsigned
 * type: kind (Debug) and text (Display). */
enum pie { PIE_OK, PIE_EMPTY, PIE_DIGIT, PIE_OVERFLOW };
static const char *const pie_kind[] = {"", "Empty", "InvalidDigit", "PosOverflow"};
static const char *const pie_text[] = {"", "cannot parse integer from empty string",
				       "invalid digit found in string",
				       "number too large to fit in target type"};

static enum pie parse_radix(const char *s, unsigned int radix, uint64_t max, uint64_t *out)
{
	uint64_t x = 0;

	if (!*s)
		return PIE_EMPTY;
	if (*s == '+' && s[1]) /* a lone "+" is an invalid digit, as in Rust */
		s++;
	for (; *s; s++) {
		unsigned int d;

		if (*s >= '0' && *s <= '9')
			d = (unsigned int)(*s - '0');
		else if (*s >= 'a' && *s <= 'z')
			d = (unsigned int)(*s - 'a') + 10;
		else if (*s >= 'A' && *s <= 'Z')
			d = (unsigned int)(*s - 'A') + 10;
		else
			return PIE_DIGIT;
		if (d >= radix)
			return PIE_DIGIT;
		if (x > (max - d) / radix)
			return PIE_OVERFLOW;
		x = x * radix + d;
	}
	*out = x;
	return PIE_OK;
}

/* templates_serde.rs deserialize_from_str_u32/u64: "0x" hex or "0b" binary. */
int sqb_cpu_number_parse(const char *s, uint64_t max, uint64_t *out, char *msg, size_t len)
{
	enum pie e;

	if (!strncmp(s, "0b", 2))
		e = parse_radix(s + 2, 2, max, out);
	else if (!strncmp(s, "0x", 2))
		e = parse_radix(s + 2, 16, max, out);
	else {
		snprintf(msg, len,
			 "No supported number system prefix found in value [%s]. Make sure to "
			 "prefix the number with '0x' for hexadecimal numbers or '0b' for binary "
			 "numbers.",
			 s);
		return -1;
	}
	if (e == PIE_OK)
		return 0;
	snprintf(msg, len,
		 "Failed to parse string [%s] as a number for CPU template - ParseIntError { "
		 "kind: %s }",
		 s, pie_kind[e]);
	return -1;
}

/* templates.rs RegisterValueFilter: "0b" optional, read from the right,
 * '_' skipped, 'x' keeps the bit, '0'/'1' set it; a shorter string leaves
 * the high bits alone.  The length check comes before each character (a
 * '_' past the width is "too long" too); an unknown character is named by
 * its byte value, as Rust prints a u8. */
int sqb_cpu_bitmap_parse(const char *s, unsigned int bits, uint64_t *filter, uint64_t *value,
			 char *msg, size_t len)
{
	const char *p = !strncmp(s, "0b", 2) ? s + 2 : s;
	size_t n = strlen(p);
	unsigned int i = 0;

	*filter = *value = 0;
	while (n--) {
		unsigned char ch = (unsigned char)p[n];

		if (i == bits) {
			snprintf(msg, len,
				 "Failed to parse string [%s] as a bitmap - string is too long", s);
			return -1;
		}
		switch (ch) {
		case '_':
			continue;
		case 'x':
			break;
		case '1':
			*value |= 1ULL << i;
			/* fall through */
		case '0':
			*filter |= 1ULL << i;
			break;
		default:
			snprintf(msg, len,
				 "Failed to parse string [%s] as a bitmap - unknown character: %u",
				 s, ch);
			return -1;
		}
		i++;
	}
	return 0;
}

/* A modifier array's element must be an object (serde: "expected struct X"). */
static int want_struct(yajl_val v, const char *name, char *err, size_t errlen)
{
	if (YAJL_IS_OBJECT(v))
		return 0;
	snprintf(err, errlen, SQB_JSON_ERR_PREFIX "invalid type: %s, expected struct %s.",
		 YAJL_IS_STRING(v)		       ? "string"
		 : YAJL_IS_ARRAY(v)		       ? "sequence"
		 : YAJL_IS_TRUE(v) || YAJL_IS_FALSE(v) ? "boolean"
		 : YAJL_IS_NULL(v)		       ? "null"
						       : "number",
		 name);
	return -1;
}

/* The index of key in obj (present: sqb_json_fields checked it). */
static size_t key_index(yajl_val obj, const char *key)
{
	size_t k;

	for (k = 0; k < obj->u.object.len && strcmp(obj->u.object.keys[k], key); k++)
		;
	return k;
}

/* A custom deserializer's message at the value of obj[key] (serde_json
 * adds the position after the value). */
static int custom_err(yajl_val obj, const char *key, const char *msg, char *err, size_t errlen)
{
	return sqb_json_value_err(obj, key_index(obj, key), err, errlen, "%s", msg);
}

static int parse_caps(yajl_val arr, struct sqb_cpu_template *t, char *err, size_t errlen)
{
	if (!arr)
		return 0;
	t->caps = calloc(arr->u.array.len + 1, sizeof(*t->caps));
	if (!t->caps)
		return snprintf(err, errlen, "out of memory"), -1;
	for (size_t i = 0; i < arr->u.array.len; i++) {
		yajl_val v = arr->u.array.values[i];
		const char *s;
		uint64_t cap = 0;
		enum pie e;

		if (!YAJL_IS_STRING(v)) {
			snprintf(err, errlen,
				 SQB_JSON_ERR_PREFIX "invalid type: %s, expected a string.",
				 YAJL_IS_OBJECT(v)  ? "map"
				 : YAJL_IS_ARRAY(v) ? "sequence"
						    : "value");
			return -1;
		}
		s = v->u.string;
		t->caps[i].remove = s[0] == '!';
		e = parse_radix(s + t->caps[i].remove, 10, UINT32_MAX, &cap);
		if (e != PIE_OK) {
			snprintf(err, errlen,
				 SQB_JSON_ERR_PREFIX
				 "Failed to parse string [%s] as a kvm capability "
				 "- can not convert to numeric: %s.",
				 s, pie_text[e]);
			return -1;
		}
		t->caps[i].cap = (uint32_t)cap;
		t->ncaps++;
	}
	return 0;
}

static int parse_cpuid(yajl_val arr, struct sqb_cpu_template *t, char *err, size_t errlen)
{
	size_t nregs = 0;

	if (!arr)
		return 0;
	/* first pass: shapes and the number of register modifiers */
	for (size_t i = 0; i < arr->u.array.len; i++) {
		yajl_val v = arr->u.array.values[i], mods = NULL;
		const char *leaf, *sub;
		uint64_t flags;
		const struct sqb_jfield f[] = {
		    {"leaf", SQB_JT_STR, 1, &leaf},
		    {"subleaf", SQB_JT_STR, 1, &sub},
		    {"flags", SQB_JT_UINT, 1, &flags, NULL, 0, UINT32_MAX},
		    {"modifiers", SQB_JT_ARRAY, 1, &mods},
		};

		if (want_struct(v, "CpuidLeafModifier", err, errlen) < 0 ||
		    sqb_json_fields_ex(v, f, 4, SQB_JF_IGNORE_UNKNOWN, err, errlen) < 0)
			return -1;
		nregs += mods->u.array.len;
	}
	t->cpuid = calloc(arr->u.array.len + 1, sizeof(*t->cpuid));
	t->regs = calloc(nregs + 1, sizeof(*t->regs));
	if (!t->cpuid || !t->regs)
		return snprintf(err, errlen, "out of memory"), -1;
	for (size_t i = 0; i < arr->u.array.len; i++) {
		yajl_val v = arr->u.array.values[i], mods = NULL;
		struct sqb_cpuid_mod *cm = &t->cpuid[t->ncpuid];
		const char *leaf, *sub;
		uint64_t flags = 0, x = 0;
		char msg[400];
		const struct sqb_jfield f[] = {
		    {"leaf", SQB_JT_STR, 1, &leaf},
		    {"subleaf", SQB_JT_STR, 1, &sub},
		    {"flags", SQB_JT_UINT, 1, &flags, NULL, 0, UINT32_MAX},
		    {"modifiers", SQB_JT_ARRAY, 1, &mods},
		};

		sqb_json_fields_ex(v, f, 4, SQB_JF_IGNORE_UNKNOWN, err, errlen);
		/* serde reads the fields in the body's order; each custom
		 * deserializer fails where its value ends */
		for (size_t k = 0; k < v->u.object.len; k++) {
			const char *key = v->u.object.keys[k];
			const char *s = YAJL_IS_STRING(v->u.object.values[k])
					    ? v->u.object.values[k]->u.string
					    : NULL;

			if ((!strcmp(key, "leaf") || !strcmp(key, "subleaf")) &&
			    sqb_cpu_number_parse(s, UINT32_MAX, &x, msg, sizeof(msg)) < 0)
				return custom_err(v, key, msg, err, errlen);
			if (!strcmp(key, "leaf"))
				cm->leaf = (uint32_t)x;
			else if (!strcmp(key, "subleaf"))
				cm->subleaf = (uint32_t)x;
		}
		cm->flags = (uint32_t)flags;
		cm->first = t->nregs;
		for (size_t j = 0; j < mods->u.array.len; j++) {
			yajl_val m = mods->u.array.values[j];
			struct sqb_cpu_reg_mod *rm = &t->regs[t->nregs];
			const char *reg = "", *bitmap = "";
			uint64_t filter = 0, value = 0;
			static const char *const names[] = {"eax", "ebx", "ecx", "edx"};
			const struct sqb_jfield g[] = {
			    {"register", SQB_JT_STR, 1, &reg},
			    {"bitmap", SQB_JT_STR, 1, &bitmap},
			};

			if (want_struct(m, "CpuidRegisterModifier", err, errlen) < 0 ||
			    sqb_json_fields_ex(m, g, 2, SQB_JF_IGNORE_UNKNOWN, err, errlen) < 0)
				return -1;
			for (size_t k = 0; k < m->u.object.len; k++) {
				const char *key = m->u.object.keys[k];

				if (!strcmp(key, "register")) {
					for (rm->reg = 0;
					     rm->reg < 4 && strcmp(names[rm->reg], reg); rm->reg++)
						;
					if (rm->reg == 4)
						return custom_err(
						    m, key,
						    "Invalid CPUID register. Must be one "
						    "of [eax, ebx, ecx, edx]",
						    err, errlen);
				} else if (!strcmp(key, "bitmap")) {
					if (sqb_cpu_bitmap_parse(bitmap, 32, &filter, &value, msg,
								 sizeof(msg)) < 0)
						return custom_err(m, key, msg, err, errlen);
					rm->filter = (uint32_t)filter;
					rm->value = (uint32_t)value;
				}
			}
			t->nregs++;
		}
		cm->count = t->nregs - cm->first;
		t->ncpuid++;
	}
	return 0;
}

static int parse_msrs(yajl_val arr, struct sqb_cpu_template *t, char *err, size_t errlen)
{
	if (!arr)
		return 0;
	t->msrs = calloc(arr->u.array.len + 1, sizeof(*t->msrs));
	if (!t->msrs)
		return snprintf(err, errlen, "out of memory"), -1;
	for (size_t i = 0; i < arr->u.array.len; i++) {
		yajl_val v = arr->u.array.values[i];
		struct sqb_msr_mod *mm = &t->msrs[t->nmsrs];
		const char *addr = "", *bitmap = "";
		uint64_t x = 0;
		char msg[400];
		const struct sqb_jfield f[] = {
		    {"addr", SQB_JT_STR, 1, &addr},
		    {"bitmap", SQB_JT_STR, 1, &bitmap},
		};

		if (want_struct(v, "RegisterModifier", err, errlen) < 0 ||
		    sqb_json_fields_ex(v, f, 2, SQB_JF_IGNORE_UNKNOWN, err, errlen) < 0)
			return -1;
		for (size_t k = 0; k < v->u.object.len; k++) {
			const char *key = v->u.object.keys[k];

			if (!strcmp(key, "addr")) {
				if (sqb_cpu_number_parse(addr, UINT32_MAX, &x, msg, sizeof(msg)) <
				    0)
					return custom_err(v, key, msg, err, errlen);
				mm->addr = (uint32_t)x;
			} else if (!strcmp(key, "bitmap") &&
				   sqb_cpu_bitmap_parse(bitmap, 64, &mm->filter, &mm->value, msg,
							sizeof(msg)) < 0) {
				return custom_err(v, key, msg, err, errlen);
			}
		}
		t->nmsrs++;
	}
	return 0;
}

int sqb_cpu_template_parse(yajl_val body, struct sqb_cpu_template **out, char *err, size_t errlen)
{
	struct sqb_cpu_template *t;
	yajl_val caps = NULL, cpuid = NULL, msrs = NULL;
#if defined(__aarch64__)
	/* aarch64/custom_cpu_template.rs: the arm fields; squib applies
	 * kvm_capabilities only and refuses the others when non-empty. */
	yajl_val feats = NULL, regs = NULL;
	const struct sqb_jfield f[] = {
	    {"kvm_capabilities", SQB_JT_ARRAY, 0, &caps},
	    {"vcpu_features", SQB_JT_ARRAY, 0, &feats},
	    {"reg_modifiers", SQB_JT_ARRAY, 0, &regs},
	};
#else
	const struct sqb_jfield f[] = {
	    {"kvm_capabilities", SQB_JT_ARRAY, 0, &caps},
	    {"cpuid_modifiers", SQB_JT_ARRAY, 0, &cpuid},
	    {"msr_modifiers", SQB_JT_ARRAY, 0, &msrs},
	};
#endif

	*out = NULL;
	if (sqb_json_fields(body, f, 3, err, errlen) < 0) /* deny_unknown_fields */
		return -1;
#if defined(__aarch64__)
	if ((feats && feats->u.array.len) || (regs && regs->u.array.len)) {
		snprintf(err, errlen,
			 "cpu-config: vcpu_features and reg_modifiers are not supported by squib "
			 "on aarch64 yet (only kvm_capabilities; see docs/cpu-templates.md)");
		return -1;
	}
#endif
	t = calloc(1, sizeof(*t));
	if (!t)
		return snprintf(err, errlen, "out of memory"), -1;
	if (parse_caps(caps, t, err, errlen) < 0 || parse_cpuid(cpuid, t, err, errlen) < 0 ||
	    parse_msrs(msrs, t, err, errlen) < 0) {
		sqb_cpu_template_free(t);
		return -1;
	}
	*out = t;
	return 0;
}

/* --config-file "cpu-config": "path/to/template.json" (CustomCpuTemplateOrPath::Path). */
static int read_template_file(const char *path, yajl_val *tree, char *err, size_t errlen)
{
	char *buf = malloc(CPU_CONFIG_FILE_MAX + 1);
	size_t len = 0;
	int fd, rc = -1;

	if (!buf)
		return snprintf(err, errlen, "out of memory"), -1;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		snprintf(err, errlen, "File operation error: %s (os error %d)",
			 sqb_os_strerror(errno), errno);
		free(buf);
		return -1;
	}
	for (;;) {
		ssize_t n = read(fd, buf + len, CPU_CONFIG_FILE_MAX + 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
		if (len > CPU_CONFIG_FILE_MAX)
			break;
	}
	close(fd);
	if (len > CPU_CONFIG_FILE_MAX)
		snprintf(err, errlen, "cpu-config file %s is larger than %d bytes", path,
			 CPU_CONFIG_FILE_MAX);
	else
		rc = sqb_json_parse_object(tree, buf, len, err, errlen);
	free(buf);
	return rc;
}

/* rpc_interface.rs PutCpuConfiguration: the body is parsed first (a bad one
 * is a serde error whatever the state), then refused after boot; a second
 * PUT replaces the first, and it replaces a static machine-config
 * cpu_template (resources.rs set_custom_cpu_template: one slot). */
void sqb_ctl_put_cpu_config(struct sqb_ctl *c, yajl_val body, struct sqb_ctl_resp *r)
{
	struct sqb_cpu_template *t;
	yajl_val file_tree = NULL;
	char err[768];
	int rc;

	if (body && YAJL_IS_STRING(body)) { /* only a config file gives a string */
		if (read_template_file(body->u.string, &file_tree, err, sizeof(err)) < 0)
			return sqb_ctl_fault(r, "%s", err);
		body = file_tree;
	}
	rc = sqb_cpu_template_parse(body, &t, err, sizeof(err));
	yajl_tree_free(file_tree);
	if (rc < 0)
		return sqb_ctl_fault(r, "%s", err);
	if (c->vm) {
		sqb_cpu_template_free(t);
		return sqb_ctl_fault(r, MSG_AFTER_START);
	}
	sqb_cpu_template_free(c->cpu_config);
	c->cpu_config = t;
	c->cpu_template = "None";
	sqb_ctl_log(SQB_CTL_INFO,
		    "custom CPU template set: %u KVM capabilities, %u CPUID leaves, %u MSRs",
		    t->ncaps, t->ncpuid, t->nmsrs);
	r->status = 204;
}
