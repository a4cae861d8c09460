/* The virtio-pci transport, modern only (virtio 1.x section 4.1): the
 * common configuration structure, ISR status, device configuration and
 * notification regions of BAR0 (layout in virtio.h).  The PCI function
 * around it (configuration space, capabilities, BAR, MSI-X table) belongs to
 * the integrator (runtime/dev_pci.c); this file maps the driver's register
 * accesses onto the same device state the MMIO transport drives. */
#include <errno.h>
#include <string.h>

#include "virtio_priv.h"

/* Common configuration, 4.1.4.3 (offset: field). */
enum {
	C_DFSELECT = 0x00, /* le32 device_feature_select */
	C_DF = 0x04,	   /* le32 device_feature (RO) */
	C_GFSELECT = 0x08, /* le32 driver_feature_select */
	C_GF = 0x0c,	   /* le32 driver_feature */
	C_MSIX = 0x10,	   /* le16 config_msix_vector */
	C_NUMQ = 0x12,	   /* le16 num_queues (RO) */
	C_STATUS = 0x14,   /* u8 device_status */
	C_CFGGEN = 0x15,   /* u8 config_generation (RO) */
	C_Q_SELECT = 0x16, /* le16 queue_select */
	C_Q_SIZE = 0x18,   /* le16 queue_size */
	C_Q_MSIX = 0x1a,   /* le16 queue_msix_vector */
	C_Q_ENABLE = 0x1c, /* le16 queue_enable */
	C_Q_NOFF = 0x1e,   /* le16 queue_notify_off (RO) */
	C_Q_DESCLO = 0x20, /* le64 queue_desc */
	C_Q_DESCHI = 0x24,
	C_Q_AVAILLO = 0x28, /* le64 queue_driver */
	C_Q_AVAILHI = 0x2c,
	C_Q_USEDLO = 0x30, /* le64 queue_device */
	C_Q_USEDHI = 0x34,
};

static void put_le(uint8_t *p, uint64_t v, unsigned int n)
{
	for (unsigned int i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

int sqb_vio_pci_enable(sqb_vio_dev *dev)
{
	if (!dev || !dev->host.irq.raise_vector)
		return -EINVAL;
	pthread_mutex_lock(&dev->lock);
	dev->pci = true;
	pthread_mutex_unlock(&dev->lock);
	return 0;
}

static struct sqb_vq *selected(sqb_vio_dev *dev)
{
	return dev->queue_sel < dev->ops->num_queues ? &dev->vq[dev->queue_sel] : NULL;
}

/* The 56 bytes the driver reads, built from the device's state. */
static void common_image(sqb_vio_dev *dev, uint8_t img[SQB_VIO_PCI_COMMON_LEN])
{
	struct sqb_vq *q = selected(dev);
	uint32_t df = dev->dev_features_sel < 2
			  ? (uint32_t)(dev->dev_features >> (32 * dev->dev_features_sel))
			  : 0;
	uint32_t gf = dev->drv_features_sel < 2
			  ? (uint32_t)(dev->drv_features >> (32 * dev->drv_features_sel))
			  : 0;
	uint16_t numq = (uint16_t)dev->ops->num_queues;

	memset(img, 0, SQB_VIO_PCI_COMMON_LEN);
	put_le(img + C_DFSELECT, dev->dev_features_sel, 4);
	put_le(img + C_DF, df, 4);
	put_le(img + C_GFSELECT, dev->drv_features_sel, 4);
	put_le(img + C_GF, gf, 4);
	put_le(img + C_MSIX, dev->msix_config, 2);
	put_le(img + C_NUMQ, numq, 2);
	img[C_STATUS] = (uint8_t)dev->status;
	img[C_CFGGEN] = (uint8_t)dev->config_gen;
	put_le(img + C_Q_SELECT, (uint16_t)dev->queue_sel, 2);
	if (!q) {
		/* a queue that does not exist reads as zero (size 0), its vector
		 * NO_VECTOR (4.1.4.3.1: "NO_VECTOR if unmapped"; Firecracker) */
		put_le(img + C_Q_MSIX, SQB_VIO_MSI_NO_VECTOR, 2);
		return;
	}
	put_le(img + C_Q_SIZE, q->num, 2);
	put_le(img + C_Q_MSIX, dev->msix_queue[dev->queue_sel], 2);
	put_le(img + C_Q_ENABLE, q->ready ? 1 : 0, 2);
	put_le(img + C_Q_NOFF, (uint16_t)dev->queue_sel, 2);
	put_le(img + C_Q_DESCLO, q->desc, 8);
	put_le(img + C_Q_AVAILLO, q->avail, 8);
	put_le(img + C_Q_USEDLO, q->used, 8);
}

static void set_half(uint64_t *v, int hi, uint32_t val)
{
	if (hi)
		*v = (*v & 0xffffffffull) | (uint64_t)val << 32;
	else
		*v = (*v & ~0xffffffffull) | val;
}

/* A 64-bit ring address written as one 8-byte access or as two 4-byte
 * halves. */
static void ring_write(uint64_t *addr, uint32_t off, uint32_t base, unsigned int size, uint64_t v)
{
	if (size == 8 && off == base)
		*addr = v;
	else if (size == 4)
		set_half(addr, off != base, (uint32_t)v);
}

static void common_write(sqb_vio_dev *dev, uint32_t off, unsigned int size, uint64_t v)
{
	struct sqb_vq *q = selected(dev);
	bool feat_open = (dev->status & (SQB_VIO_S_FEATURES_OK | SQB_VIO_S_DRIVER_OK)) == 0;
	/* Queue fields are the driver's until it enables the queue, and never
	 * once the device runs (Firecracker's test_queue_config_immutable). */
	bool q_open = q && !q->ready && !(dev->status & SQB_VIO_S_DRIVER_OK);
	unsigned int nvec = dev->ops->num_queues + 1;

	switch (off) {
	case C_DFSELECT:
		if (size == 4)
			dev->dev_features_sel = (uint32_t)v;
		break;
	case C_GFSELECT:
		if (size == 4)
			dev->drv_features_sel = (uint32_t)v;
		break;
	case C_GF:
		if (size == 4 && feat_open && dev->drv_features_sel < 2)
			set_half(&dev->drv_features, (int)dev->drv_features_sel, (uint32_t)v);
		break;
	case C_MSIX:
		if (size == 2)
			dev->msix_config = v < nvec ? (uint16_t)v : SQB_VIO_MSI_NO_VECTOR;
		break;
	case C_STATUS:
		if (size == 1)
			sqb_vio_status_write(dev, (uint32_t)v);
		break;
	case C_Q_SELECT:
		if (size == 2)
			dev->queue_sel = (uint32_t)v;
		break;
	case C_Q_SIZE:
		if (size == 2 && q_open)
			q->num = (uint16_t)v;
		break;
	case C_Q_MSIX:
		if (size == 2 && q && !(dev->status & SQB_VIO_S_DRIVER_OK))
			dev->msix_queue[dev->queue_sel] =
			    v < nvec ? (uint16_t)v : SQB_VIO_MSI_NO_VECTOR;
		break;
	case C_Q_ENABLE:
		/* 4.1.4.3.2: the driver only ever writes 1 */
		if (size == 2 && q_open && v == 1)
			sqb_vio_queue_ready_write(dev, q, 1);
		break;
	case C_Q_DESCLO:
	case C_Q_DESCHI:
		if (q_open)
			ring_write(&q->desc, off, C_Q_DESCLO, size, v);
		break;
	case C_Q_AVAILLO:
	case C_Q_AVAILHI:
		if (q_open)
			ring_write(&q->avail, off, C_Q_AVAILLO, size, v);
		break;
	case C_Q_USEDLO:
	case C_Q_USEDHI:
		if (q_open)
			ring_write(&q->used, off, C_Q_USEDLO, size, v);
		break;
	default:
		break; /* read-only or not a field's start */
	}
}

int sqb_vio_pci_access(sqb_vio_dev *dev, uint64_t off, void *data, unsigned int size, int is_write)
{
	uint8_t *b = data;

	if (!dev || !data)
		return -EINVAL;
	if (!is_write) /* before any refusal: a read of nothing reads zero */
		memset(b, 0, size);
	if (size != 1 && size != 2 && size != 4 && size != 8)
		return -EINVAL; /* a page-crossing access KVM split: 3, 5, 6, 7 bytes */
	if (off >= SQB_VIO_PCI_MSIX_TABLE || size > SQB_VIO_PCI_MSIX_TABLE - off)
		return -EINVAL;
	pthread_mutex_lock(&dev->lock);
	if (off < SQB_VIO_PCI_COMMON_LEN) {
		if (size > SQB_VIO_PCI_COMMON_LEN - off) {
			/* straddles the end: ignored */
		} else if (is_write) {
			uint64_t v = 0;

			for (unsigned int i = 0; i < size; i++)
				v |= (uint64_t)b[i] << (8 * i);
			common_write(dev, (uint32_t)off, size, v);
		} else {
			uint8_t img[SQB_VIO_PCI_COMMON_LEN];

			common_image(dev, img);
			memcpy(b, img + off, size);
		}
	} else if (off == SQB_VIO_PCI_ISR_OFF) {
		if (!is_write) { /* 4.1.4.5.1: reading clears it */
			b[0] = (uint8_t)dev->isr;
			dev->isr = 0;
		}
	} else if (off >= SQB_VIO_PCI_DEVCFG_OFF &&
		   off + size <= SQB_VIO_PCI_DEVCFG_OFF + SQB_VIO_PCI_DEVCFG_LEN) {
		sqb_vio_config_access(dev, (uint32_t)(off - SQB_VIO_PCI_DEVCFG_OFF), b, size,
				      is_write);
	} else if (off >= SQB_VIO_PCI_NOTIFY_OFF &&
		   off < SQB_VIO_PCI_NOTIFY_OFF + SQB_VIO_PCI_NOTIFY_LEN && is_write) {
		/* a notify that no ioeventfd took: the queue is the address's */
		uint32_t qi = (uint32_t)(off - SQB_VIO_PCI_NOTIFY_OFF) / SQB_VIO_PCI_NOTIFY_MULT;

		if (qi < SQB_VIO_METRICS_QUEUES)
			dev->m.notify[qi]++;
		sqb_vio_process_locked(dev, qi);
	}
	pthread_mutex_unlock(&dev->lock);
	return 0;
}

void sqb_vio_pci_vectors(sqb_vio_dev *dev, uint16_t *vec, unsigned int n, unsigned int nvec,
			 int set)
{
	pthread_mutex_lock(&dev->lock);
	for (unsigned int i = 0; i < n && i <= dev->ops->num_queues; i++) {
		uint16_t *v = i ? &dev->msix_queue[i - 1] : &dev->msix_config;

		if (set)
			*v = vec[i] < nvec ? vec[i] : SQB_VIO_MSI_NO_VECTOR;
		else
			vec[i] = *v;
	}
	pthread_mutex_unlock(&dev->lock);
}
