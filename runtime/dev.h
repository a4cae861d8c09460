/* Devices and the port bus (private to runtime/).
 *
 *   vCPU exit (space, addr, size, data) ──> sqb_bus_access() ──> devices[]
 *   table (const,
 *   ordered) ──> dev ops: io / save / restore, state in a plain struct.
 *
 * Devices never see the hypervisor: they raise interrupts and ask for a
 * reset through struct sqb_dev_host callbacks the VMM provides.  Each
 * device's state is a fixed struct with a version, so a snapshot section
 * can encode it field by field (issue 7).
 */
#ifndef SQB_RUNTIME_DEV_H
#define SQB_RUNTIME_DEV_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

struct sqb_dev_host {
	void *opaque;
	void (*irq_pulse)(void *opaque, unsigned int irq);
	void (*request_reset)(void *opaque);
	void (*serial_out)(void *opaque, const uint8_t *buf, size_t len);
};

/* ---- 16550 UART ---- */
#define SQB_UART_FIFO	       64
#define SQB_UART_STATE_VERSION 1
struct sqb_uart_state {
	uint8_t ier, iir, lcr, mcr, lsr, msr, scr, dll, dlm;
	uint8_t thr_irq_pending;
	uint8_t rx_len;
	uint8_t rx[SQB_UART_FIFO];
};

struct sqb_uart {
	pthread_mutex_t lock;
	struct sqb_uart_state st;
	const struct sqb_dev_host *host;
	unsigned int irq;
};

/* ---- i8042 (keyboard controller: reset line, Ctrl+Alt+Del) ---- */
#define SQB_I8042_BUF		16
#define SQB_I8042_STATE_VERSION 1
struct sqb_i8042_state {
	uint8_t status, cmd, ctr, outp;
	uint8_t buf_len;
	uint8_t buf[SQB_I8042_BUF];
};

struct sqb_i8042 {
	pthread_mutex_t lock;
	struct sqb_i8042_state st;
	const struct sqb_dev_host *host;
};

/* All devices of one VM, owned by the VM. */
struct sqb_devices {
	struct sqb_uart uart;
	struct sqb_i8042 i8042;
};

/* Address spaces a device can sit in. */
enum sqb_bus_space { SQB_BUS_PIO = 0, SQB_BUS_MMIO = 1 };

struct sqb_dev_desc {
	const char *name;
	enum sqb_bus_space space;
	uint64_t base, len; /* port or guest-physical range */
	size_t state_size;
	unsigned int state_version;
	/* data is size bytes; reads fill it. */
	void (*io)(struct sqb_devices *d, uint64_t off, uint8_t *data, unsigned int size,
		   int is_write);
	void (*save)(struct sqb_devices *d, void *state);
	int (*restore)(struct sqb_devices *d, const void *state);
};

extern const struct sqb_dev_desc sqb_devices_table[];
extern const unsigned int sqb_devices_count;

void sqb_devices_init(struct sqb_devices *d, const struct sqb_dev_host *host);
void sqb_devices_destroy(struct sqb_devices *d);
/* Dispatch one port or MMIO access; unclaimed reads return all-ones,
 * unclaimed writes are dropped.  Returns 1 if a device claimed it, else 0. */
int sqb_bus_access(struct sqb_devices *d, enum sqb_bus_space space, uint64_t addr, uint8_t *data,
		   unsigned int size, int is_write);

void sqb_uart_io(struct sqb_devices *d, uint64_t off, uint8_t *data, unsigned int size,
		 int is_write);
void sqb_uart_save(struct sqb_devices *d, void *state);
int sqb_uart_restore(struct sqb_devices *d, const void *state);
size_t sqb_uart_input(struct sqb_uart *u, const uint8_t *buf, size_t len);

void sqb_i8042_io(struct sqb_devices *d, uint64_t off, uint8_t *data, unsigned int size,
		  int is_write);
void sqb_i8042_save(struct sqb_devices *d, void *state);
int sqb_i8042_restore(struct sqb_devices *d, const void *state);
int sqb_i8042_ctrl_alt_del(struct sqb_i8042 *k);

#endif
