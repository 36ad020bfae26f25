/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/*
 * A small "driver" for a simulated DMA engine that upper-cases text.
 *
 * The descriptor ring lives in coherent memory (both sides see every write at once);
 * the data buffers are kmalloc'ed and mapped per transfer, TO_DEVICE for the source
 * and FROM_DEVICE for the destination, so on this non-coherent device the unmap is
 * what makes the device's result visible to the CPU.
 *
 * The "hardware" is device_process() below: it plays the device with the simulated bus
 * master (dma_sim_read / dma_sim_write), by bus address only.
 *
 * Build:  cc $(pkg-config --cflags dma) ring_driver.c $(pkg-config --libs --static dma)
 *    or:  cc -I include ring_driver.c target/release/libdma.a -lpthread -ldl -lm -lrt
 */
#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <dma-kernel-compat.h>
#include <dma-mapping.h>

#define RING_SIZE 8
#define DESC_OWNED_BY_DEVICE 1u
#define DESC_DONE 2u

struct desc {
    uint64_t src;
    uint64_t dst;
    uint32_t len;
    uint32_t flags;
};

struct ring {
    struct device *dev;
    struct desc *desc; /* coherent */
    dma_addr_t desc_dma;
};

/* The hardware: walks the ring by bus address, copies src to dst upper-cased. */
static int device_process(struct device *dev, dma_addr_t ring_dma)
{
    int done = 0;
    for (unsigned i = 0; i < RING_SIZE; i++) {
        struct desc d;
        dma_addr_t at = ring_dma + i * sizeof(struct desc);
        if (dma_sim_read(dev, at, &d, sizeof d))
            return -1;
        if (!(d.flags & DESC_OWNED_BY_DEVICE))
            continue;
        char data[256];
        if (d.len > sizeof data || dma_sim_read(dev, d.src, data, d.len))
            return -1;
        for (uint32_t j = 0; j < d.len; j++)
            data[j] = (char)toupper((unsigned char)data[j]);
        if (dma_sim_write(dev, d.dst, data, d.len))
            return -1;
        d.flags = DESC_DONE;
        if (dma_sim_write(dev, at, &d, sizeof d))
            return -1;
        done++;
    }
    return done;
}

int main(void)
{
    struct dma_device_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.name = "upcase-engine";
    cfg.dma_mask = DMA_BIT_MASK(32);
    cfg.coherent = false;

    struct ring r;
    r.dev = dma_device_create(&cfg);
    if (!r.dev)
        return 1;
    r.desc = (struct desc *)dma_alloc_coherent(r.dev, RING_SIZE * sizeof(struct desc), &r.desc_dma,
                                               GFP_KERNEL);
    if (!r.desc)
        return 1;

    static const char *const words[] = {"direct", "memory", "access", "without", "tears"};
    enum { N = sizeof words / sizeof words[0] };
    char *src[N], *dst[N];
    dma_addr_t src_dma[N], dst_dma[N];

    for (unsigned i = 0; i < N; i++) {
        size_t len = strlen(words[i]) + 1;
        src[i] = (char *)kmalloc(len, GFP_KERNEL);
        dst[i] = (char *)kzalloc(len, GFP_KERNEL);
        if (!src[i] || !dst[i])
            return 1;
        memcpy(src[i], words[i], len);
        src_dma[i] = dma_map_single(r.dev, src[i], len, DMA_TO_DEVICE);
        dst_dma[i] = dma_map_single(r.dev, dst[i], len, DMA_FROM_DEVICE);
        if (dma_mapping_error(r.dev, src_dma[i]) || dma_mapping_error(r.dev, dst_dma[i]))
            return 1;
        r.desc[i].src = src_dma[i];
        r.desc[i].dst = dst_dma[i];
        r.desc[i].len = (uint32_t)len;
        r.desc[i].flags = DESC_OWNED_BY_DEVICE; /* last: hands the descriptor over */
    }

    if (device_process(r.dev, r.desc_dma) != N)
        return 1;

    int bad = 0;
    for (unsigned i = 0; i < N; i++) {
        size_t len = strlen(words[i]) + 1;
        if (r.desc[i].flags != DESC_DONE)
            bad++;
        dma_unmap_single(r.dev, src_dma[i], len, DMA_TO_DEVICE);
        dma_unmap_single(r.dev, dst_dma[i], len, DMA_FROM_DEVICE);
        printf("%s -> %s\n", src[i], dst[i]);
        for (size_t j = 0; j + 1 < len; j++)
            if (dst[i][j] != (char)toupper((unsigned char)words[i][j]))
                bad++;
        kfree(src[i]);
        kfree(dst[i]);
    }

    dma_free_coherent(r.dev, RING_SIZE * sizeof(struct desc), r.desc, r.desc_dma);
    dma_device_destroy(r.dev);
    if (bad) {
        fprintf(stderr, "ring_driver: %d wrong bytes or descriptors\n", bad);
        return 1;
    }
    printf("ring_driver: ok\n");
    return 0;
}
