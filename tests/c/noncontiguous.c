/* dma_alloc_noncontiguous and its vmap: behind an IOMMU, 1 MiB of scattered pages is one
 * DMA segment and one CPU range; on the direct path, one contiguous block. Data moves
 * both ways with the sgtable syncs. Bad frees, vmaps and vunmaps are refused. */
#include <stdint.h>
#include <string.h>

#include "check.h"
#include "dma-mapping.h"

#define MiB ((size_t)1 << 20)
#define PAGE_ALIGN(n) (((n) + 4095) & ~(size_t)4095)
#define HOLES 1024

static unsigned char back[MiB];

static int zeroed(const unsigned char *p, size_t len)
{
    size_t i;
    for (i = 0; i < len; i++)
        if (p[i])
            return 0;
    return 1;
}

enum path { DIRECT, IOMMU, IOMMU_SCATTERED };

/* The CPU writes through the vmap, the device reads; the device writes, the CPU reads. */
static void round_trip(struct device *dev, size_t size, unsigned long attrs, enum path path)
{
    struct sg_table *sgt = dma_alloc_noncontiguous(dev, size, DMA_BIDIRECTIONAL, GFP_KERNEL, attrs);
    struct scatterlist *sg;
    unsigned int i;
    size_t total = 0;
    unsigned char *cpu;
    dma_addr_t dma;

    CHECK(sgt != NULL);
    if (!sgt)
        return;
    CHECK_EQ(sgt->nents, 1);
    /* The kernel page-aligns both paths; dma-core's direct path keeps the size. */
    if (path == DIRECT)
        CHECK(sg_dma_len(sgt->sgl) >= size);
    else
        CHECK_EQ(sg_dma_len(sgt->sgl), PAGE_ALIGN(size));
    dma = sg_dma_address(sgt->sgl);
    CHECK(dma + size <= DMA_BIT_MASK(32) + 1);
    for_each_sgtable_sg(sgt, sg, i)
        total += sg->length;
    CHECK_EQ(total, sg_dma_len(sgt->sgl));
    if (path == IOMMU_SCATTERED)
        CHECK(sgt->orig_nents > 1); /* single pages, scattered */
    if (path == DIRECT)
        CHECK_EQ(sgt->orig_nents, 1);

    cpu = (unsigned char *)dma_vmap_noncontiguous(dev, size, sgt);
    CHECK(cpu != NULL);
    if (!cpu)
        return;
    if (path == DIRECT)
        CHECK(cpu == sg_virt(sgt->sgl));
    CHECK(zeroed(cpu, size));
    fill(cpu, size, 1);
    dma_sync_sgtable_for_device(dev, sgt, DMA_BIDIRECTIONAL);
    memset(back, 0, size);
    CHECK_EQ(dma_sim_read(dev, dma, back, size), 0);
    CHECK(same(back, size, 1));

    fill(back, size, 99);
    CHECK_EQ(dma_sim_write(dev, dma, back, size), 0);
    dma_sync_sgtable_for_cpu(dev, sgt, DMA_BIDIRECTIONAL);
    CHECK(same(cpu, size, 99));
    /* The CPU pieces hold the same bytes. */
    total = 0;
    for_each_sgtable_sg(sgt, sg, i) {
        CHECK(memcmp(sg_virt(sg), cpu + total, sg->length) == 0);
        total += sg->length;
    }

    /* A free with a live vmap is refused; so is a wrong size. */
    dma_free_noncontiguous(dev, size, sgt, DMA_BIDIRECTIONAL);
    dma_vunmap_noncontiguous(dev, cpu);
    dma_vunmap_noncontiguous(dev, cpu); /* refused: no longer a vmap */
    dma_free_noncontiguous(dev, size + 2 * 4096, sgt, DMA_BIDIRECTIONAL);
    dma_free_noncontiguous(dev, size, sgt, DMA_BIDIRECTIONAL);
}

static void bad_input(struct device *dev, struct device *other)
{
    struct sg_table mine, *sgt;
    char local[8];

    CHECK(dma_alloc_noncontiguous(NULL, 4096, DMA_TO_DEVICE, GFP_KERNEL, 0) == NULL);
    CHECK(dma_alloc_noncontiguous(dev, 0, DMA_TO_DEVICE, GFP_KERNEL, 0) == NULL);
    CHECK(dma_alloc_noncontiguous(dev, 4096, DMA_NONE, GFP_KERNEL, 0) == NULL);
    CHECK(dma_alloc_noncontiguous(dev, 4096, (enum dma_data_direction)9, GFP_KERNEL, 0) == NULL);
    CHECK(dma_alloc_noncontiguous(dev, 4096, DMA_TO_DEVICE, GFP_DMA32, 0) == NULL);
    CHECK(dma_alloc_noncontiguous(dev, 4096, DMA_TO_DEVICE, GFP_KERNEL, DMA_ATTR_FORCE_CONTIGUOUS) == NULL);
    CHECK(dma_alloc_noncontiguous(dev, SIZE_MAX - 4095, DMA_TO_DEVICE, GFP_KERNEL, 0) == NULL);

    /* Tables the library did not return are refused. */
    CHECK_EQ(sg_alloc_table(&mine, 1, GFP_KERNEL), 0);
    sg_set_buf(mine.sgl, local, sizeof local);
    CHECK(dma_vmap_noncontiguous(dev, 4096, &mine) == NULL);
    dma_free_noncontiguous(dev, 4096, &mine, DMA_TO_DEVICE);
    sg_free_table(&mine);
    dma_vunmap_noncontiguous(dev, local);
    dma_free_noncontiguous(dev, 4096, NULL, DMA_TO_DEVICE); /* no-op */
    dma_vunmap_noncontiguous(dev, NULL);                    /* no-op */

    sgt = dma_alloc_noncontiguous(dev, 3 * 4096, DMA_FROM_DEVICE, GFP_KERNEL, DMA_ATTR_NO_WARN);
    CHECK(sgt != NULL);
    CHECK(dma_vmap_noncontiguous(other, 3 * 4096, sgt) == NULL); /* another device's */
    CHECK(dma_vmap_noncontiguous(dev, 0, sgt) == NULL);
    CHECK(dma_vmap_noncontiguous(dev, 4 * 4096, sgt) == NULL);   /* beyond it */
    CHECK(dma_vmap_noncontiguous(NULL, 4096, sgt) == NULL);
    dma_free_noncontiguous(other, 3 * 4096, sgt, DMA_FROM_DEVICE); /* refused */
    dma_free_noncontiguous(dev, 3 * 4096, sgt, DMA_FROM_DEVICE);
    dma_free_noncontiguous(dev, 3 * 4096, sgt, DMA_FROM_DEVICE); /* double free: refused */
}

static struct device *make(const char *name, struct dma_iommu_domain *dom, bool coherent)
{
    struct dma_device_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.name = name;
    cfg.dma_mask = DMA_BIT_MASK(32);
    cfg.coherent = coherent;
    cfg.iommu = dom;
    return dma_device_create(&cfg);
}

int main(void)
{
    struct dma_iommu_domain *dom = dma_iommu_domain_create(NULL);
    struct device *iommu_nc = make("nc-iommu", dom, false);
    struct device *iommu_coh = make("coh-iommu", dom, true);
    struct device *direct_nc = make("nc-direct", NULL, false);
    struct device *direct_coh = make("coh-direct", NULL, true);
    struct dma_iommu_domain_stats st;

    static struct page *pages[2 * HOLES];
    unsigned int i;

    CHECK(dom && iommu_nc && iommu_coh && direct_nc && direct_coh);
    /* Single free pages with an allocated one between each, so single-page
     * allocations are scattered. */
    for (i = 0; i < 2 * HOLES; i++)
        pages[i] = dmalib_alloc_pages(GFP_KERNEL, 0);
    for (i = 0; i < 2 * HOLES; i += 2)
        dmalib___free_pages(pages[i], 0);
    round_trip(iommu_nc, MiB, DMA_ATTR_ALLOC_SINGLE_PAGES, IOMMU_SCATTERED);
    round_trip(iommu_coh, MiB, DMA_ATTR_ALLOC_SINGLE_PAGES, IOMMU_SCATTERED);
    round_trip(iommu_nc, MiB, 0, IOMMU);
    round_trip(iommu_coh, 5 * 4096 + 100, 0, IOMMU);
    round_trip(direct_nc, MiB, 0, DIRECT);
    round_trip(direct_coh, 5 * 4096 + 100, 0, DIRECT);
    CHECK_EQ(dma_iommu_domain_get_stats(dom, &st), 0);
    CHECK_EQ(st.mapped_bytes, 0);

    for (i = 1; i < 2 * HOLES; i += 2)
        dmalib___free_pages(pages[i], 0);

    bad_input(iommu_nc, iommu_coh);
    bad_input(direct_nc, direct_coh);
    CHECK_EQ(dma_iommu_domain_get_stats(dom, &st), 0);
    CHECK_EQ(st.mapped_bytes, 0);

    dma_device_destroy(iommu_nc);
    dma_device_destroy(iommu_coh);
    dma_device_destroy(direct_nc);
    dma_device_destroy(direct_coh);
    dma_iommu_domain_destroy(dom);
    return check_result("noncontiguous");
}
