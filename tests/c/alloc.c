/* Coherent, non-coherent and page allocations, on coherent and non-coherent devices,
 * with the masks they must respect, and the kernel memory calls. */
#include <string.h>

#include "check.h"
#include "dma-kernel-compat.h"

static uint64_t free_pages_total(void)
{
    struct dma_stats st;
    CHECK_EQ(dma_system_stats(&st), 0);
    return st.zones[DMA_ZONE_DMA].free_pages + st.zones[DMA_ZONE_DMA32].free_pages +
           st.zones[DMA_ZONE_NORMAL].free_pages;
}

static int all_zero(const unsigned char *p, size_t n)
{
    size_t i;
    for (i = 0; i < n; i++)
        if (p[i])
            return 0;
    return 1;
}

static void allocations(struct device *dev, uint64_t mask)
{
    uint64_t before = free_pages_total();
    dma_addr_t h = 0;

    unsigned char *c = (unsigned char *)dma_alloc_coherent(dev, 3 * 4096 + 5, &h, GFP_KERNEL);
    CHECK(c != NULL);
    CHECK(!dma_mapping_error(dev, h));
    CHECK(h + 4 * 4096 - 1 <= mask);
    CHECK(all_zero(c, 3 * 4096 + 5));
    memset(c, 0x5a, 3 * 4096 + 5);
    CHECK(free_pages_total() == before - 4);

    dma_addr_t hn = 0;
    unsigned char *n = (unsigned char *)dma_alloc_noncoherent(dev, 8192, &hn, DMA_BIDIRECTIONAL, GFP_KERNEL);
    CHECK(n != NULL);
    CHECK(hn + 8191 <= mask);
    CHECK(all_zero(n, 8192));
    CHECK(dmalib_virt_to_page(n) == (struct page *)(void *)n);

    dma_addr_t hp = 0;
    struct page *pg = dma_alloc_pages(dev, 4096, &hp, DMA_FROM_DEVICE, GFP_KERNEL);
    CHECK(pg != NULL);
    CHECK(page_address(pg) == (void *)pg);
    CHECK(hp + 4095 <= mask);

    dma_addr_t hw = 0;
    void *w = dma_alloc_wc(dev, 100, &hw, GFP_KERNEL);
    CHECK(w != NULL);

    dma_addr_t ha = 0;
    void *a = dma_alloc_attrs(dev, 4096, &ha, GFP_KERNEL, DMA_ATTR_NON_CONSISTENT);
    CHECK(a != NULL);

    dma_free_attrs(dev, 4096, a, ha, DMA_ATTR_NON_CONSISTENT);
    dma_free_wc(dev, 100, w, hw);
    dma_free_pages(dev, 4096, pg, hp, DMA_FROM_DEVICE);
    dma_free_noncoherent(dev, 8192, n, hn, DMA_BIDIRECTIONAL);
    dma_free_coherent(dev, 3 * 4096 + 5, c, h);
    CHECK(free_pages_total() == before);
}

static void kernel_memory(void)
{
    unsigned char *k = (unsigned char *)kzalloc(100, GFP_KERNEL);
    CHECK(k != NULL);
    CHECK(all_zero(k, 100));
    CHECK(((uintptr_t)k % (uintptr_t)dma_get_cache_alignment()) == 0);
    void *k2 = kmalloc(100, GFP_KERNEL);
    CHECK(k2 != NULL && k2 != k);
    kfree(k2);
    kfree(k);
    kfree(NULL);

    struct page *p = alloc_pages(GFP_DMA32 | __GFP_ZERO, 2);
    CHECK(p != NULL);
    CHECK(all_zero((const unsigned char *)page_address(p), 4 * PAGE_SIZE));
    CHECK(virt_to_page((char *)page_address(p) + 4097) == (struct page *)((char *)(void *)p + 4096));
    __free_pages(p, 2);

    unsigned long addr = __get_free_pages(GFP_KERNEL, 0);
    CHECK(addr != 0);
    free_pages(addr, 0);

    int on_stack = 0;
    CHECK(virt_to_page(&on_stack) == NULL);
}

int main(void)
{
    TEST_DEVICE(coh, "coherent32", DMA_BIT_MASK(32), true);
    TEST_DEVICE(nc, "noncoherent32", DMA_BIT_MASK(32), false);
    TEST_DEVICE(d24, "isa24", DMA_BIT_MASK(24), false);
    TEST_DEVICE(d64, "pcie64", DMA_BIT_MASK(64), true);
    CHECK(coh && nc && d24 && d64);
    CHECK_EQ(dma_get_mask(d24), DMA_BIT_MASK(24));

    allocations(coh, DMA_BIT_MASK(32));
    allocations(nc, DMA_BIT_MASK(32));
    allocations(d24, DMA_BIT_MASK(24));
    allocations(d64, DMA_BIT_MASK(64));
    kernel_memory();

    dma_device_destroy(coh);
    dma_device_destroy(nc);
    dma_device_destroy(d24);
    dma_device_destroy(d64);
    return check_result("alloc");
}
