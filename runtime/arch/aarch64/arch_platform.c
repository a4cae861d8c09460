/* The arm64 board (arch.h): its one fixed device, the PL011 UART at
 * 0x0900_0000 on SPI 1 (layout.h).  The GICv3 and the timers are the
 * hypervisor's (kvm/aarch64/), PSCI too; virtio-mmio slots come from the
 * VM's configuration. */
#include "arch.h"
#include "log.h"
#include "vmm_priv.h"

int sqb_arch_add_platform_devices(struct sqb_vm *vm)
{
	struct sqb_dev_ctx ctx = {&vm->mem, vm->loop, NULL, &vm->dev_host};
	struct sqb_dev *d;
	int err;

	FORWARD_IF_ERROR(sqb_vm_irq_get(vm, SQB_ARM64_UART_SPI, &ctx.irq));
	FORWARD_IF_ERROR(sqb_dev_create(&d, &sqb_dev_classes[SQB_DEVCLS_PL011], "uart0",
					SQB_ARM64_UART_BASE, &ctx, NULL));
	err = sqb_bus_add(&vm->bus, d);
	if (err < 0)
		sqb_dev_free(d);
	/* vm->uart stays NULL: it names the 16550 the API feeds input to */
	return err;
}
