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
 * Changes to every layer are recorded, not made (layer transforms): fusing
 * the norms (rot/fuse.h) and absorbing a rotation (rot/rotation.h) turn the
 * embedding and classifier into fp32 arrays and add a transform that is
 * applied to a layer's weights each time the layer is converted. Streamed
 * quantization (quant/qpack.h) then holds one layer in fp32 arrays of its
 * own while it is quantized (the forward pass uses a layer's own arrays
 * when it has them), and keeps it packed (int codes, kernels/qgemm.h) once
 * it is: a quantized layer converts to its dequantized values, exactly the
 * fp32 weights quantization gave, so the model computes what the fully
 * fp32 fake-quantized model computes, with one layer in fp32 at a time.
 *
 * Code that needs every weight in fp32 (learning, exporting, quantizing
 * with settings that have no packed form) calls spq_model_materialize
 * first: the model is then an ordinary fp32 model and the files are
 * unmapped. */
#ifndef SPQ_MAPPED_H
#define SPQ_MAPPED_H

#include "model.h"
#include "common/base/safetensors.h"
#include "common/kernels/qgemm.h"

#define SPQ_MAPPED_MAX_XFORMS 4

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
    /* recorded layer transforms, applied in order after conversion */
    int n_xforms;
    struct spq_mapped_xform {
        void (*apply)(spq_layer *L, int l, const spq_config *c, const void *ctx);
        void (*free)(void *ctx);
        void *ctx;
    } xforms[SPQ_MAPPED_MAX_XFORMS];
    /* quantized layers (streamed quantization): qlin (n_layers, SPQ_N_LIN),
     * allocated with the first; qdone (n_layers) marks the layers it holds;
     * qmin the codes' offset (quant.h's range) for dequantizing */
    spq_qlinear *qlin;
    unsigned char *qdone;
    int q_layers, qmin;
    /* 16-bit embedding and classifier tables the model owns (emb/head point
     * at own[] then): spq_mapped_ends_16 */
    spq_st_tensor own[2];
    uint16_t *own_data[2];
    /* bumped by every change above, so that a converted layer kept by the
     * forward pass is not reused after it */
    unsigned gen;
} spq_mapped;

typedef struct spq_mapped_xform spq_mapped_xform;

void spq_mapped_free(spq_mapped *mp);

/* Floats of one layer's seven linears: the size of the forward pass's buffer. */
size_t spq_mapped_layer_floats(const spq_config *c);

/* L <- layer l of m with its linears converted to fp32 into buf
 * (spq_mapped_layer_floats floats; transformed, or dequantized when the
 * layer is quantized) and its norms m's own. */
void spq_mapped_layer(spq_layer *L, float *buf, const spq_model *m, int l);

/* Records a transform of every layer (apply(L, l, cfg, ctx) on a layer's
 * fp32 linears, in place); the model owns ctx from here (freed with x.free). */
void spq_mapped_add_xform(spq_model *m, spq_mapped_xform x);

/* m's embedding and classifier <- their fp32 conversion (nothing to do
 * when they are fp32 already), so that they can be changed. */
void spq_mapped_ends_f32(spq_model *m);

/* m's embedding and classifier <- 16-bit tables of dtype dt (SPQ_ST_BF16
 * or SPQ_ST_F16) that the mapped model owns, from their fp32 arrays (freed)
 * or from mapped tables of the other 16-bit dtype; mapped tables of dt stay
 * as they are. Half the memory of fp32 (1 GB less per table at 8B), and
 * exactly the values a packed file with dt embeddings holds. */
void spq_mapped_ends_16(spq_model *m, spq_st_dtype dt);

/* Layer l's linears <- fp32 arrays of its own (converted and transformed),
 * which the forward pass then uses and the caller may change. */
void spq_mapped_layer_own(spq_model *m, int l);

/* Layer l is quantized: its linears are ql (SPQ_N_LIN, moved into m) from
 * now on, whose codes offset by qmin dequantize to the layer's own arrays,
 * which are freed. */
void spq_mapped_layer_set_packed(spq_model *m, int l, spq_qlinear *ql, int qmin);

/* 1 when every layer of m is quantized (streamed quantization is done). */
int spq_mapped_all_packed(const spq_mapped *mp, const spq_config *c);

/* x (n) <- row `row` of a mapped 16-bit (rows, n) table, as fp32. */
void spq_mtensor_row(float *x, const spq_mtensor *mt, int row, int n);

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
