/* Contiguous memory areas from C (run with DMA_OPTS=cma=64M): allocations larger than
 * the page allocator's largest block come from the default area, a device's own area
 * (cma_size) serves it first, statistics read like /proc/meminfo's CmaTotal / CmaFree per
 * area, and an exhausted area fails with NULL and recovers when memory comes back. */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "check.h"
#include "dma-mapping.h"

#define MiB (1024UL * 1024UL)
#define PAGES(bytes) ((bytes) / DMA_PAGE_SIZE)

static struct dma_cma_stats area(struct device *dev)
{
    struct dma_cma_stats st;
    memset(&st, 0, sizeof st);
    CHECK_EQ(dma_cma_get_stats(dev, &st), 0);
    return st;
}

/* 8 MiB is twice the buddy allocator's largest block: only CMA can give it. */
static void large_coherent(struct device *dev)
{
    struct dma_cma_stats before = area(NULL), st;
    dma_addr_t h;
    unsigned char last = 0;

    char *buf = (char *)dma_alloc_coherent(dev, 8 * MiB, &h, GFP_KERNEL);
    CHECK(buf != NULL);
    if (!buf)
        return;
    CHECK(h >= before.base && h + 8 * MiB <= before.base + 64 * MiB);
    CHECK(h + 8 * MiB - 1 <= DMA_BIT_MASK(32));
    memset(buf, 0xa5, 8 * MiB);
    CHECK_EQ(dma_sim_read(dev, h + 8 * MiB - 1, &last, 1), 0);
    CHECK_EQ(last, 0xa5);

    st = area(NULL);
    CHECK_EQ(st.free_pages, before.free_pages - PAGES(8 * MiB));
    CHECK_EQ(st.allocations, before.allocations + 1);
    dma_free_coherent(dev, 8 * MiB, buf, h);
    st = area(NULL);
    CHECK_EQ(st.free_pages, before.free_pages);
    CHECK_EQ(st.releases, before.releases + 1);

    /* A caller that may not sleep never uses CMA (kernel rule): too big without it. */
    CHECK(dma_alloc_coherent(dev, 8 * MiB, &h, GFP_ATOMIC) == NULL);

    /* The non-coherent and page allocators take the same path. */
    buf = (char *)dma_alloc_noncoherent(dev, 8 * MiB, &h, DMA_BIDIRECTIONAL, GFP_KERNEL);
    CHECK(buf != NULL);
    CHECK_EQ(area(NULL).free_pages, before.free_pages - PAGES(8 * MiB));
    dma_free_noncoherent(dev, 8 * MiB, buf, h, DMA_BIDIRECTIONAL);
    struct page *pg = dma_alloc_pages(dev, 8 * MiB, &h, DMA_TO_DEVICE, GFP_KERNEL);
    CHECK(pg != NULL);
    CHECK_EQ(area(NULL).free_pages, before.free_pages - PAGES(8 * MiB));
    dma_free_pages(dev, 8 * MiB, pg, h, DMA_TO_DEVICE);
    CHECK_EQ(area(NULL).free_pages, before.free_pages);
}

/* Eight 8 MiB allocations fill the 64 MiB area; the ninth fails until one is freed. */
static void exhaustion(struct device *dev)
{
    struct dma_cma_stats before = area(NULL), st;
    void *bufs[8];
    dma_addr_t hs[8], h;
    int i;

    for (i = 0; i < 8; i++) {
        bufs[i] = dma_alloc_coherent(dev, 8 * MiB, &hs[i], GFP_KERNEL);
        CHECK(bufs[i] != NULL);
    }
    st = area(NULL);
    CHECK_EQ(st.free_pages, 0);
    CHECK_EQ(st.largest_free_pages, 0);

    h = 0x1234;
    CHECK(dma_alloc_coherent(dev, 8 * MiB, &h, GFP_KERNEL | __GFP_NOWARN) == NULL);
    CHECK_EQ(h, 0x1234); /* written only on success */
    CHECK(area(NULL).failures > before.failures);

    dma_free_coherent(dev, 8 * MiB, bufs[3], hs[3]);
    CHECK_EQ(area(NULL).free_pages, PAGES(8 * MiB));
    bufs[3] = dma_alloc_coherent(dev, 8 * MiB, &hs[3], GFP_KERNEL);
    CHECK(bufs[3] != NULL);

    for (i = 0; i < 8; i++)
        if (bufs[i])
            dma_free_coherent(dev, 8 * MiB, bufs[i], hs[i]);
    CHECK_EQ(area(NULL).free_pages, before.free_pages);
}

/* A device's own area serves it first, any size; when full, the default area takes over. */
static void device_area(void)
{
    struct dma_stats sys_before, sys_after;
    struct dma_cma_stats dflt = area(NULL), own;
    dma_addr_t h1, h2, h3;

    CHECK_EQ(dma_system_stats(&sys_before), 0);
    TEST_DEVICE(dev, "own-area", DMA_BIT_MASK(32), true);
    (void)dev;
    dma_device_destroy(dev);

    dev_cfg.cma_size = 4 * MiB;
    dev = dma_device_create(&dev_cfg);
    CHECK(dev != NULL);
    if (!dev)
        return;
    own = area(dev);
    CHECK(strcmp(own.name, "own-area") == 0);
    CHECK_EQ(own.total_pages, PAGES(4 * MiB));
    CHECK_EQ(own.free_pages, own.total_pages);
    CHECK(own.base + 4 * MiB - 1 <= DMA_BIT_MASK(32));
    CHECK_EQ(area(NULL).total_pages, dflt.total_pages);

    /* Even a single page comes from the device's own area. */
    void *one = dma_alloc_coherent(dev, DMA_PAGE_SIZE, &h1, GFP_KERNEL);
    CHECK(one != NULL);
    CHECK(h1 >= own.base && h1 < own.base + 4 * MiB);
    CHECK_EQ(area(dev).free_pages, own.total_pages - 1);
    CHECK_EQ(area(NULL).free_pages, dflt.free_pages);

    void *most = dma_alloc_coherent(dev, 3 * MiB, &h2, GFP_KERNEL);
    CHECK(most != NULL);
    CHECK(h2 >= own.base && h2 + 3 * MiB <= own.base + 4 * MiB);

    /* 2 MiB no longer fits in the device's area: the default area serves it. */
    void *spill = dma_alloc_coherent(dev, 2 * MiB, &h3, GFP_KERNEL);
    CHECK(spill != NULL);
    CHECK(h3 >= dflt.base && h3 + 2 * MiB <= dflt.base + 64 * MiB);
    CHECK_EQ(area(NULL).free_pages, dflt.free_pages - PAGES(2 * MiB));

    dma_free_coherent(dev, 2 * MiB, spill, h3);
    dma_free_coherent(dev, 3 * MiB, most, h2);
    dma_free_coherent(dev, DMA_PAGE_SIZE, one, h1);
    CHECK_EQ(area(dev).free_pages, own.total_pages);
    CHECK_EQ(area(NULL).free_pages, dflt.free_pages);

    /* Destroying the device gives its area back to the page allocator. */
    dma_device_destroy(dev);
    CHECK_EQ(dma_system_stats(&sys_after), 0);
    CHECK_EQ(sys_after.zones[DMA_ZONE_DMA32].free_pages, sys_before.zones[DMA_ZONE_DMA32].free_pages);
    CHECK_EQ(sys_after.zones[DMA_ZONE_NORMAL].free_pages, sys_before.zones[DMA_ZONE_NORMAL].free_pages);

    /* An area that cannot fit within the device's reach fails the creation. */
    dev_cfg.cma_size = (uint64_t)8192 * MiB;
    CHECK(dma_device_create(&dev_cfg) == NULL);
}

int main(void)
{
    struct dma_cma_stats st;

    CHECK_EQ(dma_cma_get_stats(NULL, NULL), -EINVAL);
    st = area(NULL);
    CHECK(strcmp(st.name, "reserved") == 0);
    CHECK_EQ(st.total_pages, PAGES(64 * MiB));
    CHECK_EQ(st.free_pages, st.total_pages);
    CHECK_EQ(st.largest_free_pages, st.total_pages);
    CHECK(st.base + 64 * MiB - 1 <= DMA_BIT_MASK(32)); /* placed below 4 GiB by default */

    TEST_DEVICE(dev, "cma-user", DMA_BIT_MASK(32), false);
    CHECK(dev != NULL);
    if (!dev)
        return check_result("cma");
    memset(&st, 0x5a, sizeof st);
    CHECK_EQ(dma_cma_get_stats(dev, &st), -ENOENT); /* no area of its own */
    CHECK_EQ(st.total_pages, 0x5a5a5a5a5a5a5a5aULL);

    large_coherent(dev);
    exhaustion(dev);
    device_area();

    dma_device_destroy(dev);
    return check_result("cma");
}
