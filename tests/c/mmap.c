#define _DEFAULT_SOURCE /* MAP_ANONYMOUS under -std=c11 */
/* dma_mmap_attrs, dma_mmap_pages and dma_mmap_noncontiguous onto a caller-reserved range:
 * the user mapping shares the buffer's pages (cached for a coherent device, the uncached
 * alias for a coherent allocation of a non-coherent one, cached for pages). */
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "check.h"
#include "dma-mapping.h"

/* A check the rest of the test depends on: on failure, report and stop. */
#define REQUIRE(cond)                                                                   \
    do {                                                                                \
        int require_before_ = check_failures;                                           \
        CHECK(cond);                                                                    \
        if (check_failures != require_before_)                                          \
            exit(check_result("mmap"));                                                 \
    } while (0)

static void *reserve(size_t len)
{
    void *p = mmap(NULL, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    REQUIRE(p != MAP_FAILED);
    return p;
}

static void one(struct device *dev)
{
    dma_addr_t h;
    char *buf = (char *)dma_alloc_coherent(dev, 3 * 4096, &h, GFP_KERNEL);
    REQUIRE(buf != NULL);
    char *user = (char *)reserve(2 * 4096);
    struct vm_area_struct vma = {(unsigned long)user, (unsigned long)user + 2 * 4096, 1};

    REQUIRE(dma_mmap_coherent(dev, &vma, buf, h, 3 * 4096) == 0);
    strcpy(buf + 4096, "kernel side");
    CHECK(strcmp(user, "kernel side") == 0);
    strcpy(user + 4096 + 10, "user side");
    CHECK(strcmp(buf + 2 * 4096 + 10, "user side") == 0);
    char seen[10] = {0};
    CHECK_EQ(dma_sim_read(dev, h + 2 * 4096 + 10, seen, 10), 0);
    CHECK(strcmp(seen, "user side") == 0);

    /* Past the end of the buffer: -ENXIO. */
    struct vm_area_struct big = {(unsigned long)user, (unsigned long)user + 2 * 4096, 2};
    CHECK_EQ(dma_mmap_attrs(dev, &big, buf, h, 3 * 4096, 0), -6);
    /* Unaligned range: -EINVAL. */
    struct vm_area_struct odd = {(unsigned long)user + 1, (unsigned long)user + 4096, 0};
    CHECK_EQ(dma_mmap_attrs(dev, &odd, buf, h, 3 * 4096, 0), -22);
    CHECK_EQ(dma_mmap_attrs(dev, NULL, buf, h, 3 * 4096, 0), -22);

    CHECK_EQ(munmap(user, 2 * 4096), 0);
    dma_free_coherent(dev, 3 * 4096, buf, h);
}

/* dma_mmap_pages: cached pages from dma_alloc_pages, shared with the user mapping. */
static void pages(struct device *dev)
{
    dma_addr_t h;
    struct page *pg = dma_alloc_pages(dev, 3 * 4096, &h, DMA_BIDIRECTIONAL, GFP_KERNEL);
    REQUIRE(pg != NULL);
    char *buf = (char *)dmalib_page_address(pg);
    char *user = (char *)reserve(2 * 4096);
    struct vm_area_struct vma = {(unsigned long)user, (unsigned long)user + 2 * 4096, 1};

    REQUIRE(dma_mmap_pages(dev, &vma, 3 * 4096, pg) == 0);
    strcpy(buf + 4096 + 5, "pages");
    CHECK(strcmp(user + 5, "pages") == 0);
    strcpy(user + 4096, "back");
    CHECK(strcmp(buf + 2 * 4096, "back") == 0);
    struct vm_area_struct big = {(unsigned long)user, (unsigned long)user + 2 * 4096, 2};
    CHECK_EQ(dma_mmap_pages(dev, &big, 3 * 4096, pg), -6);
    CHECK_EQ(dma_mmap_pages(dev, &vma, 3 * 4096, NULL), -22);
    CHECK_EQ(dma_mmap_pages(NULL, &vma, 3 * 4096, pg), -22);
    CHECK_EQ(munmap(user, 2 * 4096), 0);
    dma_free_pages(dev, 3 * 4096, pg, h, DMA_BIDIRECTIONAL);
}

/* dma_mmap_noncontiguous: the allocation's pages in table order, one user range. */
static void noncontiguous(struct device *dev)
{
    const size_t size = 4 * 4096;
    struct sg_table *sgt = dma_alloc_noncontiguous(dev, size, DMA_BIDIRECTIONAL, GFP_KERNEL, 0);
    REQUIRE(sgt != NULL);
    char *kern = (char *)dma_vmap_noncontiguous(dev, size, sgt);
    REQUIRE(kern != NULL);
    char *user = (char *)reserve(size);
    struct vm_area_struct vma = {(unsigned long)user, (unsigned long)user + size, 0};

    REQUIRE(dma_mmap_noncontiguous(dev, &vma, size, sgt) == 0);
    strcpy(kern + 3 * 4096 + 7, "last page");
    CHECK(strcmp(user + 3 * 4096 + 7, "last page") == 0);
    strcpy(user + 4096 - 2, "across");
    CHECK(strcmp(kern + 4096 - 2, "across") == 0);
    struct vm_area_struct big = {(unsigned long)user, (unsigned long)user + size, 1};
    CHECK_EQ(dma_mmap_noncontiguous(dev, &big, size, sgt), -6);
    CHECK_EQ(dma_mmap_noncontiguous(dev, &vma, size, NULL), -22);
    CHECK_EQ(munmap(user, size), 0);
    dma_vunmap_noncontiguous(dev, kern);
    dma_free_noncontiguous(dev, size, sgt, DMA_BIDIRECTIONAL);
}

int main(void)
{
    TEST_DEVICE(nc, "mmap-nc", DMA_BIT_MASK(32), false);
    TEST_DEVICE(coh, "mmap-coh", DMA_BIT_MASK(32), true);
    REQUIRE(nc && coh);
    CHECK(dma_can_mmap(nc) && dma_can_mmap(coh) && !dma_can_mmap(NULL));
    one(nc);
    one(coh);
    pages(nc);
    pages(coh);
    noncontiguous(nc);
    noncontiguous(coh);

    /* Behind an IOMMU a noncontiguous allocation is scattered pages: the user range maps
     * them in order all the same. */
    struct dma_iommu_domain *dom = dma_iommu_domain_create(NULL);
    REQUIRE(dom != NULL);
    struct dma_device_config icfg;
    memset(&icfg, 0, sizeof icfg);
    icfg.name = "mmap-iommu";
    icfg.dma_mask = DMA_BIT_MASK(32);
    icfg.coherent = true;
    icfg.iommu = dom;
    struct device *idev = dma_device_create(&icfg);
    REQUIRE(idev != NULL);
    noncontiguous(idev);
    dma_device_destroy(idev);
    dma_iommu_domain_destroy(dom);
    dma_device_destroy(nc);
    dma_device_destroy(coh);
    return check_result("mmap");
}
