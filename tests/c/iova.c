/* The two-step IOVA API: no IOVA space on a direct device (the driver falls back to
 * dma_map_page), three scattered pages linked as one range behind an IOMMU, one unlinked
 * and another linked in its place, destroy, and bad input refused without changes. Runs
 * with dma-debug on: every link is tracked as a mapping, and the good paths report nothing. */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "check.h"
#include "dma-kernel-compat.h"

#define PG 4096u

static struct device *iommu_device(const char *name, struct dma_iommu_domain *dom, bool coherent)
{
    struct dma_device_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.name = name;
    cfg.dma_mask = DMA_BIT_MASK(32);
    cfg.coherent = coherent;
    cfg.iommu = dom;
    return dma_device_create(&cfg);
}

static struct dma_iommu_domain_stats domain_stats(struct dma_iommu_domain *dom)
{
    struct dma_iommu_domain_stats st;
    CHECK_EQ(dma_iommu_domain_get_stats(dom, &st), 0);
    return st;
}

static struct dma_debug_stats debug_stats(void)
{
    struct dma_debug_stats st;
    CHECK_EQ(dma_debug_get_stats(&st), 0);
    return st;
}

/* A page filled with the pattern of `seed` through the CPU's cached view. */
static struct page *filled_page(unsigned seed)
{
    struct page *p = alloc_page(GFP_KERNEL);
    CHECK(p != NULL);
    fill((unsigned char *)page_address(p), PG, seed);
    return p;
}

static unsigned last_fault(struct device *dev)
{
    struct dma_sim_fault f;
    CHECK_EQ(dma_sim_last_fault(dev, &f), 0);
    return f.kind;
}

static void direct_device(void)
{
    TEST_DEVICE(dev, "iova-direct", DMA_BIT_MASK(32), true);
    struct page *p = filled_page(1);
    struct dma_iova_state state;
    dma_addr_t h;

    CHECK(dev != NULL);
    state.addr = 0x5000;
    state.__size = PG;
    CHECK(!dma_iova_try_alloc(dev, &state, page_to_phys(p), PG));
    CHECK(!dma_use_iova(&state));
    CHECK_EQ(state.addr, 0);
    CHECK_EQ(state.__size, 0);
    /* The fallback. */
    h = dma_map_page(dev, p, 0, PG, DMA_TO_DEVICE);
    CHECK(!dma_mapping_error(dev, h));
    dma_unmap_page(dev, h, PG, DMA_TO_DEVICE);
    __free_page(p);
    dma_device_destroy(dev);
}

static void link_unlink(struct dma_iommu_domain *dom, bool coherent)
{
    struct device *dev = iommu_device(coherent ? "iova-coh" : "iova-noncoh", dom, coherent);
    struct page *p[4];
    struct dma_iova_state state;
    static unsigned char back[3 * PG];
    unsigned i;

    CHECK(dev != NULL);
    for (i = 0; i < 4; i++)
        p[i] = filled_page(i * 40);
    memset(&state, 0, sizeof state);
    CHECK(dma_iova_try_alloc(dev, &state, page_to_phys(p[0]), 3 * PG));
    CHECK(dma_use_iova(&state));
    CHECK_EQ(state.__size, 3 * PG);
    CHECK_EQ(state.addr % PG, 0);
    CHECK(state.addr + 3 * PG <= DMA_BIT_MASK(32) + 1);
    CHECK_EQ(domain_stats(dom).mapped_bytes, 0);

    for (i = 0; i < 3; i++)
        CHECK_EQ(dma_iova_link(dev, &state, page_to_phys(p[i]), i * PG, PG, DMA_BIDIRECTIONAL, 0), 0);
    CHECK_EQ(dma_iova_sync(dev, &state, 0, 3 * PG), 0);
    CHECK_EQ(domain_stats(dom).mapped_bytes, 3 * PG);
    CHECK_EQ(debug_stats().entries, 3);
    /* One contiguous read through the IOVA sees the CPU's bytes of all three pages. */
    CHECK_EQ(dma_sim_read(dev, state.addr, back, sizeof back), 0);
    for (i = 0; i < 3; i++)
        CHECK(same(back + i * PG, PG, i * 40));

    /* The device writes page 1; unlinking hands the data to the CPU, and the page is gone. */
    CHECK_EQ(dma_sim_write(dev, state.addr + PG + 10, "device", 6), 0);
    dma_iova_unlink(dev, &state, PG, PG, DMA_BIDIRECTIONAL, 0);
    CHECK(memcmp((char *)page_address(p[1]) + 10, "device", 6) == 0);
    CHECK_EQ(dma_sim_read(dev, state.addr + PG, back, 16), -EFAULT);
    CHECK_EQ(last_fault(dev), DMA_SIM_FAULT_NOT_MAPPED);
    CHECK_EQ(dma_sim_read(dev, state.addr, back, PG), 0);
    CHECK(same(back, PG, 0));
    CHECK_EQ(dma_sim_read(dev, state.addr + 2 * PG, back, PG), 0);
    CHECK(same(back, PG, 80));
    CHECK_EQ(domain_stats(dom).mapped_bytes, 2 * PG);

    /* Another page in its place. */
    CHECK_EQ(dma_iova_link(dev, &state, page_to_phys(p[3]), PG, PG, DMA_BIDIRECTIONAL, 0), 0);
    CHECK_EQ(dma_iova_sync(dev, &state, PG, PG), 0);
    CHECK_EQ(dma_sim_read(dev, state.addr + PG, back, PG), 0);
    CHECK(same(back, PG, 120));

    dma_iova_destroy(dev, &state, 3 * PG, DMA_BIDIRECTIONAL, 0);
    for (i = 0; i < 3; i++) {
        CHECK_EQ(dma_sim_read(dev, state.addr + i * PG, back, 16), -EFAULT);
        CHECK_EQ(last_fault(dev), DMA_SIM_FAULT_NOT_MAPPED);
    }
    CHECK_EQ(domain_stats(dom).mapped_bytes, 0);
    CHECK_EQ(debug_stats().entries, 0);
    CHECK_EQ(debug_stats().error_count, 0);
    for (i = 0; i < 4; i++)
        __free_page(p[i]);
    dma_device_destroy(dev);
}

/* The first link may start inside a granule: the IOVA keeps the physical offset. */
static void offset_in_granule(struct dma_iommu_domain *dom)
{
    struct device *dev = iommu_device("iova-offset", dom, true);
    struct page *a = filled_page(3), *b = filled_page(4);
    struct dma_iova_state state;
    unsigned char back[PG], want[PG];

    CHECK(dev != NULL);
    CHECK(dma_iova_try_alloc(dev, &state, page_to_phys(a) + 0x100, PG));
    CHECK_EQ(state.addr % PG, 0x100);
    CHECK_EQ(dma_iova_link(dev, &state, page_to_phys(a) + 0x100, 0, PG - 0x100, DMA_TO_DEVICE, 0), 0);
    CHECK_EQ(dma_iova_link(dev, &state, page_to_phys(b), PG - 0x100, 0x100, DMA_TO_DEVICE, 0), 0);
    CHECK_EQ(dma_iova_sync(dev, &state, 0, PG), 0);
    CHECK_EQ(dma_sim_read(dev, state.addr, back, PG), 0);
    memcpy(want, (char *)page_address(a) + 0x100, PG - 0x100);
    memcpy(want + PG - 0x100, page_address(b), 0x100);
    CHECK(memcmp(back, want, PG) == 0);
    /* DMA_TO_DEVICE: read-only for the device. */
    CHECK_EQ(dma_sim_write(dev, state.addr, "x", 1), -EFAULT);
    CHECK_EQ(last_fault(dev), DMA_SIM_FAULT_PERMISSION);
    dma_iova_destroy(dev, &state, PG, DMA_TO_DEVICE, 0);
    CHECK_EQ(domain_stats(dom).mapped_bytes, 0);
    __free_page(a);
    __free_page(b);
    dma_device_destroy(dev);
}

static void bad_input(struct dma_iommu_domain *dom)
{
    struct device *dev = iommu_device("iova-bad", dom, true);
    struct page *a = filled_page(5), *b = filled_page(6);
    struct dma_iova_state state, again, bad;
    struct dma_iommu_domain_stats before, after;
    phys_addr_t pb = page_to_phys(b);
    unsigned char back[16];

    CHECK(dev != NULL);
    CHECK(dma_iova_try_alloc(dev, &state, page_to_phys(a), 3 * PG));
    CHECK_EQ(dma_iova_link(dev, &state, page_to_phys(a), 0, PG, DMA_BIDIRECTIONAL, 0), 0);
    before = domain_stats(dom);

    CHECK_EQ(dma_iova_link(dev, &state, pb, 2 * PG, 2 * PG, DMA_BIDIRECTIONAL, 0), -EINVAL); /* past the end */
    CHECK_EQ(dma_iova_link(dev, &state, pb, PG, 0, DMA_BIDIRECTIONAL, 0), -EINVAL);          /* size 0 */
    CHECK_EQ(dma_iova_link(dev, &state, pb, PG + 100, 100, DMA_BIDIRECTIONAL, 0), -EINVAL);  /* misaligned */
    CHECK_EQ(dma_iova_link(dev, &state, pb + 0x100, PG + 0x100, 100, DMA_BIDIRECTIONAL, 0), -EIO); /* as the kernel */
    CHECK_EQ(dma_iova_link(dev, &state, pb, 0, PG, DMA_BIDIRECTIONAL, 0), -EINVAL); /* linked already */
    CHECK_EQ(dma_iova_link(dev, &state, pb, PG, PG, DMA_NONE, 0), -EINVAL);
    CHECK_EQ(dma_iova_link(dev, &state, pb, PG, PG, (enum dma_data_direction)7, 0), -EINVAL);
    CHECK_EQ(dma_iova_link(dev, &state, pb, PG, PG, DMA_BIDIRECTIONAL, 1), -EINVAL); /* unknown attr */
    CHECK_EQ(dma_iova_link(NULL, &state, pb, PG, PG, DMA_BIDIRECTIONAL, 0), -EINVAL);
    CHECK_EQ(dma_iova_link(dev, NULL, pb, PG, PG, DMA_BIDIRECTIONAL, 0), -EINVAL);
    CHECK_EQ(dma_iova_sync(dev, &state, 0, 4 * PG), -EINVAL);
    CHECK_EQ(dma_iova_sync(NULL, &state, 0, PG), -EINVAL);
    CHECK_EQ(dma_iova_sync(dev, NULL, 0, PG), -EINVAL);
    bad = state;
    bad.__size |= (uint64_t)1 << 63; /* the kernel's swiotlb bit */
    CHECK_EQ(dma_iova_link(dev, &bad, pb, PG, PG, DMA_BIDIRECTIONAL, 0), -EINVAL);
    dma_iova_unlink(dev, &state, 2 * PG, PG, DMA_BIDIRECTIONAL, 0); /* nothing linked there */
    dma_iova_unlink(NULL, &state, 0, PG, DMA_BIDIRECTIONAL, 0);
    dma_iova_unlink(dev, NULL, 0, PG, DMA_BIDIRECTIONAL, 0);
    dma_iova_free(dev, &state); /* a link is left */
    dma_iova_free(NULL, &state);
    dma_iova_free(dev, NULL);
    dma_iova_destroy(NULL, &state, PG, DMA_BIDIRECTIONAL, 0);
    dma_iova_destroy(dev, NULL, PG, DMA_BIDIRECTIONAL, 0);
    after = domain_stats(dom);
    CHECK_EQ(after.mapped_bytes, before.mapped_bytes);
    CHECK_EQ(after.iova_ranges, before.iova_ranges);
    CHECK_EQ(after.iotlb_flushes, before.iotlb_flushes);
    CHECK_EQ(dma_sim_read(dev, state.addr, back, sizeof back), 0);
    CHECK(same(back, sizeof back, 5));

    CHECK(!dma_iova_try_alloc(dev, NULL, pb, PG));
    again.addr = 1;
    again.__size = 1;
    CHECK(!dma_iova_try_alloc(NULL, &again, pb, PG));
    CHECK(!dma_use_iova(&again));
    CHECK(!dma_iova_try_alloc(dev, &again, pb, 0));

    dma_iova_destroy(dev, &state, PG, DMA_BIDIRECTIONAL, 0);
    before = domain_stats(dom);
    CHECK_EQ(before.mapped_bytes, 0);
    dma_iova_free(dev, &state); /* twice */
    after = domain_stats(dom);
    CHECK_EQ(after.iova_ranges, before.iova_ranges);
    CHECK_EQ(after.iova_cached, before.iova_cached);
    /* The space is usable again. */
    CHECK(dma_iova_try_alloc(dev, &again, pb, 3 * PG));
    dma_iova_free(dev, &again);
    __free_page(a);
    __free_page(b);
    dma_device_destroy(dev);
}

int main(void)
{
    struct dma_iommu_domain *dom = dma_iommu_domain_create(NULL);
    uint64_t errors;

    CHECK(dom != NULL);
    direct_device();
    link_unlink(dom, true);
    link_unlink(dom, false);
    offset_in_granule(dom);
    CHECK_EQ(debug_stats().error_count, 0);
    bad_input(dom);
    /* dma-debug saw the unlink of nothing, and only that. */
    errors = debug_stats().error_count;
    CHECK_EQ(errors, 1);
    CHECK_EQ(debug_stats().entries, 0);
    CHECK_EQ(domain_stats(dom).mapped_bytes, 0);
    dma_iommu_domain_destroy(dom);
    return check_result("iova");
}
