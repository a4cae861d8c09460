/* Freestanding runtime for the test guests: serial printing (no LSR polling
 * — each port access is a VM exit, and squib's UART is always ready), the
 * command line copied out of hvm_start_info, and reset via the i8042. */
#include "guest.h"

#define COM1		 0x3f8
#define START_INFO_MAGIC 0x336ec578

static char cmdline[512];
static volatile int print_lock_word;

void *memset(void *d, int c, unsigned long n)
{
	unsigned char *p = d;
	while (n--)
		*p++ = (unsigned char)c;
	return d;
}

void *memcpy(void *d, const void *s, unsigned long n)
{
	unsigned char *p = d;
	const unsigned char *q = s;
	while (n--)
		*p++ = *q++;
	return d;
}

void putc_serial(char c)
{
	outb(COM1, (uint8_t)c);
}

void puts_serial(const char *s)
{
	while (*s)
		putc_serial(*s++);
}

void put_u64(uint64_t v)
{
	char b[21];
	int i = 20;

	b[i] = 0;
	do {
		b[--i] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	puts_serial(b + i);
}

void put_hex(uint64_t v)
{
	static const char d[] = "0123456789abcdef";
	puts_serial("0x");
	for (int i = 60; i >= 0; i -= 4)
		putc_serial(d[(v >> i) & 15]);
}

void print_lock(void)
{
	while (__atomic_exchange_n(&print_lock_word, 1, __ATOMIC_ACQUIRE))
		cpu_relax();
}

void print_unlock(void)
{
	__atomic_store_n(&print_lock_word, 0, __ATOMIC_RELEASE);
}

void cmdline_init(uint32_t start_info)
{
	const uint32_t *si = (const uint32_t *)(uintptr_t)start_info;
	const char *src;
	unsigned int i = 0;

	if (!start_info || si[0] != START_INFO_MAGIC)
		return;
	src = (const char *)(uintptr_t)si[6]; /* cmdline_paddr (u64 at offset 24), low half */
	if (!src)
		return;
	while (src[i] && i < sizeof(cmdline) - 1) {
		cmdline[i] = src[i];
		i++;
	}
	cmdline[i] = 0;
}

uint64_t cmdline_u64(const char *name, uint64_t def)
{
	const char *p = cmdline;

	while (*p) {
		const char *n = name, *q = p;
		while (*n && *q == *n) {
			n++;
			q++;
		}
		if (!*n && *q == '=' && (p == cmdline || p[-1] == ' ')) {
			uint64_t v = 0;
			q++;
			if (*q < '0' || *q > '9')
				return def;
			while (*q >= '0' && *q <= '9')
				v = v * 10 + (uint64_t)(*q++ - '0');
			return v;
		}
		p++;
	}
	return def;
}

void delay_loop(uint64_t n)
{
	for (volatile uint64_t i = 0; i < n; i++)
		;
}

void guest_reset(void)
{
	outb(0x64, 0xfe);
	for (;;)
		__asm__ volatile("cli; hlt");
}

/* Guests without secondary vCPUs never get here. */
__attribute__((weak)) void ap_main(void)
{
}
