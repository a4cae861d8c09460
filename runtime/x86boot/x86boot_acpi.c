/* ACPI tables for a hardware-reduced x86 microVM (ACPI 6.x, as Firecracker
 * does): RSDP -> XSDT -> {FADT -> DSDT, MADT}, written at 0xe0000.  The DSDT
 * lists the devices the VMM's bus describes (or, standalone, COM1, the i8042
 * and virtio-mmio devices as LNRO0005 with _CCA, Firecracker's shape), and a
 * VM Generation ID counter (Microsoft's VMGenID spec) and a VMClock page
 * (Firecracker's vmclock.rs) with their GED (ACPI 6.4 5.6.9); the MADT one local APIC per vCPU and
 * the IOAPIC at 0xfec00000. */
#include <errno.h>
#include <stdio.h>

#include "x86boot_priv.h"

#define ACPI_AREA   (XB_ACPI_END - XB_ACPI_BASE)
#define SDT_HDR	    36
#define FADT_LEN    276
#define LAPIC_ADDR  0xfee00000u
#define IOAPIC_ADDR 0xfec00000u
#define XB_PAGE	    0x1000ULL /* a VMClock page */

/* FADT flags and IA-PC boot architecture flags (ACPI 6.4, 5.2.9) */
#define FADT_F_PWR_BUTTON      (1u << 4)
#define FADT_F_SLP_BUTTON      (1u << 5)
#define FADT_F_HW_REDUCED      (1u << 20)
#define IAPC_LEGACY_DEVICES    (1u << 0)
#define IAPC_8042	       (1u << 1)
#define IAPC_VGA_NOT_PRESENT   (1u << 2)
#define IAPC_MSI_NOT_SUPPORTED (1u << 3)
#define IAPC_CMOS_RTC_ABSENT   (1u << 5)

struct aml {
	uint8_t *p;
	unsigned int len, cap;
	int overflow;
};

static uint8_t acpi_sum(const uint8_t *p, unsigned int len)
{
	uint8_t s = 0;

	while (len--)
		s = (uint8_t)(s + *p++);
	return s;
}

static void sdt_header(uint8_t *t, const char *sig, uint32_t len, uint8_t rev)
{
	memcpy(t, sig, 4);
	xb_put32(t + 4, len);
	t[8] = rev;
	t[9] = 0;
	memcpy(t + 10, "SQUIB ", 6);
	memcpy(t + 16, "SQUIBVM ", 8);
	xb_put32(t + 24, 1);
	memcpy(t + 28, "SQB ", 4);
	xb_put32(t + 32, 1);
}

static void sdt_finish(uint8_t *t, uint32_t len)
{
	t[9] = 0;
	t[9] = (uint8_t)(0 - acpi_sum(t, len));
}

static void aml_bytes(struct aml *a, const void *src, unsigned int n)
{
	if (a->len + n > a->cap) {
		a->overflow = 1;
		return;
	}
	memcpy(a->p + a->len, src, n);
	a->len += n;
}

static void aml_byte(struct aml *a, uint8_t b)
{
	aml_bytes(a, &b, 1);
}

/* Close a package opened at `start` (before its body): insert the
 * PkgLength encoding (ACPI 20.2.4), which counts itself, in front. */
static void aml_pkg_end(struct aml *a, unsigned int start)
{
	unsigned int body = a->len - start, n, total;
	uint8_t enc[4];

	if (a->overflow)
		return;
	n = body + 1 < 0x40 ? 1 : body + 2 < 0x1000 ? 2 : body + 3 < 0x100000 ? 3 : 4;
	total = body + n;
	if (n == 1) {
		enc[0] = (uint8_t)total;
	} else {
		enc[0] = (uint8_t)(((n - 1) << 6) | (total & 0xf));
		for (unsigned int i = 1; i < n; i++)
			enc[i] = (uint8_t)(total >> (4 + 8 * (i - 1)));
	}
	if (a->len + n > a->cap) {
		a->overflow = 1;
		return;
	}
	memmove(a->p + start + n, a->p + start, body);
	memcpy(a->p + start, enc, n);
	a->len += n;
}

static uint32_t eisa_id(const char *s)
{
	uint32_t v = ((uint32_t)(s[0] - 0x40) << 26) | ((uint32_t)(s[1] - 0x40) << 21) |
		     ((uint32_t)(s[2] - 0x40) << 16);
	for (int i = 3; i < 7; i++) {
		int c = s[i], d = c <= '9' ? c - '0' : c - 'A' + 10;

		v |= (uint32_t)d << (4 * (6 - i));
	}
	/* stored most-significant byte first */
	return ((v >> 24) & 0xff) | ((v >> 8) & 0xff00) | ((v << 8) & 0xff0000) | (v << 24);
}

static void aml_name_dword(struct aml *a, const char *name, uint32_t v)
{
	uint8_t b[4];

	aml_byte(a, 0x08); /* NameOp */
	aml_bytes(a, name, 4);
	aml_byte(a, 0x0c); /* DWordPrefix */
	xb_put32(b, v);
	aml_bytes(a, b, 4);
}

static void aml_name_string(struct aml *a, const char *name, const char *s)
{
	aml_byte(a, 0x08);
	aml_bytes(a, name, 4);
	aml_byte(a, 0x0d); /* StringPrefix */
	aml_bytes(a, s, (unsigned int)strlen(s) + 1);
}

/* Name(_CRS, Buffer() {res..., EndTag}) */
static void aml_crs(struct aml *a, const uint8_t *res, unsigned int n)
{
	static const uint8_t end_tag[2] = {0x79, 0x00};
	unsigned int start;

	aml_byte(a, 0x08);
	aml_bytes(a, "_CRS", 4);
	aml_byte(a, 0x11); /* BufferOp */
	start = a->len;
	aml_byte(a, 0x0b); /* WordPrefix: buffer size */
	aml_byte(a, (uint8_t)(n + 2));
	aml_byte(a, 0);
	aml_bytes(a, res, n);
	aml_bytes(a, end_tag, 2);
	aml_pkg_end(a, start);
}

static unsigned int res_io(uint8_t *r, uint16_t port, uint8_t len)
{
	r[0] = 0x47; /* I/O port descriptor, 16-bit decode */
	r[1] = 0x01;
	xb_put16(r + 2, port);
	xb_put16(r + 4, port);
	r[6] = 1;
	r[7] = len;
	return 8;
}

static unsigned int res_irq(uint8_t *r, unsigned int irq)
{
	r[0] = 0x22; /* IRQ descriptor, no flags: edge, active high */
	xb_put16(r + 1, (uint16_t)(1u << irq));
	return 3;
}

static void aml_device(struct aml *a, const struct sqb_x86boot_dev *d)
{
	uint8_t r[64];
	unsigned int n = 0, start;

	for (int i = 0; i < 2; i++)
		if (d->io_len[i])
			n += res_io(r + n, d->io_base[i], d->io_len[i]);
	if (d->mmio_size) {
		r[n] = 0x86; /* Memory32Fixed, read/write */
		xb_put16(r + n + 1, 9);
		r[n + 3] = 1;
		xb_put32(r + n + 4, (uint32_t)d->mmio_base);
		xb_put32(r + n + 8, d->mmio_size);
		n += 12;
	}
	if (d->irq_kind == SQB_X86BOOT_IRQ_ISA) {
		n += res_irq(r + n, d->irq);
	} else if (d->irq_kind == SQB_X86BOOT_IRQ_GSI) {
		r[n] = 0x89; /* Extended Interrupt: consumer, edge, active high */
		xb_put16(r + n + 1, 6);
		r[n + 3] = 0x03;
		r[n + 4] = 1;
		xb_put32(r + n + 5, d->irq);
		n += 9;
	}
	aml_byte(a, 0x5b); /* DeviceOp */
	aml_byte(a, 0x82);
	start = a->len;
	aml_bytes(a, d->name, 4);
	if (d->hid_eisa)
		aml_name_dword(a, "_HID", eisa_id(d->hid));
	else
		aml_name_string(a, "_HID", d->hid);
	aml_name_dword(a, "_UID", d->uid);
	if (d->cca) {
		aml_byte(a, 0x08); /* Name(_CCA, One) */
		aml_bytes(a, "_CCA", 4);
		aml_byte(a, 0x01);
	}
	aml_crs(a, r, n);
	aml_pkg_end(a, start);
}

static void aml_int(struct aml *a, uint32_t v);

/* An address space descriptor (ACPI 6.4, 6.4.3.5): Word (0x88), DWord
 * (0x87) or QWord (0x8a) by width w (2, 4, 8 bytes), min/max fixed, a
 * producer (the bridge decodes it for its children); type 0 memory
 * (read-write, not cacheable), 1 I/O (both ranges), 2 bus numbers. */
static unsigned int res_addr(uint8_t *r, unsigned int w, uint8_t type, uint64_t min, uint64_t max)
{
	unsigned int n = 6;
	uint64_t f[5] = {0, min, max, 0, max - min + 1};

	r[0] = w == 2 ? 0x88 : w == 4 ? 0x87 : 0x8a;
	xb_put16(r + 1, (uint16_t)(3 + 5 * w));
	r[3] = type;
	r[4] = 0x0c;
	r[5] = type == 0 ? 0x01 : type == 1 ? 0x03 : 0;
	for (unsigned int i = 0; i < 5; i++, n += w)
		for (unsigned int b = 0; b < w; b++)
			r[n + b] = (uint8_t)(f[i] >> (8 * b));
	return n;
}

static void aml_name_int(struct aml *a, const char *name, uint32_t v)
{
	aml_byte(a, 0x08); /* NameOp */
	aml_bytes(a, name, 4);
	aml_int(a, v);
}

/* Device (PC00): the PCI host bridge of segment 0, bus 0 (Firecracker's
 * PciSegment AML, without hotplug slots): its config ports and ECAM, and
 * the 32- and 64-bit windows BARs live in. */
static void aml_pci_root(struct aml *a, const struct sqb_x86boot_dev *d)
{
	uint8_t r[160];
	unsigned int n = 0, start;

	n += res_addr(r + n, 2, 2, 0, 0);
	n += res_io(r + n, 0xcf8, 8);
	r[n] = 0x86; /* Memory32Fixed, read/write: the ECAM */
	xb_put16(r + n + 1, 9);
	r[n + 3] = 1;
	xb_put32(r + n + 4, (uint32_t)d->mmio_base);
	xb_put32(r + n + 8, d->mmio_size);
	n += 12;
	n += res_addr(r + n, 4, 0, d->win32_base, d->win32_base + d->win32_size - 1);
	n += res_addr(r + n, 8, 0, d->win64_base, d->win64_base + d->win64_size - 1);
	n += res_addr(r + n, 2, 1, 0, 0xcf7);
	n += res_addr(r + n, 2, 1, 0xd00, 0xffff);
	aml_byte(a, 0x5b); /* DeviceOp */
	aml_byte(a, 0x82);
	start = a->len;
	aml_bytes(a, "PC00", 4);
	aml_name_dword(a, "_HID", eisa_id("PNP0A08"));
	aml_name_dword(a, "_CID", eisa_id("PNP0A03"));
	aml_name_int(a, "_ADR", 0);
	aml_name_int(a, "_SEG", 0);
	aml_name_int(a, "_UID", 0);
	aml_name_int(a, "_BBN", 0);
	aml_name_int(a, "_CCA", 1);
	aml_crs(a, r, n);
	aml_pkg_end(a, start);
}

/* The smallest integer encoding (ACPI 6.4, 20.2.3): Zero, One, ByteConst,
 * DWordConst. */
static void aml_int(struct aml *a, uint32_t v)
{
	uint8_t b[4];

	if (v <= 1) {
		aml_byte(a, (uint8_t)v); /* ZeroOp / OneOp */
	} else if (v < 0x100) {
		aml_byte(a, 0x0a); /* BytePrefix */
		aml_byte(a, (uint8_t)v);
	} else {
		aml_byte(a, 0x0c);
		xb_put32(b, v);
		aml_bytes(a, b, 4);
	}
}

/* Device (VGEN): the generation counter as Microsoft's VMGenID spec names
 * it and Linux's vmgenid driver reads it: ADDR is a package of two
 * integers, the low and high halves of the ID's guest-physical address. */
static void aml_vmgenid(struct aml *a, const struct sqb_x86boot_dev *d)
{
	unsigned int start, pkg;
	uint8_t b[4];

	aml_byte(a, 0x5b); /* DeviceOp */
	aml_byte(a, 0x82);
	start = a->len;
	aml_bytes(a, "VGEN", 4);
	aml_name_string(a, "_HID", "VMGENCTR");
	aml_name_string(a, "_CID", "VM_Gen_Counter");
	aml_name_string(a, "_DDN", "VM_Gen_Counter");
	aml_byte(a, 0x08); /* NameOp */
	aml_bytes(a, "ADDR", 4);
	aml_byte(a, 0x12); /* PackageOp */
	pkg = a->len;
	aml_byte(a, 2); /* NumElements */
	for (int half = 0; half < 2; half++) {
		aml_byte(a, 0x0c); /* always DWords, as the spec's example */
		xb_put32(b, (uint32_t)(d->genid_addr >> (32 * half)));
		aml_bytes(a, b, 4);
	}
	aml_pkg_end(a, pkg);
	aml_pkg_end(a, start);
}

/* Device (VCLK): Firecracker's VMClock, as Linux's ptp_vmclock binds it:
 * _HID "AMZNC10C", _CID and _DDN "VMCLOCK", _STA 0x0F and a _CRS with one
 * QWord memory range (ACPI 6.4 6.4.3.5.1: read-only, cacheable, min and
 * max fixed) over the page. */
static void aml_vmclock(struct aml *a, const struct sqb_x86boot_dev *d)
{
	uint8_t r[46];
	unsigned int start, method;

	memset(r, 0, sizeof(r));
	r[0] = 0x8a; /* QWord Address Space Descriptor */
	xb_put16(r + 1, 43);
	r[3] = 0;    /* memory range */
	r[4] = 0x0c; /* MinFixed, MaxFixed (Firecracker's general flags) */
	r[5] = 0x02; /* cacheable, read-only (Firecracker's flags) */
	xb_put64(r + 14, d->page_addr);
	xb_put64(r + 22, d->page_addr + XB_PAGE - 1);
	xb_put64(r + 38, XB_PAGE); /* granularity and translation stay 0 */
	aml_byte(a, 0x5b);	   /* DeviceOp */
	aml_byte(a, 0x82);
	start = a->len;
	aml_bytes(a, "VCLK", 4);
	aml_name_string(a, "_HID", "AMZNC10C");
	aml_name_string(a, "_CID", "VMCLOCK");
	aml_name_string(a, "_DDN", "VMCLOCK");
	aml_byte(a, 0x14); /* Method (_STA, 0, NotSerialized) { Return (0x0F) } */
	method = a->len;
	aml_bytes(a, "_STA", 4);
	aml_byte(a, 0x00);
	aml_byte(a, 0xa4); /* ReturnOp */
	aml_int(a, 0x0f);
	aml_pkg_end(a, method);
	aml_crs(a, r, sizeof(r));
	aml_pkg_end(a, start);
}

/* If (Arg0 == gsi) { Notify (\_SB.<name>, 0x80) } */
static void aml_evt_case(struct aml *a, uint32_t gsi, const char name[4])
{
	uint8_t path[10] = {'\\', 0x2e, '_', 'S', 'B', '_'};
	unsigned int cond;

	memcpy(path + 6, name, 4);
	aml_byte(a, 0xa0); /* IfOp */
	cond = a->len;
	aml_byte(a, 0x93); /* LEqualOp */
	aml_byte(a, 0x68); /* Arg0 */
	aml_int(a, gsi);
	aml_byte(a, 0x86); /* NotifyOp */
	aml_bytes(a, path, sizeof(path));
	aml_int(a, 0x80);
	aml_pkg_end(a, cond);
}

/* Device (GED_): the Generic Event Device (ACPI0013) whose interrupts run
 * _EVT(gsi): for the VMGenID's line Notify (\_SB.VGEN, 0x80), the
 * "generation ID changed" notification of the VMGenID spec, for VMClock's
 * Notify (\_SB.VCLK, 0x80) (Firecracker's GED: both lines, in that order).
 * vgen or vclk may be NULL. */
static void aml_ged(struct aml *a, const struct sqb_x86boot_dev *vgen,
		    const struct sqb_x86boot_dev *vclk)
{
	const struct sqb_x86boot_dev *src[2] = {vgen, vclk};
	static const char names[2][4] = {{'V', 'G', 'E', 'N'}, {'V', 'C', 'L', 'K'}};
	uint8_t r[18];
	unsigned int n = 0, start, method;

	for (int i = 0; i < 2; i++) {
		if (!src[i])
			continue;
		r[n] = 0x89; /* Extended Interrupt: consumer, edge, active high, exclusive */
		xb_put16(r + n + 1, 6);
		r[n + 3] = 0x03;
		r[n + 4] = 1;
		xb_put32(r + n + 5, src[i]->irq);
		n += 9;
	}
	aml_byte(a, 0x5b);
	aml_byte(a, 0x82);
	start = a->len;
	aml_bytes(a, "GED_", 4);
	aml_name_string(a, "_HID", "ACPI0013");
	aml_crs(a, r, n);
	aml_byte(a, 0x14); /* MethodOp */
	method = a->len;
	aml_bytes(a, "_EVT", 4);
	aml_byte(a, 0x09); /* one argument, serialized */
	for (int i = 0; i < 2; i++)
		if (src[i])
			aml_evt_case(a, src[i]->irq, names[i]);
	aml_pkg_end(a, method);
	aml_pkg_end(a, start);
}

/* Without the VMM's list: COM1, PS2K, then mmio[] (a standalone loader). */
static unsigned int builtin_devs(const struct sqb_x86boot_in *in, struct sqb_x86boot_dev *o)
{
	unsigned int n = 0;

	o[n++] = (struct sqb_x86boot_dev){.hid = "PNP0501",
					  .hid_eisa = 1,
					  .name = "COM1",
					  .io_base = {0x3f8},
					  .io_len = {8},
					  .irq_kind = SQB_X86BOOT_IRQ_ISA,
					  .irq = 4};
	o[n++] = (struct sqb_x86boot_dev){.hid = "PNP0303",
					  .hid_eisa = 1,
					  .name = "PS2K",
					  .io_base = {0x60, 0x64},
					  .io_len = {1, 1},
					  .irq_kind = SQB_X86BOOT_IRQ_ISA,
					  .irq = 1};
	for (unsigned int i = 0; i < in->nmmio; i++, n++) {
		o[n] = (struct sqb_x86boot_dev){.hid = "LNRO0005",
						.uid = i,
						.mmio_base = in->mmio[i].base,
						.mmio_size = in->mmio[i].size,
						.irq_kind = SQB_X86BOOT_IRQ_GSI,
						.irq = in->mmio[i].gsi,
						.cca = 1};
		snprintf(o[n].name, sizeof(o[n].name), "V%03u", i % 1000);
	}
	return n;
}

static void build_dsdt_body(const struct sqb_x86boot_in *in, struct aml *a)
{
	struct sqb_x86boot_dev builtin[2 + SQB_X86BOOT_MAX_MMIO];
	const struct sqb_x86boot_dev *d = in->devs, *vgen = NULL, *vclk = NULL;
	unsigned int n = in->ndevs, start, last = 0;

	if (!d) {
		n = builtin_devs(in, builtin);
		d = builtin;
	}
	for (unsigned int i = 0; i < n; i++)
		if (d[i].kind != SQB_X86BOOT_DEV_PLAIN)
			last = i;
	aml_byte(a, 0x10); /* ScopeOp (\_SB) */
	start = a->len;
	aml_bytes(a, "\\_SB_", 5);
	for (unsigned int i = 0; i < n; i++) {
		if (d[i].kind == SQB_X86BOOT_DEV_VMGENID)
			aml_vmgenid(a, vgen = &d[i]);
		else if (d[i].kind == SQB_X86BOOT_DEV_VMCLOCK)
			aml_vmclock(a, vclk = &d[i]);
		else if (d[i].kind == SQB_X86BOOT_DEV_PCI_ROOT)
			aml_pci_root(a, &d[i]);
		else
			aml_device(a, &d[i]);
		if (i == last && (vgen || vclk)) /* the GED follows what it notifies */
			aml_ged(a, vgen, vclk);
	}
	aml_pkg_end(a, start);
}

static uint32_t build_madt(const struct sqb_x86boot_in *in, uint8_t *t)
{
	uint32_t len = SDT_HDR + 8;

	xb_put32(t + SDT_HDR, LAPIC_ADDR);
	xb_put32(t + SDT_HDR + 4, 0); /* no dual 8259: hardware-reduced */
	for (unsigned int i = 0; i < in->ncpus; i++, len += 8) {
		t[len] = 0; /* Processor Local APIC */
		t[len + 1] = 8;
		t[len + 2] = (uint8_t)i;  /* ACPI processor UID */
		t[len + 3] = (uint8_t)i;  /* APIC ID = vCPU index */
		xb_put32(t + len + 4, 1); /* enabled */
	}
	t[len] = 1; /* I/O APIC */
	t[len + 1] = 12;
	t[len + 2] = 0;
	t[len + 3] = 0;
	xb_put32(t + len + 4, IOAPIC_ADDR);
	xb_put32(t + len + 8, 0); /* GSI base */
	len += 12;
	sdt_header(t, "APIC", len, 5);
	sdt_finish(t, len);
	return len;
}

/* MCFG (PCI Firmware 3.x, 4.1.2): one ECAM allocation, segment 0, bus 0. */
static uint32_t build_mcfg(const struct sqb_x86boot_dev *pci, uint8_t *t)
{
	uint32_t len = SDT_HDR + 8 + 16;

	xb_put64(t + SDT_HDR + 8, pci->mmio_base);
	xb_put16(t + SDT_HDR + 16, 0);				 /* segment */
	t[SDT_HDR + 18] = 0;					 /* start bus */
	t[SDT_HDR + 19] = (uint8_t)((pci->mmio_size >> 20) - 1); /* end bus */
	sdt_header(t, "MCFG", len, 1);
	sdt_finish(t, len);
	return len;
}

/* With a PCI root, MSI is the only way its functions interrupt. */
static void build_fadt(uint8_t *t, uint64_t dsdt, int msi)
{
	sdt_header(t, "FACP", FADT_LEN, 6);
	xb_put32(t + 40, (uint32_t)dsdt);
	xb_put16(t + 109, IAPC_LEGACY_DEVICES | IAPC_8042 | IAPC_VGA_NOT_PRESENT |
			      (msi ? 0 : IAPC_MSI_NOT_SUPPORTED) | IAPC_CMOS_RTC_ABSENT);
	xb_put32(t + 112, FADT_F_HW_REDUCED | FADT_F_PWR_BUTTON | FADT_F_SLP_BUTTON);
	t[131] = 4; /* FADT minor version: ACPI 6.4 */
	xb_put64(t + 140, dsdt);
	memcpy(t + 268, "SQUIBVMM", 8); /* hypervisor vendor identity */
	sdt_finish(t, FADT_LEN);
}

/* The VMM's VMGenID device, if any (at most one, with a GSI and its ID). */
static int find_vmgenid(const struct sqb_x86boot_in *in, const struct sqb_x86boot_dev **out,
			struct sqb_diag *diag)
{
	*out = NULL;
	for (unsigned int i = 0; in->devs && i < in->ndevs; i++) {
		const struct sqb_x86boot_dev *d = &in->devs[i];

		if (d->kind != SQB_X86BOOT_DEV_VMGENID)
			continue;
		if (*out)
			return xb_fail(diag, -EINVAL, UINT64_MAX, "ACPI", "two VMGenID devices");
		if (!d->genid || d->irq_kind != SQB_X86BOOT_IRQ_GSI || (d->genid_addr & 7))
			return xb_fail(diag, -EINVAL, UINT64_MAX, "ACPI",
				       "VMGenID device without an ID, a GSI or 8-byte alignment");
		*out = d;
	}
	return 0;
}

/* The VMM's VMClock device, if any (at most one, with a GSI and its page). */
static int find_vmclock(const struct sqb_x86boot_in *in, const struct sqb_x86boot_dev **out,
			struct sqb_diag *diag)
{
	*out = NULL;
	for (unsigned int i = 0; in->devs && i < in->ndevs; i++) {
		const struct sqb_x86boot_dev *d = &in->devs[i];

		if (d->kind != SQB_X86BOOT_DEV_VMCLOCK)
			continue;
		if (*out)
			return xb_fail(diag, -EINVAL, UINT64_MAX, "ACPI", "two VMClock devices");
		if (!d->page || d->page_len > XB_PAGE || d->irq_kind != SQB_X86BOOT_IRQ_GSI ||
		    (d->page_addr & (XB_PAGE - 1)))
			return xb_fail(diag, -EINVAL, UINT64_MAX, "ACPI",
				       "VMClock device without its page contents (at most 4096 "
				       "bytes), a GSI or 4 KiB alignment");
		*out = d;
	}
	return 0;
}

/* A VMM-defined range [at, at + len) must lie in the reserved area above
 * every table (tables_end). */
static int check_reserved(uint64_t at, uint64_t len, uint64_t tables_end, const char *what,
			  struct sqb_diag *diag)
{
	if (at < tables_end || !xb_fits(at, len, XB_ACPI_END))
		return xb_fail(diag, -EINVAL, at, "ACPI",
			       "%s at 0x%llx is not in the reserved ACPI area above the tables "
			       "(0x%llx..0x%llx)",
			       what, (unsigned long long)at, (unsigned long long)tables_end,
			       (unsigned long long)XB_ACPI_END);
	return 0;
}

int xb_acpi_build(const struct sqb_x86boot_in *in, uint64_t *rsdp_out, struct sqb_diag *diag)
{
	const struct sqb_x86boot_dev *vgen, *vclk, *pci = NULL;
	uint64_t mcfg = 0, madt_at;
	unsigned int nx = 2;
	uint8_t *base = xb_gpa(in, XB_ACPI_BASE, ACPI_AREA);
	uint64_t xsdt = XB_ACPI_BASE + 0x40, fadt = xsdt + 0x40, dsdt = fadt + 0x120;
	uint64_t madt;
	uint32_t len;
	uint8_t *t;
	struct aml a;
	int err;

	if (!base)
		return xb_fail(diag, -EINVAL, UINT64_MAX, "ACPI", "no RAM at 0xe0000");
	err = find_vmgenid(in, &vgen, diag);
	if (!err)
		err = find_vmclock(in, &vclk, diag);
	if (err)
		return err;
	memset(base, 0, ACPI_AREA);

	/* DSDT: header, then AML; everything after it is bounded by the area. */
	t = base + (dsdt - XB_ACPI_BASE);
	a = (struct aml){.p = t + SDT_HDR, .cap = (unsigned int)(ACPI_AREA / 2)};
	build_dsdt_body(in, &a);
	if (a.overflow)
		return xb_fail(diag, -SQB_ELIMIT, UINT64_MAX, "ACPI", "DSDT too large");
	sdt_header(t, "DSDT", SDT_HDR + a.len, 2);
	sdt_finish(t, SDT_HDR + a.len);
	madt = (dsdt + SDT_HDR + a.len + 15) & ~15ULL;
	madt_at = madt;

	len = build_madt(in, base + (madt - XB_ACPI_BASE));
	for (unsigned int i = 0; in->devs && i < in->ndevs; i++)
		if (in->devs[i].kind == SQB_X86BOOT_DEV_PCI_ROOT)
			pci = &in->devs[i];
	if (pci) {
		mcfg = (madt + len + 15) & ~15ULL;
		if (mcfg + SDT_HDR + 24 > XB_ACPI_END)
			return xb_fail(diag, -SQB_ELIMIT, UINT64_MAX, "ACPI", "no room for MCFG");
		len = build_mcfg(pci, base + (mcfg - XB_ACPI_BASE));
		madt = mcfg; /* what follows goes above both */
	}
	/* the ID and the VMClock page live in the reserved area, above every
	 * table, apart from each other */
	if (vgen && (err = check_reserved(vgen->genid_addr, 16, madt + len, "VMGenID ID", diag)))
		return err;
	if (vclk &&
	    (err = check_reserved(vclk->page_addr, XB_PAGE, madt + len, "VMClock page", diag)))
		return err;
	if (vgen && vclk && vgen->genid_addr + 16 > vclk->page_addr &&
	    vgen->genid_addr < vclk->page_addr + XB_PAGE)
		return xb_fail(diag, -EINVAL, vgen->genid_addr, "ACPI",
			       "VMGenID ID at 0x%llx is inside the VMClock page at 0x%llx",
			       (unsigned long long)vgen->genid_addr,
			       (unsigned long long)vclk->page_addr);
	if (vgen)
		memcpy(base + (vgen->genid_addr - XB_ACPI_BASE), vgen->genid, 16);
	if (vclk)
		memcpy(base + (vclk->page_addr - XB_ACPI_BASE), vclk->page, vclk->page_len);
	build_fadt(base + (fadt - XB_ACPI_BASE), dsdt, pci != NULL);

	t = base + (xsdt - XB_ACPI_BASE);
	xb_put64(t + SDT_HDR, fadt);
	xb_put64(t + SDT_HDR + 8, madt_at);
	if (pci)
		xb_put64(t + SDT_HDR + 8 * nx++, mcfg);
	sdt_header(t, "XSDT", SDT_HDR + 8 * nx, 1);
	sdt_finish(t, SDT_HDR + 8 * nx);

	t = base; /* RSDP, ACPI 2.0+ layout */
	memcpy(t, "RSD PTR ", 8);
	memcpy(t + 9, "SQUIB ", 6);
	t[15] = 2;
	xb_put32(t + 20, 36);
	xb_put64(t + 24, xsdt);
	t[8] = (uint8_t)(0 - acpi_sum(t, 20));
	t[32] = (uint8_t)(0 - acpi_sum(t, 36));
	*rsdp_out = XB_ACPI_BASE;
	return 0;
}
