/* Shared helpers for squib's freestanding test guests: port I/O, serial
 * output on the 16550 at 0x3f8, command-line parsing from hvm_start_info,
 * LAPIC access, reset through the i8042. */
#ifndef SQB_GUEST_H
#define SQB_GUEST_H

#include <stdint.h>

#define LAPIC_BASE 0xfee00000UL

static inline void outb(uint16_t port, uint8_t v)
{
	__asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port));
}

static inline uint8_t inb(uint16_t port)
{
	uint8_t v;
	__asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port));
	return v;
}

static inline uint32_t lapic_read(uint32_t reg)
{
	return *(volatile uint32_t *)(LAPIC_BASE + reg);
}

static inline void lapic_write(uint32_t reg, uint32_t v)
{
	*(volatile uint32_t *)(LAPIC_BASE + reg) = v;
}

static inline void cpu_relax(void)
{
	__asm__ volatile("pause" ::: "memory");
}

void guest_main(uint32_t start_info);
void ap_main(void);

void putc_serial(char c);
void puts_serial(const char *s);
void put_u64(uint64_t v);
void put_hex(uint64_t v);
void print_lock(void);
void print_unlock(void);
/* Read "name=<u64>" from the command line, or return def. */
uint64_t cmdline_u64(const char *name, uint64_t def);
void cmdline_init(uint32_t start_info);
void guest_reset(void) __attribute__((noreturn));
void delay_loop(uint64_t n);
void *memset(void *d, int c, unsigned long n);
void *memcpy(void *d, const void *s, unsigned long n);

/* Little-endian reads of firmware tables and device pages. */
static inline uint32_t rd32(const volatile uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline uint64_t rd64(const volatile uint8_t *p)
{
	return rd32(p) | (uint64_t)rd32(p + 4) << 32;
}

/* The first m bytes of s inside p[0..n), or 0. */
const uint8_t *mem_find(const uint8_t *p, uint32_t n, const char *s, uint32_t m);
/* The DSDT as an OS finds it: RSDP at 0xe0000 -> XSDT -> FADT; *len its size. */
const uint8_t *acpi_dsdt(uint32_t *len);

/* Interrupts: one IDT for the guest; vectors get an interrupt gate. */
void idt_set(unsigned int vec, void (*isr)(void));
void idt_load(void);
/* Stubs for idt_set: count_isr adds one to irq_count and EOIs; eoi_isr only
 * EOIs (a periodic LAPIC timer that wakes HLT). */
void count_isr(void);
void eoi_isr(void);
extern volatile uint64_t irq_count;
/* PICs masked, LAPIC enabled, IOAPIC pin gsi -> vector on APIC 0 (fixed,
 * edge, active high, unmasked), and a periodic LAPIC timer on timer_vec
 * every ~10 ms so HLT wakes (timer_vec 0: no timer). */
void irq_route_gsi(uint32_t gsi, unsigned int vector, unsigned int timer_vec);

#endif
