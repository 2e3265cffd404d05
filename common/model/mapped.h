/* mapped.h - a model whose weights stay in their file.
 *
 * Loaded mapped (io/load.h's spq_model_load_mapped), a Hugging Face model
 * keeps its linear weights inside the memory-mapped safetensors files, in
 * the file's dtype: the memory they take is the kernel's page cache, which
 * it can drop, not the process's own. The forward pass (forward.h)
 * converts one layer's seven linears to fp32 into a buffer of its state
 * when the layer runs, once per call, so a batch of windows pays for the
 * conversion once. A 16-bit embedding and classifier stay mapped as well
 * (rows widened on lookup, the classifier through spq_hgemm); in other
 * dtypes they are converted at load. Norm weights are small and always
 * fp32 in the model.
 *
 * Code that needs every weight in fp32 (fusing, rotating, quantizing,
 * learning, packing, exporting) calls spq_model_materialize first: the
 * model is then an ordinary fp32 model and the files are unmapped. */
#ifndef SPQ_MAPPED_H
#define SPQ_MAPPED_H

#include "model.h"
#include "common/base/safetensors.h"

typedef struct {
    const spq_st_file *f;    /* the file that holds it */
    const spq_st_tensor *t;  /* NULL: not mapped */
} spq_mtensor;

typedef struct spq_mapped {
    int n_files;
    spq_st_file *files;   /* (n_files) owned: the maps everything below points into */
    spq_mtensor *lin;     /* (n_layers, SPQ_N_LIN) any float dtype */
    /* BF16 or F16 (vocab_size, dim) when mapped; head.t == emb.t when tied.
     * Not mapped: the model's tok_emb/lm_head hold them in fp32. */
    spq_mtensor emb, head;
} spq_mapped;

void spq_mapped_free(spq_mapped *mp);

/* Floats of one layer's seven linears: the size of the forward pass's buffer. */
size_t spq_mapped_layer_floats(const spq_config *c);

/* L <- layer l of m with its linears converted to fp32 into buf
 * (spq_mapped_layer_floats floats) and its norms m's own. */
void spq_mapped_layer(spq_layer *L, float *buf, const spq_model *m, int l);

/* x (dim) <- row `token` of the mapped embedding, as fp32. */
void spq_mapped_emb_row(float *x, const spq_mapped *mp, int token, int dim);

/* logits (N, vocab) = x (N, dim) head^T with the mapped 16-bit classifier. */
void spq_mapped_classifier(float *logits, const float *x, int N, const spq_mapped *mp, const spq_config *c);

/* dst's weights that are NULL (linears, embedding, classifier) <- mp's,
 * converted to fp32 in arrays of their own (a tied classifier shares the
 * embedding's). */
void spq_mapped_to_f32(spq_model *dst, const spq_mapped *mp);

/* Called after each layer (done of total = n_layers + 1, the embedding and
 * classifier last) while a mapped model is converted: at 8B this takes
 * minutes, so the pipeline shows it with an ETA. */
typedef void (*spq_convert_progress_fn)(void *ud, long done, long total);
void spq_mapped_to_f32_progress(spq_model *dst, const spq_mapped *mp, spq_convert_progress_fn fn, void *ud);

/* Converts every mapped weight of m into its own fp32 arrays and unmaps the
 * files. Nothing to do for a model that is not mapped. */
void spq_model_materialize(spq_model *m);
/* The same, reporting per layer (fn may be NULL). */
void spq_model_materialize_progress(spq_model *m, spq_convert_progress_fn fn, void *ud);

#endif
