/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/*
 * A userspace driver for QEMU's `edu` PCI device (QEMU docs/specs/edu.rst) behind an
 * IOMMU, on libdma's VFIO devices: the device is bound to vfio-pci, libdma opens it in a
 * VFIO container of its own, and every DMA address the driver hands the device is an IOVA
 * that libdma allocated below the device's mask (28 bits unless QEMU got
 * `-device edu,dma_mask=...`) and the IOMMU translates to memory anywhere. The device
 * silently clamps an address beyond its mask, so every byte is verified.
 *
 * What a kernel PCI driver would call, with libdma's names:
 *   pci_set_master        -> dma_vfio_set_master
 *   pci_iomap(pdev, 0, 0) -> dma_vfio_map_bar(dev, 0, &len)
 *   pci_read_config_word  -> dma_vfio_config_read(dev, off, &v, 2)
 *   dma_alloc_coherent, dma_map_single, ... unchanged.
 *
 * Checks, each printing `RESULT c_vfio_<name> PASS|FAIL <detail>` (tests/qemu/run.sh reads
 * them); the exit status is 0 when all passed:
 *   c_vfio_system                 the platform (DMA_OPTS, or the default below)
 *   c_vfio_device                 dma_device_create_vfio
 *   c_vfio_config                 vendor and device ID from config space
 *   c_vfio_bus_master             dma_vfio_set_master, read back
 *   c_vfio_bar0                   BAR0 mapped; identification and liveness registers
 *   c_vfio_coherent_roundtrip     RAM -> device -> RAM through two coherent buffers
 *   c_vfio_map_single_pages       the same through two pages of libdma's RAM (alloc_pages,
 *                                 above the mask when there are such pages) mapped with
 *                                 dma_map_single: IOVAs below the mask, memory anywhere
 *   c_vfio_map_single_malloc      the same through malloc'ed pages
 *   c_vfio_dma_debug_clean        no dma-debug report, no live entry (only with dma_debug=1)
 *
 * Run as root in the guest after binding the device to vfio-pci
 * (`echo "1234 11e8" > /sys/bus/pci/drivers/vfio-pci/new_id`):
 *   DMA_OPTS="platform=host host_mem=4M swiotlb=0 dma_debug=1" edu_vfio [PCI_ADDR [DMA_MASK_BITS]]
 * PCI_ADDR defaults to 0000:00:03.0 (edu on q35), DMA_MASK_BITS to 28.
 *
 * Build (static, for an initramfs without a libc):
 *   cargo build --release -p dma-capi
 *   cc -static -O2 -std=c11 -Wall -Wextra -Werror -I include examples/c/edu_vfio.c \
 *      target/release/libdma.a -lpthread -ldl -lm -lrt
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <dma-mapping.h>

#include "edu.h"

#define DEFAULT_PCI_ADDR "0000:00:03.0"
#define DEFAULT_DMA_BITS 28
/* The host platform (real pinned pages; nothing bounces behind an IOMMU) with dma-debug
 * checking every call. */
#define DEFAULT_OPTS "platform=host host_mem=4M swiotlb=0 dma_debug=1"


#define BUF_SIZE 4096u



static unsigned dma_bits = DEFAULT_DMA_BITS;
static uint64_t dma_limit = 1ull << DEFAULT_DMA_BITS;


/* ---- registers (the kernel's readl/writel/readq/writeq) ----------------------------- */

static volatile uint8_t *bar0;

static uint32_t readl(size_t off)
{
    return *(volatile uint32_t *)(bar0 + off);
}

static void writel(uint32_t v, size_t off)
{
    *(volatile uint32_t *)(bar0 + off) = v;
}

static uint64_t readq(size_t off)
{
    return *(volatile uint64_t *)(bar0 + off);
}

static void writeq(uint64_t v, size_t off)
{
    *(volatile uint64_t *)(bar0 + off) = v;
}

/* ---- the DMA engine ------------------------------------------------------------------ */

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* Polls until the engine is idle (5 s at most): each transfer takes ~100 ms of QEMU time. */
static int edu_wait(void)
{
    double start = now();
    while (readq(EDU_DMA_CMD) & EDU_CMD_START) {
        if (now() - start > 5.0)
            return -ETIMEDOUT;
        struct timespec ms = {0, 1000000};
        nanosleep(&ms, NULL);
    }
    edu_rmb();
    return 0;
}

static int edu_dma(uint64_t src, uint64_t dst, uint64_t len, uint64_t cmd)
{
    int err = edu_wait();
    if (err)
        return err;
    writeq(src, EDU_DMA_SRC);
    writeq(dst, EDU_DMA_DST);
    writeq(len, EDU_DMA_COUNT);
    edu_wmb();
    writeq(EDU_CMD_START | cmd, EDU_DMA_CMD);
    return edu_wait();
}

/* RAM at `src` -> the device's buffer -> RAM at `dst`, XFER bytes each way. */
static int edu_round_trip(dma_addr_t src, dma_addr_t dst)
{
    int err = edu_dma(src, EDU_BUF, XFER, 0);
    return err ? err : edu_dma(EDU_BUF, dst, XFER, EDU_CMD_TO_RAM);
}

/* ---- memory ---------------------------------------------------------------------------- */

static uint8_t pattern(uint8_t seed, size_t i)
{
    return (uint8_t)((uint8_t)((uint8_t)i * 37u + seed) ^ (uint8_t)(i >> 8));
}

/* The source gets the pattern, the destination its complement. */
static void prepare(uint8_t *src, uint8_t *dst, uint8_t seed)
{
    for (size_t i = 0; i < BUF_SIZE; i++) {
        src[i] = pattern(seed, i);
        dst[i] = (uint8_t)~pattern(seed, i);
    }
}

/* dst[0..XFER) must be the pattern and its last byte still the complement. */
static bool verify(const volatile uint8_t *dst, uint8_t seed, char *why, size_t why_len)
{
    size_t bad = 0, first = 0;
    uint8_t got = 0, want = 0;
    for (size_t i = 0; i < BUF_SIZE; i++) {
        uint8_t w = i < XFER ? pattern(seed, i) : (uint8_t)~pattern(seed, i);
        if (dst[i] != w && !bad++) {
            first = i;
            got = dst[i];
            want = w;
        }
    }
    if (bad)
        snprintf(why, why_len, "%zu of %u bytes wrong, first at %zu: %#04x != %#04x", bad, BUF_SIZE, first, got,
                 want);
    return bad == 0;
}

/* A page's physical address from pagemap (root); 0 when unknown. Only for the report:
 * the device never sees it. */
static uint64_t phys_of(const void *va)
{
    uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE), e = 0;
    int fd = open("/proc/self/pagemap", O_RDONLY);
    if (fd < 0)
        return 0;
    ssize_t n = pread(fd, &e, sizeof e, (off_t)((uintptr_t)va / page * sizeof e));
    close(fd);
    if (n != (ssize_t)sizeof e || !(e & (1ull << 63)) || !(e & ((1ull << 55) - 1)))
        return 0;
    return (e & ((1ull << 55) - 1)) * page + (uintptr_t)va % page;
}

static bool below_mask(dma_addr_t a)
{
    return a != DMA_MAPPING_ERROR && a + BUF_SIZE <= dma_limit;
}

/* ---- the checks ---------------------------------------------------------------------- */

static void check_coherent(struct device *dev)
{
    char why[512] = "";
    dma_addr_t sh = 0, dh = 0;
    uint8_t *s = dma_alloc_coherent(dev, BUF_SIZE, &sh, GFP_KERNEL);
    uint8_t *d = dma_alloc_coherent(dev, BUF_SIZE, &dh, GFP_KERNEL);
    bool ok = false;
    int err;
    if (!s || !d) {
        snprintf(why, sizeof why, "dma_alloc_coherent failed");
    } else if (!below_mask(sh) || !below_mask(dh)) {
        snprintf(why, sizeof why, "IOVA beyond the %u-bit mask", dma_bits);
    } else {
        /* Coherent memory: written by the CPU, read by the device, no sync between. */
        prepare(s, d, 0x5a);
        if ((err = edu_round_trip(sh, dh)))
            snprintf(why, sizeof why, "DMA: %s", strerror(-err));
        else
            ok = verify(d, 0x5a, why, sizeof why);
    }
    result("c_vfio_coherent_roundtrip", ok,
           "phys %#" PRIx64 " -> iova %#" PRIx64 ", phys %#" PRIx64 " -> iova %#" PRIx64 ", bytes=%u%s%s",
           s ? phys_of(s) : 0, sh, d ? phys_of(d) : 0, dh, XFER, ok ? "" : ": ", why);
    if (s)
        dma_free_coherent(dev, BUF_SIZE, s, sh);
    if (d)
        dma_free_coherent(dev, BUF_SIZE, d, dh);
}

/*
 * Maps page `s` (to the device) and page `d` (from it) with dma_map_single, moves XFER
 * bytes through the device, unmaps and verifies; the IOVAs go to *sh and *dh. False with
 * the reason in `why` on failure.
 */
static bool map_single_round_trip(struct device *dev, uint8_t *s, uint8_t *d, uint8_t seed, dma_addr_t *sh,
                                  dma_addr_t *dh, char *why, size_t why_len)
{
    int err = 0;
    prepare(s, d, seed);
    *sh = dma_map_single(dev, s, BUF_SIZE, DMA_TO_DEVICE);
    if (dma_mapping_error(dev, *sh)) {
        snprintf(why, why_len, "dma_map_single(DMA_TO_DEVICE) failed");
        return false;
    }
    *dh = dma_map_single(dev, d, BUF_SIZE, DMA_FROM_DEVICE);
    if (dma_mapping_error(dev, *dh)) {
        dma_unmap_single(dev, *sh, BUF_SIZE, DMA_TO_DEVICE);
        snprintf(why, why_len, "dma_map_single(DMA_FROM_DEVICE) failed");
        return false;
    }
    bool ok = below_mask(*sh) && below_mask(*dh);
    if (!ok)
        snprintf(why, why_len, "IOVA beyond the %u-bit mask", dma_bits);
    else if ((err = edu_round_trip(*sh, *dh)))
        snprintf(why, why_len, "DMA: %s", strerror(-err));
    /* The unmaps hand the pages back to the CPU (and unpin them). */
    dma_unmap_single(dev, *sh, BUF_SIZE, DMA_TO_DEVICE);
    dma_unmap_single(dev, *dh, BUF_SIZE, DMA_FROM_DEVICE);
    return ok && !err && verify(d, seed, why, why_len);
}

/* Pages of the platform's RAM (the kernel's alloc_pages), above the mask if any. */
static void check_map_single_pages(struct device *dev)
{
    enum { MAX_TRIES = 2048 };
    static struct page *low[MAX_TRIES];
    struct page *high[2] = {NULL, NULL};
    size_t nr_low = 0, nr_high = 0;
    char why[512] = "";
    dma_addr_t sh = DMA_MAPPING_ERROR, dh = DMA_MAPPING_ERROR;
    while (nr_high < 2 && nr_low < MAX_TRIES) {
        struct page *p = dmalib_alloc_pages(GFP_KERNEL, 0);
        if (!p)
            break;
        if (phys_of(dmalib_page_address(p)) >= dma_limit)
            high[nr_high++] = p;
        else
            low[nr_low++] = p;
    }
    /* Without pages above the mask (a small guest), any two pages will do. */
    const char *where = "above the mask";
    while (nr_high < 2 && nr_low > 0) {
        high[nr_high++] = low[--nr_low];
        where = "(no pages above the mask)";
    }
    bool ok = false;
    uint8_t *s = NULL, *d = NULL;
    if (nr_high < 2) {
        snprintf(why, sizeof why, "dmalib_alloc_pages failed");
    } else {
        s = dmalib_page_address(high[0]);
        d = dmalib_page_address(high[1]);
        ok = map_single_round_trip(dev, s, d, 0x3c, &sh, &dh, why, sizeof why);
    }
    result("c_vfio_map_single_pages", ok,
           "phys %#" PRIx64 " -> iova %#" PRIx64 ", phys %#" PRIx64 " -> iova %#" PRIx64 " %s, bytes=%u%s%s",
           s ? phys_of(s) : 0, sh, d ? phys_of(d) : 0, dh, where, XFER, ok ? "" : ": ", why);
    for (size_t i = 0; i < nr_high; i++)
        dmalib___free_pages(high[i], 0);
    while (nr_low > 0)
        dmalib___free_pages(low[--nr_low], 0);
}

/* Ordinary heap memory, pinned: the IOMMU needs no bounce wherever it lies. */
static void check_map_single_malloc(struct device *dev)
{
    const size_t page = (size_t)sysconf(_SC_PAGESIZE), area = 16u << 20;
    char why[512] = "";
    uint8_t *heap = malloc(area + page), *s = NULL, *d = NULL;
    dma_addr_t sh = DMA_MAPPING_ERROR, dh = DMA_MAPPING_ERROR;
    bool ok = false;
    const char *where = "above the mask";
    if (!heap || mlock(heap, area + page)) {
        snprintf(why, sizeof why, "malloc/mlock of %zu bytes failed", area + page);
    } else {
        memset(heap, 0, area + page);
        uint8_t *first = (uint8_t *)(((uintptr_t)heap + page - 1) & ~(uintptr_t)(page - 1));
        for (uint8_t *p = first; p + page <= heap + area + page && !d; p += page) {
            if (phys_of(p) < dma_limit)
                continue;
            if (!s)
                s = p;
            else
                d = p;
        }
        if (!d) {
            s = first;
            d = first + page;
            where = "(no pages above the mask)";
        }
        ok = map_single_round_trip(dev, s, d, 0xa5, &sh, &dh, why, sizeof why);
    }
    result("c_vfio_map_single_malloc", ok,
           "malloc phys %#" PRIx64 " -> iova %#" PRIx64 ", phys %#" PRIx64 " -> iova %#" PRIx64 " %s, bytes=%u%s%s",
           s ? phys_of(s) : 0, sh, d ? phys_of(d) : 0, dh, where, XFER, ok ? "" : ": ", why);
    free(heap);
}

int main(int argc, char **argv)
{
    const char *addr = argc > 1 ? argv[1] : DEFAULT_PCI_ADDR;
    if (argc > 3 || (argc == 3 && (atoi(argv[2]) < 20 || atoi(argv[2]) > 63))) {
        fprintf(stderr, "usage: %s [PCI_ADDR (default %s) [DMA_MASK_BITS (20..63, default %d)]]\n", argv[0],
                DEFAULT_PCI_ADDR, DEFAULT_DMA_BITS);
        return 2;
    }
    if (argc == 3) {
        dma_bits = (unsigned)atoi(argv[2]);
        dma_limit = 1ull << dma_bits;
    }

    const char *opts = getenv("DMA_OPTS");
    if (!opts || !*opts)
        opts = DEFAULT_OPTS;
    int err = dma_system_init(opts);
    if (!result("c_vfio_system", !err, "DMA_OPTS=\"%s\"%s%s", opts, err ? ": " : "", err ? strerror(-err) : ""))
        return 1;

    /* What the device is: its mask, and coherent (PCI on x86 snoops the caches). The name
     * stays NULL: the device is called by its PCI address. */
    struct dma_device_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.dma_mask = DMA_BIT_MASK(dma_bits);
    cfg.coherent_dma_mask = DMA_BIT_MASK(dma_bits);
    cfg.coherent = true;
    struct device *dev = dma_device_create_vfio(addr, &cfg);
    if (!result("c_vfio_device", dev != NULL, "dma_device_create_vfio(\"%s\", %u-bit mask)%s", addr, dma_bits,
                dev ? "" : " failed (see its message)"))
        return 1;

    uint16_t id[2] = {0, 0};
    err = dma_vfio_config_read(dev, PCI_VENDOR_ID, id, sizeof id);
    if (!result("c_vfio_config", !err && id[0] == EDU_VENDOR && id[1] == EDU_DEVICE, "vendor %04x device %04x%s%s",
                id[0], id[1], err ? ": " : "", err ? strerror(-err) : ""))
        goto done;

    uint16_t cmd = 0;
    err = dma_vfio_set_master(dev);
    if (!err)
        err = dma_vfio_config_read(dev, PCI_COMMAND, &cmd, sizeof cmd);
    if (!result("c_vfio_bus_master", !err && (cmd & PCI_COMMAND_MASTER), "command register %#06x%s%s", cmd,
                err ? ": " : "", err ? strerror(-err) : ""))
        goto done;

    size_t bar_len = 0;
    void *bar = dma_vfio_map_bar(dev, 0, &bar_len);
    bar0 = (volatile uint8_t *)bar;
    uint32_t ident = bar ? readl(EDU_IDENT) : 0, live = 0;
    if (bar) {
        writel(0x12345678, EDU_LIVENESS);
        live = readl(EDU_LIVENESS);
    }
    if (!result("c_vfio_bar0", bar && (ident & 0xff) == 0xed && live == (uint32_t)~0x12345678u,
                "%zu bytes, ident %#x, liveness %#x", bar_len, ident, live))
        goto done;

    check_coherent(dev);
    check_map_single_pages(dev);
    check_map_single_malloc(dev);

    /* -EOPNOTSUPP: dma-debug is off, nothing to report. */
    struct dma_debug_stats dbg;
    memset(&dbg, 0, sizeof dbg);
    err = dma_debug_get_stats(&dbg);
    if (err != -EOPNOTSUPP)
        result("c_vfio_dma_debug_clean", !err && dbg.error_count == 0 && dbg.entries == 0,
               "%" PRIu64 " reports, %" PRIu64 " live entries%s%s", dbg.error_count, dbg.entries, err ? ": " : "",
               err ? strerror(-err) : "");

    dma_vfio_unmap_bar(dev, bar);
done:
    dma_device_destroy(dev);
    return failures ? 1 : 0;
}
