/* Threading of runtime/virtio as the VMM uses it: a "vCPU" thread drives the
 * queue and the registers, an "event loop" thread notifies, an "API" thread
 * saves state while requests flow.  Every saved state must restore ([F-101]:
 * never a request in flight) and every request must complete.  The Async
 * blk engine runs it too: the loop thread also reaps completions, and as in
 * runtime/dev_virtio.c a gate keeps the loop from starting requests between
 * the API thread's quiesce (which drains the ring) and its save. */
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "vio_test_util.h"

#define REQS 1000 /* three spinning threads on two cores: keep the wall time in bounds */

struct shared {
	struct vt_env e;
	struct vt_drv d;
	sqb_vio_dev *dev, *twin;
	int fd;
	volatile int stop;
	int saves, bad_saves;
	bool async;
	pthread_mutex_t gate; /* the glue's lock + quiesced flag, for Async */
};

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void *event_loop(void *arg)
{
	struct shared *s = arg;

	while (!__atomic_load_n(&s->stop, __ATOMIC_ACQUIRE)) {
		if (s->async)
			pthread_mutex_lock(&s->gate);
		sqb_vio_queue_notify(s->dev, 0);
		if (s->async) {
			sqb_vio_blk_io_ready(s->dev);
			pthread_mutex_unlock(&s->gate);
		}
		sched_yield(); /* a notifier, not a lock holder (ThreadSanitizer) */
	}
	return NULL;
}

static void *api(void *arg)
{
	struct shared *s = arg;

	while (!__atomic_load_n(&s->stop, __ATOMIC_ACQUIRE)) {
		uint8_t *buf;
		size_t len;
		struct sqb_diag dg;
		int rc;

		if (s->async)
			pthread_mutex_lock(&s->gate);
		sqb_vio_quiesce(s->dev);
		rc = sqb_vio_dev_save(s->dev, &buf, &len);
		if (s->async)
			pthread_mutex_unlock(&s->gate);
		if (rc) {
			s->bad_saves++;
			continue;
		}
		if (sqb_vio_dev_restore(s->twin, SQB_VIO_STATE_VERSION, buf, len, &dg)) {
			print_message("saved state refused: %s\n", dg.reason);
			s->bad_saves++;
		}
		s->saves++;
		free(buf);
		sched_yield();
	}
	return NULL;
}

static void concurrent_notify_mmio_save(enum sqb_vio_engine engine)
{
	struct shared *s = calloc(1, sizeof(*s));
	struct sqb_vio_blk_opts o = SQB_VIO_BLK_OPTS_INIT;
	pthread_t t1, t2;
	uint8_t *hdr, *st;

	vt_env_init(&s->e);
	s->fd = vt_tempfile(1 << 20);
	s->async = engine == SQB_VIO_ENGINE_ASYNC;
	pthread_mutex_init(&s->gate, NULL);
	o.fd = s->fd;
	o.engine = engine;
	assert_int_equal(sqb_vio_blk_new(&s->dev, &s->e.host, &o, NULL), 0);
	assert_int_equal(sqb_vio_blk_new(&s->twin, &s->e.host, &o, NULL), 0);
	assert_int_equal(vt_drv_init(&s->d, &s->e, s->dev, 16, 1ull << 29), 0xf);
	hdr = vt_ptr(&s->e, VT_HDR);
	memset(hdr, 0, 16);
	st = vt_ptr(&s->e, VT_STAT);
	assert_int_equal(pthread_create(&t1, NULL, event_loop, s), 0);
	assert_int_equal(pthread_create(&t2, NULL, api, s), 0);
	/* This thread is the vCPU: queue a read, wait for its used element
	 * while poking registers, as a polling driver does. */
	double t_start = now_s();

	for (int i = 0; i < REQS; i++) {
		uint32_t id, len;
		long spins = 0;
		__atomic_store_n(st, 0xee, __ATOMIC_RELAXED);
		vt_add(&s->d,
		       (struct vt_seg[]){
			   {VT_HDR, 16, false}, {VT_DATA, 512, true}, {VT_STAT, 1, true}},
		       3);
		__atomic_thread_fence(__ATOMIC_SEQ_CST);
		/* a notify through MMIO, no ioeventfd (Async: squib's vCPUs never
		 * start I/O, they have the ioeventfd; and they are paused for a save) */
		if (i % 7 == 0 && !s->async)
			vt_w32(s->dev, 0x50, 0);
		while (!vt_used(&s->d, &id, &len)) {
			vt_w32(s->dev, 0x64, vt_r32(s->dev, 0x60));
			(void)vt_r32(s->dev, 0x100);
			/* bounded by time, not spins (a ThreadSanitizer build is
			 * 10-50x slower): 60 s is a hang, not a slow run */
			if ((++spins & 1023) == 0) {
				sched_yield();
				if (now_s() - t_start > 60)
					fail_msg("request %d never completed (60 s)", i);
			}
		}
		assert_int_equal(len, 513);
		assert_int_equal(__atomic_load_n(st, __ATOMIC_RELAXED), 0);
	}
	__atomic_store_n(&s->stop, 1, __ATOMIC_RELEASE);
	pthread_join(t1, NULL);
	pthread_join(t2, NULL);
	print_message("%d saves while running\n", s->saves);
	assert_int_equal(s->bad_saves, 0);
	assert_true(s->saves > 0);
	assert_false(sqb_vio_status(s->dev) & SQB_VIO_S_NEEDS_RESET);
	sqb_vio_dev_free(s->twin);
	sqb_vio_dev_free(s->dev);
	close(s->fd);
	vt_env_fini(&s->e);
	pthread_mutex_destroy(&s->gate);
	free(s);
}

static void test_concurrent_notify_mmio_save(void **state)
{
	(void)state;
	concurrent_notify_mmio_save(SQB_VIO_ENGINE_SYNC);
}

static void test_concurrent_notify_save_async(void **state)
{
	(void)state;
	concurrent_notify_mmio_save(SQB_VIO_ENGINE_ASYNC);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_concurrent_notify_mmio_save),
	    cmocka_unit_test(test_concurrent_notify_save_async),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
