/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/*
 * The kernel's names for the memory calls of libdma, for driver code ported from the
 * kernel. libdma exports them as dmalib_* so that linking it never clashes with another
 * library's symbols; include this header only where the kernel names are wanted.
 *
 * kmalloc'ed memory and pages come from the platform's RAM: they map without bouncing
 * and kmalloc objects never share a cache line. A struct page * is the page's CPU
 * address.
 */
#ifndef DMA_KERNEL_COMPAT_H
#define DMA_KERNEL_COMPAT_H

#include "dma-mapping.h"

#define kmalloc(size, flags) dmalib_kmalloc(size, flags)
#define kzalloc(size, flags) dmalib_kzalloc(size, flags)
#define kfree(objp) dmalib_kfree(objp)
#define alloc_pages(gfp, order) dmalib_alloc_pages(gfp, order)
#define alloc_page(gfp) dmalib_alloc_pages(gfp, 0)
#define __free_pages(page, order) dmalib___free_pages(page, order)
#define __free_page(page) dmalib___free_pages(page, 0)
#define page_address(page) dmalib_page_address(page)
#define virt_to_page(addr) dmalib_virt_to_page(addr)
#define virt_to_phys(addr) dmalib_virt_to_phys(addr)
#define page_to_phys(page) dmalib_page_to_phys(page)
#define __get_free_pages(gfp, order) dmalib___get_free_pages(gfp, order)
#define __get_free_page(gfp) dmalib___get_free_pages(gfp, 0)
#define free_pages(addr, order) dmalib_free_pages(addr, order)
#define free_page(addr) dmalib_free_pages(addr, 0)

#ifndef PAGE_SHIFT
#define PAGE_SHIFT DMA_PAGE_SHIFT
#endif
#ifndef PAGE_SIZE
#define PAGE_SIZE DMA_PAGE_SIZE
#endif

#endif /* DMA_KERNEL_COMPAT_H */
