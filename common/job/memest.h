/* memest.h - what a job will need of this machine, estimated from the
 * model's shapes and the spec before any heavy stage runs: the peak
 * anonymous memory of each stage and the bytes its outputs take on disk.
 * The pipeline compares them with what the machine has (spq_mem_available,
 * spq_disk_available) and refuses a run that cannot fit, naming the stage.
 *
 * The figures count the large buffers the stages allocate (the model in
 * fp32, activations, Hessians, the trainer's per-layer buffers, logits);
 * small tables and the allocator's slack are left out, so the estimate is a
 * floor of the measured peak RssAnon rather than a bound. */
#ifndef SPQ_MEMEST_H
#define SPQ_MEMEST_H

#include <stdint.h>

#include "common/job/jobspec.h"
#include "common/model/model.h"

/* What the run adds to the spec (the pipeline's local choices). */
typedef struct {
    int mapped;      /* the weights stay in their mapped files until a stage needs them in fp32 */
    int keep_model;  /* the model is kept for serving: loaded in fp32 */
    int eval_batch;  /* perplexity windows per forward call; 0: the pipeline's rule (4, fewer for large vocabularies) */
    int eval_seqlen; /* 0: each eval.ppl's own, else the model's context capped at 2048 */
    int gguf;        /* the write stage writes a GGUF file, not the packed model */
    int no_model;    /* the write stage writes no model file */
    int emb_bytes;   /* bytes per value of the packed model's embeddings: 4 (fp32) or 2 */
    int streamed;    /* the weights are quantized a layer at a time and packed (quant/qpack.h) */
    uint64_t resident; /* bytes of weights the loaded model holds in memory in every stage (a packed model's); 0: none */
} spq_memest_opts;

#define SPQ_MEMEST_MAX_STAGES 8

typedef struct {
    const char *stage; /* the pipeline stage's name */
    uint64_t anon;     /* its peak anonymous memory, bytes */
    const char *hint;  /* what to change to need less */
} spq_memest_stage;

typedef struct {
    spq_memest_stage st[SPQ_MEMEST_MAX_STAGES];
    int n;
    int peak;      /* index in st of the largest */
    uint64_t disk; /* bytes of the files the run writes into its work dir */
} spq_memest;

/* Bytes of the model's parameters in fp32 (n_params x 4). */
uint64_t spq_memest_fp32_model(const spq_config *c);
/* The estimate for every stage the spec runs, in pipeline order. */
void spq_memest_compute(spq_memest *e, const spq_config *c, const spq_jobspec *s, const spq_memest_opts *o);

/* Memory this process may still take, bytes: MemAvailable of /proc/meminfo,
 * lowered to the cgroup's memory.max minus its anonymous memory when a limit
 * is set. SPINQ_MEM_AVAILABLE_KIB in the environment replaces both (tests).
 * 0 when nothing could be read. */
uint64_t spq_mem_available(void);
/* Free bytes for an unprivileged user on the file system of dir (statvfs);
 * SPINQ_DISK_AVAILABLE_KIB replaces it. UINT64_MAX when it cannot be read. */
uint64_t spq_disk_available(const char *dir);

#endif
