/* The arm64 device tree (runtime/arch/aarch64/arch_fdt.c) read back with
 * libfdt and checked against the devicetree bindings it implements:
 * arm/cpus.yaml (reg = MPIDR affinity, enable-method psci), psci.yaml
 * (arm,psci-0.2, method hvc), arm,gic-v3 (#interrupt-cells 3, reg =
 * GICD then GICR), arm,armv8-timer (4 PPIs: secure, non-secure, virtual,
 * hypervisor), arm,pl011 + arm,primecell, chosen (bootargs, initrd); and
 * the board of arch_board.h: microsoft,vmgenid and amazon,vmclock as
 * Firecracker's aarch64 fdt.rs writes them (reg, edge-rising SPI), in
 * system memory that is guest RAM but not in the memory node, overlapping
 * nothing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <libfdt.h>

#include "arch_board.h"
#include "arch_fdt.h"
#include "dev.h"
#include "layout.h"

static uint8_t fdt[SQB_ARM64_FDT_MAX];

static void sink(void *o, const uint8_t *b, size_t n)
{
	(void)o, (void)b, (void)n;
}
static void pulse(struct sqb_irq *irq)
{
	(void)irq;
}

static struct sqb_irq line = {SQB_ARM64_UART_SPI, -1, pulse, NULL};
static const struct sqb_dev_host host = {NULL, NULL, sink};

static const void *prop(const char *path, const char *name, int *len)
{
	int off = fdt_path_offset(fdt, path);

	assert_true(off >= 0);
	return fdt_getprop(fdt, off, name, len);
}

/* properties are only 4-byte aligned: copy the cells out */
static uint32_t cell(const void *p, int i)
{
	fdt32_t v;

	memcpy(&v, (const uint8_t *)p + 4 * i, sizeof(v));
	return fdt32_to_cpu(v);
}

static uint64_t cell64(const void *p, int i)
{
	fdt64_t v;

	memcpy(&v, (const uint8_t *)p + 8 * i, sizeof(v));
	return fdt64_to_cpu(v);
}

static void build(unsigned int ncpus, struct sqb_bus *bus)
{
	struct sqb_arm64_fdt_in in = {.ram_base = SQB_ARM64_RAM_START,
				      .ram_size = 256ULL << 20,
				      .ncpus = ncpus,
				      .cmdline = "console=ttyAMA0 quiet",
				      .initrd_start = 0x8f000000,
				      .initrd_size = 0x1000,
				      .bus = bus};

	memset(fdt, 0, sizeof(fdt));
	assert_int_equal(sqb_arm64_fdt_build(&in, fdt, sizeof(fdt), NULL), 0);
	assert_int_equal(fdt_check_header(fdt), 0);
}

static void test_tree(void **state)
{
	struct sqb_bus bus = {0};
	struct sqb_dev_ctx ctx = {NULL, NULL, &line, &host};
	struct sqb_dev *uart;
	const void *p;
	int len;

	(void)state;
	assert_int_equal(sqb_dev_create(&uart, &sqb_dev_classes[SQB_DEVCLS_PL011], "uart0",
					SQB_ARM64_UART_BASE, &ctx, NULL),
			 0);
	assert_int_equal(sqb_bus_add(&bus, uart), 0);
	build(2, &bus);

	p = prop("/", "#address-cells", &len);
	assert_int_equal(cell(p, 0), 2);
	p = prop("/cpus/cpu@1", "reg", &len);
	assert_int_equal(len, 4);
	assert_int_equal(cell(p, 0), 1);
	assert_string_equal(prop("/cpus/cpu@0", "enable-method", &len), "psci");
	assert_string_equal(prop("/cpus/cpu@0", "device_type", &len), "cpu");

	p = prop("/memory@80000000", "reg", &len);
	assert_int_equal(len, 16);
	assert_int_equal(cell64(p, 0), 0x80000000ULL);
	assert_int_equal(cell64(p, 1), 256ULL << 20);

	assert_string_equal(prop("/psci", "compatible", &len), "arm,psci-0.2");
	assert_string_equal(prop("/psci", "method", &len), "hvc");

	assert_string_equal(prop("/intc@8000000", "compatible", &len), "arm,gic-v3");
	assert_non_null(prop("/intc@8000000", "interrupt-controller", &len));
	p = prop("/intc@8000000", "#interrupt-cells", &len);
	assert_int_equal(cell(p, 0), 3);
	p = prop("/intc@8000000", "reg", &len);
	assert_int_equal(len, 32);
	assert_int_equal(cell64(p, 0), 0x08000000);
	assert_int_equal(cell64(p, 2), 0x080a0000);
	assert_int_equal(cell64(p, 3), 2 * 0x20000); /* one 128 KiB frame pair per vCPU */

	/* timer: PPI 13, 14, 11, 10 (INTIDs 29, 30, 27, 26), level */
	p = prop("/timer", "interrupts", &len);
	assert_int_equal(len, 48);
	for (int i = 0; i < 4; i++)
		assert_int_equal(cell(p, 3 * i), 1);
	assert_int_equal(cell(p, 1), 13);
	assert_int_equal(cell(p, 4), 14);
	assert_int_equal(cell(p, 7), 11);
	assert_int_equal(cell(p, 10), 10);

	p = prop("/pl011@9000000", "compatible", &len);
	assert_int_equal(len, (int)sizeof("arm,pl011\0arm,primecell"));
	assert_string_equal(p, "arm,pl011");
	assert_string_equal((const char *)p + 10, "arm,primecell");
	p = prop("/pl011@9000000", "interrupts", &len);
	assert_int_equal(cell(p, 0), 0); /* SPI */
	assert_int_equal(cell(p, 1), 1);
	p = prop("/pl011@9000000", "reg", &len);
	assert_int_equal(cell64(p, 0), 0x09000000);
	assert_int_equal(cell64(p, 1), 0x1000);

	assert_string_equal(prop("/chosen", "bootargs", &len), "console=ttyAMA0 quiet");
	assert_string_equal(prop("/chosen", "stdout-path", &len), "/pl011@9000000");
	p = prop("/chosen", "linux,initrd-start", &len);
	assert_int_equal(len, 8);
	assert_int_equal(cell64(p, 0), 0x8f000000);
	p = prop("/chosen", "linux,initrd-end", &len);
	assert_int_equal(cell64(p, 0), 0x8f001000);
	sqb_bus_destroy(&bus);
}

struct range {
	const char *what;
	uint64_t base, len;
};

static int overlap(const struct range *a, const struct range *b)
{
	return a->base < b->base + b->len && b->base < a->base + a->len;
}

/* Each "reg" of the root's children (the GIC's two), into r[]. */
static int regs(struct range *r, int max)
{
	int n = 0, node;

	fdt_for_each_subnode(node, fdt, 0)
	{
		int len;
		const void *p = fdt_getprop(fdt, node, "reg", &len);

		if (!p || !strcmp(fdt_get_name(fdt, node, NULL), "cpus"))
			continue;
		assert_int_equal(len % 16, 0);
		for (int i = 0; i < len / 16; i++) {
			assert_true(n < max);
			r[n++] = (struct range){fdt_get_name(fdt, node, NULL), cell64(p, 2 * i),
						cell64(p, 2 * i + 1)};
		}
	}
	return n;
}

/* The board (arch_board.h's table, as arch_platform.c creates it) and the
 * memory node as the boot adapter gives it: the VMGenID and VMClock nodes
 * exactly as Firecracker's create_vmgenid_node / create_vmclock_node write
 * them, at Firecracker's system-memory addresses, in RAM the guest is not
 * given, on SPIs no other device has. */
static void test_vmgenid_vmclock(void **state)
{
	static struct sqb_irq lines[SQB_ARM64_BOARD_NDEVS];
	struct sqb_bus bus = {0};
	struct sqb_arm64_fdt_in in = {.ram_size = 0, .ncpus = 2, .cmdline = ""};
	const uint64_t ram = 256ULL << 20;
	struct range r[32], sys = {"system memory", SQB_ARM64_RAM_START, SQB_ARM64_SYSTEM_MEM_SIZE},
			    slots = {"virtio-mmio slots", SQB_ARCH_VIRTIO_MMIO_BASE,
				     SQB_ARCH_VIRTIO_MMIO_SLOTS * 0x1000ULL},
			    boot_timer = {"boot timer", SQB_ARCH_BOOT_TIMER_ADDR, 0x1000};
	const struct range *mem = NULL, *gen = NULL, *clk = NULL;
	const void *p;
	int len, n;

	(void)state;
	for (size_t i = 0; i < SQB_ARM64_BOARD_NDEVS; i++) {
		struct sqb_dev_ctx ctx = {NULL, NULL, &lines[i], &host};
		struct sqb_dev *d;

		lines[i] = (struct sqb_irq){sqb_arm64_board[i].spi, -1, pulse, NULL};
		assert_int_equal(sqb_dev_create(&d, &sqb_dev_classes[sqb_arm64_board[i].cls],
						sqb_arm64_board[i].id, sqb_arm64_board[i].base,
						&ctx, NULL),
				 0);
		assert_int_equal(sqb_bus_add(&bus, d), 0);
	}
	sqb_arm64_guest_ram(SQB_ARM64_RAM_START, ram, &in.ram_base, &in.ram_size);
	in.bus = &bus;
	memset(fdt, 0, sizeof(fdt));
	assert_int_equal(sqb_arm64_fdt_build(&in, fdt, sizeof(fdt), NULL), 0);

	/* Firecracker's facts: its system memory is [DRAM start, + 2 MiB),
	 * allocated from the top (LastMatch): the ID first, 8-byte aligned,
	 * then a 4 KiB-aligned page under it */
	assert_int_equal(SQB_ARM64_VMGENID_ADDR, 0x801ffff0ULL);
	assert_int_equal(SQB_ARM64_VMCLOCK_ADDR, 0x801fe000ULL);

	assert_string_equal(prop("/vmgenid", "compatible", &len), "microsoft,vmgenid");
	p = prop("/vmgenid", "reg", &len);
	assert_int_equal(len, 16);
	assert_int_equal(cell64(p, 0), SQB_ARM64_VMGENID_ADDR);
	assert_int_equal(cell64(p, 1), 16);
	p = prop("/vmgenid", "interrupts", &len);
	assert_int_equal(len, 12);
	assert_int_equal(cell(p, 0), 0); /* GIC_FDT_IRQ_TYPE_SPI */
	assert_int_equal(cell(p, 1), SQB_ARM64_VMGENID_SPI);
	assert_int_equal(cell(p, 2), 1); /* IRQ_TYPE_EDGE_RISING */

	assert_string_equal(prop("/ptp@801fe000", "compatible", &len), "amazon,vmclock");
	p = prop("/ptp@801fe000", "reg", &len);
	assert_int_equal(len, 16);
	assert_int_equal(cell64(p, 0), SQB_ARM64_VMCLOCK_ADDR);
	assert_int_equal(cell64(p, 1), 4096);
	p = prop("/ptp@801fe000", "interrupts", &len);
	assert_int_equal(len, 12);
	assert_int_equal(cell(p, 0), 0);
	assert_int_equal(cell(p, 1), SQB_ARM64_VMCLOCK_SPI);
	assert_int_equal(cell(p, 2), 1);

	/* lines: distinct, not the UART's, outside the slots' 2..23, within the
	 * vGIC's 64 SPIs */
	assert_int_not_equal(SQB_ARM64_VMGENID_SPI, SQB_ARM64_VMCLOCK_SPI);
	for (unsigned int spi = SQB_ARM64_VMGENID_SPI;; spi = SQB_ARM64_VMCLOCK_SPI) {
		assert_int_not_equal(spi, SQB_ARM64_UART_SPI);
		assert_true(spi < SQB_ARCH_GSI_FIRST || spi > SQB_ARCH_GSI_LAST);
		assert_true(spi < SQB_ARM64_GIC_NR_IRQS - SQB_ARM64_SPI_BASE);
		if (spi == SQB_ARM64_VMCLOCK_SPI)
			break;
	}

	/* the memory node starts above system memory; the ID and the page are
	 * inside the RAM region (backed, snapshotted) but not in the node */
	p = prop("/memory@80200000", "reg", &len);
	assert_int_equal(cell64(p, 0), SQB_ARM64_RAM_START + SQB_ARM64_SYSTEM_MEM_SIZE);
	assert_int_equal(cell64(p, 1), ram - SQB_ARM64_SYSTEM_MEM_SIZE);
	n = regs(r, 29);
	r[n++] = slots, r[n++] = boot_timer;
	for (int i = 0; i < n; i++) {
		if (!strncmp(r[i].what, "memory@", 7))
			mem = &r[i];
		else if (!strcmp(r[i].what, "vmgenid"))
			gen = &r[i];
		else if (!strncmp(r[i].what, "ptp@", 4))
			clk = &r[i];
	}
	assert_non_null(mem);
	assert_non_null(gen);
	assert_non_null(clk);
	assert_true(gen->base >= sys.base && gen->base + gen->len <= sys.base + sys.len);
	assert_true(clk->base >= sys.base && clk->base + clk->len <= sys.base + sys.len);
	assert_false(overlap(mem, &sys));
	for (int i = 0; i < n; i++)
		for (int j = i + 1; j < n; j++)
			if (overlap(&r[i], &r[j]))
				fail_msg("%s [0x%llx, +0x%llx) overlaps %s [0x%llx, +0x%llx)",
					 r[i].what, (unsigned long long)r[i].base,
					 (unsigned long long)r[i].len, r[j].what,
					 (unsigned long long)r[j].base,
					 (unsigned long long)r[j].len);
	sqb_bus_destroy(&bus);
}

/* Limits: no CPU, or a buffer too small for the tree, are refused. */
static void test_limits(void **state)
{
	struct sqb_arm64_fdt_in in = {
	    .ram_base = SQB_ARM64_RAM_START, .ram_size = 1 << 30, .ncpus = 0, .cmdline = ""};
	struct sqb_diag diag = {0};

	(void)state;
	assert_true(sqb_arm64_fdt_build(&in, fdt, sizeof(fdt), NULL) < 0);
	in.ncpus = 1;
	assert_int_equal(sqb_arm64_fdt_build(&in, fdt, 64, &diag), -SQB_ELIMIT);
	assert_non_null(strstr(diag.reason, "device tree"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_tree),
	    cmocka_unit_test(test_vmgenid_vmclock),
	    cmocka_unit_test(test_limits),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
