/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/*
 * A userspace driver for QEMU's `edu` PCI device (QEMU docs/specs/edu.rst) on the DMA API
 * of libdma, without an IOMMU: the device sees physical addresses and has a 28-bit DMA
 * mask (unless QEMU got `-device edu,dma_mask=...`: give the width as the first argument),
 * and it silently clamps any address beyond it (so every byte is verified).
 *
 * The registers come from sysfs (`resource0` mapped, bus mastering set through `config`),
 * the buffers and bus addresses from libdma's host platform (pinned pages, physical
 * addresses from /proc/self/pagemap; root only):
 *
 *   - a coherent buffer pair (dma_alloc_coherent): no syncs;
 *   - a non-coherent buffer pair (dma_alloc_noncoherent) on the device declared
 *     non-coherent, handed to the device and back with dma_sync_single_for_*;
 *   - malloc'ed memory above the mask (256 MiB) mapped with dma_map_single: the device
 *     cannot reach it, so the mapping must bounce through the swiotlb pool below the mask.
 *
 * Each check prints `RESULT <name> PASS|FAIL <detail>` (tests/qemu/run.sh reads them);
 * the exit status is 0 when all passed.
 *
 * Run as root inside the guest, e.g.
 *   DMA_OPTS="platform=host host_mem=4M hugepages=16 host_low=2M,0x10000000 swiotlb=1M dma_debug=1" edu_driver
 * (hugepages need `echo N > /proc/sys/vm/nr_hugepages` first).
 *
 * Build (static, for an initramfs without a libc):
 *   cargo build --release -p dma-capi
 *   cc -static -O2 -I include examples/c/edu_driver.c target/release/libdma.a -lpthread -ldl -lm -lrt
 */
#define _GNU_SOURCE
#include <dirent.h>
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
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <dma-mapping.h>

#include "edu.h"


#define EDU_DEFAULT_DMA_BITS 28

/* The device's DMA mask: its width, and the first address beyond it. */
static unsigned dma_bits = EDU_DEFAULT_DMA_BITS;
static uint64_t dma_limit = 1ull << EDU_DEFAULT_DMA_BITS;




/* ---- the device --------------------------------------------------------------------- */

struct edu {
    char sysfs[128];
    volatile uint8_t *bar;
    size_t bar_len;
    uint32_t ident;
};

static uint32_t rd32(const struct edu *e, size_t off)
{
    return *(volatile uint32_t *)(e->bar + off);
}

static void wr32(const struct edu *e, size_t off, uint32_t v)
{
    *(volatile uint32_t *)(e->bar + off) = v;
}

static uint64_t rd64(const struct edu *e, size_t off)
{
    return *(volatile uint64_t *)(e->bar + off);
}

static void wr64(const struct edu *e, size_t off, uint64_t v)
{
    *(volatile uint64_t *)(e->bar + off) = v;
}

static unsigned read_hex(const char *dir, const char *file)
{
    char path[192], buf[32] = {0};
    snprintf(path, sizeof path, "%s/%s", dir, file);
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    return n > 0 ? (unsigned)strtoul(buf, NULL, 16) : 0;
}

/* The sysfs directory of the first edu device, in bus order. */
static int edu_find(struct edu *e)
{
    DIR *d = opendir("/sys/bus/pci/devices");
    if (!d)
        return -errno;
    char best[128] = "";
    struct dirent *ent;
    while ((ent = readdir(d))) {
        if (ent->d_name[0] == '.')
            continue;
        char dir[128];
        snprintf(dir, sizeof dir, "/sys/bus/pci/devices/%.64s", ent->d_name);
        if (read_hex(dir, "vendor") == EDU_VENDOR && read_hex(dir, "device") == EDU_DEVICE &&
            (!best[0] || strcmp(dir, best) < 0))
            snprintf(best, sizeof best, "%s", dir);
    }
    closedir(d);
    if (!best[0])
        return -ENODEV;
    snprintf(e->sysfs, sizeof e->sysfs, "%s", best);
    return 0;
}

/* Maps resource0 and checks the identification and liveness registers. */
static int edu_probe(struct edu *e, char *why, size_t why_len)
{
    int err = edu_find(e);
    if (err) {
        snprintf(why, why_len, "no PCI device %04x:%04x: %s", EDU_VENDOR, EDU_DEVICE, strerror(-err));
        return -1;
    }
    char path[160];
    snprintf(path, sizeof path, "%s/resource0", e->sysfs);
    int fd = open(path, O_RDWR | O_SYNC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0) {
        snprintf(why, why_len, "%s: %s", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    void *p = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    if (p == MAP_FAILED) {
        snprintf(why, why_len, "mmap %s: %s", path, strerror(errno));
        return -1;
    }
    e->bar = p;
    e->bar_len = (size_t)st.st_size;
    e->ident = rd32(e, EDU_IDENT);
    if ((e->ident & 0xff) != 0xed) {
        snprintf(why, why_len, "ident %#x is not an edu device", e->ident);
        return -1;
    }
    wr32(e, EDU_LIVENESS, 0x12345678);
    uint32_t back = rd32(e, EDU_LIVENESS);
    if (back != (uint32_t)~0x12345678u) {
        snprintf(why, why_len, "liveness register returned %#x", back);
        return -1;
    }
    return 0;
}

/* Sets memory decoding and bus mastering in the command register (sysfs config). */
static int edu_bus_master(const struct edu *e, uint16_t *cmd_out)
{
    char path[160];
    snprintf(path, sizeof path, "%s/config", e->sysfs);
    int fd = open(path, O_RDWR);
    if (fd < 0)
        return -errno;
    uint8_t b[2];
    int err = 0;
    if (pread(fd, b, 2, PCI_COMMAND) != 2) {
        err = -EIO;
    } else {
        uint16_t cmd = (uint16_t)(b[0] | b[1] << 8) | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER;
        b[0] = (uint8_t)cmd;
        b[1] = (uint8_t)(cmd >> 8);
        if (pwrite(fd, b, 2, PCI_COMMAND) != 2)
            err = -EIO;
        else if (pread(fd, b, 2, PCI_COMMAND) != 2)
            err = -EIO;
        else
            *cmd_out = (uint16_t)(b[0] | b[1] << 8);
    }
    close(fd);
    return err;
}

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* Polls the command register until the engine is idle (5 s at most). */
static int edu_wait(const struct edu *e)
{
    double start = now();
    while (rd64(e, EDU_DMA_CMD) & EDU_CMD_START) {
        if (now() - start > 5.0)
            return -ETIMEDOUT;
        struct timespec ms = {0, 1000000};
        nanosleep(&ms, NULL);
    }
    edu_rmb();
    return 0;
}

static int edu_dma(const struct edu *e, uint64_t src, uint64_t dst, uint64_t len, uint64_t dir)
{
    int err = edu_wait(e);
    if (err)
        return err;
    wr64(e, EDU_DMA_SRC, src);
    wr64(e, EDU_DMA_DST, dst);
    wr64(e, EDU_DMA_COUNT, len);
    edu_wmb(); /* the buffer and the parameters before the start bit */
    wr64(e, EDU_DMA_CMD, EDU_CMD_START | dir);
    return edu_wait(e);
}

/* Guest memory at bus address `ram` -> the device buffer. */
static int edu_to_device(const struct edu *e, dma_addr_t ram, uint64_t len)
{
    return edu_dma(e, ram, EDU_BUF, len, 0);
}

/* The device buffer -> guest memory at bus address `ram`. */
static int edu_to_ram(const struct edu *e, dma_addr_t ram, uint64_t len)
{
    return edu_dma(e, EDU_BUF, ram, len, EDU_CMD_TO_RAM);
}

/* ---- memory helpers ----------------------------------------------------------------- */

static uint8_t pattern(uint8_t seed, size_t i)
{
    return (uint8_t)((uint8_t)((uint8_t)i * 31u + seed) ^ (uint8_t)(i >> 8));
}

static void fill(uint8_t *p, size_t len, uint8_t seed, bool invert)
{
    for (size_t i = 0; i < len; i++)
        p[i] = invert ? (uint8_t)~pattern(seed, i) : pattern(seed, i);
}

/*
 * Checks that p[0..XFER) is the pattern and p[XFER..len) still its complement; describes
 * the first difference in `why`.
 */
static bool verify(const volatile uint8_t *p, size_t len, uint8_t seed, char *why, size_t why_len)
{
    size_t bad = 0, first = 0;
    uint8_t got = 0, want = 0;
    for (size_t i = 0; i < len; i++) {
        uint8_t w = i < XFER ? pattern(seed, i) : (uint8_t)~pattern(seed, i);
        if (p[i] != w) {
            if (!bad++) {
                first = i;
                got = p[i];
                want = w;
            }
        }
    }
    if (bad)
        snprintf(why, why_len, "%zu of %zu bytes wrong, first at %zu: %#04x != %#04x%s", bad, len, first, got,
                 want, first >= XFER ? " (past the transfer)" : "");
    return bad == 0;
}

/* The physical address of a present page of ours, from pagemap; 0 when unknown. */
static uint64_t phys_of(const void *va)
{
    long page = sysconf(_SC_PAGESIZE);
    int fd = open("/proc/self/pagemap", O_RDONLY);
    if (fd < 0)
        return 0;
    uint64_t e = 0;
    ssize_t n = pread(fd, &e, sizeof e, (off_t)((uintptr_t)va / (uintptr_t)page * sizeof e));
    close(fd);
    if (n != (ssize_t)sizeof e || !(e & (1ull << 63)))
        return 0;
    uint64_t pfn = e & ((1ull << 55) - 1);
    return pfn ? pfn * (uint64_t)page + (uintptr_t)va % (uintptr_t)page : 0;
}

static bool below_mask(dma_addr_t a, size_t len)
{
    return a != DMA_MAPPING_ERROR && a + len <= dma_limit;
}

/* ---- the checks --------------------------------------------------------------------- */

static struct device *make_device(const char *name, bool coherent)
{
    struct dma_device_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.name = name;
    cfg.dma_mask = DMA_BIT_MASK(dma_bits);
    cfg.coherent_dma_mask = DMA_BIT_MASK(dma_bits);
    cfg.coherent = coherent;
    return dma_device_create(&cfg);
}

static void check_coherent(const struct edu *e, struct device *dev)
{
    const size_t size = 4096;
    char why[512] = "";
    dma_addr_t sh = 0, dh = 0;
    uint8_t *s = dma_alloc_coherent(dev, size, &sh, GFP_KERNEL);
    uint8_t *d = dma_alloc_coherent(dev, size, &dh, GFP_KERNEL);
    bool ok = false;
    int err = 0;
    if (!s || !d) {
        snprintf(why, sizeof why, "dma_alloc_coherent failed");
    } else if (!below_mask(sh, size) || !below_mask(dh, size)) {
        snprintf(why, sizeof why, "bus addresses %#" PRIx64 ", %#" PRIx64 " beyond the %u-bit mask", sh, dh,
                 dma_bits);
    } else if (phys_of(s) != sh || phys_of(d) != dh) {
        /* No IOMMU and no DMA offset on this platform: bus address = physical address. */
        snprintf(why, sizeof why, "bus %#" PRIx64 "/%#" PRIx64 " but pagemap says %#" PRIx64 "/%#" PRIx64, sh, dh,
                 phys_of(s), phys_of(d));
    } else {
        /* Coherent memory: the CPU writes, the device reads, with no sync in between. */
        fill(s, size, 0xc1, false);
        fill(d, size, 0xc1, true);
        if ((err = edu_to_device(e, sh, XFER)) || (err = edu_to_ram(e, dh, XFER)))
            snprintf(why, sizeof why, "DMA: %s", strerror(-err));
        else
            ok = verify(d, size, 0xc1, why, sizeof why);
    }
    result("c_coherent_roundtrip", ok, "src dma=%#" PRIx64 " dst dma=%#" PRIx64 " bytes=%u%s%s", sh, dh, XFER,
           ok ? "" : ": ", why);
    if (s)
        dma_free_coherent(dev, size, s, sh);
    if (d)
        dma_free_coherent(dev, size, d, dh);
}

static void check_noncoherent(const struct edu *e, struct device *dev)
{
    const size_t size = 4096;
    char why[512] = "";
    dma_addr_t sh = 0, dh = 0;
    uint8_t *s = dma_alloc_noncoherent(dev, size, &sh, DMA_TO_DEVICE, GFP_KERNEL);
    uint8_t *d = dma_alloc_noncoherent(dev, size, &dh, DMA_FROM_DEVICE, GFP_KERNEL);
    bool ok = false;
    int err = 0;
    if (!s || !d) {
        snprintf(why, sizeof why, "dma_alloc_noncoherent failed");
    } else if (!below_mask(sh, size) || !below_mask(dh, size)) {
        snprintf(why, sizeof why, "bus addresses %#" PRIx64 ", %#" PRIx64 " beyond the %u-bit mask", sh, dh,
                 dma_bits);
    } else {
        /* The CPU owns both buffers: write them, then hand them to the device. The sync
         * of the destination writes back (and drops) its dirty lines, so none of them can
         * be evicted over the device's data later. */
        fill(s, size, 0xd1, false);
        fill(d, size, 0xd1, true);
        dma_sync_single_for_device(dev, sh, size, DMA_TO_DEVICE);
        dma_sync_single_for_device(dev, dh, size, DMA_FROM_DEVICE);
        if ((err = edu_to_device(e, sh, XFER)) || (err = edu_to_ram(e, dh, XFER))) {
            snprintf(why, sizeof why, "DMA: %s", strerror(-err));
        } else {
            /* Back to the CPU: drops any lines the CPU may have fetched meanwhile, so it
             * reads what the device wrote. */
            dma_sync_single_for_cpu(dev, dh, size, DMA_FROM_DEVICE);
            ok = verify(d, size, 0xd1, why, sizeof why);
        }
        dma_sync_single_for_cpu(dev, sh, size, DMA_TO_DEVICE);
    }
    result("c_noncoherent_roundtrip", ok, "src dma=%#" PRIx64 " dst dma=%#" PRIx64 " bytes=%u%s%s", sh, dh, XFER,
           ok ? "" : ": ", why);
    if (s)
        dma_free_noncoherent(dev, size, s, sh, DMA_TO_DEVICE);
    if (d)
        dma_free_noncoherent(dev, size, d, dh, DMA_FROM_DEVICE);
}

/* Up to this many malloc'ed chunks of CHUNK bytes are searched for pages above the mask. */
#define CHUNK (4u << 20)
#define MAX_CHUNKS 64

static void check_map_single(const struct edu *e, struct device *dev)
{
    /* Plain malloc'ed memory (not the library's RAM), of which two pages lie above the
     * device's mask: the device would clamp their addresses and scribble elsewhere, so
     * the mappings must bounce. Where the kernel puts a process's pages is its business:
     * allocate (and lock) chunks until two such pages turn up. */
    const size_t page = (size_t)sysconf(_SC_PAGESIZE);
    char why[512] = "";
    uint8_t *chunks[MAX_CHUNKS] = {0}, *s = NULL, *d = NULL;
    unsigned nr = 0;
    uint64_t sp = 0, dp = 0;
    dma_addr_t sh = DMA_MAPPING_ERROR, dh = DMA_MAPPING_ERROR;
    struct dma_stats before, after;
    bool ok = false;
    int err = 0;
    while (!d && nr < MAX_CHUNKS) {
        uint8_t *buf = malloc(CHUNK + page);
        if (!buf || mlock(buf, CHUNK + page)) {
            free(buf);
            snprintf(why, sizeof why, "malloc/mlock of %zu bytes failed", CHUNK + page);
            goto out;
        }
        chunks[nr++] = buf;
        memset(buf, 0, CHUNK + page);
        uint8_t *first = (uint8_t *)(((uintptr_t)buf + page - 1) & ~(uintptr_t)(page - 1));
        for (uint8_t *p = first; p + page <= buf + CHUNK + page && !d; p += page) {
            uint64_t pa = phys_of(p);
            if (pa < dma_limit)
                continue;
            if (!s) {
                s = p;
                sp = pa;
            } else {
                d = p;
                dp = pa;
            }
        }
    }
    if (!d) {
        snprintf(why, sizeof why, "no two pages above %#" PRIx64 " in %u malloc'ed bytes", dma_limit, nr * CHUNK);
        goto out;
    }
    if (dma_system_stats(&before)) {
        snprintf(why, sizeof why, "dma_system_stats failed");
        goto out;
    }
    fill(s, page, 0xe1, false);
    fill(d, page, 0xe1, true);
    sh = dma_map_single(dev, s, XFER, DMA_TO_DEVICE);
    if (dma_mapping_error(dev, sh)) {
        sh = DMA_MAPPING_ERROR;
        snprintf(why, sizeof why, "dma_map_single(DMA_TO_DEVICE) failed");
        goto out;
    }
    dh = dma_map_single(dev, d, XFER, DMA_FROM_DEVICE);
    if (dma_mapping_error(dev, dh)) {
        dh = DMA_MAPPING_ERROR;
        snprintf(why, sizeof why, "dma_map_single(DMA_FROM_DEVICE) failed");
        goto out;
    }
    if (!below_mask(sh, XFER) || !below_mask(dh, XFER)) {
        snprintf(why, sizeof why, "bus address beyond the %u-bit mask", dma_bits);
        goto out;
    }
    if ((err = edu_to_device(e, sh, XFER)) || (err = edu_to_ram(e, dh, XFER))) {
        snprintf(why, sizeof why, "DMA: %s", strerror(-err));
        goto out;
    }
    /* The device wrote the bounce slot, not our page: it still holds the complement. (A
     * test's peek; a driver would not look before the unmap.) */
    for (size_t i = 0; i < page; i++) {
        uint8_t untouched = (uint8_t)~pattern(0xe1, i);
        if (d[i] != untouched) {
            snprintf(why, sizeof why, "byte %zu of the page above the mask changed before the unmap: no bounce?", i);
            goto out;
        }
    }
    /* The unmap copies the bounce slot back into the page. */
    dma_unmap_single(dev, sh, XFER, DMA_TO_DEVICE);
    dma_unmap_single(dev, dh, XFER, DMA_FROM_DEVICE);
    if (dma_system_stats(&after)) {
        snprintf(why, sizeof why, "dma_system_stats failed");
        sh = dh = DMA_MAPPING_ERROR;
        goto out;
    }
    ok = verify(d, page, 0xe1, why, sizeof why);
    if (ok && after.swiotlb_mappings < before.swiotlb_mappings + 2) {
        ok = false;
        snprintf(why, sizeof why, "swiotlb made %" PRIu64 " mappings, want 2",
                 after.swiotlb_mappings - before.swiotlb_mappings);
    }
    result("c_map_single_bounce", ok,
           "malloc src phys=%#" PRIx64 " -> dma=%#" PRIx64 ", dst phys=%#" PRIx64 " -> dma=%#" PRIx64
           " (bounced: %" PRIu64 " mappings, %" PRIu64 " bytes), bytes=%u%s%s",
           sp, sh, dp, dh, after.swiotlb_mappings - before.swiotlb_mappings,
           after.swiotlb_bytes_bounced - before.swiotlb_bytes_bounced, XFER, ok ? "" : ": ", why);
    while (nr)
        free(chunks[--nr]);
    return;
out:
    if (sh != DMA_MAPPING_ERROR)
        dma_unmap_single(dev, sh, XFER, DMA_TO_DEVICE);
    if (dh != DMA_MAPPING_ERROR)
        dma_unmap_single(dev, dh, XFER, DMA_FROM_DEVICE);
    result("c_map_single_bounce", false, "src phys=%#" PRIx64 " dst phys=%#" PRIx64 ": %s", sp, dp, why);
    while (nr)
        free(chunks[--nr]);
}

int main(int argc, char **argv)
{
    if (argc > 2 || (argc == 2 && (atoi(argv[1]) < 20 || atoi(argv[1]) > 63))) {
        fprintf(stderr, "usage: %s [DMA_MASK_BITS (20..63, default %d)]\n", argv[0], EDU_DEFAULT_DMA_BITS);
        return 2;
    }
    if (argc == 2) {
        dma_bits = (unsigned)atoi(argv[1]);
        dma_limit = 1ull << dma_bits;
    }
    struct edu e;
    char why[512] = "";
    memset(&e, 0, sizeof e);
    int err = edu_probe(&e, why, sizeof why);
    if (!result("c_edu_probe", err == 0, "%s ident=%#x%s%s", e.sysfs, e.ident, err ? ": " : "", why))
        return 1;

    uint16_t cmd = 0;
    err = edu_bus_master(&e, &cmd);
    if (!result("c_bus_master", !err && (cmd & PCI_COMMAND_MASTER), "command register %#06x%s%s", cmd,
                err ? ": " : "", err ? strerror(-err) : ""))
        return 1;

    const char *opts = getenv("DMA_OPTS");
    err = opts ? dma_system_init(opts) : -EINVAL;
    struct dma_stats st;
    memset(&st, 0, sizeof st);
    if (!err)
        err = dma_system_stats(&st);
    if (!result("c_system", !err && st.swiotlb_total_slots > 0,
                "DMA_OPTS=\"%s\": ZONE_DMA %" PRIu64 " ZONE_DMA32 %" PRIu64 " ZONE_NORMAL %" PRIu64
                " pages, %" PRIu64 " swiotlb slots%s%s",
                opts ? opts : "(unset)", st.zones[DMA_ZONE_DMA].total_pages, st.zones[DMA_ZONE_DMA32].total_pages,
                st.zones[DMA_ZONE_NORMAL].total_pages, st.swiotlb_total_slots, err ? ": " : "",
                err ? strerror(-err) : ""))
        return 1;

    /* One piece of hardware, declared twice: as the coherent device it is, and as a
     * non-coherent one, so the syncs run the real cache maintenance. */
    struct device *coh = make_device("edu", true);
    struct device *nc = make_device("edu-noncoherent", false);
    if (!result("c_devices", coh && nc, "dma_device_create: %s, %s", coh ? "edu" : "FAILED",
                nc ? "edu-noncoherent" : "FAILED"))
        return 1;

    check_coherent(&e, coh);
    check_noncoherent(&e, nc);
    check_map_single(&e, coh);

    struct dma_debug_stats dbg;
    memset(&dbg, 0, sizeof dbg);
    err = dma_debug_get_stats(&dbg);
    result("c_dma_debug_clean", !err && dbg.error_count == 0 && dbg.entries == 0,
           "%" PRIu64 " reports, %" PRIu64 " live entries%s%s", dbg.error_count, dbg.entries, err ? ": " : "",
           err ? strerror(-err) : "");

    dma_device_destroy(nc);
    dma_device_destroy(coh);
    return failures ? 1 : 0;
}
