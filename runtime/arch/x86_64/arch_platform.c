/* The x86_64 microVM board (arch.h): the fixed ISA devices every squib VM
 * has — COM1 16550 at 0x3f8 (IRQ 4), the i8042 at 0x60/0x64 (IRQ 1, the
 * reset line), the POST-code port 0x80, the VM Generation ID (its ID at
 * 0xff000, its notification on pin 23) and VMClock (its page at 0xfe000,
 * pin 22) — in the order the DEVS sections and
 * the DSDT list them. */
#include "arch.h"
#include "log.h"
#include "vmm_priv.h"

int sqb_arch_add_platform_devices(struct sqb_vm *vm)
{
	static const struct {
		enum sqb_dev_class_id cls;
		const char *id;
		uint64_t base;
		unsigned int gsi; /* 0: none */
	} board[] = {
	    {SQB_DEVCLS_UART, "uart0", SQB_X86_UART_PORT, SQB_X86_UART_IRQ},
	    {SQB_DEVCLS_I8042, "i8042", SQB_X86_I8042_PORT, SQB_X86_I8042_IRQ},
	    {SQB_DEVCLS_POSTCODE, "postcode", SQB_X86_POST_PORT, 0},
	    {SQB_DEVCLS_VMGENID, "vmgenid", SQB_X86_VMGENID_ADDR, SQB_X86_VMGENID_GSI},
	    {SQB_DEVCLS_VMCLOCK, "vmclock", SQB_X86_VMCLOCK_ADDR, SQB_X86_VMCLOCK_GSI},
	};

	for (size_t i = 0; i < sizeof(board) / sizeof(board[0]); i++) {
		struct sqb_dev_ctx ctx = {&vm->mem, vm->loop, NULL, &vm->dev_host};
		struct sqb_dev *d;
		int err;

		if (board[i].gsi)
			FORWARD_IF_ERROR(sqb_vm_irq_get(vm, board[i].gsi, &ctx.irq));
		FORWARD_IF_ERROR(sqb_dev_create(&d, &sqb_dev_classes[board[i].cls], board[i].id,
						board[i].base, &ctx, NULL));
		err = sqb_bus_add(&vm->bus, d);
		if (err < 0) {
			sqb_dev_free(d);
			return err;
		}
		if (board[i].cls == SQB_DEVCLS_UART)
			vm->uart = d;
		else if (board[i].cls == SQB_DEVCLS_I8042)
			vm->i8042 = d;
	}
	return 0;
}
