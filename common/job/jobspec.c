/* jobspec.c - see jobspec.h.
 *
 * The parser walks the document object by object. Each object has a table of
 * the keys it allows; a key not in the table is an "unknown field" error. Each
 * known key is read by a typed getter that knows the field's path, so every
 * error names the field the way a user wrote it. Defaults are set first and
 * overwritten by what the document says. */
#include "jobspec.h"

#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <dirent.h>

#include "common/quant/qmodel.h"
#include "common/rot/rotation.h"

typedef struct {
    char *field; /* out: path of the failing field */
    spq_err *err;
} ctx;

static int fail(ctx *c, const char *path, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(ctx *c, const char *path, const char *fmt, ...) {
    if (c->field) snprintf(c->field, SPQ_FIELD_MAX, "%s", path);
    if (c->err) {
        char msg[768];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        if (path[0]) snprintf(c->err->msg, sizeof c->err->msg, "%s: %s", path, msg);
        else snprintf(c->err->msg, sizeof c->err->msg, "%s", msg);
    }
    return -1;
}

static void join(char *out, const char *parent, const char *key) {
    int n = parent[0] ? snprintf(out, SPQ_FIELD_MAX, "%s.%s", parent, key) : snprintf(out, SPQ_FIELD_MAX, "%s", key);
    if (n >= SPQ_FIELD_MAX) out[SPQ_FIELD_MAX - 1] = 0;
}

static void index_path(char *out, const char *parent, size_t i) {
    if (snprintf(out, SPQ_FIELD_MAX, "%s[%zu]", parent, i) >= SPQ_FIELD_MAX) out[SPQ_FIELD_MAX - 1] = 0;
}

static const char *type_name(const json_t *v) {
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER: return "an integer";
    case JSON_REAL: return "a number";
    case JSON_TRUE:
    case JSON_FALSE: return "a boolean";
    default: return "null";
    }
}

/* Fails on any key of obj not in allowed (NULL-terminated). */
static int check_keys(ctx *c, const json_t *obj, const char *path, const char *const *allowed) {
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)obj, key, v) {
        int ok = 0;
        for (const char *const *a = allowed; *a; a++)
            if (!strcmp(*a, key)) ok = 1;
        if (!ok) {
            char p[SPQ_FIELD_MAX];
            join(p, path, key);
            return fail(c, p, "unknown field");
        }
    }
    return 0;
}

static int get_int(ctx *c, int *out, const json_t *obj, const char *path, const char *key, long lo, long hi) {
    json_t *v = json_object_get(obj, key);
    if (!v) return 0;
    char p[SPQ_FIELD_MAX];
    join(p, path, key);
    if (!json_is_integer(v)) return fail(c, p, "must be an integer, got %s", type_name(v));
    json_int_t x = json_integer_value(v);
    if (x < lo || x > hi) return fail(c, p, "must be in [%ld, %ld], got %lld", lo, hi, (long long)x);
    *out = (int)x;
    return 0;
}

static int get_int_in(ctx *c, int *out, const json_t *obj, const char *path, const char *key, const int *set, int n) {
    json_t *v = json_object_get(obj, key);
    if (!v) return 0;
    char p[SPQ_FIELD_MAX], list[128] = "";
    join(p, path, key);
    for (int i = 0; i < n; i++)
        snprintf(list + strlen(list), sizeof list - strlen(list), "%s%d", i ? ", " : "", set[i]);
    if (!json_is_integer(v)) return fail(c, p, "must be one of %s, got %s", list, type_name(v));
    json_int_t x = json_integer_value(v);
    for (int i = 0; i < n; i++)
        if (x == set[i]) {
            *out = set[i];
            return 0;
        }
    return fail(c, p, "must be one of %s, got %lld", list, (long long)x);
}

static int get_num(ctx *c, double *out, const json_t *obj, const char *path, const char *key, double lo, double hi,
                   int lo_open) {
    json_t *v = json_object_get(obj, key);
    if (!v) return 0;
    char p[SPQ_FIELD_MAX];
    join(p, path, key);
    if (!json_is_number(v)) return fail(c, p, "must be a number, got %s", type_name(v));
    double x = json_number_value(v);
    if (!isfinite(x) || x < lo || x > hi || (lo_open && x == lo))
        return fail(c, p, "must be in %s%g, %g], got %g", lo_open ? "(" : "[", lo, hi, x);
    *out = x;
    return 0;
}

/* A clip ratio in (0, 1]: the quantizers hold it in fp32 (and the stored
 * spec writes that fp32 value), so one that rounds to 0 there is refused
 * now rather than when the stored spec is read again. */
static int get_clip(ctx *c, double *out, const json_t *obj, const char *path, const char *key) {
    if (get_num(c, out, obj, path, key, 0, 1, 1)) return -1;
    if ((float)*out > 0) return 0;
    char p[SPQ_FIELD_MAX];
    join(p, path, key);
    return fail(c, p, "must be in (0, 1] as a 32-bit float, got %g", *out);
}

static int get_bool(ctx *c, int *out, const json_t *obj, const char *path, const char *key) {
    json_t *v = json_object_get(obj, key);
    if (!v) return 0;
    char p[SPQ_FIELD_MAX];
    join(p, path, key);
    if (!json_is_boolean(v)) return fail(c, p, "must be true or false, got %s", type_name(v));
    *out = json_is_true(v);
    return 0;
}

/* A string of 1..maxlen bytes of valid UTF-8 without control characters. */
static int check_str(ctx *c, const json_t *v, const char *p, size_t maxlen) {
    if (!json_is_string(v)) return fail(c, p, "must be a string, got %s", type_name(v));
    const char *s = json_string_value(v);
    size_t n = json_string_length(v);
    if (n == 0) return fail(c, p, "must not be empty");
    if (n > maxlen) return fail(c, p, "is too long (%zu bytes, at most %zu)", n, maxlen);
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20) return fail(c, p, "must not contain control characters");
    return 0;
}

static int get_str(ctx *c, char **out, const json_t *obj, const char *path, const char *key, size_t maxlen) {
    json_t *v = json_object_get(obj, key);
    if (!v) return 0;
    char p[SPQ_FIELD_MAX];
    join(p, path, key);
    if (check_str(c, v, p, maxlen)) return -1;
    free(*out);
    *out = spq_strdup(json_string_value(v));
    return 0;
}

/* A name under a configured directory (model or dataset). */
static int get_name(ctx *c, char **out, const json_t *obj, const char *path, const char *key) {
    if (get_str(c, out, obj, path, key, 255)) return -1;
    if (!json_object_get(obj, key)) return 0;
    spq_err e;
    if (spq_name_check(*out, &e)) {
        char p[SPQ_FIELD_MAX];
        join(p, path, key);
        return fail(c, p, "%s", e.msg);
    }
    return 0;
}

static int get_enum(ctx *c, int *out, const json_t *obj, const char *path, const char *key, const char *const *names) {
    json_t *v = json_object_get(obj, key);
    if (!v) return 0;
    char p[SPQ_FIELD_MAX], list[160] = "";
    join(p, path, key);
    for (int i = 0; names[i]; i++)
        snprintf(list + strlen(list), sizeof list - strlen(list), "%s\"%s\"", i ? ", " : "", names[i]);
    if (!json_is_string(v)) return fail(c, p, "must be one of %s, got %s", list, type_name(v));
    for (int i = 0; names[i]; i++)
        if (!strcmp(names[i], json_string_value(v))) {
            *out = i;
            return 0;
        }
    return fail(c, p, "must be one of %s", list);
}

/* The sub-object obj[key], or NULL when absent; *bad is set on a wrong type. */
static const json_t *get_obj(ctx *c, const json_t *obj, const char *path, const char *key, char *p, int *bad) {
    json_t *v = json_object_get(obj, key);
    join(p, path, key);
    *bad = 0;
    if (!v) return NULL;
    if (!json_is_object(v)) {
        *bad = 1;
        fail(c, p, "must be an object, got %s", type_name(v));
        return NULL;
    }
    return v;
}

static const char *const rot_modes[] = {"none", "hadamard", "random", "spinquant", "file", NULL};
static const char *const wq_methods[] = {"none", "rtn", "gptq", NULL};
/* indexed by SPQ_INIT_IDENTITY, _HADAMARD, _RANDOM (rot/rotation.h) */
static const char *const rot_inits[] = {"identity", "hadamard", "random", NULL};
static const char *const task_names[] = {"arc_easy",   "arc_challenge", "piqa",    "hellaswag",
                                         "winogrande", "boolq",         "openbookqa", "siqa",
                                         "lambada",    "tinystories_cloze", "jsonl", NULL};
static const int w_bits_set[] = {2, 3, 4, 8, 16};
static const int a_bits_set[] = {4, 8, 16};
static const int kv_bits_set[] = {2, 4, 8, 16};

const char *spq_rot_mode_name(spq_rot_mode m) { return rot_modes[m]; }
const char *spq_wq_method_name(spq_wq_method m) { return wq_methods[m]; }
const char *spq_rot_init_name(int init) { return rot_inits[init]; }

/* Every default of a spec, in one place: the paper's settings at the size
 * of stories260K (design notes, section 5). The worker and the spinq
 * commands take every setting from the spec, so no other default applies;
 * spq_jobspec_defaults copies the strings. */
static const spq_jobspec defaults = {
    .seed = 0,
    .quant = {.w_bits = 4, .w_sym = 1, .w_groupsize = 0, .w_clip = 1,
              .a_bits = 4, .a_clip = 1.0, .kv_bits = 4, .kv_clip = 1.0},
    .rotation = {.mode = SPQ_ROT_SPINQUANT, .online_had = 1, .init = SPQ_INIT_HADAMARD, .file = NULL,
                 .train = {.steps = 100, .lr = 1.5, .batch = 8, .seqlen = 512, .calib = "tinystories/calib.txt",
                           .w_bits = 16, .checkpoint_every = 10}},
    .weights = {.method = SPQ_WQ_GPTQ, .calib = "tinystories/calib.txt", .nsamples = 128, .seqlen = 512,
                .damp = 0.01, .act_order = 0, .blocksize = 128},
    .eval = {.ppl = {{.data = "tinystories/test.txt", .seqlen = 512}}, .n_ppl = 1, .kld = 1,
             .tasks = {{.name = "arc_easy", .data = "eval/arc/ARC-Easy-Test.jsonl"}}, .n_tasks = 1, .limit = 0},
    .resources = {.nodes = 0, .tasks = 0, .threads_per_task = 0},
};

static char *dup_or_null(const char *x) { return x ? spq_strdup(x) : NULL; }

void spq_jobspec_defaults(spq_jobspec *s) {
    *s = defaults;
    s->rotation.file = dup_or_null(defaults.rotation.file);
    s->rotation.train.calib = dup_or_null(defaults.rotation.train.calib);
    s->weights.calib = dup_or_null(defaults.weights.calib);
    for (int i = 0; i < s->eval.n_ppl; i++) s->eval.ppl[i].data = dup_or_null(defaults.eval.ppl[i].data);
    for (int i = 0; i < s->eval.n_tasks; i++) {
        s->eval.tasks[i].name = dup_or_null(defaults.eval.tasks[i].name);
        s->eval.tasks[i].data = dup_or_null(defaults.eval.tasks[i].data);
    }
}

spq_qcfg spq_jobspec_qcfg(const spq_jobspec *s, int w_bits) {
    spq_qcfg q = spq_qcfg_off();
    q.w.bits = w_bits;
    q.w.sym = s->quant.w_sym;
    q.w.groupsize = s->quant.w_groupsize;
    q.w.mse = s->quant.w_clip;
    /* the grid holds weights of its own width (the quantized model's, or
     * those seen while learning); full-precision weights have none */
    q.w.grid = s->quant.w_grid && w_bits == spq_wq_grid_cfg(s->quant.w_grid).bits ? s->quant.w_grid : 0;
    q.a.bits = s->quant.a_bits;
    q.a.clip = (float)s->quant.a_clip;
    q.kv.bits = s->quant.kv_bits;
    q.kv.clip = (float)s->quant.kv_clip;
    return q;
}

void spq_jobspec_set_qcfg(spq_jobspec *s, const spq_qcfg *q) {
    s->quant.w_bits = q->w.bits;
    s->quant.w_sym = q->w.sym;
    s->quant.w_groupsize = q->w.groupsize;
    s->quant.w_clip = q->w.mse;
    s->quant.w_grid = q->w.grid;
    s->quant.a_bits = q->a.bits;
    s->quant.a_clip = q->a.clip;
    s->quant.kv_bits = q->kv.bits;
    s->quant.kv_clip = q->kv.clip;
}

/* ---- the rules between fields ---- */

int spq_jobspec_check(const spq_jobspec *s, char *field, spq_err *err) {
    ctx c = {field, err};
    if (s->quant.w_bits < 16 && s->weights.method == SPQ_WQ_NONE)
        return fail(&c, "weights.method", "must be \"rtn\" or \"gptq\" with quant.w_bits %d (quant.w_bits 16 keeps "
                    "the weights in full precision)", s->quant.w_bits);
    if (s->quant.w_grid) {
        spq_wq_cfg g = spq_wq_grid_cfg(s->quant.w_grid);
        if (s->quant.w_bits != g.bits && s->quant.w_bits != 16)
            return fail(&c, "quant.w_bits", "must be %d (or 16) with quant.w_grid \"%s\"", g.bits,
                        spq_wq_grid_name(s->quant.w_grid));
        if (!s->quant.w_sym || s->quant.w_groupsize != g.groupsize || s->quant.w_clip)
            return fail(&c, "quant.w_grid", "\"%s\" needs quant.w_sym true, quant.w_groupsize %d and quant.w_clip "
                        "false (the block's own scale)", spq_wq_grid_name(s->quant.w_grid), g.groupsize);
        if (s->rotation.train.w_bits != 16 && s->rotation.train.w_bits != g.bits)
            return fail(&c, "rotation.train.w_bits", "must be 16 or %d with quant.w_grid \"%s\"", g.bits,
                        spq_wq_grid_name(s->quant.w_grid));
    }
    if (s->rotation.mode == SPQ_ROT_FILE && !s->rotation.file)
        return fail(&c, "rotation.file", "is required with rotation.mode \"file\"");
    if (s->resources.nodes && s->resources.tasks && s->resources.tasks < s->resources.nodes)
        return fail(&c, "resources.tasks", "must be at least resources.nodes (%d), got %d", s->resources.nodes,
                    s->resources.tasks);
    if (s->rotation.mode != SPQ_ROT_FILE && s->rotation.file)
        return fail(&c, "rotation.file", "only goes with rotation.mode \"file\" (rotation.mode is \"%s\")",
                    spq_rot_mode_name(s->rotation.mode));
    return 0;
}

static int parse_quant(ctx *c, spq_jobspec *s, const json_t *o, const char *p) {
    static const char *const keys[] = {"w_bits", "w_sym", "w_groupsize", "w_clip", "w_grid", "a_bits",
                                       "a_clip", "kv_bits", "kv_clip", NULL};
    static const char *const grids[] = {"none", "q4_0", "q8_0", NULL}; /* in the order of SPQ_GRID_* */
    if (check_keys(c, o, p, keys)) return -1;
    if (get_int_in(c, &s->quant.w_bits, o, p, "w_bits", w_bits_set, 5)) return -1;
    if (get_bool(c, &s->quant.w_sym, o, p, "w_sym")) return -1;
    if (get_int(c, &s->quant.w_groupsize, o, p, "w_groupsize", 0, 65536)) return -1;
    if (get_bool(c, &s->quant.w_clip, o, p, "w_clip")) return -1;
    if (get_enum(c, &s->quant.w_grid, o, p, "w_grid", grids)) return -1;
    if (get_int_in(c, &s->quant.a_bits, o, p, "a_bits", a_bits_set, 3)) return -1;
    if (get_clip(c, &s->quant.a_clip, o, p, "a_clip")) return -1;
    if (get_int_in(c, &s->quant.kv_bits, o, p, "kv_bits", kv_bits_set, 4)) return -1;
    if (get_clip(c, &s->quant.kv_clip, o, p, "kv_clip")) return -1;
    return 0;
}

static int parse_train(ctx *c, spq_jobspec *s, const json_t *o, const char *p) {
    static const char *const keys[] = {"steps", "lr", "batch", "seqlen", "calib", "w_bits", "checkpoint_every", NULL};
    if (check_keys(c, o, p, keys)) return -1;
    if (get_int(c, &s->rotation.train.steps, o, p, "steps", 1, 100000)) return -1;
    if (get_num(c, &s->rotation.train.lr, o, p, "lr", 0, 1000, 1)) return -1;
    if (get_int(c, &s->rotation.train.batch, o, p, "batch", 1, 4096)) return -1;
    if (get_int(c, &s->rotation.train.seqlen, o, p, "seqlen", 2, 1 << 20)) return -1;
    if (get_name(c, &s->rotation.train.calib, o, p, "calib")) return -1;
    if (get_int_in(c, &s->rotation.train.w_bits, o, p, "w_bits", w_bits_set, 5)) return -1;
    if (get_int(c, &s->rotation.train.checkpoint_every, o, p, "checkpoint_every", 0, 100000)) return -1;
    return 0;
}

static int parse_rotation(ctx *c, spq_jobspec *s, const json_t *o, const char *p) {
    static const char *const keys[] = {"mode", "online_had", "init", "file", "train", NULL};
    if (check_keys(c, o, p, keys)) return -1;
    int mode = s->rotation.mode;
    if (get_enum(c, &mode, o, p, "mode", rot_modes)) return -1;
    s->rotation.mode = (spq_rot_mode)mode;
    if (get_bool(c, &s->rotation.online_had, o, p, "online_had")) return -1;
    if (get_enum(c, &s->rotation.init, o, p, "init", rot_inits)) return -1;
    if (get_name(c, &s->rotation.file, o, p, "file")) return -1;
    char tp[SPQ_FIELD_MAX];
    int bad;
    const json_t *t = get_obj(c, o, p, "train", tp, &bad);
    if (bad) return -1;
    if (t && parse_train(c, s, t, tp)) return -1;
    return 0;
}

static int parse_weights(ctx *c, spq_jobspec *s, const json_t *o, const char *p) {
    static const char *const keys[] = {"method", "calib", "nsamples", "seqlen", "damp", "act_order", "blocksize", NULL};
    if (check_keys(c, o, p, keys)) return -1;
    int method = s->weights.method;
    if (get_enum(c, &method, o, p, "method", wq_methods)) return -1;
    s->weights.method = (spq_wq_method)method;
    if (get_name(c, &s->weights.calib, o, p, "calib")) return -1;
    if (get_int(c, &s->weights.nsamples, o, p, "nsamples", 1, 1 << 20)) return -1;
    if (get_int(c, &s->weights.seqlen, o, p, "seqlen", 2, 1 << 20)) return -1;
    if (get_num(c, &s->weights.damp, o, p, "damp", 0, 1, 1)) return -1; /* GPTQ divides by it */
    if (get_bool(c, &s->weights.act_order, o, p, "act_order")) return -1;
    if (get_int(c, &s->weights.blocksize, o, p, "blocksize", 1, 1 << 16)) return -1;
    return 0;
}

static int parse_eval(ctx *c, spq_jobspec *s, const json_t *o, const char *p) {
    static const char *const keys[] = {"ppl", "kld", "tasks", "limit", NULL};
    static const char *const ppl_keys[] = {"data", "seqlen", NULL};
    static const char *const task_keys[] = {"name", "data", NULL};
    if (check_keys(c, o, p, keys)) return -1;
    char ap[SPQ_FIELD_MAX], ip[SPQ_FIELD_MAX];
    json_t *a = json_object_get(o, "ppl");
    if (a) {
        join(ap, p, "ppl");
        if (!json_is_array(a)) return fail(c, ap, "must be an array, got %s", type_name(a));
        if (json_array_size(a) > SPQ_SPEC_MAX_EVALS) return fail(c, ap, "at most %d entries", SPQ_SPEC_MAX_EVALS);
        for (int i = 0; i < s->eval.n_ppl; i++) free(s->eval.ppl[i].data);
        s->eval.n_ppl = 0;
        size_t i;
        json_t *e;
        json_array_foreach(a, i, e) {
            index_path(ip, ap, i);
            if (!json_is_object(e)) return fail(c, ip, "must be an object, got %s", type_name(e));
            if (check_keys(c, e, ip, ppl_keys)) return -1;
            spq_spec_ppl *q = &s->eval.ppl[s->eval.n_ppl++];
            q->data = NULL;
            q->seqlen = 0;
            if (!json_object_get(e, "data")) {
                char dp[SPQ_FIELD_MAX];
                join(dp, ip, "data");
                return fail(c, dp, "is required");
            }
            if (get_name(c, &q->data, e, ip, "data")) return -1;
            if (get_int(c, &q->seqlen, e, ip, "seqlen", 2, 1 << 20)) return -1;
        }
    }
    if (get_bool(c, &s->eval.kld, o, p, "kld")) return -1;
    a = json_object_get(o, "tasks");
    if (a) {
        join(ap, p, "tasks");
        if (!json_is_array(a)) return fail(c, ap, "must be an array, got %s", type_name(a));
        if (json_array_size(a) > SPQ_SPEC_MAX_EVALS) return fail(c, ap, "at most %d entries", SPQ_SPEC_MAX_EVALS);
        for (int i = 0; i < s->eval.n_tasks; i++) {
            free(s->eval.tasks[i].name);
            free(s->eval.tasks[i].data);
        }
        s->eval.n_tasks = 0;
        size_t i;
        json_t *e;
        json_array_foreach(a, i, e) {
            index_path(ip, ap, i);
            if (!json_is_object(e)) return fail(c, ip, "must be an object, got %s", type_name(e));
            if (check_keys(c, e, ip, task_keys)) return -1;
            spq_spec_task *t = &s->eval.tasks[s->eval.n_tasks++];
            t->name = t->data = NULL;
            for (const char *const *k = task_keys; *k; k++)
                if (!json_object_get(e, *k)) {
                    char dp[SPQ_FIELD_MAX];
                    join(dp, ip, *k);
                    return fail(c, dp, "is required");
                }
            int which = 0;
            if (get_enum(c, &which, e, ip, "name", task_names)) return -1;
            t->name = spq_strdup(task_names[which]);
            if (get_name(c, &t->data, e, ip, "data")) return -1;
        }
    }
    if (get_int(c, &s->eval.limit, o, p, "limit", 0, INT_MAX)) return -1;
    return 0;
}

static int parse_resources(ctx *c, spq_jobspec *s, const json_t *o, const char *p) {
    static const char *const keys[] = {"nodes", "tasks", "threads_per_task", NULL};
    if (check_keys(c, o, p, keys)) return -1;
    if (get_int(c, &s->resources.nodes, o, p, "nodes", 0, 4096)) return -1;
    if (get_int(c, &s->resources.tasks, o, p, "tasks", 0, 65536)) return -1;
    if (get_int(c, &s->resources.threads_per_task, o, p, "threads_per_task", 0, 1024)) return -1;
    return 0;
}

/* "MODEL w4a4kv4 spinquant" for a spec without a name */
static char *default_name(const spq_jobspec *s) {
    char buf[320];
    snprintf(buf, sizeof buf, "%s w%da%dkv%d %s", s->model, s->quant.w_bits, s->quant.a_bits, s->quant.kv_bits,
             spq_rot_mode_name(s->rotation.mode));
    return spq_strdup(buf);
}

static int parse_top(ctx *c, spq_jobspec *s, const json_t *root) {
    static const char *const keys[] = {"name",    "tags", "model",     "seed", "quant",
                                       "rotation", "weights", "eval", "resources", NULL};
    if (!json_is_object(root)) return fail(c, "", "the job spec must be a JSON object, got %s", type_name(root));
    if (check_keys(c, root, "", keys)) return -1;
    if (!json_object_get(root, "model")) return fail(c, "model", "is required");
    if (get_name(c, &s->model, root, "", "model")) return -1;
    if (get_str(c, &s->name, root, "", "name", 200)) return -1;
    json_t *tags = json_object_get(root, "tags");
    if (tags) {
        if (!json_is_array(tags)) return fail(c, "tags", "must be an array of strings, got %s", type_name(tags));
        if (json_array_size(tags) > SPQ_SPEC_MAX_TAGS) return fail(c, "tags", "at most %d tags", SPQ_SPEC_MAX_TAGS);
        size_t i;
        json_t *t;
        json_array_foreach(tags, i, t) {
            char p[SPQ_FIELD_MAX];
            index_path(p, "tags", i);
            if (check_str(c, t, p, 64)) return -1;
            s->tags[s->n_tags++] = spq_strdup(json_string_value(t));
        }
    }
    json_t *seed = json_object_get(root, "seed");
    if (seed) {
        if (!json_is_integer(seed)) return fail(c, "seed", "must be an integer, got %s", type_name(seed));
        json_int_t x = json_integer_value(seed);
        if (x < 0) return fail(c, "seed", "must not be negative, got %lld", (long long)x);
        s->seed = (uint64_t)x;
    }
    static const char *const sections[] = {"quant", "rotation", "weights", "eval", "resources"};
    int (*parsers[])(ctx *, spq_jobspec *, const json_t *, const char *) = {parse_quant, parse_rotation, parse_weights,
                                                                          parse_eval, parse_resources};
    for (int i = 0; i < 5; i++) {
        char p[SPQ_FIELD_MAX];
        int bad;
        const json_t *o = get_obj(c, root, "", sections[i], p, &bad);
        if (bad) return -1;
        if (o && parsers[i](c, s, o, p)) return -1;
    }
    if (!s->name) s->name = default_name(s);
    return 0;
}

int spq_jobspec_parse_value(spq_jobspec *s, const void *json_value, char *field, spq_err *err) {
    ctx c = {field, err};
    if (field) field[0] = 0;
    spq_jobspec_defaults(s);
    if (parse_top(&c, s, json_value) || spq_jobspec_check(s, field, err)) {
        spq_jobspec_free(s);
        return -1;
    }
    return 0;
}

int spq_jobspec_parse(spq_jobspec *s, const char *json, size_t len, char *field, spq_err *err) {
    json_error_t je;
    if (field) field[0] = 0;
    memset(s, 0, sizeof *s);
    json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &je);
    if (!root) return spq_fail(err, "invalid JSON at line %d, column %d: %s", je.line, je.column, je.text);
    int rc = spq_jobspec_parse_value(s, root, field, err);
    json_decref(root);
    return rc;
}

void spq_jobspec_free(spq_jobspec *s) {
    free(s->name);
    free(s->model);
    for (int i = 0; i < s->n_tags; i++) free(s->tags[i]);
    free(s->rotation.file);
    free(s->rotation.train.calib);
    free(s->weights.calib);
    for (int i = 0; i < s->eval.n_ppl; i++) free(s->eval.ppl[i].data);
    for (int i = 0; i < s->eval.n_tasks; i++) {
        free(s->eval.tasks[i].name);
        free(s->eval.tasks[i].data);
    }
    memset(s, 0, sizeof *s);
}

void *spq_jobspec_to_value(const spq_jobspec *s) {
    json_t *tags = json_array();
    for (int i = 0; i < s->n_tags; i++) json_array_append_new(tags, json_string(s->tags[i]));
    json_t *ppl = json_array();
    for (int i = 0; i < s->eval.n_ppl; i++) {
        json_t *e = json_pack("{s:s}", "data", s->eval.ppl[i].data);
        if (s->eval.ppl[i].seqlen) json_object_set_new(e, "seqlen", json_integer(s->eval.ppl[i].seqlen));
        json_array_append_new(ppl, e);
    }
    json_t *tasks = json_array();
    for (int i = 0; i < s->eval.n_tasks; i++)
        json_array_append_new(tasks, json_pack("{s:s,s:s}", "name", s->eval.tasks[i].name, "data", s->eval.tasks[i].data));
    spq_qcfg q = spq_jobspec_qcfg(s, s->quant.w_bits);
    char *name = s->name ? NULL : default_name(s); /* a spec built in code may have none */
    json_t *v = json_pack(
        "{s:s,s:o,s:s,s:I,"
        "s:o,"
        "s:{s:s,s:b,s:s,s:{s:i,s:f,s:i,s:i,s:s,s:i,s:i}},"
        "s:{s:s,s:s,s:i,s:i,s:f,s:b,s:i},"
        "s:{s:o,s:b,s:o,s:i}}",
        "name", s->name ? s->name : name, "tags", tags, "model", s->model, "seed", (json_int_t)s->seed,
        "quant", spq_qcfg_to_value(&q, 0), /* the quantizer settings are written one way (qmodel.h) */
        "rotation", "mode", spq_rot_mode_name(s->rotation.mode), "online_had", s->rotation.online_had, "init",
        spq_rot_init_name(s->rotation.init), "train", "steps", s->rotation.train.steps, "lr",
        s->rotation.train.lr, "batch", s->rotation.train.batch, "seqlen", s->rotation.train.seqlen, "calib",
        s->rotation.train.calib, "w_bits", s->rotation.train.w_bits, "checkpoint_every",
        s->rotation.train.checkpoint_every,
        "weights", "method", spq_wq_method_name(s->weights.method), "calib", s->weights.calib, "nsamples",
        s->weights.nsamples, "seqlen", s->weights.seqlen, "damp", s->weights.damp, "act_order", s->weights.act_order,
        "blocksize", s->weights.blocksize,
        "eval", "ppl", ppl, "kld", s->eval.kld, "tasks", tasks, "limit", s->eval.limit);
    free(name);
    if (s->rotation.file) json_object_set_new(json_object_get(v, "rotation"), "file", json_string(s->rotation.file));
    json_object_set_new(v, "resources", json_pack("{s:i,s:i,s:i}", "nodes", s->resources.nodes, "tasks",
                                                  s->resources.tasks, "threads_per_task",
                                                  s->resources.threads_per_task));
    return v;
}

char *spq_jobspec_to_json(const spq_jobspec *s) {
    json_t *v = spq_jobspec_to_value(s);
    char *out = json_dumps(v, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(17));
    json_decref(v);
    return out;
}

/* ---- names under configured directories ---- */

int spq_name_check(const char *name, spq_err *err) {
    if (!name[0]) return spq_fail(err, "must not be empty");
    if (name[0] == '/') return spq_fail(err, "must be a name relative to its directory, not an absolute path");
    if (strchr(name, '\\')) return spq_fail(err, "must not contain a backslash");
    for (const char *p = name; *p;) {
        const char *e = strchr(p, '/');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if (n == 0) return spq_fail(err, "must not contain an empty path component");
        if ((n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.'))
            return spq_fail(err, "must not contain '.' or '..' components");
        p += n + (e ? 1 : 0);
        if (e && !*p) return spq_fail(err, "must not end with '/'");
    }
    return 0;
}

/* realpath(abs) when it lies inside realpath(dir), else an error. */
static int real_inside(char **out, const char *dir, const char *abs, const char *name, spq_err *err) {
    *out = NULL;
    char *root = realpath(dir, NULL);
    if (!root) return spq_fail(err, "the configured directory %s is not usable: %s", dir, strerror(errno));
    char *real = realpath(abs, NULL);
    if (!real) {
        free(root);
        return spq_fail(err, "'%s' does not exist", name);
    }
    size_t n = strlen(root);
    int inside = !strncmp(real, root, n) && (real[n] == '/' || (n == 1 && root[0] == '/'));
    free(root);
    if (!inside) {
        free(real);
        return spq_fail(err, "'%s' leads outside its directory", name);
    }
    *out = real;
    return 0;
}

int spq_resolve_under(char **path, const char *dir, const char *name, spq_err *err) {
    *path = NULL;
    if (spq_name_check(name, err)) return -1;
    char *joined = spq_path_join(dir, name);
    int rc = real_inside(path, dir, joined, name, err);
    free(joined);
    return rc;
}

static int is_tokenizer_bin(const char *f) {
    return !strncmp(f, "tok", 3);
}

int spq_jobspec_resolve_model(char **path, const char *models_dir, const char *name, spq_err *err) {
    char *p;
    if (spq_resolve_under(&p, models_dir, name, err)) return -1;
    struct stat st;
    if (stat(p, &st) == 0 && !S_ISDIR(st.st_mode)) {
        *path = p;
        return 0;
    }
    char *cfg = spq_path_join(p, "config.json");
    int hf = spq_file_exists(cfg);
    free(cfg);
    if (hf) {
        *path = p;
        return 0;
    }
    /* a llama2.c folder: NAME.bin, else its only non-tokenizer .bin */
    const char *base = strrchr(name, '/') ? strrchr(name, '/') + 1 : name;
    char file[300];
    snprintf(file, sizeof file, "%s.bin", base);
    char *cand = spq_path_join(p, file);
    if (spq_file_exists(cand)) {
        free(p);
        int rc = real_inside(path, models_dir, cand, name, err);
        free(cand);
        return rc;
    }
    free(cand);
    DIR *d = opendir(p);
    char *found = NULL;
    int n = 0;
    if (d) {
        struct dirent *e;
        while ((e = readdir(d))) {
            size_t L = strlen(e->d_name);
            if (L > 4 && !strcmp(e->d_name + L - 4, ".bin") && !is_tokenizer_bin(e->d_name)) {
                n++;
                free(found);
                found = spq_path_join(p, e->d_name);
            }
        }
        closedir(d);
    }
    free(p);
    if (n != 1) {
        free(found);
        return spq_fail(err, "'%s' is neither a Hugging Face directory (config.json) nor a folder with one llama2.c "
                             "checkpoint (%d .bin files)", name, n);
    }
    int rc = real_inside(path, models_dir, found, name, err);
    free(found);
    return rc;
}

int spq_jobspec_datasets(const spq_jobspec *s, spq_jobspec_data *out) {
    int n = 0;
#define NEED(name_, ...) (snprintf(out[n].field, SPQ_FIELD_MAX, __VA_ARGS__), out[n++].name = (name_))
    if (s->rotation.mode == SPQ_ROT_SPINQUANT) NEED(s->rotation.train.calib, "rotation.train.calib");
    if (s->rotation.mode == SPQ_ROT_FILE) NEED(s->rotation.file, "rotation.file");
    if (s->weights.method == SPQ_WQ_GPTQ && s->quant.w_bits < 16) NEED(s->weights.calib, "weights.calib");
    for (int i = 0; i < s->eval.n_ppl; i++) NEED(s->eval.ppl[i].data, "eval.ppl[%d].data", i);
    for (int i = 0; i < s->eval.n_tasks; i++) NEED(s->eval.tasks[i].data, "eval.tasks[%d].data", i);
#undef NEED
    return n;
}

int spq_jobspec_check_paths(const spq_jobspec *s, const char *models_dir, const char *datasets_dir, char *field,
                            spq_err *err) {
    ctx c = {field, err};
    char *p;
    spq_err e;
    if (spq_jobspec_resolve_model(&p, models_dir, s->model, &e)) return fail(&c, "model", "%s", e.msg);
    free(p);
    spq_jobspec_data need[SPQ_SPEC_MAX_DATA];
    int n = spq_jobspec_datasets(s, need);
    for (int i = 0; i < n; i++) {
        if (spq_resolve_under(&p, datasets_dir, need[i].name, &e)) return fail(&c, need[i].field, "%s", e.msg);
        struct stat st;
        int isdir = stat(p, &st) == 0 && S_ISDIR(st.st_mode);
        free(p);
        if (isdir) return fail(&c, need[i].field, "'%s' is a directory, not a file", need[i].name);
    }
    return 0;
}
