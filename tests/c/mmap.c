#define _DEFAULT_SOURCE /* MAP_ANONYMOUS under -std=c11 */
/* dma_mmap_attrs onto a caller-reserved range: the user mapping shares the buffer's
 * pages (cached for a coherent device, the uncached alias for a non-coherent one). */
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

int main(void)
{
    TEST_DEVICE(nc, "mmap-nc", DMA_BIT_MASK(32), false);
    TEST_DEVICE(coh, "mmap-coh", DMA_BIT_MASK(32), true);
    REQUIRE(nc && coh);
    one(nc);
    one(coh);
    dma_device_destroy(nc);
    dma_device_destroy(coh);
    return check_result("mmap");
}
