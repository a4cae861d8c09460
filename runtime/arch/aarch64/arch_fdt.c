/* The arm64 platform description: a flattened device tree built with
 * libfdt (devicetree spec v0.4 and the Linux bindings arm/cpus, psci,
 * arm,gic-v3, arm,armv8-timer, arm,pl011, virtio,mmio, rng/microsoft,vmgenid,
 * ptp/amazon,vmclock): CPUs with their MPIDR, memory, chosen (bootargs,
 * initrd), GICv3, timer, PSCI 0.2 over HVC, and every device on the bus
 * through its describe op. */
#include <errno.h>
#include <libfdt.h>
#include <stdio.h>
#include <string.h>

#include "arch_fdt.h"
#include "dev.h"
#include "layout.h"

#define PHANDLE_GIC 1
#define PHANDLE_CLK 2

/* GIC interrupt specifier: type (0 SPI, 1 PPI), number, flags. */
#define GIC_SPI	       0
#define GIC_PPI	       1
#define IRQ_EDGE_RISE  1
#define IRQ_LEVEL_HIGH 4

static int prop_u64x2(void *fdt, const char *name, uint64_t a, uint64_t b)
{
	fdt64_t v[2] = {cpu_to_fdt64(a), cpu_to_fdt64(b)};

	return fdt_property(fdt, name, v, sizeof(v));
}

static int prop_irq(void *fdt, uint32_t type, uint32_t num, uint32_t flags)
{
	fdt32_t v[3] = {cpu_to_fdt32(type), cpu_to_fdt32(num), cpu_to_fdt32(flags)};

	return fdt_property(fdt, "interrupts", v, sizeof(v));
}

static int fdt_cpus(void *fdt, unsigned int ncpus)
{
	int err = fdt_begin_node(fdt, "cpus");

	err = err ?: fdt_property_u32(fdt, "#address-cells", 1);
	err = err ?: fdt_property_u32(fdt, "#size-cells", 0);
	for (unsigned int i = 0; i < ncpus && !err; i++) {
		char name[24];
		uint32_t mpidr = (uint32_t)sqb_arm64_mpidr(i);

		snprintf(name, sizeof(name), "cpu@%x", mpidr);
		err = fdt_begin_node(fdt, name);
		err = err ?: fdt_property_string(fdt, "device_type", "cpu");
		err = err ?: fdt_property_string(fdt, "compatible", "arm,arm-v8");
		err = err ?: fdt_property_string(fdt, "enable-method", "psci");
		err = err ?: fdt_property_u32(fdt, "reg", mpidr);
		err = err ?: fdt_end_node(fdt);
	}
	return err ?: fdt_end_node(fdt);
}

static int fdt_gic_timer_psci(void *fdt, unsigned int ncpus)
{
	static const char psci_compat[] = "arm,psci-0.2";
	char name[32];
	fdt64_t gic_reg[4] = {cpu_to_fdt64(SQB_ARM64_GICD_BASE), cpu_to_fdt64(SQB_ARM64_GICD_SIZE),
			      cpu_to_fdt64(SQB_ARM64_GICR_BASE),
			      cpu_to_fdt64(SQB_ARM64_GICR_STRIDE * ncpus)};
	/* secure phys, non-secure phys, virtual, hypervisor: level, per CPU */
	fdt32_t timer[12] = {cpu_to_fdt32(GIC_PPI),
			     cpu_to_fdt32(SQB_ARM64_PPI_TIMER_SEC),
			     cpu_to_fdt32(IRQ_LEVEL_HIGH),
			     cpu_to_fdt32(GIC_PPI),
			     cpu_to_fdt32(SQB_ARM64_PPI_TIMER_PHYS),
			     cpu_to_fdt32(IRQ_LEVEL_HIGH),
			     cpu_to_fdt32(GIC_PPI),
			     cpu_to_fdt32(SQB_ARM64_PPI_TIMER_VIRT),
			     cpu_to_fdt32(IRQ_LEVEL_HIGH),
			     cpu_to_fdt32(GIC_PPI),
			     cpu_to_fdt32(SQB_ARM64_PPI_TIMER_HYP),
			     cpu_to_fdt32(IRQ_LEVEL_HIGH)};
	int err;

	snprintf(name, sizeof(name), "intc@%llx", (unsigned long long)SQB_ARM64_GICD_BASE);
	err = fdt_begin_node(fdt, name);
	err = err ?: fdt_property_string(fdt, "compatible", "arm,gic-v3");
	err = err ?: fdt_property_u32(fdt, "#interrupt-cells", 3);
	err = err ?: fdt_property(fdt, "interrupt-controller", NULL, 0);
	err = err ?: fdt_property(fdt, "reg", gic_reg, sizeof(gic_reg));
	err = err ?: fdt_property_u32(fdt, "phandle", PHANDLE_GIC);
	err = err ?: fdt_end_node(fdt);

	err = err ?: fdt_begin_node(fdt, "timer");
	err = err ?: fdt_property_string(fdt, "compatible", "arm,armv8-timer");
	err = err ?: fdt_property(fdt, "always-on", NULL, 0);
	err = err ?: fdt_property(fdt, "interrupts", timer, sizeof(timer));
	err = err ?: fdt_end_node(fdt);

	/* PSCI is KVM's (kvm/aarch64/kvm_arm64.c says why), reached by HVC. */
	err = err ?: fdt_begin_node(fdt, "psci");
	err = err ?: fdt_property(fdt, "compatible", psci_compat, sizeof(psci_compat));
	err = err ?: fdt_property_string(fdt, "method", "hvc");
	err = err ?: fdt_end_node(fdt);

	/* The PL011's clocks (the binding wants uartclk and apb_pclk). */
	err = err ?: fdt_begin_node(fdt, "apb-pclk");
	err = err ?: fdt_property_string(fdt, "compatible", "fixed-clock");
	err = err ?: fdt_property_u32(fdt, "#clock-cells", 0);
	err = err ?: fdt_property_u32(fdt, "clock-frequency", 24000000);
	err = err ?: fdt_property_string(fdt, "clock-output-names", "clk24mhz");
	err = err ?: fdt_property_u32(fdt, "phandle", PHANDLE_CLK);
	return err ?: fdt_end_node(fdt);
}

/* The VM Generation ID and VMClock, as Firecracker's fdt.rs writes them:
 * a node with the binding's compatible, reg = the ID (16 bytes) or the page
 * in system memory, and the notification SPI, edge-rising.  Firecracker
 * names the VMClock node ptp@ADDR with the address in decimal; here it is
 * hex, as the devicetree spec wants a unit address (Linux binds by
 * compatible, not by name). */
static int fdt_sysmem_dev(void *fdt, const struct sqb_dev_describe *dd)
{
	char name[32];
	int err;

	if (dd->kind == SQB_DESC_VMGENID)
		snprintf(name, sizeof(name), "vmgenid");
	else
		snprintf(name, sizeof(name), "ptp@%llx", (unsigned long long)dd->base);
	err = fdt_begin_node(fdt, name);
	err = err
		  ?: fdt_property_string(fdt, "compatible",
					 dd->kind == SQB_DESC_VMGENID ? "microsoft,vmgenid"
								      : "amazon,vmclock");
	err = err ?: prop_u64x2(fdt, "reg", dd->base, dd->len);
	err = err ?: prop_irq(fdt, GIC_SPI, dd->gsi, IRQ_EDGE_RISE);
	return err ?: fdt_end_node(fdt);
}

/* One bus device: the PL011, a virtio-mmio slot, the VMGenID or VMClock
 * (others are skipped). */
static int fdt_dev(void *fdt, const struct sqb_dev_describe *dd, const char **stdout_path,
		   char *path, size_t pathlen)
{
	static const char pl011_compat[] = "arm,pl011\0arm,primecell";
	static const char clk_names[] = "uartclk\0apb_pclk";
	fdt32_t clocks[2] = {cpu_to_fdt32(PHANDLE_CLK), cpu_to_fdt32(PHANDLE_CLK)};
	int pl011 = dd->hid && !strcmp(dd->hid, "arm,pl011");
	int err;

	if (dd->space != SQB_BUS_MMIO || dd->irq_kind != SQB_DESC_IRQ_GSI)
		return 0;
	if (dd->kind == SQB_DESC_VMGENID || dd->kind == SQB_DESC_VMCLOCK)
		return fdt_sysmem_dev(fdt, dd);
	if (!pl011 && !(dd->hid && !strcmp(dd->hid, "LNRO0005")))
		return 0;
	snprintf(path, pathlen, "%s@%llx", pl011 ? "pl011" : "virtio_mmio",
		 (unsigned long long)dd->base);
	err = fdt_begin_node(fdt, path);
	if (pl011) {
		err = err ?: fdt_property(fdt, "compatible", pl011_compat, sizeof(pl011_compat));
		err = err ?: fdt_property(fdt, "clocks", clocks, sizeof(clocks));
		err = err ?: fdt_property(fdt, "clock-names", clk_names, sizeof(clk_names));
		*stdout_path = path;
	} else {
		err = err ?: fdt_property_string(fdt, "compatible", "virtio,mmio");
		err = err ?: fdt_property(fdt, "dma-coherent", NULL, 0);
	}
	err = err ?: prop_u64x2(fdt, "reg", dd->base, dd->len);
	/* edge: squib's lines pulse (dev.h struct sqb_irq) */
	err = err ?: prop_irq(fdt, GIC_SPI, dd->gsi, IRQ_EDGE_RISE);
	return err ?: fdt_end_node(fdt);
}

static int fdt_body(void *fdt, const struct sqb_arm64_fdt_in *in)
{
	char mem[32], uart[64] = "", slot[48];
	const char *stdout_path = NULL;
	int err;

	err = fdt_begin_node(fdt, "");
	err = err ?: fdt_property_string(fdt, "compatible", "linux,dummy-virt");
	err = err ?: fdt_property_string(fdt, "model", "squib arm64 microVM");
	err = err ?: fdt_property_u32(fdt, "#address-cells", 2);
	err = err ?: fdt_property_u32(fdt, "#size-cells", 2);
	err = err ?: fdt_property_u32(fdt, "interrupt-parent", PHANDLE_GIC);
	err = err ?: fdt_cpus(fdt, in->ncpus);
	snprintf(mem, sizeof(mem), "memory@%llx", (unsigned long long)in->ram_base);
	err = err ?: fdt_begin_node(fdt, mem);
	err = err ?: fdt_property_string(fdt, "device_type", "memory");
	err = err ?: prop_u64x2(fdt, "reg", in->ram_base, in->ram_size);
	err = err ?: fdt_end_node(fdt);
	err = err ?: fdt_gic_timer_psci(fdt, in->ncpus);
	for (unsigned int i = 0; in->bus && i < in->bus->ndevs && !err; i++) {
		struct sqb_dev *d = in->bus->devs[i];
		struct sqb_dev_describe dd;
		const char *sp = NULL;

		if (!d->cls->ops->describe || d->cls->ops->describe(d, &dd) < 0)
			continue;
		err = fdt_dev(fdt, &dd, &sp, slot, sizeof(slot));
		if (sp && !stdout_path) {
			snprintf(uart, sizeof(uart), "/%s", slot);
			stdout_path = uart;
		}
	}
	err = err ?: fdt_begin_node(fdt, "chosen");
	err = err ?: fdt_property_string(fdt, "bootargs", in->cmdline);
	if (stdout_path)
		err = err ?: fdt_property_string(fdt, "stdout-path", stdout_path);
	if (in->initrd_size) {
		err = err ?: fdt_property_u64(fdt, "linux,initrd-start", in->initrd_start);
		err = err
			  ?: fdt_property_u64(fdt, "linux,initrd-end",
					      in->initrd_start + in->initrd_size);
	}
	err = err ?: fdt_end_node(fdt);
	return err ?: fdt_end_node(fdt);
}

int sqb_arm64_fdt_build(const struct sqb_arm64_fdt_in *in, void *buf, size_t cap,
			struct sqb_diag *diag)
{
	int err;

	if (!in->ncpus || in->ncpus > 256 || cap > INT32_MAX)
		return -EINVAL;
	err = fdt_create(buf, (int)cap);
	err = err ?: fdt_finish_reservemap(buf);
	err = err ?: fdt_body(buf, in);
	err = err ?: fdt_finish(buf);
	if (err) {
		if (diag) {
			diag->offset = UINT64_MAX;
			snprintf(diag->section, sizeof(diag->section), "fdt");
			snprintf(diag->reason, sizeof(diag->reason), "device tree: %s",
				 fdt_strerror(err));
		}
		return err == -FDT_ERR_NOSPACE ? -SQB_ELIMIT : -EINVAL;
	}
	return 0;
}
