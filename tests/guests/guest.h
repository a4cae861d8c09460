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

#endif
