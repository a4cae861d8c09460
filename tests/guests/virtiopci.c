/* virtio-pci test guest, written from the PCI Local Bus spec (type-1
 * configuration access through 0xcf8/0xcfc, BARs, the capability list),
 * PCIe's ECAM layout, the virtio 1.x spec (4.1 "Virtio Over PCI Bus", 3.1.1
 * driver initialisation) and Firecracker's PCI layout: host bridge 8086:0d57
 * at 00:00.0, ECAM for bus 0 at 0xeec00000 (IOAPIC - 256 MiB, in ACPI's
 * MCFG), virtio devices 1af4:(1040 + type) at 00:01.0 up with a 64-bit BAR0
 * of 0x80000 bytes from 256 GiB up holding common cfg 0x0, ISR 0x2000,
 * device cfg 0x4000, notify 0x6000 (multiplier 4), MSI-X table 0x8000 and
 * PBA 0x48000.  Nothing here comes from squib's code.
 *
 *   (default)   enumerates bus 0 both ways, checks the host bridge, the
 *               virtio-rng's header, BARs (sizing, restore), capabilities
 *               and MSI-X structures, maps BAR0 (above 4 GiB: page tables
 *               extended here, the BAR is never moved), drives the rng
 *               through the common config per virtio 3.1.1 and polls the
 *               used ring, checks the queue registers are frozen after
 *               DRIVER_OK (Firecracker's test_queue_config_immutable), reads
 *               through the PCI cfg access capability, resets the device;
 *               then MSI-X (PCI 3.0 6.8.2, virtio 4.1.4.3 / 4.1.5.1.2):
 *               entries 0 / 1 aimed at vectors 0x50 / 0x51 of APIC 0,
 *               vectors past the table read back NO_VECTOR, an interrupt
 *               per request and per batch, a masked entry and the Function
 *               Mask each hold the message in the PBA until unmasked, no
 *               message with MSI-X Enable clear, vectors unmapped by reset.
 *   vpci=loop   the snapshot tests' guest: the rng on vectors 0 / 1, then
 *               rounds of one request each, waiting for its interrupt and
 *               re-reading 00:00.0, BAR0 and the MSI-X state every round
 *               ("VPCI round N irqs M"); a byte on COM1 steers it: 'q'
 *               ends, 'm' masks entry 1 and holds one message pending
 *               ("VPCI hold") until the next byte.
 *   vpci=absent only enumerates: no type-1 mechanism, nothing on bus 0, no
 *               host bridge in the ECAM window, pci=off on the command line,
 *               no PCI root in the DSDT (squib without --enable-pci).
 *
 * Lines: "VPCI <step> PASS" or "VPCI <step> FAIL <why> <hex>", "VPCI found
 * BB:DD.F vvvv:dddd class cccccc", "VPCI info ...", and last
 * "VIRTIOPCI PASS checks=N" or "VIRTIOPCI FAIL <step>: <why> (N failed)"
 * naming the first failed step.
 *
 * Tried outside squib: QEMU 7.2 -M q35 -accel tcg -kernel virtiopci.elf
 * -device virtio-rng-pci,disable-legacy=on, built with
 * -DECAM_BASE=0xb0000000ull (q35's ECAM), drives the rng (also with its
 * BAR moved to 256 GiB by hand); there only Firecracker's ids and layout
 * and the frozen-queue checks fail, as they should (QEMU lets a driver
 * rewrite the queue after DRIVER_OK). */
#include "guest.h"
#include "virtio_guest.h"

#define CF8 0xcf8
#define CFC 0xcfc
#ifndef ECAM_BASE		/* -DECAM_BASE=0xb0000000ull: QEMU q35's, to try the guest there */
#define ECAM_BASE 0xeec00000ull /* Firecracker's PCI_MMCONFIG_START */
#endif
#define FC_MMIO64     0x4000000000ull /* 256 GiB: Firecracker's 64-bit BAR window */
#define FC_MMIO64_END 0x8000000000ull
#define GIB4	      0x100000000ull
#define PAGE_2M	      (2ull << 20)

#define ID_HOST_VENDOR 0x8086
#define ID_HOST_DEVICE 0x0d57
#define ID_VIRTIO      0x1af4
#define ID_VIRTIO_RNG  0x1044 /* 0x1040 + device type 4 */

/* virtio 1.x 4.1.4.3 struct virtio_pci_common_cfg */
#define CC_DFSELECT  0x00
#define CC_DF	     0x04
#define CC_GFSELECT  0x08
#define CC_GF	     0x0c
#define CC_MSIX	     0x10
#define CC_NUMQ	     0x12
#define CC_STATUS    0x14
#define CC_CFGGEN    0x15
#define CC_Q_SELECT  0x16
#define CC_Q_SIZE    0x18
#define CC_Q_MSIX    0x1a
#define CC_Q_ENABLE  0x1c
#define CC_Q_NOFF    0x1e
#define CC_Q_DESCLO  0x20
#define CC_Q_DESCHI  0x24
#define CC_Q_AVAILLO 0x28
#define CC_Q_AVAILHI 0x2c
#define CC_Q_USEDLO  0x30
#define CC_Q_USEDHI  0x34
#define CC_LEN	     0x38

#define ST_ACK	     1
#define ST_DRIVER    2
#define ST_DRIVER_OK 4
#define ST_FEAT_OK   8
#define ST_NEEDS_RST 0x40
#define ST_FAILED    0x80

#define NO_VECTOR 0xffff

/* ------------------------------------------------------------ bookkeeping */

static const char *first_step, *first_why;

static void check(const char *step, int ok, const char *why, uint64_t v)
{
	if (!ok && !first_step) {
		first_step = step;
		first_why = why;
	}
	vg_result("VPCI", step, ok, why, v);
}

static void info(const char *what, uint64_t v)
{
	puts_serial("VPCI info ");
	puts_serial(what);
	puts_serial(" ");
	put_hex(v);
	puts_serial("\n");
}

static void put_hexn(uint64_t v, int digits)
{
	static const char d[] = "0123456789abcdef";

	for (int i = (digits - 1) * 4; i >= 0; i -= 4)
		putc_serial(d[(v >> i) & 15]);
}

static int is_pow2(uint64_t v)
{
	return v && !(v & (v - 1));
}

static int mem_eq(const volatile uint8_t *p, const char *s, unsigned int n)
{
	for (unsigned int i = 0; i < n; i++)
		if (p[i] != (uint8_t)s[i])
			return 0;
	return 1;
}

/* -------------------------------------------------------------- port I/O */

static inline void outw(uint16_t port, uint16_t v)
{
	__asm__ volatile("outw %0, %1" : : "a"(v), "Nd"(port));
}

static inline void outl(uint16_t port, uint32_t v)
{
	__asm__ volatile("outl %0, %1" : : "a"(v), "Nd"(port));
}

static inline uint16_t inw(uint16_t port)
{
	uint16_t v;
	__asm__ volatile("inw %1, %0" : "=a"(v) : "Nd"(port));
	return v;
}

static inline uint32_t inl(uint16_t port)
{
	uint32_t v;
	__asm__ volatile("inl %1, %0" : "=a"(v) : "Nd"(port));
	return v;
}

/* ---------------------------------------- configuration space, two ways */

/* PCI Local Bus 3.0, 3.2.2.3.2: enable(31) bus(23:16) device(15:11)
 * function(10:8) register(7:2), bits 1:0 zero. */
static uint32_t cf8_addr(unsigned int bus, unsigned int dev, unsigned int fn, unsigned int reg)
{
	return 0x80000000u | bus << 16 | dev << 11 | fn << 8 | (reg & 0xfc);
}

static uint32_t pio_rd32(unsigned int bus, unsigned int dev, unsigned int fn, unsigned int reg)
{
	outl(CF8, cf8_addr(bus, dev, fn, reg));
	return inl(CFC);
}

static uint16_t pio_rd16(unsigned int dev, unsigned int reg)
{
	outl(CF8, cf8_addr(0, dev, 0, reg));
	return inw((uint16_t)(CFC + (reg & 2)));
}

static uint8_t pio_rd8(unsigned int dev, unsigned int reg)
{
	outl(CF8, cf8_addr(0, dev, 0, reg));
	return inb((uint16_t)(CFC + (reg & 3)));
}

static void pio_wr32(unsigned int dev, unsigned int reg, uint32_t v)
{
	outl(CF8, cf8_addr(0, dev, 0, reg));
	outl(CFC, v);
}

static void pio_wr16(unsigned int dev, unsigned int reg, uint16_t v)
{
	outl(CF8, cf8_addr(0, dev, 0, reg));
	outw((uint16_t)(CFC + (reg & 2)), v);
}

static void pio_wr8(unsigned int dev, unsigned int reg, uint8_t v)
{
	outl(CF8, cf8_addr(0, dev, 0, reg));
	outb((uint16_t)(CFC + (reg & 3)), v);
}

/* ECAM: bus 0 only (MCFG's range), offset dev << 15 | fn << 12 | reg. */
static uintptr_t ecam(unsigned int dev, unsigned int fn, unsigned int reg)
{
	return (uintptr_t)(ECAM_BASE | (uint64_t)dev << 15 | (uint64_t)fn << 12 | reg);
}

static uint32_t ecam_rd32(unsigned int dev, unsigned int fn, unsigned int reg)
{
	return *(volatile uint32_t *)ecam(dev, fn, reg);
}

static uint16_t ecam_rd16(unsigned int dev, unsigned int reg)
{
	return *(volatile uint16_t *)ecam(dev, 0, reg);
}

static uint8_t ecam_rd8(unsigned int dev, unsigned int reg)
{
	return *(volatile uint8_t *)ecam(dev, 0, reg);
}

static void ecam_wr16(unsigned int dev, unsigned int reg, uint16_t v)
{
	*(volatile uint16_t *)ecam(dev, 0, reg) = v;
}

/* ------------------------------------------------------------------ MMIO */

static uint8_t mm_rd8(uint64_t a)
{
	return *(volatile uint8_t *)(uintptr_t)a;
}

static uint16_t mm_rd16(uint64_t a)
{
	return *(volatile uint16_t *)(uintptr_t)a;
}

static uint32_t mm_rd32(uint64_t a)
{
	return *(volatile uint32_t *)(uintptr_t)a;
}

static void mm_wr8(uint64_t a, uint8_t v)
{
	*(volatile uint8_t *)(uintptr_t)a = v;
}

static void mm_wr16(uint64_t a, uint16_t v)
{
	*(volatile uint16_t *)(uintptr_t)a = v;
}

static void mm_wr32(uint64_t a, uint32_t v)
{
	*(volatile uint32_t *)(uintptr_t)a = v;
}

/* start.S maps 0..4 GiB.  A BAR above that gets 2 MiB uncached pages here,
 * in one extra 1 GiB region (one PDPT, one PD). */
static uint64_t pdpt_hi[512] __attribute__((aligned(4096)));
static uint64_t pd_hi[512] __attribute__((aligned(4096)));
static uint64_t pd_hi_gib = ~0ull;

static int map_mmio(uint64_t start, uint64_t len)
{
	uint64_t cr3, *pml4, *pdpt, *pd, end = start + len - 1;
	uint32_t a, b, c, d;

	if (end < GIB4)
		return 0;
	__asm__ volatile("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(0x80000008u), "c"(0));
	if (end >> (a & 0xff))
		return -1; /* past MAXPHYADDR */
	if ((start >> 30) != (end >> 30))
		return -1;
	__asm__ volatile("mov %%cr3, %0" : "=r"(cr3));
	pml4 = (uint64_t *)(uintptr_t)(cr3 & 0x000ffffffffff000ull);
	if (!(pml4[(start >> 39) & 511] & 1))
		pml4[(start >> 39) & 511] = (uint64_t)(uintptr_t)pdpt_hi | 3;
	pdpt = (uint64_t *)(uintptr_t)(pml4[(start >> 39) & 511] & 0x000ffffffffff000ull);
	if (pdpt[(start >> 30) & 511] & 1) {
		if (pd_hi_gib != start >> 30)
			return -1; /* mapped by someone else: not ours to change */
	} else {
		if (pd_hi_gib != ~0ull)
			return -1;
		pd_hi_gib = start >> 30;
		pdpt[(start >> 30) & 511] = (uint64_t)(uintptr_t)pd_hi | 3;
	}
	pd = pd_hi;
	for (uint64_t p = start & ~(PAGE_2M - 1); p <= end; p += PAGE_2M)
		pd[(p >> 21) & 511] = p | 0x9b; /* present, writable, PWT, PCD, 2 MiB */
	__asm__ volatile("mov %0, %%cr3" : : "r"(cr3) : "memory");
	return 0;
}

/* ------------------------------------------------------------------ ACPI */

/* A table by signature through the RSDP (found on a 16-byte boundary in
 * 0xe0000..0xfffff) and the XSDT, or the RSDT of an ACPI 1.0 RSDP. */
static const volatile uint8_t *acpi_table(const char *sig)
{
	const volatile uint8_t *rsdp = 0, *sdt;
	uint64_t a;
	uint32_t n, w;

	for (uintptr_t p = 0xe0000; p < 0x100000; p += 16)
		if (mem_eq((const volatile uint8_t *)p, "RSD PTR ", 8)) {
			rsdp = (const volatile uint8_t *)p;
			break;
		}
	if (!rsdp)
		return 0;
	a = rsdp[15] >= 2 ? rd64((const volatile uint8_t *)rsdp + 24) : 0;
	w = 8;
	if (!a) {
		a = rd32((const volatile uint8_t *)rsdp + 16);
		w = 4;
	}
	if (!a || a >= GIB4)
		return 0;
	sdt = (const volatile uint8_t *)(uintptr_t)a;
	if (!mem_eq(sdt, w == 8 ? "XSDT" : "RSDT", 4))
		return 0;
	n = (rd32(sdt + 4) - 36) / w;
	for (uint32_t i = 0; i < n && i < 64; i++) {
		uint64_t t = w == 8 ? rd64(sdt + 36 + 8 * i) : rd32(sdt + 36 + 4 * i);

		if (t && t < GIB4 && mem_eq((const volatile uint8_t *)(uintptr_t)t, sig, 4))
			return (const volatile uint8_t *)(uintptr_t)t;
	}
	return 0;
}

static const volatile uint8_t *acpi_dsdt_table(uint32_t *len)
{
	const volatile uint8_t *fadt = acpi_table("FACP"), *dsdt;
	uint64_t a;

	*len = 0;
	if (!fadt)
		return 0;
	a = rd32(fadt + 4) >= 148 ? rd64(fadt + 140) : 0; /* X_DSDT, else DSDT */
	if (!a)
		a = rd32(fadt + 40);
	if (!a || a >= GIB4)
		return 0;
	dsdt = (const volatile uint8_t *)(uintptr_t)a;
	if (!mem_eq(dsdt, "DSDT", 4))
		return 0;
	*len = rd32(dsdt + 4);
	return dsdt;
}

static int dsdt_has(const volatile uint8_t *dsdt, uint32_t len, const char *s, unsigned int n)
{
	return dsdt && mem_find((const uint8_t *)dsdt, len, s, n) != 0;
}

/* EISAID("PNP0A08") / EISAID("PNP0A03") as AML stores them: the PCIe and
 * the PCI root bridge. */
static const char eisa_pnp0a08[] = {0x41, (char)0xd0, 0x0a, 0x08};
static const char eisa_pnp0a03[] = {0x41, (char)0xd0, 0x0a, 0x03};

static void check_acpi(int pci)
{
	const volatile uint8_t *dsdt, *mcfg;
	uint32_t dlen, len;
	int root;

	dsdt = acpi_dsdt_table(&dlen);
	check("acpi-dsdt", dsdt != 0, "no DSDT through RSDP/XSDT (RSDT)/FADT", 0);
	root = dsdt_has(dsdt, dlen, eisa_pnp0a08, 4) || dsdt_has(dsdt, dlen, eisa_pnp0a03, 4);
	if (!pci) {
		check("dsdt-no-pci-root", !root, "the DSDT describes a PCI root (PNP0A08/PNP0A03)",
		      0);
		check("dsdt-virtio-mmio", dsdt_has(dsdt, dlen, "LNRO0005", 8),
		      "the rng is not described as a virtio-mmio device (LNRO0005)", 0);
		return;
	}
	check("dsdt-pci-root", root, "no PCI root bridge (PNP0A08/PNP0A03) in the DSDT", 0);
	check("dsdt-no-virtio-mmio", !dsdt_has(dsdt, dlen, "LNRO0005", 8),
	      "virtio-mmio devices (LNRO0005) next to PCI", 0);

	/* PCI Firmware spec 4.1.2: MCFG = header(36) + reserved(8) + entries of
	 * {u64 base, u16 segment, u8 start bus, u8 end bus, u32 reserved}. */
	mcfg = acpi_table("MCFG");
	check("mcfg", mcfg != 0, "no MCFG table in the XSDT (RSDT)", 0);
	if (!mcfg)
		return;
	len = rd32(mcfg + 4);
	uint8_t sum = 0;
	for (uint32_t i = 0; i < len && i < 4096; i++)
		sum = (uint8_t)(sum + mcfg[i]);
	check("mcfg-checksum", sum == 0, "MCFG bytes do not sum to 0", sum);
	check("mcfg-length", len >= 60 && (len - 44) % 16 == 0, "MCFG length", len);
	if (len < 60)
		return;
	check("mcfg-base", rd64(mcfg + 44) == ECAM_BASE, "ECAM base is not 0xeec00000",
	      rd64(mcfg + 44));
	check("mcfg-bus0", (mcfg[52] | mcfg[53] << 8) == 0 && mcfg[54] == 0 && mcfg[55] >= mcfg[54],
	      "segment / bus range (seg | start << 16 | end << 24)",
	      (uint64_t)(mcfg[52] | mcfg[53] << 8) | (uint64_t)mcfg[54] << 16 |
		  (uint64_t)mcfg[55] << 24);
}

/* ----------------------------------------------------------- enumeration */

static uint32_t id0[32]; /* vendor/device dword of each dev's function 0 */

static void print_fn(unsigned int bus, unsigned int dev, unsigned int fn, uint32_t id, uint32_t cls)
{
	puts_serial("VPCI found ");
	put_hexn(bus, 2);
	putc_serial(':');
	put_hexn(dev, 2);
	putc_serial('.');
	put_hexn(fn, 1);
	putc_serial(' ');
	put_hexn(id & 0xffff, 4);
	putc_serial(':');
	put_hexn(id >> 16, 4);
	puts_serial(" class ");
	put_hexn(cls >> 8, 6);
	puts_serial(" rev ");
	put_hexn(cls & 0xff, 2);
	puts_serial("\n");
}

/* Bus 0 through 0xcf8/0xcfc; every function found is printed.  Returns
 * how many devices answered. */
static int enumerate(void)
{
	int found = 0, fn_ok = 1;
	uint64_t fn_bad = 0;

	for (unsigned int dev = 0; dev < 32; dev++) {
		uint32_t id = pio_rd32(0, dev, 0, 0);
		uint8_t hdr;

		id0[dev] = id;
		if ((id & 0xffff) == 0xffff || (id & 0xffff) == 0)
			continue; /* no device (0 is no valid vendor either) */
		found++;
		print_fn(0, dev, 0, id, pio_rd32(0, dev, 0, 8));
		hdr = pio_rd8(dev, 0x0e);
		for (unsigned int fn = 1; fn < 8; fn++) {
			uint32_t f = pio_rd32(0, dev, fn, 0);

			if ((f & 0xffff) == 0xffff || (f & 0xffff) == 0)
				continue;
			if (hdr & 0x80) {
				print_fn(0, dev, fn, f, pio_rd32(0, dev, fn, 8));
			} else if (fn_ok) {
				/* single-function: functions 1..7 must not answer */
				fn_ok = 0;
				fn_bad = dev << 3 | fn;
			}
		}
	}
	check("single-function", fn_ok,
	      "a single-function device answers on another function (dev << 3 | fn)", fn_bad);
	return found;
}

/* -------------------------------------------------------------- absent */

static void run_absent(void)
{
	uint32_t v;
	int n;

	outl(CF8, 0x80000000u);
	v = inl(CF8);
	check("no-type1", v != 0x80000000u,
	      "CONFIG_ADDRESS reads back what was written (Linux's type-1 probe)", v);
	v = pio_rd32(0, 0, 0, 0);
	check("no-host-bridge", v == 0xffffffffu, "00:00.0 answers through 0xcfc", v);
	n = enumerate();
	check("bus0-empty", n == 0, "devices answer on bus 0", (uint64_t)n);
	v = *(volatile uint32_t *)(uintptr_t)ECAM_BASE;
	info("ecam-00:00.0", v);
	check("no-ecam-host-bridge", (v & 0xffff) != ID_HOST_VENDOR,
	      "a host bridge answers at 0xeec00000", v);
	check_acpi(0);
}

/* ------------------------------------------------------------- the BARs */

struct bar {
	uint64_t addr, size;
	uint32_t raw;
	int io, is64, upper; /* upper: the high half of the BAR before it */
};

static struct bar bars[6];

/* The standard sizing protocol, one register at a time (as Linux): write
 * all ones, read the mask, restore; the restored value must read back. */
static uint32_t size_reg(unsigned int dev, unsigned int reg, uint32_t orig, int *restored)
{
	uint32_t m;

	pio_wr32(dev, reg, 0xffffffffu);
	m = pio_rd32(0, dev, 0, reg);
	pio_wr32(dev, reg, orig);
	if (pio_rd32(0, dev, 0, reg) != orig)
		*restored = 0;
	return m;
}

static void check_bars(unsigned int dev)
{
	int restored = 1;
	uint64_t rbad = 0;

	for (unsigned int i = 0; i < 6; i++) {
		unsigned int reg = 0x10 + 4 * i;
		uint32_t lo = pio_rd32(0, dev, 0, reg), m;
		struct bar *b = &bars[i];

		b->raw = lo;
		if (lo & 1) {
			b->io = 1;
			m = size_reg(dev, reg, lo, &restored) & ~3u;
			b->size = m ? (uint32_t)(~m + 1) & 0xffff : 0;
			b->addr = lo & ~3u;
		} else if (((lo >> 1) & 3) == 2 && i < 5) {
			uint32_t hi = pio_rd32(0, dev, 0, reg + 4), mhi;
			uint64_t mask;

			b->is64 = 1;
			m = size_reg(dev, reg, lo, &restored);
			mhi = size_reg(dev, reg + 4, hi, &restored);
			/* low 4 bits are type bits, not address: masked, as Linux */
			mask = (uint64_t)mhi << 32 | (m & ~0xfu);
			b->size = mask ? ~mask + 1 : 0;
			b->addr = (uint64_t)hi << 32 | (lo & ~0xfu);
			bars[i + 1].upper = 1;
			bars[i + 1].raw = hi;
			i++;
		} else {
			m = size_reg(dev, reg, lo, &restored) & ~0xfu;
			b->size = m ? (uint32_t)(~m + 1) : 0;
			b->addr = lo & ~0xfu;
		}
		if (!restored && !rbad)
			rbad = reg;
	}
	for (unsigned int i = 0; i < 6; i++) {
		if (bars[i].upper)
			continue;
		puts_serial("VPCI info bar");
		put_u64(i);
		puts_serial(bars[i].io ? " io " : bars[i].is64 ? " mem64 " : " mem32 ");
		put_hex(bars[i].addr);
		puts_serial(" size ");
		put_hex(bars[i].size);
		puts_serial("\n");
		if (!bars[i].size && bars[i].raw && !rbad)
			rbad = 0x100 | (0x10 + 4 * i); /* unimplemented yet not zero */
	}
	check("bar-restore", restored && !rbad,
	      "a BAR did not read back its value after sizing, or an unimplemented BAR is not 0 "
	      "(register)",
	      rbad);
	check("bar0-type", (bars[0].raw & 7) == 4,
	      "BAR0 is not a 64-bit memory BAR (low bits 0b100)", bars[0].raw);
	check("bar0-size", is_pow2(bars[0].size) && bars[0].size == 0x80000,
	      "BAR0 size is not Firecracker's 0x80000", bars[0].size);
	check("bar0-aligned",
	      bars[0].addr && is_pow2(bars[0].size) && !(bars[0].addr & (bars[0].size - 1)),
	      "BAR0 address is 0 or not aligned to its size", bars[0].addr);
	check("bar0-window",
	      bars[0].addr >= FC_MMIO64 && bars[0].addr + bars[0].size <= FC_MMIO64_END,
	      "BAR0 outside Firecracker's 64-bit window [256 GiB, 512 GiB)", bars[0].addr);
}

/* ----------------------------------------------------- capability list */

struct vcap {
	unsigned int ptr, len, bar;
	uint32_t off, length, mult;
};

static struct vcap vcaps[6]; /* by cfg_type 1..5; ptr 0: none */
static unsigned int msix_ptr;

static int bar_holds(unsigned int bar, uint64_t off, uint64_t len)
{
	return bar < 6 && !bars[bar].upper && !bars[bar].io && bars[bar].size &&
	       off + len <= bars[bar].size && off + len >= off;
}

static void walk_caps(unsigned int dev)
{
	uint8_t visited[64] = {0};
	unsigned int ptr, n = 0;
	int ok = 1;
	uint64_t bad = 0;

	ptr = pio_rd8(dev, 0x34);
	if (ptr & 3) {
		ok = 0;
		bad = ptr;
	}
	ptr &= ~3u;
	while (ptr && ok) {
		uint8_t id, next;

		if (ptr < 0x40 || ptr > 0xfc || (ptr & 3) || visited[ptr / 4] || ++n > 48) {
			ok = 0;
			bad = ptr;
			break;
		}
		visited[ptr / 4] = 1;
		id = pio_rd8(dev, ptr);
		next = pio_rd8(dev, ptr + 1);
		if (id == 0x09) {
			unsigned int type = pio_rd8(dev, ptr + 3);

			if (type >= 1 && type <= 5 && !vcaps[type].ptr) {
				struct vcap *c = &vcaps[type];

				c->ptr = ptr;
				c->len = pio_rd8(dev, ptr + 2);
				c->bar = pio_rd8(dev, ptr + 4);
				c->off = pio_rd32(0, dev, 0, ptr + 8);
				c->length = pio_rd32(0, dev, 0, ptr + 12);
				if (type == 2)
					c->mult = pio_rd32(0, dev, 0, ptr + 16);
			}
		} else if (id == 0x11 && !msix_ptr) {
			msix_ptr = ptr;
		}
		if (next & 3) {
			ok = 0;
			bad = 0x100 | ptr;
			break;
		}
		ptr = next;
	}
	check("cap-list", ok,
	      "capability pointer not dword aligned, outside 0x40..0xfc, looping or endless", bad);
}

static const char *const vcap_names[6] = {"",	     "cap-common", "cap-notify",
					  "cap-isr", "cap-device", "cap-pci-cfg"};

static void check_vcaps(void)
{
	static const uint32_t fc_off[5] = {0x0, 0x6000, 0x2000, 0x4000, 0};
	uint64_t fc_bad = 0;

	for (unsigned int t = 1; t <= 5; t++) {
		struct vcap *c = &vcaps[t];
		unsigned int min = (t == 2 || t == 5) ? 20 : 16;
		int ok = c->ptr && c->len >= min && c->ptr + c->len <= 0x100;

		if (ok && t != 5) /* the pci cfg cap's fields are the driver's */
			ok = bar_holds(c->bar, c->off, c->length) && c->length;
		if (ok && t == 1)
			ok = c->length >= CC_LEN && !(c->off & 3);
		if (ok && t == 2)
			ok = !(c->off & 1) && (!c->mult || is_pow2(c->mult));
		if (ok && t == 4)
			ok = !(c->off & 3);
		check(vcap_names[t], ok,
		      "virtio cap missing, too short, or its structure outside its BAR "
		      "(ptr | cap_len << 8 | bar << 16)",
		      (uint64_t)c->ptr | (uint64_t)c->len << 8 | (uint64_t)c->bar << 16);
		if (t != 5 && c->ptr && !fc_bad && (c->bar != 0 || c->off != fc_off[t - 1]))
			fc_bad = (uint64_t)t << 32 | c->off;
	}
	if (!fc_bad && vcaps[1].ptr && vcaps[1].length != CC_LEN)
		fc_bad = 1ull << 32 | vcaps[1].length;
	if (!fc_bad && vcaps[2].ptr && vcaps[2].mult != 4)
		fc_bad = 0xff00000000ull | vcaps[2].mult;
	check("cap-fc-layout", !fc_bad,
	      "not Firecracker's BAR0 layout (common 0x0/56, notify 0x6000 x4, ISR 0x2000, "
	      "device 0x4000): cfg_type << 32 | offset",
	      fc_bad);
}

struct msix {
	unsigned int n, tbir, pbir;
	uint32_t toff, poff;
};

static struct msix mx;

static int shares_4k(uint64_t a0, uint64_t l0, uint64_t a1, uint64_t l1)
{
	if (!l0 || !l1)
		return 0;
	return (a0 >> 12) <= ((a1 + l1 - 1) >> 12) && (a1 >> 12) <= ((a0 + l0 - 1) >> 12);
}

static void check_msix_cap(unsigned int dev)
{
	uint16_t ctl;
	uint32_t t, p;
	uint64_t tlen, plen;
	int ok;

	check("cap-msix", msix_ptr != 0, "no MSI-X capability (0x11)", 0);
	if (!msix_ptr)
		return;
	ctl = pio_rd16(dev, msix_ptr + 2);
	t = pio_rd32(0, dev, 0, msix_ptr + 4);
	p = pio_rd32(0, dev, 0, msix_ptr + 8);
	mx.n = (ctl & 0x7ff) + 1u;
	mx.tbir = t & 7;
	mx.toff = t & ~7u;
	mx.pbir = p & 7;
	mx.poff = p & ~7u;
	tlen = 16ull * mx.n;
	plen = 8ull * ((mx.n + 63) / 64);
	info("msix-vectors", mx.n);
	ok = bar_holds(mx.tbir, mx.toff, tlen) && bar_holds(mx.pbir, mx.poff, plen);
	check("msix-in-bar", ok, "MSI-X table or PBA not inside a memory BAR (table | pba << 32)",
	      t | (uint64_t)p << 32);
	if (!ok)
		return;
	/* PCI 3.0 6.8.2: table and PBA may share a naturally aligned 4 KiB
	 * range with each other but not overlap, and share none with other
	 * registers of the BAR. */
	ok = !(mx.tbir == mx.pbir && mx.toff < mx.poff + plen && mx.poff < mx.toff + tlen);
	for (unsigned int c = 1; c <= 4 && ok; c++) {
		struct vcap *v = &vcaps[c];

		if (!v->ptr)
			continue;
		if ((v->bar == mx.tbir && shares_4k(v->off, v->length, mx.toff, tlen)) ||
		    (v->bar == mx.pbir && shares_4k(v->off, v->length, mx.poff, plen)))
			ok = 0;
	}
	check("msix-own-pages", ok,
	      "MSI-X table and PBA overlap, or share a 4 KiB page with virtio registers", mx.toff);
	check("msix-fc-layout",
	      mx.tbir == 0 && mx.toff == 0x8000 && mx.pbir == 0 && mx.poff == 0x48000,
	      "not Firecracker's table 0x8000 / PBA 0x48000 in BAR0 (table | pba << 32)",
	      t | (uint64_t)p << 32);
}

/* -------------------------------------------------------------- the ring */

static struct vq_ring ring __attribute__((aligned(4096)));
static uint8_t buf[4][64] __attribute__((aligned(64)));
static uint64_t common, notify_addr;

static uint8_t cc_rd8(unsigned int o)
{
	return mm_rd8(common + o);
}

static uint16_t cc_rd16(unsigned int o)
{
	return mm_rd16(common + o);
}

static uint32_t cc_rd32(unsigned int o)
{
	return mm_rd32(common + o);
}

static void cc_wr8(unsigned int o, uint8_t v)
{
	mm_wr8(common + o, v);
}

static void cc_wr16(unsigned int o, uint16_t v)
{
	mm_wr16(common + o, v);
}

static void cc_wr32(unsigned int o, uint32_t v)
{
	mm_wr32(common + o, v);
}

/* Write 0 to device_status, wait (bounded) until it reads 0. */
static int reset_device(void)
{
	cc_wr8(CC_STATUS, 0);
	for (int i = 0; i < 100000; i++) {
		if (cc_rd8(CC_STATUS) == 0)
			return 1;
		cpu_relax();
	}
	return 0;
}

/* One device-writable 64-byte buffer on queue 0; notify; poll the used
 * ring (bounded).  Returns the used length, -1 on timeout or NEEDS_RESET,
 * -2 when the used element names another descriptor. */
static int64_t rng_request(uint8_t *b)
{
	uint16_t slot = ring.avail_idx % VQ_NUM;

	memset(b, 0, 64);
	ring.desc[0] = (struct vq_desc){(uint64_t)(uintptr_t)b, 64, 2 /* WRITE */, 0};
	ring.avail[2 + slot] = 0;
	vq_barrier();
	ring.avail_idx++;
	ring.avail[1] = ring.avail_idx;
	vq_barrier();
	mm_wr16(notify_addr, 0); /* the queue index, 16 bits (virtio 4.1.5.2) */
	for (uint64_t spin = 0; spin < 100000000ull; spin++) {
		if ((uint16_t)(ring.used[0] >> 16) != ring.used_idx) {
			uint32_t id, len;

			vq_barrier();
			id = ring.used[1 + 2 * (ring.used_idx % VQ_NUM)];
			len = ring.used[1 + 2 * (ring.used_idx % VQ_NUM) + 1];
			ring.used_idx++;
			return id == 0 ? (int64_t)len : -2;
		}
		if (!(spin & 0xffff) && (cc_rd8(CC_STATUS) & ST_NEEDS_RST))
			return -1;
		cpu_relax();
	}
	return -1;
}

static int nonzero(const uint8_t *b, int64_t len)
{
	int nz = 0;

	for (int64_t i = 0; i < len && i < 64; i++)
		nz |= b[i];
	return nz != 0;
}

static void request_step(const char *step, uint8_t *b)
{
	int64_t len = rng_request(b);

	check(step, len > 0 && len <= 64 && nonzero(b, len),
	      "no used element, a wrong id or length, or only zero bytes (length)", (uint64_t)len);
}

/* Firecracker's test_queue_config_immutable, plus a queue_size that would
 * be valid before DRIVER_OK. */
static const struct {
	const char *step;
	unsigned int off, width;
	uint32_t poison;
} frozen[] = {
    {"frozen-queue_size", CC_Q_SIZE, 2, 0},
    {"frozen-queue_size-4", CC_Q_SIZE, 2, VQ_NUM / 2},
    {"frozen-queue_enable", CC_Q_ENABLE, 2, 0},
    {"frozen-queue_desc_lo", CC_Q_DESCLO, 4, 0xdeadbeef},
    {"frozen-queue_desc_hi", CC_Q_DESCHI, 4, 0xdeadbeef},
    {"frozen-queue_avail_lo", CC_Q_AVAILLO, 4, 0xdeadbeef},
    {"frozen-queue_avail_hi", CC_Q_AVAILHI, 4, 0xdeadbeef},
    {"frozen-queue_used_lo", CC_Q_USEDLO, 4, 0xdeadbeef},
    {"frozen-queue_used_hi", CC_Q_USEDHI, 4, 0xdeadbeef},
};

static void check_frozen(void)
{
	cc_wr16(CC_Q_SELECT, 0);
	for (unsigned int i = 0; i < sizeof(frozen) / sizeof(frozen[0]); i++) {
		uint32_t orig, rb;

		if (frozen[i].width == 2) {
			orig = cc_rd16(frozen[i].off);
			cc_wr16(frozen[i].off, (uint16_t)frozen[i].poison);
			rb = cc_rd16(frozen[i].off);
		} else {
			orig = cc_rd32(frozen[i].off);
			cc_wr32(frozen[i].off, frozen[i].poison);
			rb = cc_rd32(frozen[i].off);
		}
		check(frozen[i].step, rb == orig,
		      "changed after DRIVER_OK (original << 32 | read back)",
		      (uint64_t)orig << 32 | rb);
	}
}

/* virtio 4.1.4.9: VIRTIO_PCI_CAP_PCI_CFG, a window onto the BARs through
 * configuration space only.  Reads length bytes at bar/offset. */
static uint32_t cfg_window_read(unsigned int dev, unsigned int bar, uint32_t off, uint32_t len)
{
	unsigned int p = vcaps[5].ptr;

	pio_wr8(dev, p + 4, (uint8_t)bar);
	pio_wr32(dev, p + 12, len);
	pio_wr32(dev, p + 8, off);
	return pio_rd32(0, dev, 0, p + 16) & (len == 4 ? 0xffffffffu : (1u << (8 * len)) - 1);
}

/* An empty ring for the selected queue: size VQ_NUM, its three addresses
 * (below 4 GiB, identity mapped). */
static void program_queue(void)
{
	memset(ring.desc, 0, sizeof(ring.desc));
	for (int i = 0; i < 2 + VQ_NUM + 1; i++)
		ring.avail[i] = 0;
	for (int i = 0; i < 1 + 2 * VQ_NUM + 1; i++)
		ring.used[i] = 0;
	ring.avail_idx = ring.used_idx = 0;
	cc_wr16(CC_Q_SIZE, VQ_NUM);
	cc_wr32(CC_Q_DESCLO, (uint32_t)(uintptr_t)ring.desc);
	cc_wr32(CC_Q_DESCHI, 0);
	cc_wr32(CC_Q_AVAILLO, (uint32_t)(uintptr_t)ring.avail);
	cc_wr32(CC_Q_AVAILHI, 0);
	cc_wr32(CC_Q_USEDLO, (uint32_t)(uintptr_t)ring.used);
	cc_wr32(CC_Q_USEDHI, 0);
}

static int drive_rng(unsigned int dev)
{
	uint32_t f0, f1;
	uint16_t nq, qmax, noff;
	uint64_t a;
	uint8_t st;
	int ok;

	check("reset", reset_device(), "device_status never read 0 after writing 0",
	      cc_rd8(CC_STATUS));
	nq = cc_rd16(CC_NUMQ);
	check("num_queues", nq >= 1, "no queues", nq);
	cc_wr8(CC_STATUS, ST_ACK);
	st = cc_rd8(CC_STATUS);
	check("status-ack", st == ST_ACK, "ACKNOWLEDGE not kept", st);
	cc_wr8(CC_STATUS, ST_ACK | ST_DRIVER);
	st = cc_rd8(CC_STATUS);
	check("status-driver", st == (ST_ACK | ST_DRIVER), "DRIVER not kept", st);

	cc_wr32(CC_DFSELECT, 0);
	f0 = cc_rd32(CC_DF);
	cc_wr32(CC_DFSELECT, 1);
	f1 = cc_rd32(CC_DF);
	info("device-features", (uint64_t)f1 << 32 | f0);
	check("version_1", f1 & 1, "VIRTIO_F_VERSION_1 (bit 32) not offered",
	      (uint64_t)f1 << 32 | f0);
	if (!(f1 & 1))
		return 0;
	cc_wr32(CC_GFSELECT, 0);
	cc_wr32(CC_GF, 0);
	cc_wr32(CC_GFSELECT, 1);
	cc_wr32(CC_GF, 1); /* VERSION_1 only */
	cc_wr8(CC_STATUS, ST_ACK | ST_DRIVER | ST_FEAT_OK);
	st = cc_rd8(CC_STATUS);
	check("features_ok", st == (ST_ACK | ST_DRIVER | ST_FEAT_OK), "FEATURES_OK not kept", st);
	if (!(st & ST_FEAT_OK))
		return 0;

	/* 4.1.4.3.2: queue_size reads 0 for a queue that does not exist */
	cc_wr16(CC_Q_SELECT, nq);
	check("queue-absent", cc_rd16(CC_Q_SIZE) == 0, "queue_size of queue num_queues is not 0",
	      cc_rd16(CC_Q_SIZE));
	cc_wr16(CC_Q_SELECT, 0);
	check("queue_select", cc_rd16(CC_Q_SELECT) == 0, "queue_select does not read back",
	      cc_rd16(CC_Q_SELECT));
	qmax = cc_rd16(CC_Q_SIZE);
	check("queue_size-max", qmax >= VQ_NUM && qmax <= 32768 && is_pow2(qmax),
	      "maximum queue size not a power of two in 8..32768", qmax);
	check("queue_enable-0", cc_rd16(CC_Q_ENABLE) == 0, "queue_enable not 0 after reset",
	      cc_rd16(CC_Q_ENABLE));
	noff = cc_rd16(CC_Q_NOFF);
	a = (uint64_t)noff * vcaps[2].mult;
	check("queue_notify_off", a + 2 <= vcaps[2].length,
	      "notify address past the notify structure (off * multiplier)", a);
	notify_addr = bars[vcaps[2].bar].addr + vcaps[2].off + a;
	cc_wr16(CC_MSIX, NO_VECTOR);
	cc_wr16(CC_Q_MSIX, NO_VECTOR);
	check("no-vector", cc_rd16(CC_MSIX) == NO_VECTOR && cc_rd16(CC_Q_MSIX) == NO_VECTOR,
	      "config/queue msix vector do not read NO_VECTOR (config << 16 | queue)",
	      (uint64_t)cc_rd16(CC_MSIX) << 16 | cc_rd16(CC_Q_MSIX));

	program_queue();
	ok = cc_rd16(CC_Q_SIZE) == VQ_NUM &&
	     cc_rd32(CC_Q_DESCLO) == (uint32_t)(uintptr_t)ring.desc && cc_rd32(CC_Q_DESCHI) == 0 &&
	     cc_rd32(CC_Q_AVAILLO) == (uint32_t)(uintptr_t)ring.avail &&
	     cc_rd32(CC_Q_AVAILHI) == 0 && cc_rd32(CC_Q_USEDLO) == (uint32_t)(uintptr_t)ring.used &&
	     cc_rd32(CC_Q_USEDHI) == 0;
	check("queue-regs", ok, "queue size/desc/driver/device do not read back (desc lo)",
	      cc_rd32(CC_Q_DESCLO));
	cc_wr16(CC_Q_ENABLE, 1);
	check("queue_enable", cc_rd16(CC_Q_ENABLE) == 1, "queue_enable does not read 1",
	      cc_rd16(CC_Q_ENABLE));
	cc_wr8(CC_STATUS, ST_ACK | ST_DRIVER | ST_FEAT_OK | ST_DRIVER_OK);
	st = cc_rd8(CC_STATUS);
	check("driver_ok", st == (ST_ACK | ST_DRIVER | ST_FEAT_OK | ST_DRIVER_OK),
	      "DRIVER_OK not kept (or NEEDS_RESET/FAILED)", st);
	if (!(st & ST_DRIVER_OK) || (st & (ST_NEEDS_RST | ST_FAILED)))
		return 0;
	info("isr", mm_rd8(bars[vcaps[3].bar].addr + vcaps[3].off));

	request_step("read1", buf[0]);
	request_step("read2", buf[1]);
	request_step("read3", buf[2]);
	ok = 0;
	for (int i = 0; i < 64; i++)
		ok |= buf[0][i] != buf[1][i] || buf[1][i] != buf[2][i];
	check("random", ok, "three reads returned the same bytes", 0);

	check_frozen();
	request_step("read-after-poison", buf[3]);

	/* the PCI cfg access window: num_queues and device_status */
	a = cfg_window_read(dev, vcaps[1].bar, vcaps[1].off + CC_NUMQ, 2);
	check("pci-cfg-num_queues", a == nq, "num_queues through VIRTIO_PCI_CAP_PCI_CFG", a);
	a = cfg_window_read(dev, vcaps[1].bar, vcaps[1].off + CC_STATUS, 1);
	check("pci-cfg-status", a == (ST_ACK | ST_DRIVER | ST_FEAT_OK | ST_DRIVER_OK),
	      "device_status through VIRTIO_PCI_CAP_PCI_CFG", a);

	check("final-reset", reset_device(), "device_status never read 0 after the final reset",
	      cc_rd8(CC_STATUS));
	return 1;
}

/* ----------------------------------------------------------------- MSI-X */

/* PCI Local Bus 3.0 6.8.2: Message Control (capability + 2) bit 15 MSI-X
 * Enable, bit 14 Function Mask, bits 10:0 table size - 1; a table entry is
 * Message Address, Message Upper Address, Message Data, Vector Control
 * (bit 0: masked); the PBA has one pending bit per entry.  A masked vector
 * (its own bit or the function's) sends nothing, the function sets its
 * pending bit instead and sends the message once unmasked, clearing the
 * bit.  The Intel SDM (10.11): address 0xfee00000 | APIC ID << 12 with
 * data = vector interrupts that APIC (fixed, edge).  virtio 4.1.4.3 /
 * 4.1.5.1.2: config_msix_vector and queue_msix_vector name a table entry;
 * a device reads back NO_VECTOR for one it cannot map (vector >= table
 * size) and has every event unmapped after reset. */
#define MC_ENABLE 0x8000
#define MC_FMASK  0x4000
#define MSI_ADDR  0xfee00000u /* APIC ID 0 */
#define VEC_CFG	  0x50	      /* entry 0: configuration changes */
#define VEC_Q	  0x51	      /* entry 1: queue 0 */

static volatile uint64_t q_irqs, c_irqs, stray_irqs;
static unsigned int rng_dev;

void vpci_q_irq(void);
void vpci_q_irq(void)
{
	q_irqs++;
	lapic_write(0xb0, 0); /* EOI */
}

void vpci_c_irq(void);
void vpci_c_irq(void)
{
	c_irqs++;
	lapic_write(0xb0, 0);
}

void vpci_stray_irq(void);
void vpci_stray_irq(void)
{
	stray_irqs++;
	lapic_write(0xb0, 0);
}

/* caller-saved registers around the C handler, then iretq */
#define VPCI_ISR(name, fn)                                                                         \
	".globl " name "\n" name ":\n"                                                             \
	"push %rax\npush %rcx\npush %rdx\npush %rsi\npush %rdi\n"                                  \
	"push %r8\npush %r9\npush %r10\npush %r11\n"                                               \
	"call " fn "\n"                                                                            \
	"pop %r11\npop %r10\npop %r9\npop %r8\n"                                                   \
	"pop %rdi\npop %rsi\npop %rdx\npop %rcx\npop %rax\niretq\n"
__asm__(".text\n" VPCI_ISR("vpci_q_isr", "vpci_q_irq") VPCI_ISR("vpci_c_isr", "vpci_c_irq")
	    VPCI_ISR("vpci_stray_isr", "vpci_stray_irq"));
void vpci_q_isr(void);
void vpci_c_isr(void);
void vpci_stray_isr(void);

static uint64_t irqs_all(void)
{
	return q_irqs + c_irqs + stray_irqs;
}

static uint64_t mx_entry(unsigned int e, unsigned int word)
{
	return bars[mx.tbir].addr + mx.toff + 16ull * e + 4 * word;
}

static uint32_t pba_rd(void)
{
	return mm_rd32(bars[mx.pbir].addr + mx.poff);
}

static uint16_t mc_rd(void)
{
	return pio_rd16(rng_dev, msix_ptr + 2);
}

static void mc_wr(uint16_t v)
{
	pio_wr16(rng_dev, msix_ptr + 2, v);
}

/* The bounded waits' clock: TSC cycles, each step counted as 2^20 at
 * most, so a snapshot's pause or a TSC that moves across a load ends no
 * wait early.  (No PAUSE in these loops: each took ~2 us on this host's
 * /dev/kvm, a VM exit.) */
struct clk {
	uint64_t last, spent;
};

static uint64_t rdtsc(void)
{
	uint32_t lo, hi;

	__asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
	return (uint64_t)hi << 32 | lo;
}

static void clk_start(struct clk *c)
{
	c->last = rdtsc();
	c->spent = 0;
}

static int clk_over(struct clk *c, uint64_t limit)
{
	uint64_t now = rdtsc(), d = now - c->last;

	c->last = now;
	c->spent += d > (1u << 20) ? (1u << 20) : d;
	return c->spent >= limit;
}

#define T_SETTLE (1ull << 24) /* ~6 ms at 2.6 GHz: an MSI already sent arrives */
#define T_WAIT	 (1ull << 32) /* ~1.6 s: a request, an interrupt, a PBA bit */
#define T_HOLD	 (1ull << 36) /* ~26 s: the host's byte that ends a hold */

static void settle(void)
{
	struct clk c;

	clk_start(&c);
	while (!clk_over(&c, T_SETTLE))
		__asm__ volatile("" ::: "memory");
}

/* Until *c differs from old (bounded); 1 if it did. */
static int wait_irq(volatile uint64_t *cnt, uint64_t old)
{
	struct clk c;

	for (clk_start(&c); !clk_over(&c, T_WAIT);)
		if (*cnt != old)
			return 1;
	return *cnt != old;
}

/* The PBA's first dword once it reads want (bounded): what it read last. */
static uint32_t wait_pba(uint32_t want)
{
	uint32_t v = pba_rd();
	struct clk c;

	for (clk_start(&c); v != want && !clk_over(&c, T_WAIT);)
		v = pba_rd();
	return v;
}

static uint16_t used_now(void)
{
	return (uint16_t)(ring.used[0] >> 16);
}

/* n device-writable 64-byte buffers (buf[0..n), descriptors 0..n-1) on
 * queue 0, one notify. */
static void submit(unsigned int n)
{
	for (unsigned int i = 0; i < n; i++) {
		memset(buf[i], 0, 64);
		ring.desc[i] = (struct vq_desc){(uint64_t)(uintptr_t)buf[i], 64, 2 /* WRITE */, 0};
		ring.avail[2 + (uint16_t)(ring.avail_idx + i) % VQ_NUM] = (uint16_t)i;
	}
	vq_barrier();
	ring.avail_idx = (uint16_t)(ring.avail_idx + n);
	ring.avail[1] = ring.avail_idx;
	vq_barrier();
	mm_wr16(notify_addr, 0);
}

/* Every submitted buffer used (bounded), each with one of the n ids, a
 * length 1..64 and not only zero bytes.  1 if so. */
static int wait_used(unsigned int n)
{
	int ok = 1;
	struct clk c;

	for (clk_start(&c); used_now() != ring.avail_idx && !clk_over(&c, T_WAIT);)
		;
	if (used_now() != ring.avail_idx)
		return 0;
	vq_barrier();
	while (ring.used_idx != ring.avail_idx) {
		uint32_t id = ring.used[1 + 2 * (ring.used_idx % VQ_NUM)];
		uint32_t len = ring.used[2 + 2 * (ring.used_idx % VQ_NUM)];

		if (id >= n || !len || len > 64 || !nonzero(buf[id], len))
			ok = 0;
		ring.used_idx++;
	}
	return ok;
}

static uint16_t vec_try(unsigned int off, uint16_t v)
{
	cc_wr16(off, v);
	return cc_rd16(off);
}

/* Reset, VERSION_1 only, the configuration on entry 0 and queue 0 on
 * entry 1 (refused vectors checked on the way), DRIVER_OK.  1 if it holds. */
static int rng_start(void)
{
	uint16_t v;
	uint8_t st;

	if (!reset_device())
		return 0;
	cc_wr8(CC_STATUS, ST_ACK);
	cc_wr8(CC_STATUS, ST_ACK | ST_DRIVER);
	cc_wr32(CC_GFSELECT, 0);
	cc_wr32(CC_GF, 0);
	cc_wr32(CC_GFSELECT, 1);
	cc_wr32(CC_GF, 1);
	cc_wr8(CC_STATUS, ST_ACK | ST_DRIVER | ST_FEAT_OK);
	if (!(cc_rd8(CC_STATUS) & ST_FEAT_OK))
		return 0;

	v = vec_try(CC_MSIX, 0x7ff);
	check("vec-config-0x7ff", v == NO_VECTOR,
	      "config_msix_vector 0x7ff (past the table) does not read back NO_VECTOR", v);
	v = vec_try(CC_MSIX, (uint16_t)mx.n);
	check("vec-config-tablesize", v == NO_VECTOR,
	      "config_msix_vector = the table size does not read back NO_VECTOR", v);
	v = vec_try(CC_MSIX, 0);
	check("vec-config", v == 0, "config_msix_vector 0 not accepted", v);
	cc_wr16(CC_Q_SELECT, 0);
	v = vec_try(CC_Q_MSIX, 0x7ff);
	check("vec-queue-0x7ff", v == NO_VECTOR,
	      "queue_msix_vector 0x7ff (past the table) does not read back NO_VECTOR", v);
	v = vec_try(CC_Q_MSIX, (uint16_t)mx.n);
	check("vec-queue-tablesize", v == NO_VECTOR,
	      "queue_msix_vector = the table size does not read back NO_VECTOR", v);
	v = vec_try(CC_Q_MSIX, 1);
	check("vec-queue", v == 1, "queue_msix_vector 1 not accepted", v);

	notify_addr =
	    bars[vcaps[2].bar].addr + vcaps[2].off + (uint64_t)cc_rd16(CC_Q_NOFF) * vcaps[2].mult;
	program_queue();
	cc_wr16(CC_Q_ENABLE, 1);
	cc_wr8(CC_STATUS, ST_ACK | ST_DRIVER | ST_FEAT_OK | ST_DRIVER_OK);
	st = cc_rd8(CC_STATUS);
	return st == (ST_ACK | ST_DRIVER | ST_FEAT_OK | ST_DRIVER_OK);
}

static void entry_write(unsigned int e, uint32_t data, uint32_t ctrl)
{
	mm_wr32(mx_entry(e, 0), MSI_ADDR);
	mm_wr32(mx_entry(e, 1), 0);
	mm_wr32(mx_entry(e, 2), data);
	mm_wr32(mx_entry(e, 3), ctrl);
}

/* IDT (every vector from 0x20 counted; 0x50 / 0x51 each their own), PICs
 * masked, LAPIC on, interrupts on; entries 0 and 1 programmed while masked,
 * MSI-X enabled with the function masked, then both unmasked (PCI 3.0
 * 6.8.3.3's order); the rng started with vectors 0 / 1.  1 at DRIVER_OK. */
static int msix_setup(unsigned int d)
{
	uint16_t ctl;
	int ok;

	rng_dev = d;
	check("msix-vectors", mx.n >= 2, "fewer than 2 MSI-X vectors", mx.n);
	if (mx.n < 2)
		return 0;
	for (unsigned int v = 0x20; v < 256; v++)
		idt_set(v, vpci_stray_isr);
	idt_set(VEC_CFG, vpci_c_isr);
	idt_set(VEC_Q, vpci_q_isr);
	idt_load();
	outb(0x21, 0xff); /* both PICs masked */
	outb(0xa1, 0xff);
	lapic_write(0xf0, 0x1ff); /* LAPIC enabled, spurious vector 0xff */
	__asm__ volatile("sti");

	entry_write(0, VEC_CFG, 1);
	entry_write(1, VEC_Q, 1);
	mc_wr(MC_ENABLE | MC_FMASK);
	mm_wr32(mx_entry(0, 3), 0);
	mm_wr32(mx_entry(1, 3), 0);
	mc_wr(MC_ENABLE);
	ctl = mc_rd();
	check("msix-enable", (ctl & 0xc000) == MC_ENABLE && (ctl & 0x7ff) + 1u == mx.n,
	      "Message Control does not read back MSI-X Enable alone, or its table size changed",
	      ctl);
	ok = mm_rd32(mx_entry(1, 0)) == MSI_ADDR && mm_rd32(mx_entry(1, 1)) == 0 &&
	     mm_rd32(mx_entry(1, 2)) == VEC_Q && mm_rd32(mx_entry(1, 3)) == 0;
	check("msix-entry1", ok, "MSI-X table entry 1 does not read back (its data)",
	      mm_rd32(mx_entry(1, 2)));
	ok = rng_start();
	check("msix-driver_ok", ok, "the rng did not take DRIVER_OK with vectors 0 / 1 (status)",
	      cc_rd8(CC_STATUS));
	return ok;
}

/* Vector 1 masked (its Vector Control bit, or the Function Mask), one
 * request: no interrupt, the PBA says bit 1; unmasked: one interrupt, the
 * bit clears. */
static void mask_case(int fn)
{
	static const char *const steps[2][4] = {
	    {"mask-entry-no-irq", "mask-entry-pba", "unmask-entry-irq", "unmask-entry-pba-clear"},
	    {"mask-fn-no-irq", "mask-fn-pba", "unmask-fn-irq", "unmask-fn-pba-clear"}};
	const char *const *st = steps[fn];
	uint64_t n = q_irqs, all = irqs_all();
	uint32_t pba;
	int used;

	if (fn)
		mc_wr(MC_ENABLE | MC_FMASK);
	else
		mm_wr32(mx_entry(1, 3), 1);
	submit(1);
	used = wait_used(1);
	pba = wait_pba(2);
	settle();
	check(st[0], used && irqs_all() == all,
	      "an interrupt while vector 1 was masked, or no used buffer (interrupts)",
	      irqs_all() - all);
	pba = pba_rd();
	check(st[1], pba == 2,
	      "the PBA is not bit 1 alone once the device used a buffer for masked vector 1", pba);
	if (fn)
		mc_wr(MC_ENABLE);
	else
		mm_wr32(mx_entry(1, 3), 0);
	wait_irq(&q_irqs, n);
	settle();
	check(st[2], q_irqs == n + 1,
	      "not exactly one interrupt after unmasking vector 1 with its pending bit set "
	      "(interrupts)",
	      q_irqs - n);
	pba = wait_pba(0);
	check(st[3], pba == 0, "the PBA bit stays set after the pending message was sent", pba);
}

/* The default mode's MSI-X part, after drive_rng. */
static void run_msix(unsigned int d)
{
	uint64_t n, all;
	uint16_t v0, v1;
	int ok;

	if (!msix_setup(d))
		goto out;
	ok = 1;
	for (int i = 0; i < 4 && ok; i++) {
		n = q_irqs;
		submit(1);
		ok = wait_used(1) && wait_irq(&q_irqs, n);
	}
	check("msix-irq-each", ok,
	      "a request used without an interrupt on vector 1 (interrupts so far)", q_irqs);

	/* a batch: at least one interrupt */
	n = q_irqs;
	submit(3);
	check("batch-used", wait_used(3), "a batch of 3 buffers not all used, or bad ones",
	      used_now());
	check("msix-irq-batch", wait_irq(&q_irqs, n), "no interrupt for a batch of 3 used buffers",
	      0);

	mask_case(0);
	mask_case(1);

	/* MSI-X Enable clear: no message, and no INTx either (none offered) */
	mc_wr(0);
	all = irqs_all();
	submit(1);
	ok = wait_used(1);
	settle();
	check("msix-off-no-irq", ok && irqs_all() == all,
	      "an interrupt with MSI-X disabled, or no used buffer (interrupts)", irqs_all() - all);
	info("msix-off-pba", pba_rd());
	info("interrupt-pin", pio_rd8(d, 0x3d));
	check("no-config-irq", c_irqs == 0, "configuration interrupts from an rng (count)", c_irqs);
	check("no-stray-irq", stray_irqs == 0, "interrupts on vectors nobody asked for (count)",
	      stray_irqs);

	/* virtio 4.1.5.1.2.1: every event unmapped after a reset */
	check("vec-reset", reset_device(), "device_status never read 0 after the reset",
	      cc_rd8(CC_STATUS));
	v0 = cc_rd16(CC_MSIX);
	cc_wr16(CC_Q_SELECT, 0);
	v1 = cc_rd16(CC_Q_MSIX);
	check("vec-unmapped-after-reset", v0 == NO_VECTOR && v1 == NO_VECTOR,
	      "config / queue vector still mapped after a reset (config << 16 | queue)",
	      (uint64_t)v0 << 16 | v1);
out:
	__asm__ volatile("cli");
}

/* ------------------------------------------------------------------ loop */

/* vpci=loop: the snapshot tests' guest.  Host input on COM1 steers it
 * between rounds: 'q' ends the loop, 'm' holds vector 1 masked with its
 * pending bit set until the next byte. */
static void hold(void)
{
	uint64_t n = q_irqs, all = irqs_all();
	uint32_t pba;
	int used, got = 0;
	struct clk c;

	mm_wr32(mx_entry(1, 3), 1);
	submit(1);
	used = wait_used(1);
	pba = wait_pba(2);
	check("hold-pending", used && pba == 2 && irqs_all() == all,
	      "vector 1 masked: no used buffer, an interrupt, or the PBA is not bit 1 (pba)", pba);
	puts_serial("VPCI hold\n");
	for (clk_start(&c); !got && !clk_over(&c, T_HOLD);)
		got = inb(0x3fd) & 1; /* LSR.DR: a byte from the host */
	if (got)
		(void)inb(0x3f8);
	check("hold-released", got, "no byte from the host to end the hold", 0);
	pba = pba_rd();
	check("hold-pba-kept", pba == 2 && irqs_all() == all,
	      "masked vector 1's pending bit lost, or an interrupt (interrupts << 32 | pba)",
	      (irqs_all() - all) << 32 | pba);
	mm_wr32(mx_entry(1, 3), 0);
	wait_irq(&q_irqs, n);
	settle();
	check("hold-unmask-irq", q_irqs == n + 1,
	      "not exactly one interrupt after unmasking vector 1 (interrupts)", q_irqs - n);
	pba = wait_pba(0);
	check("hold-pba-clear", pba == 0, "the PBA bit stays set after the message was sent", pba);
}

/* What must not change under the guest, snapshots included: the host
 * bridge through 0xcf8, the rng's BAR0, its MSI-X state and vectors. */
static const char *round_state(uint32_t bar_lo, uint32_t bar_hi)
{
	uint32_t v = pio_rd32(0, 0, 0, 0);

	if (v != ((uint32_t)ID_HOST_DEVICE << 16 | ID_HOST_VENDOR))
		return "00:00.0 is no longer 8086:0d57 through 0xcf8";
	if (pio_rd32(0, rng_dev, 0, 0x10) != bar_lo || pio_rd32(0, rng_dev, 0, 0x14) != bar_hi)
		return "the rng's BAR0 changed";
	if ((mc_rd() & 0xc000) != MC_ENABLE)
		return "Message Control is not MSI-X Enable alone";
	if (mm_rd32(mx_entry(1, 0)) != MSI_ADDR || mm_rd32(mx_entry(1, 2)) != VEC_Q ||
	    mm_rd32(mx_entry(1, 3)) != 0)
		return "MSI-X table entry 1 changed";
	cc_wr16(CC_Q_SELECT, 0);
	if (cc_rd16(CC_MSIX) != 0 || cc_rd16(CC_Q_MSIX) != 1)
		return "config / queue vector changed";
	if (cc_rd8(CC_STATUS) != (ST_ACK | ST_DRIVER | ST_FEAT_OK | ST_DRIVER_OK))
		return "device_status is not DRIVER_OK";
	return 0;
}

static void run_loop(unsigned int d)
{
	uint64_t max = cmdline_u64("rounds", 3000), r, n;
	uint32_t bar_lo = pio_rd32(0, d, 0, 0x10), bar_hi = pio_rd32(0, d, 0, 0x14);
	const char *why = 0;
	uint8_t prev[64];

	if (!msix_setup(d))
		return;
	memset(prev, 0, sizeof(prev));
	for (r = 1; r <= max && !why; r++) {
		if (inb(0x3fd) & 1) {
			uint8_t c = inb(0x3f8);

			if (c == 'q')
				break;
			if (c == 'm')
				hold();
		}
		why = round_state(bar_lo, bar_hi);
		if (why)
			break;
		n = q_irqs;
		submit(1);
		if (!wait_used(1))
			why = "no used buffer, or a bad one";
		else if (!wait_irq(&q_irqs, n))
			why = "no interrupt for the round's buffer";
		else if (mem_eq(buf[0], (const char *)prev, 64))
			why = "the same bytes as the round before";
		memcpy(prev, buf[0], 64);
		if (why)
			break;
		puts_serial("VPCI round ");
		put_u64(r);
		puts_serial(" irqs ");
		put_u64(q_irqs);
		puts_serial("\n");
		settle();
		settle();
	}
	check("rounds", !why && stray_irqs == 0 && c_irqs == 0,
	      why ? why : "interrupts on other vectors (round)", r);
	__asm__ volatile("cli");
}

/* ------------------------------------------------------------------ full */

static void run_pci(int loop)
{
	uint32_t v, mism = 0;
	int n, rng = -1, ok;
	unsigned int d;
	uint64_t bad = 0;

	outl(CF8, 0x80000000u);
	v = inl(CF8);
	check("type1", v == 0x80000000u, "CONFIG_ADDRESS does not read back (Linux's type-1 probe)",
	      v);
	outl(CF8, 0); /* enable bit clear: 0xcfc is plain I/O, nothing there */
	v = inl(CFC);
	check("type1-enable-bit", v == 0xffffffffu, "0xcfc answers with the enable bit clear", v);

	n = enumerate();
	info("devices", (uint64_t)n);
	v = pio_rd32(1, 0, 0, 0);
	check("bus1-empty", v == 0xffffffffu, "01:00.0 answers: the bus number is ignored", v);

	/* 00:00.0: Firecracker's host bridge */
	v = pio_rd32(0, 0, 0, 0);
	check("host-bridge-id", v == ((uint32_t)ID_HOST_DEVICE << 16 | ID_HOST_VENDOR),
	      "00:00.0 is not 8086:0d57 (device << 16 | vendor)", v);
	v = pio_rd32(0, 0, 0, 8);
	check("host-bridge-class", (v >> 16) == 0x0600, "00:00.0 class/subclass is not 06/00",
	      v >> 8);
	check("host-bridge-header", (pio_rd8(0, 0x0e) & 0x7f) == 0, "header type is not 0",
	      pio_rd8(0, 0x0e));
	if ((id0[0] & 0xffff) != ID_HOST_VENDOR)
		goto acpi; /* no PCI: nothing more to look at */

	/* the same dwords through ECAM */
	ok = 1;
	for (unsigned int dev = 0; dev < 32 && ok; dev++) {
		unsigned int top = (id0[dev] & 0xffff) == 0xffff ? 4 : 256;

		for (unsigned int reg = 0; reg < top && ok; reg += 4) {
			v = ecam_rd32(dev, 0, reg);
			if (v != pio_rd32(0, dev, 0, reg)) {
				ok = 0;
				bad = dev << 8 | reg;
				mism = v;
			}
		}
		if (ok && (id0[dev] & 0xffff) != 0xffff && !(pio_rd8(dev, 0x0e) & 0x80) &&
		    ecam_rd32(dev, 1, 0) != 0xffffffffu) {
			ok = 0;
			bad = 0x10000 | dev << 8;
		}
	}
	check("ecam-agrees", ok,
	      "ECAM at 0xeec00000 and 0xcf8/0xcfc disagree (fn1 << 16 | dev << 8 | reg)", bad);
	if (!ok)
		info("ecam-value", mism);

	/* virtio devices: modern ids, revision >= 1 */
	ok = 1;
	bad = 0;
	for (unsigned int dev = 0; dev < 32; dev++) {
		if ((id0[dev] & 0xffff) != ID_VIRTIO)
			continue;
		if ((id0[dev] >> 16) < 0x1040 || (id0[dev] >> 16) > 0x107f ||
		    pio_rd8(dev, 0x08) < 1) {
			ok = 0;
			bad = dev;
		}
		if (rng < 0 && (id0[dev] >> 16) == ID_VIRTIO_RNG)
			rng = (int)dev;
	}
	check("virtio-modern", ok, "a virtio device is not 1af4:1040+type with revision >= 1 (dev)",
	      bad);
	check("rng-found", rng > 0, "no 1af4:1044 after the host bridge", (uint64_t)rng);
	if (rng <= 0)
		goto acpi;
	d = (unsigned int)rng;

	/* header: sub-dword reads both ways */
	ok = pio_rd16(d, 0) == ID_VIRTIO && pio_rd16(d, 2) == ID_VIRTIO_RNG &&
	     ecam_rd16(d, 2) == ID_VIRTIO_RNG && pio_rd8(d, 0x0e) == ecam_rd8(d, 0x0e) &&
	     pio_rd8(d, 0x34) == ecam_rd8(d, 0x34) && pio_rd8(d, 0x08) == ecam_rd8(d, 0x08) &&
	     pio_rd16(d, 0x2e) == ecam_rd16(d, 0x2e);
	check("subdword-reads", ok, "8/16-bit reads at 0xcfc+n or ECAM differ from the dword", 0);
	check("rng-revision", pio_rd8(d, 0x08) >= 1, "revision id 0 (transitional)",
	      pio_rd8(d, 0x08));
	check("rng-header", (pio_rd8(d, 0x0e) & 0x7f) == 0, "header type is not 0",
	      pio_rd8(d, 0x0e));
	check("rng-subsystem", pio_rd16(d, 0x2c) == ID_VIRTIO && pio_rd16(d, 0x2e) >= 0x40,
	      "subsystem vendor not 1af4 or subsystem id < 0x40 (id << 16 | vendor)",
	      pio_rd32(0, d, 0, 0x2c));

	/* decoding off through 0xcfc, read back through ECAM */
	pio_wr16(d, 0x04, 0);
	check("command-off", (ecam_rd16(d, 0x04) & 6) == 0, "memory/bus master bits stay set",
	      ecam_rd16(d, 0x04));
	check_bars(d);
	check("status-caps", pio_rd16(d, 0x06) & 0x10, "Status bit 4 (capabilities list) clear",
	      pio_rd16(d, 0x06));
	walk_caps(d);
	check_vcaps();
	check_msix_cap(d);
	for (unsigned int t = 1; t <= 4; t++)
		if (!vcaps[t].ptr || !bar_holds(vcaps[t].bar, vcaps[t].off, vcaps[t].length))
			goto acpi;
	if (!vcaps[5].ptr || !msix_ptr || !bar_holds(mx.tbir, mx.toff, 16ull * mx.n))
		goto acpi;

	/* memory space + bus master through ECAM, read back through 0xcfc */
	ecam_wr16(d, 0x04, 0x0006);
	check("command-on", (pio_rd16(d, 0x04) & 6) == 6, "memory space / bus master not set",
	      pio_rd16(d, 0x04));
	ok = 1;
	for (unsigned int i = 0; i < 6; i++)
		if (!bars[i].upper && !bars[i].io && bars[i].size &&
		    map_mmio(bars[i].addr, bars[i].size) < 0)
			ok = 0;
	check("map-bars", ok, "cannot map the BARs (past MAXPHYADDR or two 1 GiB regions)",
	      bars[0].addr);
	if (!ok)
		goto acpi;

	/* PCI 3.0 6.8.2.9: every MSI-X vector masked after reset, PBA clear */
	ok = 1;
	for (unsigned int e = 0; e < mx.n && e < 64 && ok; e++)
		ok = mm_rd32(bars[mx.tbir].addr + mx.toff + 16 * e + 12) & 1;
	check("msix-masked", ok, "an MSI-X table entry is not masked after reset", 0);
	check("msix-pba", mm_rd32(bars[mx.pbir].addr + mx.poff) == 0, "PBA not clear",
	      mm_rd32(bars[mx.pbir].addr + mx.poff));

	common = bars[vcaps[1].bar].addr + vcaps[1].off;
	if (loop) {
		run_loop(d);
		return;
	}
	if (drive_rng(d))
		run_msix(d);
acpi:
	check_acpi(1);
}

void guest_main(uint32_t start_info)
{
	char mode[16] = "", pci[16] = "";
	int pci_off;

	cmdline_init(start_info);
	cmdline_word(start_info, "vpci", mode, sizeof(mode));
	pci_off = cmdline_word(start_info, "pci", pci, sizeof(pci)) && str_eq(pci, "off");
	if (str_eq(mode, "absent")) {
		check("cmdline", pci_off, "no pci=off on the command line without PCI", 0);
		run_absent();
	} else {
		check("cmdline", !pci_off, "pci=off on the command line with PCI", 0);
		run_pci(str_eq(mode, "loop"));
	}
	if (first_step) {
		puts_serial("VIRTIOPCI FAIL ");
		puts_serial(first_step);
		puts_serial(": ");
		puts_serial(first_why);
		puts_serial(" (");
		put_u64(vg_failed);
		puts_serial(" failed)");
	} else {
		puts_serial("VIRTIOPCI PASS checks=");
		put_u64(vg_passed);
	}
	puts_serial("\n");
	guest_reset();
}
