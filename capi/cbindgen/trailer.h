
/* cbindgen puts this part after the include guard, so it has its own. */
#ifndef DMA_MAPPING_INLINE_H
#define DMA_MAPPING_INLINE_H

/*
 * The kernel's short forms, as the kernel defines them (macros or static inlines over
 * the *_attrs calls above).
 */
#define dma_map_single(d, a, s, r) dma_map_single_attrs(d, a, s, r, 0)
#define dma_unmap_single(d, a, s, r) dma_unmap_single_attrs(d, a, s, r, 0)
#define dma_map_page(d, p, o, s, r) dma_map_page_attrs(d, p, o, s, r, 0)
#define dma_unmap_page(d, a, s, r) dma_unmap_page_attrs(d, a, s, r, 0)
#define dma_map_sg(d, s, n, r) dma_map_sg_attrs(d, s, n, r, 0)
#define dma_unmap_sg(d, s, n, r) dma_unmap_sg_attrs(d, s, n, r, 0)
#define dma_get_sgtable(d, t, v, h, s) dma_get_sgtable_attrs(d, t, v, h, s, 0)
#define dma_mmap_coherent(d, v, c, h, s) dma_mmap_attrs(d, v, c, h, s, 0)

static inline int dma_mmap_wc(struct device *dev, struct vm_area_struct *vma, void *cpu_addr,
                              dma_addr_t dma_addr, size_t size)
{
    return dma_mmap_attrs(dev, vma, cpu_addr, dma_addr, size, DMA_ATTR_WRITE_COMBINE);
}

/*
 * Scatter-gather helpers (<linux/scatterlist.h>). Lists here are plain arrays: no chaining,
 * so sg_next is the next element and loops run on a count.
 */
static inline void sg_init_table(struct scatterlist *sgl, unsigned int nents)
{
    unsigned int i;
    for (i = 0; i < nents; i++) {
        sgl[i].cpu_addr = NULL;
        sgl[i].length = 0;
        sgl[i].dma_length = 0;
        sgl[i].dma_address = 0;
    }
}

static inline void sg_set_buf(struct scatterlist *sg, const void *buf, unsigned int buflen)
{
    sg->cpu_addr = (void *)buf;
    sg->length = buflen;
}

/* A struct page * is the page's CPU address, so the page and offset fold into cpu_addr. */
static inline void sg_set_page(struct scatterlist *sg, struct page *page, unsigned int len,
                               unsigned int offset)
{
    sg->cpu_addr = (void *)((char *)(void *)page + offset);
    sg->length = len;
}

static inline struct scatterlist *sg_next(struct scatterlist *sg)
{
    return sg + 1;
}

static inline void *sg_virt(struct scatterlist *sg)
{
    return sg->cpu_addr;
}

#define sg_dma_address(sg) ((sg)->dma_address)
#define sg_dma_len(sg) ((sg)->dma_length)

#define for_each_sg(sglist, sg, nr, __i) \
    for ((__i) = 0, (sg) = (sglist); (__i) < (nr); (__i)++, (sg) = sg_next(sg))

/* The CPU entries of a table (orig_nents of them). */
#define for_each_sgtable_sg(sgt, sg, i) for_each_sg((sgt)->sgl, sg, (sgt)->orig_nents, i)

/* The DMA segments of a mapped table (nents of them). */
#define for_each_sgtable_dma_sg(sgt, sg, i) for_each_sg((sgt)->sgl, sg, (sgt)->nents, i)

#endif /* DMA_MAPPING_INLINE_H */
