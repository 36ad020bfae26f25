/*
 * QEMU's `edu` PCI device (docs/specs/edu.rst), shared by the example drivers: its
 * registers, the PCI command bits they need, the barriers between normal memory and the
 * device, and the `RESULT` lines the QEMU suite reads. Header-only; include it once per
 * program.
 */
#ifndef DMA_EXAMPLES_EDU_H
#define DMA_EXAMPLES_EDU_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>

#define EDU_VENDOR 0x1234
#define EDU_DEVICE 0x11e8

/* Registers (BAR0). */
#define EDU_IDENT 0x00
#define EDU_LIVENESS 0x04
#define EDU_DMA_SRC 0x80
#define EDU_DMA_DST 0x88
#define EDU_DMA_COUNT 0x90
#define EDU_DMA_CMD 0x98
#define EDU_CMD_START 1u
#define EDU_CMD_TO_RAM 2u

/* The device's 4 KiB buffer, at this device address. QEMU 7.2 aborts on a transfer that
 * ends exactly at its end (an off-by-one fixed upstream): move one byte less. */
#define EDU_BUF 0x40000u
#define XFER 4095u

#define PCI_VENDOR_ID 0x00
#define PCI_COMMAND 0x04
#define PCI_COMMAND_MEMORY 0x2
#define PCI_COMMAND_MASTER 0x4

/*
 * Ordering between normal memory and the device, as the kernel's writeq/readq imply:
 * the buffer's bytes must be visible before the write that starts the DMA, and the
 * status read that says "done" must come before reading the data. x86 keeps stores in
 * order and uncached accesses are not reordered with cached ones, so a compiler barrier
 * is enough there.
 */
#if defined(__aarch64__)
#define edu_wmb() __asm__ __volatile__("dmb oshst" ::: "memory")
#define edu_rmb() __asm__ __volatile__("dmb oshld" ::: "memory")
#else
#define edu_wmb() __asm__ __volatile__("" ::: "memory")
#define edu_rmb() __asm__ __volatile__("" ::: "memory")
#endif

static int failures;

/* Prints one `RESULT <name> PASS|FAIL <detail>` line and counts failures. */
static bool result(const char *name, bool ok, const char *fmt, ...)
{
    char detail[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    for (char *p = detail; *p; p++)
        if (*p == '\n')
            *p = ' ';
    printf("RESULT %s %s %s\n", name, ok ? "PASS" : "FAIL", detail);
    fflush(stdout);
    if (!ok)
        failures++;
    return ok;
}

#endif
