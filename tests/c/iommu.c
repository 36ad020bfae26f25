/* Devices behind an IOMMU domain: coherent memory through the page table, RAM above
 * 4 GiB for a 32-bit device without bouncing, scattered pages merged by dma_map_sg,
 * faults after unmap and on read-only mappings, lazy invalidation, shared domains. */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "check.h"
#include "dma-kernel-compat.h"

#define GiB4 ((uint64_t)1 << 32)

static struct device *iommu_device(const char *name, struct dma_iommu_domain *dom, uint64_t mask,
                                   bool coherent)
{
    struct dma_device_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.name = name;
    cfg.dma_mask = mask;
    cfg.coherent = coherent;
    cfg.iommu = dom;
    return dma_device_create(&cfg);
}

static uint64_t mapped_bytes(struct dma_iommu_domain *dom)
{
    struct dma_iommu_domain_stats st;
    CHECK_EQ(dma_iommu_domain_get_stats(dom, &st), 0);
    return st.mapped_bytes;
}

static uint64_t pgtable_pages(struct dma_iommu_domain *dom)
{
    struct dma_iommu_domain_stats st;
    CHECK_EQ(dma_iommu_domain_get_stats(dom, &st), 0);
    return st.pgtable_pages;
}

static uint64_t bounces(void)
{
    struct dma_stats st;
    CHECK_EQ(dma_system_stats(&st), 0);
    return st.swiotlb_mappings;
}

/* dma_alloc_coherent is a page array mapped at one IOVA range; the device reads and
 * writes it through the page table, across pages that are not physically adjacent. */
static void coherent_alloc(struct dma_iommu_domain *dom)
{
    struct device *dev = iommu_device("iommu-coh", dom, DMA_BIT_MASK(32), true);
    const size_t size = (2u << 20) + 3 * 4096;
    static unsigned char back[(2u << 20) + 3 * 4096];
    dma_addr_t h = 0;
    unsigned char *cpu;

    CHECK(dev != NULL);
    cpu = (unsigned char *)dma_alloc_coherent(dev, size, &h, GFP_KERNEL);
    CHECK(cpu != NULL);
    CHECK(h + size <= GiB4);
    CHECK_EQ(mapped_bytes(dom), size);
    CHECK(pgtable_pages(dom) >= 3); /* the root and at least one table at levels 1 and 2 */
    CHECK(dma_iommu_iova_to_phys(dom, h) != 0);
    fill(cpu, size, 7);
    CHECK_EQ(dma_sim_read(dev, h, back, size), 0);
    CHECK(same(back, size, 7));
    CHECK_EQ(dma_sim_write(dev, h + 100, "device", 6), 0);
    CHECK(memcmp(cpu + 100, "device", 6) == 0);
    dma_free_coherent(dev, size, cpu, h);
    CHECK_EQ(mapped_bytes(dom), 0);
    CHECK_EQ(dma_iommu_iova_to_phys(dom, h), 0);
    dma_device_destroy(dev);
}

/* A page above 4 GiB: a direct 32-bit device would bounce it; behind the IOMMU the same
 * device gets an IOVA below 4 GiB that translates to the page itself. */
static void high_memory(struct dma_iommu_domain *dom)
{
    struct device *wide = iommu_device("direct-64", NULL, DMA_BIT_MASK(64), true);
    struct device *narrow = iommu_device("direct-32", NULL, DMA_BIT_MASK(32), true);
    struct device *dev = iommu_device("iommu-32", dom, DMA_BIT_MASK(32), true);
    struct page *pg = alloc_pages(GFP_KERNEL, 0);
    char *buf = (char *)page_address(pg);
    dma_addr_t phys, h, b;
    uint64_t before;

    CHECK(wide && narrow && dev && pg);
    /* The direct 64-bit device sees bus = physical. */
    phys = dma_map_single(wide, buf + 16, 64, DMA_TO_DEVICE);
    CHECK(!dma_mapping_error(wide, phys));
    CHECK(phys >= GiB4);
    dma_unmap_single(wide, phys, 64, DMA_TO_DEVICE);

    before = bounces();
    b = dma_map_single(narrow, buf + 16, 64, DMA_TO_DEVICE);
    CHECK(!dma_mapping_error(narrow, b));
    CHECK_EQ(bounces(), before + 1); /* out of reach: swiotlb */
    dma_unmap_single(narrow, b, 64, DMA_TO_DEVICE);

    before = bounces();
    memcpy(buf + 16, "above 4 GiB", 12);
    h = dma_map_single(dev, buf + 16, 64, DMA_TO_DEVICE);
    CHECK(!dma_mapping_error(dev, h));
    CHECK(h + 64 <= GiB4);
    CHECK_EQ(dma_iommu_iova_to_phys(dom, h), phys);
    CHECK_EQ(bounces(), before); /* no bounce */
    char seen[12] = {0};
    CHECK_EQ(dma_sim_read(dev, h, seen, 12), 0);
    CHECK(memcmp(seen, "above 4 GiB", 12) == 0);
    /* DMA_TO_DEVICE is read-only to the device. */
    CHECK_EQ(dma_sim_write(dev, h, "x", 1), -EFAULT);
    struct dma_sim_fault f;
    CHECK_EQ(dma_sim_last_fault(dev, &f), 0);
    CHECK_EQ(f.kind, DMA_SIM_FAULT_PERMISSION);
    CHECK(f.write);
    CHECK_EQ(buf[16], 'a');
    dma_unmap_single(dev, h, 64, DMA_TO_DEVICE);

    __free_pages(pg, 0);
    dma_device_destroy(wide);
    dma_device_destroy(narrow);
    dma_device_destroy(dev);
}

/* Whole pages (single pages with a spacer between each, and page-aligned kmalloc
 * buffers) merge into one DMA segment; max_segment_size caps the merge. */
static void sg_merging(struct dma_iommu_domain *dom)
{
    enum { NPAGES = 4, NKMALLOC = 2, N = NPAGES + NKMALLOC };
    struct device *dev = iommu_device("iommu-sg", dom, DMA_BIT_MASK(32), false);
    struct page *pages[NPAGES], *spacers[NPAGES];
    struct scatterlist sgl[N];
    char *bufs[N];
    static unsigned char data[N * 4096];
    unsigned int i, n;

    CHECK(dev != NULL);
    CHECK_EQ(dma_get_merge_boundary(dev), 4095);
    CHECK_EQ(dma_opt_mapping_size(dev), 128 * 1024);
    for (i = 0; i < NPAGES; i++) {
        pages[i] = alloc_pages(GFP_KERNEL, 0);
        spacers[i] = alloc_pages(GFP_KERNEL, 0);
        CHECK(pages[i] && spacers[i]);
        bufs[i] = (char *)page_address(pages[i]);
    }
    for (i = NPAGES; i < N; i++) {
        bufs[i] = (char *)kmalloc(4096, GFP_KERNEL);
        CHECK(bufs[i] != NULL);
        CHECK_EQ((uintptr_t)bufs[i] & 4095, 0); /* page-sized kmalloc is page aligned */
    }
    CHECK(bufs[1] != bufs[0] + 4096); /* not physically adjacent */

    sg_init_table(sgl, N);
    for (i = 0; i < N; i++) {
        memset(bufs[i], 0, 4096);
        sg_set_buf(&sgl[i], bufs[i], 4096);
    }
    n = dma_map_sg(dev, sgl, N, DMA_FROM_DEVICE);
    CHECK_EQ(n, 1);
    CHECK_EQ(sg_dma_len(&sgl[0]), N * 4096);
    CHECK(sg_dma_address(&sgl[0]) + N * 4096 <= GiB4);
    fill(data, sizeof data, 11);
    CHECK_EQ(dma_sim_write(dev, sg_dma_address(&sgl[0]), data, sizeof data), 0);
    dma_unmap_sg(dev, sgl, N, DMA_FROM_DEVICE);
    for (i = 0; i < N; i++)
        CHECK(memcmp(bufs[i], data + i * 4096, 4096) == 0);
    CHECK_EQ(mapped_bytes(dom), 0);

    CHECK_EQ(dma_set_max_seg_size(dev, 2 * 4096), 0);
    n = dma_map_sg(dev, sgl, N, DMA_TO_DEVICE);
    CHECK_EQ(n, N / 2);
    for (i = 0; i < n; i++)
        CHECK_EQ(sg_dma_len(&sgl[i]), 2 * 4096);
    dma_unmap_sg(dev, sgl, N, DMA_TO_DEVICE);

    for (i = 0; i < NPAGES; i++) {
        __free_pages(pages[i], 0);
        __free_pages(spacers[i], 0);
    }
    for (i = NPAGES; i < N; i++)
        kfree(bufs[i]);
    dma_device_destroy(dev);
}

/* After the unmap the IOVA is gone: the device's access faults NOT_MAPPED and memory is
 * not touched. */
static void fault_after_unmap(struct dma_iommu_domain *dom)
{
    struct device *dev = iommu_device("iommu-fault", dom, DMA_BIT_MASK(32), true);
    unsigned char *buf = (unsigned char *)kmalloc(4096, GFP_KERNEL);
    unsigned char junk[64];
    struct dma_sim_fault f;
    size_t faults, i;
    int untouched = 1;
    dma_addr_t h;

    CHECK(dev && buf);
    CHECK_EQ(dma_sim_last_fault(dev, &f), -ENOENT);
    memset(buf, 0x5a, 4096);
    h = dma_map_single(dev, buf, 4096, DMA_FROM_DEVICE);
    CHECK(!dma_mapping_error(dev, h));
    CHECK_EQ(dma_sim_write(dev, h, "ok", 2), 0);
    dma_unmap_single(dev, h, 4096, DMA_FROM_DEVICE);
    CHECK(memcmp(buf, "ok", 2) == 0);

    faults = dma_sim_nr_faults(dev);
    memset(junk, 0, sizeof junk);
    CHECK_EQ(dma_sim_write(dev, h, junk, sizeof junk), -EFAULT);
    CHECK_EQ(dma_sim_last_fault(dev, &f), 0);
    CHECK_EQ(f.kind, DMA_SIM_FAULT_NOT_MAPPED);
    CHECK(f.write);
    CHECK_EQ(f.addr, h);
    CHECK_EQ(f.len, sizeof junk);
    CHECK_EQ(dma_sim_read(dev, h, junk, 4), -EFAULT);
    CHECK_EQ(dma_sim_last_fault(dev, &f), 0);
    CHECK_EQ(f.kind, DMA_SIM_FAULT_NOT_MAPPED);
    CHECK(!f.write);
    CHECK_EQ(dma_sim_nr_faults(dev), faults + 2);
    for (i = 2; i < 4096; i++)
        untouched &= buf[i] == 0x5a;
    CHECK(untouched);
    CHECK(memcmp(buf, "ok", 2) == 0);

    /* A second unmap is refused, not a double free. */
    dma_unmap_single(dev, h, 4096, DMA_FROM_DEVICE);
    kfree(buf);
    dma_device_destroy(dev);
}

/* Lazy invalidation queues unmapped IOVAs until a flush; strict frees them at once. */
static void lazy_and_config(void)
{
    struct dma_iommu_domain_config cfg;
    struct dma_iommu_domain_stats st;
    struct dma_iommu_region hole = {0x10000000, 0x1fffffff};
    struct dma_iommu_domain *lazy, *bad;
    struct device *dev;
    char *buf = (char *)kmalloc(4096, GFP_KERNEL);
    dma_addr_t h;

    memset(&cfg, 0, sizeof cfg);
    cfg.aperture_start = 0x100000;
    cfg.aperture_end = DMA_BIT_MASK(32);
    cfg.flush = DMA_IOMMU_FLUSH_LAZY;
    cfg.reserved = &hole;
    cfg.nr_reserved = 1;
    lazy = dma_iommu_domain_create(&cfg);
    CHECK(lazy != NULL);
    CHECK_EQ(dma_iommu_domain_get_stats(lazy, &st), 0);
    CHECK(!st.strict);
    dev = iommu_device("iommu-lazy", lazy, DMA_BIT_MASK(32), true);
    CHECK(dev && buf);
    h = dma_map_single(dev, buf, 4096, DMA_BIDIRECTIONAL);
    CHECK(!dma_mapping_error(dev, h));
    CHECK(h >= 0x100000 && h + 4096 <= GiB4);
    CHECK(h + 4096 <= 0x10000000 || h > 0x1fffffff);
    CHECK_EQ(dma_sim_write(dev, h, "cached", 6), 0); /* the IOTLB now holds the page */
    dma_unmap_single(dev, h, 4096, DMA_BIDIRECTIONAL);
    CHECK_EQ(dma_iommu_domain_get_stats(lazy, &st), 0);
    CHECK_EQ(st.fq_pending, 1);
    CHECK_EQ(st.mapped_bytes, 0);
    /* Until the flush, the device still reaches the old page (reported and counted). */
    CHECK_EQ(dma_sim_write(dev, h, "stale", 5), 0);
    CHECK(memcmp(buf, "stale", 5) == 0);
    CHECK_EQ(dma_iommu_domain_get_stats(lazy, &st), 0);
    CHECK_EQ(st.iotlb_stale_hits, 1);
    dma_iommu_flush_iotlb_all(lazy);
    CHECK_EQ(dma_sim_read(dev, h, buf, 1), -EFAULT); /* invalidated: faults */
    CHECK_EQ(dma_iommu_domain_get_stats(lazy, &st), 0);
    CHECK_EQ(st.fq_pending, 0);
    CHECK(st.iotlb_flushes >= 1);

    /* The device keeps its domain: destroying the handle first is fine. */
    dma_iommu_domain_destroy(lazy);
    h = dma_map_single(dev, buf, 4096, DMA_BIDIRECTIONAL);
    CHECK(!dma_mapping_error(dev, h));
    dma_unmap_single(dev, h, 4096, DMA_BIDIRECTIONAL);
    dma_device_destroy(dev);
    kfree(buf);

    /* Bad configurations. */
    cfg.reserved = NULL;
    cfg.nr_reserved = 0;
    cfg.aperture_end = (uint64_t)1 << 48; /* past the 48-bit space */
    CHECK(dma_iommu_domain_create(&cfg) == NULL);
    cfg.aperture_end = 0;
    cfg.flush = 7;
    CHECK(dma_iommu_domain_create(&cfg) == NULL);
    cfg.flush = DMA_IOMMU_FLUSH_STRICT;
    cfg.nr_reserved = 2; /* with NULL reserved */
    CHECK(dma_iommu_domain_create(&cfg) == NULL);
    cfg.nr_reserved = 0;
    cfg.aperture_start = 0;
    cfg.aperture_end = 4095; /* only page 0 */
    CHECK(dma_iommu_domain_create(&cfg) == NULL);
    cfg.aperture_end = 0;
    bad = dma_iommu_domain_create(&cfg);
    CHECK(bad != NULL);
    CHECK_EQ(dma_iommu_domain_get_stats(bad, &st), 0);
    CHECK(st.strict);
    /* A mask below the aperture cannot be served. */
    cfg.aperture_start = GiB4;
    cfg.aperture_end = 0;
    struct dma_iommu_domain *high = dma_iommu_domain_create(&cfg);
    CHECK(high != NULL);
    CHECK(iommu_device("too-narrow", high, DMA_BIT_MASK(32), true) == NULL);
    dma_iommu_domain_destroy(high);
    dma_iommu_domain_destroy(bad);

    CHECK_EQ(dma_iommu_domain_get_stats(NULL, &st), -EINVAL);
    CHECK_EQ(dma_iommu_iova_to_phys(NULL, 0x1000), 0);
    dma_iommu_domain_destroy(NULL);
    dma_iommu_flush_iotlb_all(NULL);
}

/* Two devices share a domain: one address space, each mapping reachable by both. */
static void shared(struct dma_iommu_domain *dom)
{
    struct device *a = iommu_device("share-a", dom, DMA_BIT_MASK(32), true);
    struct device *b = iommu_device("share-b", dom, DMA_BIT_MASK(32), true);
    char *buf = (char *)kzalloc(4096, GFP_KERNEL);
    char c = 0;
    dma_addr_t h;

    CHECK(a && b && buf);
    h = dma_map_single(a, buf, 4096, DMA_BIDIRECTIONAL);
    CHECK(!dma_mapping_error(a, h));
    CHECK_EQ(dma_sim_write(b, h, "B", 1), 0);
    CHECK_EQ(dma_sim_read(a, h, &c, 1), 0);
    CHECK_EQ(c, 'B');
    dma_unmap_single(a, h, 4096, DMA_BIDIRECTIONAL);
    CHECK_EQ(buf[0], 'B');
    kfree(buf);
    dma_device_destroy(a);
    dma_device_destroy(b);
}

int main(void)
{
    struct dma_iommu_domain *dom = dma_iommu_domain_create(NULL);
    struct device *direct = iommu_device("direct", NULL, DMA_BIT_MASK(32), true);
    CHECK(dom != NULL);
    CHECK(direct != NULL);
    CHECK_EQ(dma_get_merge_boundary(direct), 0);
    CHECK_EQ(dma_opt_mapping_size(direct), dma_max_mapping_size(direct));
    CHECK_EQ(dma_get_merge_boundary(NULL), 0);
    CHECK_EQ(dma_opt_mapping_size(NULL), 0);
    dma_device_destroy(direct);

    coherent_alloc(dom);
    high_memory(dom);
    sg_merging(dom);
    fault_after_unmap(dom);
    shared(dom);
    lazy_and_config();
    CHECK_EQ(mapped_bytes(dom), 0);
    dma_iommu_domain_destroy(dom);
    return check_result("iommu");
}
