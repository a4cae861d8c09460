/* The arm64 board (arch.h): its fixed devices (arch_board.h): the PL011
 * UART at 0x0900_0000 on SPI 1, the VM Generation ID (its ID at
 * 0x801f_fff0, SPI 24) and VMClock (its page at 0x801f_e000, SPI 25), both
 * in system memory (layout.h).  The GICv3 and the timers are the
 * hypervisor's (kvm/aarch64/), PSCI too; virtio-mmio slots come from the
 * VM's configuration. */
#include "arch.h"
#include "arch_board.h"
#include "log.h"
#include "vmm_priv.h"

int sqb_arch_add_platform_devices(struct sqb_vm *vm)
{
	for (size_t i = 0; i < SQB_ARM64_BOARD_NDEVS; i++) {
		const struct sqb_arm64_board_dev *b = &sqb_arm64_board[i];
		struct sqb_dev_ctx ctx = {&vm->mem, vm->loop, NULL, &vm->dev_host};
		struct sqb_dev *d;
		int err;

		FORWARD_IF_ERROR(sqb_vm_irq_get(vm, b->spi, &ctx.irq));
		FORWARD_IF_ERROR(
		    sqb_dev_create(&d, &sqb_dev_classes[b->cls], b->id, b->base, &ctx, NULL));
		err = sqb_bus_add(&vm->bus, d);
		if (err < 0) {
			sqb_dev_free(d);
			return err;
		}
	}
	/* vm->uart stays NULL: it names the 16550 the API feeds input to */
	return 0;
}
