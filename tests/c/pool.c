#define _POSIX_C_SOURCE 200809L /* dup, dup2, fileno under -std=c11 */
/* dmapool: the kernel's size, align and boundary rules, zeroing, checked frees, and the
 * leak report when a pool is destroyed with blocks in use. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "capture.h"
#include "check.h"
#include "dma-kernel-compat.h"

static uint64_t system_free_pages(void)
{
    struct dma_stats st;
    uint64_t n = 0;
    unsigned int z;
    CHECK_EQ(dma_system_stats(&st), 0);
    for (z = 0; z < 3; z++)
        n += st.zones[z].free_pages;
    return n;
}

static size_t round_up(size_t n, size_t a)
{
    return (n + a - 1) / a * a;
}

/* Allocates `count` blocks and checks the rules for each: aligned (CPU and bus address),
 * no boundary crossed, no overlap (each block holds its own pattern), and the device
 * reads what the CPU wrote (pool memory is coherent). Frees them all. */
static void rules(struct device *dev, size_t size, size_t align, size_t boundary, unsigned count)
{
    struct dma_pool *pool = dma_pool_create("rules", dev, size, align, boundary);
    size_t block = round_up(size < 16 ? 16 : size, align ? align : 1);
    size_t seg = boundary ? boundary : (size_t)-1;
    unsigned char **cpu = (unsigned char **)calloc(count, sizeof *cpu);
    dma_addr_t *dma = (dma_addr_t *)calloc(count, sizeof *dma);
    unsigned i;
    int aligned = 1, inside = 1, intact = 1, seen = 1;

    CHECK(pool != NULL && cpu && dma);
    if (!pool || !cpu || !dma)
        return;
    for (i = 0; i < count; i++) {
        cpu[i] = (unsigned char *)dma_pool_alloc(pool, GFP_KERNEL, &dma[i]);
        CHECK(cpu[i] != NULL);
        if (!cpu[i])
            break;
        aligned &= (uintptr_t)cpu[i] % (align ? align : 1) == 0 && dma[i] % (align ? align : 1) == 0;
        if (boundary) {
            inside &= dma[i] / seg == (dma[i] + block - 1) / seg;
            inside &= (uintptr_t)cpu[i] / seg == ((uintptr_t)cpu[i] + block - 1) / seg;
        }
        memset(cpu[i], (int)(i & 0xff), size);
    }
    for (i = 0; i < count && cpu[i]; i++) {
        unsigned char first = 0, last = 0;
        intact &= cpu[i][0] == (unsigned char)i && cpu[i][size - 1] == (unsigned char)i;
        seen &= dma_sim_read(dev, dma[i], &first, 1) == 0 && first == (unsigned char)i;
        seen &= dma_sim_read(dev, dma[i] + size - 1, &last, 1) == 0 && last == (unsigned char)i;
    }
    CHECK(aligned);
    CHECK(inside);
    CHECK(intact);
    CHECK(seen);
    for (i = 0; i < count && cpu[i]; i++)
        dma_pool_free(pool, cpu[i], dma[i]);
    dma_pool_destroy(pool);
    free(cpu);
    free(dma);
}

static void bad_create(struct device *dev)
{
    CHECK(dma_pool_create("p", dev, 64, 3, 0) == NULL);     /* align not a power of two */
    CHECK(dma_pool_create("p", dev, 0, 8, 0) == NULL);      /* size 0 */
    CHECK(dma_pool_create("p", dev, 64, 8, 32) == NULL);    /* boundary below the block */
    CHECK(dma_pool_create("p", dev, 64, 8, 100) == NULL);   /* boundary not a power of two */
    CHECK(dma_pool_create("p", dev, (size_t)1 << 31, 8, 0) == NULL); /* above INT_MAX */
    CHECK(dma_pool_create(NULL, dev, 64, 8, 0) == NULL);
    CHECK(dma_pool_create("p", NULL, 64, 8, 0) == NULL);
    dma_pool_destroy(NULL); /* no-op */
}

static void zeroing_and_bad_frees(struct device *dev)
{
    struct dma_pool *pool = dma_pool_create("frees", dev, 64, 64, 0);
    dma_addr_t h = 0, h2 = 0, untouched = 0x1234;
    unsigned char *a, *b;
    char *foreign = (char *)kmalloc(64, GFP_KERNEL);
    const char *out;
    int i, zero = 1;

    CHECK(pool != NULL);
    a = (unsigned char *)dma_pool_alloc(pool, GFP_KERNEL, &h);
    CHECK(a != NULL);
    memset(a, 0xff, 64);
    dma_pool_free(pool, a, h);
    b = (unsigned char *)dma_pool_zalloc(pool, GFP_KERNEL, &h2);
    CHECK(b == a); /* the block just freed comes back first */
    for (i = 0; i < 64; i++)
        zero &= b[i] == 0;
    CHECK(zero);
    memset(b, 0xff, 64);
    dma_pool_free(pool, b, h2);
    b = (unsigned char *)dma_pool_alloc(pool, GFP_KERNEL | __GFP_ZERO, &h2);
    CHECK(b == a && b[0] == 0 && b[63] == 0);

    /* Bad arguments: NULL, handle untouched. */
    CHECK(dma_pool_alloc(NULL, GFP_KERNEL, &untouched) == NULL);
    CHECK(dma_pool_alloc(pool, GFP_KERNEL, NULL) == NULL);
    CHECK(dma_pool_zalloc(pool, 0x80000000u, &untouched) == NULL);
    CHECK_EQ(untouched, 0x1234);

    /* Bad frees are refused and change nothing. */
    capture_begin();
    dma_pool_free(pool, b + 16, h2 + 16); /* not a block start */
    dma_pool_free(pool, b, h2 + 64);      /* wrong bus address */
    dma_pool_free(pool, foreign, 0);      /* not the pool's */
    dma_pool_free(NULL, b, h2);           /* no pool */
    dma_pool_free(pool, NULL, 0);         /* no-op */
    dma_pool_free(pool, b, h2);           /* good */
    dma_pool_free(pool, b, h2);           /* double free */
    out = capture_end();
    CHECK(strstr(out, "dma_pool_free frees") != NULL);
    CHECK(strstr(out, "bad vaddr") != NULL);
    CHECK(strstr(out, "bad dma") != NULL);
    CHECK(strstr(out, "already free") != NULL);
    CHECK(strstr(out, "NULL pool") != NULL);

    /* Still whole: one block, handed out once. */
    a = (unsigned char *)dma_pool_alloc(pool, GFP_KERNEL, &h);
    b = (unsigned char *)dma_pool_alloc(pool, GFP_KERNEL, &h2);
    CHECK(a && b && a != b && h != h2);
    dma_pool_free(pool, a, h);
    dma_pool_free(pool, b, h2);
    dma_pool_destroy(pool);
    kfree(foreign);
}

/* Destroying a pool with blocks in use reports them and leaks their chunk. The pool
 * keeps its device alive, so it may be destroyed after the device. */
static void leak_report(void)
{
    TEST_DEVICE(dev, "leaky", DMA_BIT_MASK(32), true);
    struct dma_pool *pool = dma_pool_create("leaky-pool", dev, 128, 8, 0);
    dma_addr_t h[3];
    void *p[3];
    const char *out;
    int i;

    CHECK(pool != NULL);
    for (i = 0; i < 3; i++) {
        p[i] = dma_pool_alloc(pool, GFP_KERNEL, &h[i]);
        CHECK(p[i] != NULL);
    }
    dma_pool_free(pool, p[1], h[1]);
    dma_device_destroy(dev);
    capture_begin();
    dma_pool_destroy(pool);
    out = capture_end();
    CHECK(strstr(out, "dma_pool_destroy leaky-pool") != NULL);
    CHECK(strstr(out, "busy (2 blocks in use)") != NULL);
}

int main(void)
{
    TEST_DEVICE(coh, "pool-coh", DMA_BIT_MASK(32), true);
    TEST_DEVICE(nc, "pool-nc", DMA_BIT_MASK(32), false);
    struct dma_iommu_domain *dom = dma_iommu_domain_create(NULL);
    struct dma_device_config cfg;
    struct device *behind_iommu;
    uint64_t before;

    memset(&cfg, 0, sizeof cfg);
    cfg.name = "pool-iommu";
    cfg.coherent = true;
    cfg.iommu = dom;
    behind_iommu = dma_device_create(&cfg);
    CHECK(coh && nc && dom && behind_iommu);

    before = system_free_pages();
    /* The kernel's self-test shapes, and boundaries smaller than a chunk. */
    rules(coh, 16, 16, 0, 1024);
    rules(coh, 64, 64, 0, 1024);
    rules(coh, 256, 256, 0, 64);
    rules(coh, 4096, 4096, 0, 8);
    rules(coh, 68, 32, 4096, 200);
    rules(coh, 100, 64, 256, 200);
    rules(coh, 1000, 8, 1024, 20);
    rules(coh, 5000, 8, 0, 5);
    rules(coh, 1, 0, 0, 300);
    rules(nc, 100, 64, 256, 200);
    rules(nc, 68, 32, 4096, 200);
    rules(behind_iommu, 100, 64, 256, 200);
    CHECK_EQ(system_free_pages(), before); /* every chunk went back */

    bad_create(coh);
    zeroing_and_bad_frees(coh);
    zeroing_and_bad_frees(nc);
    leak_report();

    dma_device_destroy(coh);
    dma_device_destroy(nc);
    dma_device_destroy(behind_iommu);
    dma_iommu_domain_destroy(dom);
    return check_result("pool");
}
