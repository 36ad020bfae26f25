/* The bad-input table: each row gets its documented error shape, none crashes. Error
 * messages on stderr are expected here. */
#include <stdint.h>
#include <string.h>

#include "check.h"
#include "dma-kernel-compat.h"

#define EINVAL 22
#define ENOMEM 12

static uint64_t free_pages_total(void)
{
    struct dma_stats st;
    CHECK_EQ(dma_system_stats(&st), 0);
    return st.zones[0].free_pages + st.zones[1].free_pages + st.zones[2].free_pages;
}

int main(void)
{
    TEST_DEVICE(dev, "victim", DMA_BIT_MASK(32), false);
    CHECK(dev != NULL);
    dma_addr_t h = 12345;
    char stack_buf[64];
    struct scatterlist sg[1];
    struct sg_table sgt;

    /* NULL device. */
    CHECK(dma_alloc_coherent(NULL, 4096, &h, GFP_KERNEL) == NULL);
    CHECK_EQ(h, 12345); /* out-parameter untouched */
    CHECK(dma_alloc_pages(NULL, 4096, &h, DMA_TO_DEVICE, GFP_KERNEL) == NULL);
    CHECK(dma_map_single(NULL, stack_buf, 64, DMA_TO_DEVICE) == DMA_MAPPING_ERROR);
    sg_init_table(sg, 1);
    sg_set_buf(sg, stack_buf, 64);
    CHECK_EQ(dma_map_sg(NULL, sg, 1, DMA_TO_DEVICE), 0);
    CHECK_EQ(dma_set_mask(NULL, DMA_BIT_MASK(32)), -EINVAL);
    CHECK_EQ(dma_get_mask(NULL), 0);
    dma_sync_single_for_cpu(NULL, 0x1000, 64, DMA_FROM_DEVICE);
    dma_unmap_single(NULL, 0x1000, 64, DMA_FROM_DEVICE);
    dma_free_coherent(NULL, 4096, stack_buf, 0x1000);
    CHECK(dma_sim_read(NULL, 0, stack_buf, 1) == -EINVAL);

    /* NULL handles and configs. */
    CHECK(dma_alloc_coherent(dev, 4096, NULL, GFP_KERNEL) == NULL);
    CHECK(dma_device_create(NULL) == NULL);
    struct dma_device_config cfg;
    memset(&cfg, 0, sizeof cfg);
    CHECK(dma_device_create(&cfg) == NULL); /* no name */
    cfg.name = "bad-mask";
    cfg.dma_mask = 0x1234;
    CHECK(dma_device_create(&cfg) == NULL);
    dma_device_destroy(NULL);

    /* Size 0 and SIZE_MAX. */
    h = 12345;
    CHECK(dma_alloc_coherent(dev, 0, &h, GFP_KERNEL) == NULL);
    CHECK(dma_alloc_coherent(dev, SIZE_MAX, &h, GFP_KERNEL) == NULL);
    CHECK(dma_alloc_noncoherent(dev, 0, &h, DMA_TO_DEVICE, GFP_KERNEL) == NULL);
    CHECK(dma_alloc_noncoherent(dev, SIZE_MAX, &h, DMA_TO_DEVICE, GFP_KERNEL) == NULL);
    CHECK_EQ(h, 12345);
    CHECK(dma_map_single(dev, stack_buf, 0, DMA_TO_DEVICE) == DMA_MAPPING_ERROR);
    CHECK(dma_map_single(dev, stack_buf, SIZE_MAX, DMA_TO_DEVICE) == DMA_MAPPING_ERROR);
    CHECK(dmalib_kmalloc(0, GFP_KERNEL) == NULL);
    CHECK(dmalib_kmalloc(SIZE_MAX, GFP_KERNEL) == NULL);
    CHECK(dmalib_alloc_pages(GFP_KERNEL, 100) == NULL);
    CHECK_EQ(dma_map_sg(dev, sg, 0, DMA_TO_DEVICE), 0);
    CHECK_EQ(dma_map_sg(dev, sg, -1, DMA_TO_DEVICE), 0);
    CHECK_EQ(sg_alloc_table(&sgt, 0, GFP_KERNEL), -EINVAL);

    /* DMA_NONE and (in C) a value outside the enum. */
    CHECK(dma_map_single(dev, stack_buf, 64, DMA_NONE) == DMA_MAPPING_ERROR);
    CHECK(dma_alloc_pages(dev, 4096, &h, DMA_NONE, GFP_KERNEL) == NULL);
    CHECK_EQ(dma_map_sg(dev, sg, 1, DMA_NONE), 0);
    dma_sync_single_for_device(dev, 0x1000, 64, DMA_NONE);
#ifndef __cplusplus
    CHECK(dma_map_single(dev, stack_buf, 64, (enum dma_data_direction)7) == DMA_MAPPING_ERROR);
    dma_sync_single_for_cpu(dev, 0x1000, 64, (enum dma_data_direction)7);
#endif

    /* Unknown attribute and gfp bits. */
    CHECK(dma_alloc_attrs(dev, 4096, &h, GFP_KERNEL, 1) == NULL); /* WRITE_BARRIER, removed */
    CHECK(dma_alloc_attrs(dev, 4096, &h, GFP_KERNEL, 1ul << 20) == NULL);
    CHECK(dma_map_single_attrs(dev, stack_buf, 64, DMA_TO_DEVICE, 1ul << 30) == DMA_MAPPING_ERROR);
    CHECK_EQ(dma_map_sg_attrs(dev, sg, 1, DMA_TO_DEVICE, 1ul << 13), 0);
    CHECK(dma_alloc_coherent(dev, 4096, &h, 0x80000000u) == NULL);
    CHECK(dma_alloc_coherent(dev, 4096, &h, GFP_KERNEL | __GFP_COMP) == NULL);
    CHECK(dma_alloc_pages(dev, 4096, &h, DMA_TO_DEVICE, GFP_DMA32) == NULL); /* zone flags */
    CHECK(dmalib_kmalloc(64, 0x80000000u) == NULL);

    /* Double free, and freeing what the library never returned: a message, nothing freed. */
    dma_addr_t hc;
    void *c = dma_alloc_coherent(dev, 4096, &hc, GFP_KERNEL);
    CHECK(c != NULL);
    uint64_t before = free_pages_total();
    dma_free_coherent(dev, 4096, c, hc);
    CHECK_EQ(free_pages_total(), before + 1);
    dma_free_coherent(dev, 4096, c, hc);
    CHECK_EQ(free_pages_total(), before + 1);
    dma_free_coherent(dev, 4096, stack_buf, 0x1000);
    dma_free_coherent(dev, 4096, stack_buf, DMA_MAPPING_ERROR);
    dma_free_noncoherent(dev, 4096, stack_buf, 0x1000, DMA_TO_DEVICE);
    dma_free_pages(dev, 4096, (struct page *)(void *)stack_buf, 0x1000, DMA_TO_DEVICE);
    CHECK_EQ(free_pages_total(), before + 1);

    void *nc = dma_alloc_noncoherent(dev, 4096, &hc, DMA_TO_DEVICE, GFP_KERNEL);
    CHECK(nc != NULL);
    before = free_pages_total();
    dma_free_noncoherent(dev, 4096, nc, hc, DMA_TO_DEVICE);
    dma_free_noncoherent(dev, 4096, nc, hc, DMA_TO_DEVICE);
    CHECK_EQ(free_pages_total(), before + 1);

    kfree(stack_buf);
    kfree(stack_buf + 1);
    struct page *p = alloc_pages(GFP_KERNEL, 1);
    CHECK(p != NULL);
    __free_pages(p, 0); /* wrong order: refused */
    __free_pages(p, 1);
    __free_pages(p, 1); /* double free: refused */
    __free_pages((struct page *)(void *)stack_buf, 0);

    /* Unmapping what was never mapped, or with the wrong size or direction. */
    dma_unmap_single(dev, DMA_MAPPING_ERROR, 64, DMA_TO_DEVICE);
    dma_unmap_single(dev, 0x12345678, 64, DMA_TO_DEVICE);
    dma_unmap_single(dev, 0xfffffffffff000ull, 64, DMA_TO_DEVICE);
    char *heap_like = stack_buf; /* foreign memory: bounces */
    dma_addr_t m = dma_map_single(dev, heap_like, 64, DMA_FROM_DEVICE);
    CHECK(!dma_mapping_error(dev, m));
    dma_unmap_single(dev, m, 32, DMA_TO_DEVICE); /* wrong size and direction */
    dma_unmap_single(dev, m, 64, DMA_FROM_DEVICE); /* already gone: refused */
    dma_sync_single_for_cpu(dev, 0x12345678, 64, DMA_FROM_DEVICE);
    dma_unmap_sg(dev, sg, 1, DMA_TO_DEVICE);
    dma_unmap_sgtable(dev, NULL, DMA_TO_DEVICE, 0);
    sg_free_table(NULL);
    CHECK_EQ(dma_map_sgtable(dev, NULL, DMA_TO_DEVICE, 0), -EINVAL);

    /* dma_mapping_error itself. */
    CHECK_EQ(dma_mapping_error(dev, DMA_MAPPING_ERROR), -ENOMEM);
    CHECK_EQ(dma_mapping_error(NULL, 0x1000), 0);

    dma_device_destroy(dev);
    return check_result("bad_input");
}
