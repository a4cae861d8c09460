/* Snapshot test guest (tests/snapshot): self-verifying workloads that run
 * across a snapshot/kill/load cycle.
 *   mode=1 writer: rounds over mib= MiB at 4 MiB: every page gets the round
 *          number (words 0 and 511) and a fixed per-page pattern, then all
 *          pages are checked; a lost write shows as "WRITER BAD"; down=1
 *          writes the pages last to first (against a snapshot writer that
 *          reads first to last, see test_snapshot_background.c); stamp=1
 *          stamps each round with the TSC instead of its number and checks
 *          every page still holds the previous round's stamp before writing
 *          it ("WRITER STALE"), so memory from after a snapshot's pause
 *          instant shows after the load even though the run is replayed.  Serial
 *          input 'A'..'Z' writes marker set k once (4 pages at 20 MiB + 16 KiB
 *          * k); 'v' checks every marker written so far.
 *   mode=2 clock:  kvmclock (MSR_KVM_SYSTEM_TIME_NEW) and TSC read in a loop;
 *          prints "CLOCK ns=" every period= ns; "CLOCK BACKWARDS" if either
 *          ever decreases.
 *   mode=3 smp:    cpus= vCPUs each bump their own counter and print
 *          "cpu I hb N" every beat= iterations.
 *   mode=4 bench:  fill mib= MiB at 4 MiB ("FILLED"), then serve serial
 *          input: 'd' dirties the next dpages= pages ("DIRTIED"), 'p'
 *          answers "PONG" (first progress after a load). Between polls it
 *          spins in a delay loop; irq=1 sleeps in HLT instead and wakes on the
 *          UART's receive interrupt (IOAPIC pin 4), so the answer's latency is
 *          the VMM's and not where the loop happened to be (bench/
 *          snapshot_vs_qemu.py, the same guest for every VMM). */
#include "guest.h"

#define WR_BASE	   (4UL << 20)
#define MARK_BASE  (20UL << 20)
#define MARK_PAGES 4
#define TRAMP_BASE 0x8000
#define UART_VECTOR 0x41

static uint64_t page_pattern(uint64_t p)
{
	uint64_t z = p * 0x9e3779b97f4a7c15ULL + 0x1234;
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	return z ^ (z >> 31);
}

static void say(const char *a, uint64_t v, const char *b)
{
	print_lock();
	puts_serial(a);
	put_u64(v);
	puts_serial(b);
	print_unlock();
}

static volatile uint64_t marks_written; /* bit k: marker set k written */

static void marker(unsigned int k, int write)
{
	volatile uint64_t *m = (volatile uint64_t *)(MARK_BASE + (uint64_t)k * MARK_PAGES * 4096);

	for (unsigned int p = 0; p < MARK_PAGES; p++) {
		for (unsigned int w = 0; w < 512; w += 64) {
			uint64_t want = page_pattern(k * 1000 + p * 512 + w) | 1;
			if (write) {
				m[p * 512 + w] = want;
			} else if (m[p * 512 + w] != want) {
				say("MARK BAD set=", k, "\n");
				guest_reset();
			}
		}
	}
}

static void poll_serial(void)
{
	while (inb(0x3fd) & 1) {
		uint8_t ch = inb(0x3f8);
		if (ch >= 'A' && ch <= 'Z') {
			marker(ch - 'A', 1);
			marks_written |= 1ULL << (ch - 'A');
			say("MARK ", ch - 'A', " written\n");
		} else if (ch == 'v') {
			uint64_t n = 0;
			for (unsigned int k = 0; k < 26; k++)
				if (marks_written & (1ULL << k)) {
					marker(k, 0);
					n++;
				}
			say("MARKS OK n=", n, "\n");
		}
	}
}

static void writer(void)
{
	uint64_t pages = cmdline_u64("mib", 8) << 8, down = cmdline_u64("down", 0);
	uint64_t stamped = cmdline_u64("stamp", 0), prev = 0, cur;
	volatile uint64_t *b = (volatile uint64_t *)WR_BASE;

	for (uint64_t p = 0; p < pages; p++)
		b[p * 512 + 1 + p % 509] = page_pattern(p);
	puts_serial("WRITER start\n");
	for (uint64_t g = 1;; g++) {
		if (stamped) {
			uint32_t lo, hi;
			__asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
			cur = (((uint64_t)hi << 32) | lo) | 1; /* never 0 (fresh memory) */
		} else {
			cur = g;
		}
		for (uint64_t i = 0; i < pages; i++) {
			uint64_t p = down ? pages - 1 - i : i;
			if (stamped && b[p * 512] != prev) {
				say("WRITER STALE round=", g, "");
				say(" page=", p, "\n");
				guest_reset();
			}
			b[p * 512] = cur;
			b[p * 512 + 511] = cur ^ p;
		}
		prev = cur;
		for (uint64_t p = 0; p < pages; p++) {
			if (b[p * 512] != cur || b[p * 512 + 511] != (cur ^ p) ||
			    b[p * 512 + 1 + p % 509] != page_pattern(p)) {
				say("WRITER BAD round=", g, "");
				say(" page=", p, "\n");
				guest_reset();
			}
		}
		say("ROUND ", g, " OK\n");
		poll_serial();
	}
}

struct pvclock {
	uint32_t version, pad0;
	uint64_t tsc_timestamp, system_time;
	uint32_t mul;
	int8_t shift;
	uint8_t flags, pad[2];
} __attribute__((packed));

static struct pvclock pvc __attribute__((aligned(64)));

static inline uint64_t rdtsc(void)
{
	uint32_t lo, hi;
	__asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
	return ((uint64_t)hi << 32) | lo;
}

static inline void wrmsr(uint32_t msr, uint64_t v)
{
	__asm__ volatile("wrmsr" : : "c"(msr), "a"((uint32_t)v), "d"((uint32_t)(v >> 32)));
}

static uint64_t kvmclock_ns(uint64_t *tsc_out)
{
	uint32_t v;
	uint64_t ns, tsc;

	do {
		v = __atomic_load_n(&pvc.version, __ATOMIC_ACQUIRE);
		tsc = rdtsc();
		uint64_t d = tsc - pvc.tsc_timestamp;
		d = pvc.shift < 0 ? d >> -pvc.shift : d << pvc.shift;
		ns = pvc.system_time + (uint64_t)(((unsigned __int128)d * pvc.mul) >> 32);
	} while ((v & 1) || v != __atomic_load_n(&pvc.version, __ATOMIC_ACQUIRE));
	*tsc_out = tsc;
	return ns;
}

static void clock_mode(void)
{
	uint32_t a, b, c, d;
	uint64_t period = cmdline_u64("period", 20000000), last = 0, last_tsc = 0, shown = 0;

	__asm__ volatile("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(0x40000001u));
	if (!(a & (1u << 3))) {
		puts_serial("CLOCK none\n");
		guest_reset();
	}
	wrmsr(0x4b564d01, (uint64_t)(uintptr_t)&pvc | 1);
	puts_serial("CLOCK start\n");
	for (;;) {
		uint64_t tsc, ns = kvmclock_ns(&tsc);
		if (ns < last || tsc < last_tsc) {
			say("CLOCK BACKWARDS ns=", ns, "");
			say(" last=", last, "\n");
			guest_reset();
		}
		last = ns;
		last_tsc = tsc;
		if (ns - shown >= period) {
			say("CLOCK ns=", ns, "\n");
			shown = ns;
		}
	}
}

static volatile uint64_t beats[32];
static uint64_t beat_every;

static void smp_loop(uint32_t id)
{
	for (uint64_t i = 1;; i++) {
		beats[id]++;
		if (i % beat_every == 0) {
			print_lock();
			puts_serial("cpu ");
			put_u64(id);
			puts_serial(" hb ");
			put_u64(beats[id] / beat_every);
			puts_serial("\n");
			print_unlock();
		}
	}
}

extern char tramp_start[], tramp_end[];

void ap_main(void)
{
	smp_loop(lapic_read(0x20) >> 24);
}

static void smp_mode(void)
{
	beat_every = cmdline_u64("beat", 20000);
	memcpy((void *)TRAMP_BASE, tramp_start, (unsigned long)(tramp_end - tramp_start));
	puts_serial("SMPHB start\n");
	lapic_write(0xf0, 0x1ff);
	lapic_write(0x300, 0x000c4500); /* INIT, all excluding self */
	delay_loop(1000);
	lapic_write(0x300, 0x000c4600 | (TRAMP_BASE >> 12)); /* SIPI */
	delay_loop(200);
	lapic_write(0x300, 0x000c4600 | (TRAMP_BASE >> 12));
	smp_loop(0);
}

static void bench_mode(void)
{
	uint64_t pages = cmdline_u64("mib", 200) << 8, dpages = cmdline_u64("dpages", 2621);
	uint64_t cur = 0, gen = 1, irq = cmdline_u64("irq", 0);
	volatile uint64_t *b = (volatile uint64_t *)WR_BASE;

	for (uint64_t p = 0; p < pages; p++)
		b[p * 512] = page_pattern(p);
	if (irq) {
		idt_set(UART_VECTOR, eoi_isr); /* the loop below reads the byte */
		idt_load();
		irq_route_gsi(4, UART_VECTOR, 0);
		outb(0x3fc, 0x08); /* MCR.OUT2 */
		outb(0x3f9, 0x01); /* IER: received data only */
	}
	puts_serial("FILLED\n");
	for (;;) {
		while (inb(0x3fd) & 1) {
			uint8_t ch = inb(0x3f8);
			if (ch == 'd') {
				gen++;
				for (uint64_t i = 0; i < dpages; i++, cur = (cur + 7) % pages)
					b[cur * 512 + 1] = gen;
				puts_serial("DIRTIED\n");
			} else if (ch == 'p') {
				puts_serial("PONG\n");
			}
		}
		if (!irq) {
			delay_loop(2000);
			continue;
		}
		__asm__ volatile("cli");
		if (inb(0x3fd) & 1)
			__asm__ volatile("sti");
		else
			__asm__ volatile("sti; hlt"); /* the interrupt shadow: no lost wake-up */
	}
}

void guest_main(uint32_t start_info)
{
	cmdline_init(start_info);
	switch (cmdline_u64("mode", 1)) {
	case 2:
		clock_mode();
		break;
	case 3:
		smp_mode();
		break;
	case 4:
		bench_mode();
		break;
	default:
		writer();
	}
	guest_reset();
}
