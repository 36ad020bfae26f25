
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

/* The two-step IOVA API: true when dma_iova_try_alloc gave the state an IOVA range. */
static inline bool dma_use_iova(struct dma_iova_state *state)
{
    return state->__size != 0;
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

/*
 * dma-debug names the C caller of a wrong call by file and line. Each call that reaches
 * dma-debug is a macro of its own name that records __FILE__ and __LINE__ first; a
 * function-like macro is not expanded again inside itself, so the inner name is the real
 * function (take its address, or call it through a pointer, as usual: then the caller is
 * unknown). The short forms above expand to these. Define DMA_NO_CALLER_MACROS before
 * including this header to call the functions directly.
 */
#ifndef DMA_NO_CALLER_MACROS
#define DMA_CALLER_(call) (dma_debug_set_caller(__FILE__, __LINE__), call)
#define dma_alloc_attrs(...) DMA_CALLER_(dma_alloc_attrs(__VA_ARGS__))
#define dma_free_attrs(...) DMA_CALLER_(dma_free_attrs(__VA_ARGS__))
#define dma_alloc_coherent(...) DMA_CALLER_(dma_alloc_coherent(__VA_ARGS__))
#define dma_free_coherent(...) DMA_CALLER_(dma_free_coherent(__VA_ARGS__))
#define dma_alloc_wc(...) DMA_CALLER_(dma_alloc_wc(__VA_ARGS__))
#define dma_free_wc(...) DMA_CALLER_(dma_free_wc(__VA_ARGS__))
#define dma_alloc_pages(...) DMA_CALLER_(dma_alloc_pages(__VA_ARGS__))
#define dma_free_pages(...) DMA_CALLER_(dma_free_pages(__VA_ARGS__))
#define dma_alloc_noncoherent(...) DMA_CALLER_(dma_alloc_noncoherent(__VA_ARGS__))
#define dma_free_noncoherent(...) DMA_CALLER_(dma_free_noncoherent(__VA_ARGS__))
#define dmam_alloc_attrs(...) DMA_CALLER_(dmam_alloc_attrs(__VA_ARGS__))
#define dmam_alloc_coherent(...) DMA_CALLER_(dmam_alloc_coherent(__VA_ARGS__))
#define dmam_free_coherent(...) DMA_CALLER_(dmam_free_coherent(__VA_ARGS__))
#define dma_map_single_attrs(...) DMA_CALLER_(dma_map_single_attrs(__VA_ARGS__))
#define dma_unmap_single_attrs(...) DMA_CALLER_(dma_unmap_single_attrs(__VA_ARGS__))
#define dma_map_page_attrs(...) DMA_CALLER_(dma_map_page_attrs(__VA_ARGS__))
#define dma_unmap_page_attrs(...) DMA_CALLER_(dma_unmap_page_attrs(__VA_ARGS__))
#define dma_map_phys(...) DMA_CALLER_(dma_map_phys(__VA_ARGS__))
#define dma_unmap_phys(...) DMA_CALLER_(dma_unmap_phys(__VA_ARGS__))
#define dma_map_resource(...) DMA_CALLER_(dma_map_resource(__VA_ARGS__))
#define dma_unmap_resource(...) DMA_CALLER_(dma_unmap_resource(__VA_ARGS__))
#define dma_map_sg_attrs(...) DMA_CALLER_(dma_map_sg_attrs(__VA_ARGS__))
#define dma_unmap_sg_attrs(...) DMA_CALLER_(dma_unmap_sg_attrs(__VA_ARGS__))
#define dma_map_sgtable(...) DMA_CALLER_(dma_map_sgtable(__VA_ARGS__))
#define dma_unmap_sgtable(...) DMA_CALLER_(dma_unmap_sgtable(__VA_ARGS__))
#define dma_sync_single_for_cpu(...) DMA_CALLER_(dma_sync_single_for_cpu(__VA_ARGS__))
#define dma_sync_single_for_device(...) DMA_CALLER_(dma_sync_single_for_device(__VA_ARGS__))
#define dma_sync_single_range_for_cpu(...) DMA_CALLER_(dma_sync_single_range_for_cpu(__VA_ARGS__))
#define dma_sync_single_range_for_device(...) DMA_CALLER_(dma_sync_single_range_for_device(__VA_ARGS__))
#define dma_sync_sg_for_cpu(...) DMA_CALLER_(dma_sync_sg_for_cpu(__VA_ARGS__))
#define dma_sync_sg_for_device(...) DMA_CALLER_(dma_sync_sg_for_device(__VA_ARGS__))
#define dma_sync_sgtable_for_cpu(...) DMA_CALLER_(dma_sync_sgtable_for_cpu(__VA_ARGS__))
#define dma_sync_sgtable_for_device(...) DMA_CALLER_(dma_sync_sgtable_for_device(__VA_ARGS__))
#define dma_cache_sync(...) DMA_CALLER_(dma_cache_sync(__VA_ARGS__))
#define dma_iova_link(...) DMA_CALLER_(dma_iova_link(__VA_ARGS__))
#define dma_iova_unlink(...) DMA_CALLER_(dma_iova_unlink(__VA_ARGS__))
#define dma_iova_destroy(...) DMA_CALLER_(dma_iova_destroy(__VA_ARGS__))
#define dma_alloc_noncontiguous(...) DMA_CALLER_(dma_alloc_noncontiguous(__VA_ARGS__))
#define dma_free_noncontiguous(...) DMA_CALLER_(dma_free_noncontiguous(__VA_ARGS__))
#define dma_pool_alloc(...) DMA_CALLER_(dma_pool_alloc(__VA_ARGS__))
#define dma_pool_zalloc(...) DMA_CALLER_(dma_pool_zalloc(__VA_ARGS__))
#define dma_pool_free(...) DMA_CALLER_(dma_pool_free(__VA_ARGS__))
#define dma_pool_destroy(...) DMA_CALLER_(dma_pool_destroy(__VA_ARGS__))
#define dmam_pool_destroy(...) DMA_CALLER_(dmam_pool_destroy(__VA_ARGS__))
#define dma_mapping_error(...) DMA_CALLER_(dma_mapping_error(__VA_ARGS__))
#define dma_sim_read(...) DMA_CALLER_(dma_sim_read(__VA_ARGS__))
#define dma_sim_write(...) DMA_CALLER_(dma_sim_write(__VA_ARGS__))
#define dma_device_destroy(...) DMA_CALLER_(dma_device_destroy(__VA_ARGS__))
#endif /* DMA_NO_CALLER_MACROS */

#endif /* DMA_MAPPING_INLINE_H */
