/* Scatter-gather: lists and tables, mapping with the original nents, syncs, pages,
 * and dma_get_sgtable. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "dma-kernel-compat.h"

static void table(struct device *dev)
{
    struct sg_table sgt;
    struct scatterlist *sg;
    unsigned int i;
    char *bufs[3];

    CHECK_EQ(sg_alloc_table(&sgt, 3, GFP_KERNEL), 0);
    CHECK_EQ(sgt.orig_nents, 3);
    bufs[0] = (char *)kmalloc(300, GFP_KERNEL);
    bufs[1] = (char *)kmalloc(4096, GFP_DMA32);
    bufs[2] = (char *)malloc(100); /* foreign memory: bounces */
    for_each_sgtable_sg(&sgt, sg, i) {
        CHECK(bufs[i] != NULL);
        memset(bufs[i], 'a' + (int)i, 8);
    }
    sg_set_buf(&sgt.sgl[0], bufs[0], 300);
    sg_set_buf(&sgt.sgl[1], bufs[1], 4096);
    sg_set_buf(&sgt.sgl[2], bufs[2], 100);

    CHECK_EQ(dma_map_sgtable(dev, &sgt, DMA_BIDIRECTIONAL, 0), 0);
    CHECK(sgt.nents >= 1 && sgt.nents <= 3);
    unsigned int total = 0;
    for_each_sgtable_dma_sg(&sgt, sg, i) {
        char c = 0;
        CHECK(sg_dma_address(sg) != DMA_MAPPING_ERROR);
        CHECK(sg_dma_address(sg) <= DMA_BIT_MASK(32));
        CHECK_EQ(dma_sim_read(dev, sg_dma_address(sg), &c, 1), 0);
        CHECK_EQ(c, 'a' + (int)i);
        CHECK_EQ(dma_sim_write(dev, sg_dma_address(sg) + 1, "Z", 1), 0);
        total += sg_dma_len(sg);
    }
    CHECK_EQ(total, 300 + 4096 + 100);
    dma_sync_sgtable_for_cpu(dev, &sgt, DMA_BIDIRECTIONAL);
    for (i = 0; i < 3; i++)
        CHECK_EQ(bufs[i][1], 'Z');
    dma_sync_sgtable_for_device(dev, &sgt, DMA_BIDIRECTIONAL);
    dma_unmap_sgtable(dev, &sgt, DMA_BIDIRECTIONAL, 0);

    kfree(bufs[0]);
    kfree(bufs[1]);
    free(bufs[2]);
    sg_free_table(&sgt);
    CHECK(sgt.sgl == NULL && sgt.orig_nents == 0);
}

static void list(struct device *dev)
{
    struct scatterlist sgl[2];
    struct page *p = alloc_pages(GFP_DMA32, 1);
    CHECK(p != NULL);
    sg_init_table(sgl, 2);
    sg_set_page(&sgl[0], p, 100, 0);
    sg_set_page(&sgl[1], p, 200, 4096 + 8);
    CHECK(sg_virt(&sgl[1]) == (char *)page_address(p) + 4104);
    CHECK(sg_next(&sgl[0]) == &sgl[1]);
    memset(page_address(p), 0, 8192);

    unsigned int n = dma_map_sg(dev, sgl, 2, DMA_FROM_DEVICE);
    CHECK(n >= 1 && n <= 2);
    CHECK_EQ(dma_sim_write(dev, sg_dma_address(&sgl[n - 1]), "x", 1), 0);
    dma_sync_sg_for_cpu(dev, sgl, 2, DMA_FROM_DEVICE);
    dma_sync_sg_for_device(dev, sgl, 2, DMA_FROM_DEVICE);
    dma_unmap_sg(dev, sgl, 2, DMA_FROM_DEVICE); /* the original nents */
    CHECK_EQ(((char *)page_address(p))[4104], 'x');

    /* dma_map_page of the same pages. */
    dma_addr_t h = dma_map_page(dev, p, 4096, 4096, DMA_TO_DEVICE);
    CHECK(!dma_mapping_error(dev, h));
    dma_unmap_page(dev, h, 4096, DMA_TO_DEVICE);
    __free_pages(p, 1);
}

static void get_sgtable(struct device *dev)
{
    dma_addr_t h;
    char *buf = (char *)dma_alloc_coherent(dev, 5000, &h, GFP_KERNEL);
    struct sg_table sgt;
    CHECK(buf != NULL);
    CHECK_EQ(dma_get_sgtable(dev, &sgt, buf, h, 5000), 0);
    CHECK_EQ(sgt.orig_nents, 1);
    CHECK_EQ(sgt.sgl[0].length, 8192);
    sg_free_table(&sgt);
    CHECK_EQ(dma_get_sgtable(dev, &sgt, buf, h, 0), -22);
    dma_free_coherent(dev, 5000, buf, h);
}

int main(void)
{
    TEST_DEVICE(nc, "sg-nc", DMA_BIT_MASK(32), false);
    TEST_DEVICE(coh, "sg-coh", DMA_BIT_MASK(32), true);
    CHECK(nc && coh);
    table(nc);
    table(coh);
    list(nc);
    list(coh);
    get_sgtable(nc);
    get_sgtable(coh);
    dma_device_destroy(nc);
    dma_device_destroy(coh);
    return check_result("sg");
}
