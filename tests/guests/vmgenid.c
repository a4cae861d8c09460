/* vmgenid guest: finds the VM Generation ID as an OS does (Microsoft's
 * VMGenID spec: RSDP at 0xe0000 -> XSDT -> FADT -> DSDT, Device VGEN's ADDR
 * package) and the GED's interrupt (its _CRS Extended Interrupt), routes
 * that IOAPIC pin to a vector, and prints "GENID <hi> <lo> irqs=<n>"
 * whenever the ID or the count of notifications changes. */
#include "guest.h"

#define GED_VECTOR   0x42
#define TIMER_VECTOR 0x40

/* An AML integer (ACPI 6.4 20.2.3): Zero, One, Byte, Word, DWord, QWord. */
static uint64_t aml_int(const uint8_t **pp)
{
	const uint8_t *p = *pp;
	uint64_t v = 0;
	int n = 0;

	switch (*p++) {
	case 0x01:
		v = 1;
		break;
	case 0x0a:
		n = 1;
		break;
	case 0x0b:
		n = 2;
		break;
	case 0x0c:
		n = 4;
		break;
	case 0x0e:
		n = 8;
		break;
	default:
		break;
	}
	for (int i = 0; i < n; i++)
		v |= (uint64_t)p[i] << (8 * i);
	*pp = p + n;
	return v;
}

void guest_main(uint32_t start_info)
{
	const uint8_t *dsdt, *p, *ged;
	uint64_t addr, lo = 0, hi = 0, seen = ~0ULL;
	static const char addr_name[6] = {0x08, 'A', 'D', 'D', 'R', 0x12}; /* NameOp .. PackageOp */
	uint32_t len, gsi;

	cmdline_init(start_info);
	dsdt = acpi_dsdt(&len);
	p = mem_find(dsdt, len, addr_name, sizeof(addr_name));
	ged = mem_find(dsdt, len, "ACPI0013", 8);
	if (!mem_find(dsdt, len, "VMGENCTR", 8) || !p || !ged ||
	    !(ged = mem_find(ged, len - (uint32_t)(ged - dsdt), "\x89\x06\x00", 3))) {
		puts_serial("VMGENID none\n");
		guest_reset();
	}
	p += 6;
	p += (*p >> 6) + 1; /* PkgLength */
	p++;		    /* NumElements (2) */
	addr = aml_int(&p);
	addr |= aml_int(&p) << 32;
	gsi = rd32(ged + 5);
	puts_serial("VMGENID addr=");
	put_hex(addr);
	puts_serial(" gsi=");
	put_u64(gsi);
	puts_serial("\n");

	idt_set(GED_VECTOR, count_isr); /* irq_count: its notifications */
	idt_set(TIMER_VECTOR, eoi_isr);
	idt_load();
	irq_route_gsi(gsi, GED_VECTOR, TIMER_VECTOR);
	for (;;) {
		uint64_t nlo = *(volatile uint64_t *)(uintptr_t)addr;
		uint64_t nhi = *(volatile uint64_t *)(uintptr_t)(addr + 8);
		uint64_t n = irq_count;

		if (nlo != lo || nhi != hi || n != seen) {
			lo = nlo, hi = nhi, seen = n;
			puts_serial("GENID ");
			put_hex(hi);
			puts_serial(" ");
			put_hex(lo);
			puts_serial(" irqs=");
			put_u64(n);
			puts_serial("\n");
		}
		__asm__ volatile("sti; hlt; cli");
	}
}
