/* test_jobspec.c - the job spec parser: defaults, round trip, errors that
 * name the field, and names that must stay inside their directories. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/job/jobspec.h"
#include "common/kernels/ggml_quant.h"

static int parse(spq_jobspec *s, const char *json, char *field, spq_err *err) {
    return spq_jobspec_parse(s, json, strlen(json), field, err);
}

/* Parses json expecting an error on `want_field` whose message contains
 * `want_msg`. */
static void expect_error(const char *json, const char *want_field, const char *want_msg) {
    spq_jobspec s;
    spq_err err = {{0}};
    char field[SPQ_FIELD_MAX] = "unset";
    int rc = parse(&s, json, field, &err);
    cr_assert_eq(rc, -1, "accepted: %s", json);
    cr_assert_str_eq(field, want_field, "for %s: field '%s', message '%s'", json, field, err.msg);
    cr_assert(strstr(err.msg, want_msg), "for %s: message '%s' lacks '%s'", json, err.msg, want_msg);
}

Test(jobspec, minimal_spec_gets_the_papers_defaults) {
    spq_jobspec s;
    spq_err err;
    char field[SPQ_FIELD_MAX];
    cr_assert_eq(parse(&s, "{\"model\":\"stories260K\"}", field, &err), 0, "%s", err.msg);
    cr_assert_str_eq(s.model, "stories260K");
    cr_assert_eq(s.quant.w_bits, 4);
    cr_assert_eq(s.quant.a_bits, 4);
    cr_assert_eq(s.quant.kv_bits, 4);
    cr_assert_eq(s.rotation.mode, SPQ_ROT_SPINQUANT);
    cr_assert_eq(s.rotation.train.steps, 100);
    cr_assert_float_eq(s.rotation.train.lr, 1.5, 1e-12);
    cr_assert_eq(s.rotation.train.checkpoint_every, 10);
    cr_assert_eq(s.weights.method, SPQ_WQ_GPTQ);
    cr_assert_eq(s.weights.nsamples, 128);
    cr_assert_float_eq(s.weights.damp, 0.01, 1e-12);
    cr_assert_eq(s.eval.n_ppl, 1);
    cr_assert_str_eq(s.eval.ppl[0].data, "tinystories/test.txt");
    cr_assert_eq(s.eval.kld, 1);
    cr_assert_str_eq(s.name, "stories260K w4a4kv4 spinquant");
    spq_jobspec_free(&s);
}

Test(jobspec, explicit_values_override_defaults_and_survive_a_round_trip) {
    const char *json = "{\"name\":\"x\",\"tags\":[\"a\",\"b\"],\"model\":\"m\",\"seed\":7,"
                       "\"quant\":{\"w_bits\":16,\"a_bits\":8,\"a_clip\":0.9},"
                       "\"rotation\":{\"mode\":\"none\",\"train\":{\"lr\":0.5,\"steps\":3}},"
                       "\"weights\":{\"method\":\"rtn\"},"
                       "\"eval\":{\"ppl\":[{\"data\":\"d/t.txt\",\"seqlen\":64},{\"data\":\"e.txt\"}],"
                       "\"kld\":false,\"tasks\":[],\"limit\":2}}";
    spq_jobspec s, t;
    spq_err err;
    char field[SPQ_FIELD_MAX];
    cr_assert_eq(parse(&s, json, field, &err), 0, "%s", err.msg);
    cr_assert_eq(s.seed, 7);
    cr_assert_eq(s.n_tags, 2);
    cr_assert_str_eq(s.tags[1], "b");
    cr_assert_eq(s.quant.w_bits, 16);
    cr_assert_float_eq(s.quant.a_clip, 0.9, 1e-12);
    cr_assert_eq(s.rotation.mode, SPQ_ROT_NONE);
    cr_assert_eq(s.rotation.train.steps, 3);
    cr_assert_eq(s.eval.n_ppl, 2);
    cr_assert_eq(s.eval.ppl[0].seqlen, 64);
    cr_assert_eq(s.eval.ppl[1].seqlen, 0);
    cr_assert_eq(s.eval.n_tasks, 0);
    cr_assert_eq(s.eval.limit, 2);
    char *out = spq_jobspec_to_json(&s);
    cr_assert_eq(parse(&t, out, field, &err), 0, "%s: %s", out, err.msg);
    char *again = spq_jobspec_to_json(&t);
    cr_assert_str_eq(out, again);
    free(out);
    free(again);
    spq_jobspec_free(&s);
    spq_jobspec_free(&t);
}

Test(jobspec, unknown_fields_are_named_by_their_path) {
    expect_error("{\"model\":\"m\",\"colour\":1}", "colour", "unknown field");
    expect_error("{\"model\":\"m\",\"quant\":{\"a_bitz\":4}}", "quant.a_bitz", "unknown field");
    expect_error("{\"model\":\"m\",\"rotation\":{\"train\":{\"lr\":1,\"momentum\":0.9}}}", "rotation.train.momentum",
                 "unknown field");
    expect_error("{\"model\":\"m\",\"eval\":{\"ppl\":[{\"data\":\"a\"},{\"data\":\"b\",\"stride\":3}]}}",
                 "eval.ppl[1].stride", "unknown field");
}

Test(jobspec, wrong_types_are_named_with_what_was_expected) {
    expect_error("{\"model\":3}", "model", "must be a string");
    expect_error("{\"model\":\"m\",\"quant\":{\"a_bits\":\"4\"}}", "quant.a_bits", "must be one of 4, 8, 16");
    expect_error("{\"model\":\"m\",\"quant\":{\"a_clip\":\"x\"}}", "quant.a_clip", "must be a number");
    expect_error("{\"model\":\"m\",\"quant\":{\"w_sym\":1}}", "quant.w_sym", "must be true or false");
    expect_error("{\"model\":\"m\",\"rotation\":{\"train\":{\"steps\":1.5}}}", "rotation.train.steps",
                 "must be an integer");
    expect_error("{\"model\":\"m\",\"rotation\":[]}", "rotation", "must be an object");
    expect_error("{\"model\":\"m\",\"tags\":[\"ok\",5]}", "tags[1]", "must be a string");
    expect_error("{\"model\":\"m\",\"eval\":{\"ppl\":{}}}", "eval.ppl", "must be an array");
    expect_error("{\"model\":\"m\",\"seed\":-1}", "seed", "must not be negative");
    expect_error("[1,2]", "", "must be a JSON object");
}

Test(jobspec, values_out_of_range_are_refused) {
    expect_error("{\"model\":\"m\",\"quant\":{\"w_bits\":5}}", "quant.w_bits", "must be one of 2, 3, 4, 8, 16");
    expect_error("{\"model\":\"m\",\"quant\":{\"a_clip\":0}}", "quant.a_clip", "must be in (0, 1]");
    expect_error("{\"model\":\"m\",\"quant\":{\"kv_clip\":1.5}}", "quant.kv_clip", "must be in (0, 1]");
    expect_error("{\"model\":\"m\",\"rotation\":{\"mode\":\"learned\"}}", "rotation.mode", "must be one of");
    expect_error("{\"model\":\"m\",\"rotation\":{\"train\":{\"steps\":0}}}", "rotation.train.steps", "must be in [1");
    expect_error("{\"model\":\"m\",\"eval\":{\"tasks\":[{\"name\":\"mmlu\",\"data\":\"x\"}]}}", "eval.tasks[0].name",
                 "must be one of");
    expect_error("{\"model\":\"m\",\"eval\":{\"limit\":-3}}", "eval.limit", "must be in [0");
}

Test(jobspec, values_that_do_not_go_with_another_field_are_refused_by_name) {
    /* 4-bit weights need a way to round them */
    expect_error("{\"model\":\"m\",\"quant\":{\"w_bits\":4},\"weights\":{\"method\":\"none\"}}",
                 "weights.method", "quant.w_bits 4");
    expect_error("{\"model\":\"m\",\"quant\":{\"w_bits\":2},\"weights\":{\"method\":\"none\"}}",
                 "weights.method", "\"rtn\" or \"gptq\"");
    /* a rotation file goes with mode "file", and mode "file" needs one */
    expect_error("{\"model\":\"m\",\"rotation\":{\"mode\":\"file\"}}", "rotation.file", "is required");
    expect_error("{\"model\":\"m\",\"rotation\":{\"mode\":\"hadamard\",\"file\":\"r.safetensors\"}}",
                 "rotation.file", "only goes with rotation.mode \"file\"");
    /* GPTQ divides by the damping */
    expect_error("{\"model\":\"m\",\"weights\":{\"damp\":0}}", "weights.damp", "must be in (0, 1]");
    /* ...and the same values are fine where they make sense */
    const char *ok[] = {
        "{\"model\":\"m\",\"quant\":{\"w_bits\":16},\"weights\":{\"method\":\"none\"}}",
        "{\"model\":\"m\",\"quant\":{\"w_bits\":4},\"weights\":{\"method\":\"rtn\"}}",
        "{\"model\":\"m\",\"rotation\":{\"mode\":\"file\",\"file\":\"runs/r.safetensors\"}}",
        "{\"model\":\"m\",\"rotation\":{\"init\":\"identity\"}}",
    };
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++) {
        spq_jobspec s;
        spq_err err;
        char field[SPQ_FIELD_MAX];
        cr_assert_eq(parse(&s, ok[i], field, &err), 0, "%s: %s: %s", ok[i], field, err.msg);
        char *out = spq_jobspec_to_json(&s), *again;
        spq_jobspec t;
        cr_assert_eq(parse(&t, out, field, &err), 0, "%s: %s", out, err.msg);
        again = spq_jobspec_to_json(&t);
        cr_assert_str_eq(out, again);
        free(out);
        free(again);
        spq_jobspec_free(&t);
        spq_jobspec_free(&s);
    }
}

Test(jobspec, a_spec_built_in_code_goes_through_the_same_rules) {
    spq_jobspec s;
    spq_jobspec_defaults(&s);
    s.model = spq_strdup("m");
    char field[SPQ_FIELD_MAX] = "";
    spq_err err;
    cr_assert_eq(spq_jobspec_check(&s, field, &err), 0, "the defaults pass: %s", err.msg);
    char *json = spq_jobspec_to_json(&s); /* written with the name a parsed spec would get */
    cr_assert(json && strstr(json, "\"name\":\"m w4a4kv4 spinquant\""), "%s", json ? json : "(null)");
    free(json);
    s.weights.method = SPQ_WQ_NONE;
    cr_assert_eq(spq_jobspec_check(&s, field, &err), -1);
    cr_assert_str_eq(field, "weights.method");
    s.quant.w_bits = 16;
    cr_assert_eq(spq_jobspec_check(&s, field, &err), 0, "%s", err.msg);
    spq_jobspec_free(&s);
}

Test(jobspec, required_fields_are_named) {
    expect_error("{}", "model", "is required");
    expect_error("{\"model\":\"m\",\"eval\":{\"ppl\":[{\"seqlen\":8}]}}", "eval.ppl[0].data", "is required");
    expect_error("{\"model\":\"m\",\"eval\":{\"tasks\":[{\"name\":\"piqa\"}]}}", "eval.tasks[0].data", "is required");
}

Test(jobspec, bad_json_is_reported_with_its_position) {
    spq_jobspec s;
    spq_err err;
    char field[SPQ_FIELD_MAX];
    cr_assert_eq(parse(&s, "{\"model\": }", field, &err), -1);
    cr_assert_str_eq(field, "");
    cr_assert(strstr(err.msg, "invalid JSON at line 1"), "%s", err.msg);
    cr_assert_eq(parse(&s, "{\"model\":\"a\",\"model\":\"b\"}", field, &err), -1, "duplicate keys are refused");
}

Test(jobspec, names_that_could_escape_their_directory_are_refused) {
    expect_error("{\"model\":\"../etc\"}", "model", "'..'");
    expect_error("{\"model\":\"a/../../b\"}", "model", "'..'");
    expect_error("{\"model\":\"/etc/passwd\"}", "model", "absolute");
    expect_error("{\"model\":\"\"}", "model", "empty");
    expect_error("{\"model\":\"a//b\"}", "model", "empty path component");
    expect_error("{\"model\":\"m\",\"eval\":{\"ppl\":[{\"data\":\"../../x\"}]}}", "eval.ppl[0].data", "'..'");
    expect_error("{\"model\":\"m\",\"weights\":{\"calib\":\"/tmp/x\"}}", "weights.calib", "absolute");
    expect_error("{\"model\":\"m\",\"rotation\":{\"train\":{\"calib\":\"a\\\\..\\\\b\"}}}", "rotation.train.calib",
                 "backslash");
}

static const char *shared(void) {
    const char *s = getenv("SPINQ_SHARED");
    return s ? s : "../shared";
}

Test(jobspec, model_names_resolve_to_llama2c_files_and_hf_directories) {
    char models[512];
    snprintf(models, sizeof models, "%s/models", shared());
    char *p;
    spq_err err;
    cr_assert_eq(spq_jobspec_resolve_model(&p, models, "stories260K", &err), 0, "%s", err.msg);
    cr_assert(strstr(p, "/stories260K/stories260K.bin"), "%s", p);
    free(p);
    cr_assert_eq(spq_jobspec_resolve_model(&p, models, "stories260K-hf", &err), 0, "%s", err.msg);
    cr_assert(strstr(p, "/stories260K-hf") && !strstr(p, ".bin"), "%s", p);
    free(p);
    cr_assert_eq(spq_jobspec_resolve_model(&p, models, "nope", &err), -1);
    cr_assert(strstr(err.msg, "does not exist"), "%s", err.msg);
}

Test(jobspec, symlinks_that_lead_outside_the_directory_are_refused) {
    char dir[] = "/tmp/spq_jobspec_XXXXXX";
    cr_assert(mkdtemp(dir));
    char link[600], inside[600];
    snprintf(link, sizeof link, "%s/out", dir);
    snprintf(inside, sizeof inside, "%s/in.txt", dir);
    cr_assert_eq(symlink("/etc", link), 0);
    FILE *f = fopen(inside, "w");
    fputs("x", f);
    fclose(f);
    char *p;
    spq_err err;
    cr_assert_eq(spq_resolve_under(&p, dir, "out/passwd", &err), -1);
    cr_assert(strstr(err.msg, "outside"), "%s", err.msg);
    cr_assert_eq(spq_resolve_under(&p, dir, "in.txt", &err), 0, "%s", err.msg);
    free(p);
    unlink(link);
    unlink(inside);
    rmdir(dir);
}

Test(jobspec, check_paths_names_the_missing_dataset) {
    char models[512], data[512];
    snprintf(models, sizeof models, "%s/models", shared());
    snprintf(data, sizeof data, "%s/data", shared());
    spq_jobspec s;
    spq_err err;
    char field[SPQ_FIELD_MAX];
    const char *ok = "{\"model\":\"stories260K\",\"rotation\":{\"mode\":\"none\"},\"weights\":{\"method\":\"rtn\"},"
                     "\"eval\":{\"ppl\":[{\"data\":\"tinystories/test.txt\"}],\"tasks\":[]}}";
    cr_assert_eq(parse(&s, ok, field, &err), 0, "%s", err.msg);
    cr_assert_eq(spq_jobspec_check_paths(&s, models, data, field, &err), 0, "%s", err.msg);
    spq_jobspec_free(&s);
    const char *bad = "{\"model\":\"stories260K\",\"rotation\":{\"mode\":\"none\"},"
                      "\"eval\":{\"ppl\":[{\"data\":\"tinystories/test.txt\"},{\"data\":\"tinystories/nope.txt\"}]}}";
    cr_assert_eq(parse(&s, bad, field, &err), 0, "%s", err.msg);
    cr_assert_eq(spq_jobspec_check_paths(&s, models, data, field, &err), -1);
    cr_assert_str_eq(field, "eval.ppl[1].data");
    spq_jobspec_free(&s);
}

/* llama.cpp's block grid: its own width, symmetric, groups of 32, the
 * block's scale (no clip search); the quantizer settings carry it and a
 * written spec reads back with it */
Test(jobspec, a_block_grid_goes_with_its_own_settings) {
    const char *ok = "{\"model\":\"m\",\"quant\":{\"w_grid\":\"q4_0\",\"w_groupsize\":32,\"w_clip\":false}}";
    spq_jobspec s, t;
    spq_err err;
    char field[SPQ_FIELD_MAX];
    cr_assert_eq(parse(&s, ok, field, &err), 0, "%s", err.msg);
    spq_qcfg q = spq_jobspec_qcfg(&s, s.quant.w_bits);
    cr_assert_eq(q.w.grid, SPQ_GRID_Q4_0);
    cr_assert_eq(spq_jobspec_qcfg(&s, 16).w.grid, 0, "full-precision weights have no grid");
    char *json = spq_jobspec_to_json(&s);
    cr_assert(strstr(json, "\"w_grid\":\"q4_0\""), "%s", json);
    cr_assert_eq(parse(&t, json, field, &err), 0, "%s: %s", json, err.msg);
    cr_assert_eq(t.quant.w_grid, SPQ_GRID_Q4_0);
    free(json);
    spq_jobspec_free(&s);
    spq_jobspec_free(&t);
    expect_error("{\"model\":\"m\",\"quant\":{\"w_grid\":\"q5_k\"}}", "quant.w_grid", "must be one of");
    expect_error("{\"model\":\"m\",\"quant\":{\"w_grid\":\"q4_0\",\"w_clip\":false}}", "quant.w_grid", "groupsize 32");
    expect_error("{\"model\":\"m\",\"quant\":{\"w_grid\":\"q8_0\",\"w_groupsize\":32,\"w_clip\":false}}", "quant.w_bits",
                 "must be 8");
    expect_error("{\"model\":\"m\",\"quant\":{\"w_grid\":\"q4_0\",\"w_groupsize\":32,\"w_clip\":false},"
                 "\"rotation\":{\"train\":{\"w_bits\":8}}}",
                 "rotation.train.w_bits", "must be 16 or 4");
}

Test(jobspec, resources_default_to_the_daemons_and_errors_name_the_field) {
    spq_jobspec s, t;
    spq_err err;
    char field[SPQ_FIELD_MAX];
    cr_assert_eq(parse(&s, "{\"model\":\"m\"}", field, &err), 0, "%s", err.msg);
    cr_assert_eq(s.resources.nodes + s.resources.tasks + s.resources.threads_per_task, 0, "0: the daemon's settings");
    spq_jobspec_free(&s);
    cr_assert_eq(parse(&s, "{\"model\":\"m\",\"resources\":{\"nodes\":2,\"tasks\":4,\"threads_per_task\":3}}", field,
                       &err), 0, "%s", err.msg);
    char *json = spq_jobspec_to_json(&s);
    cr_assert(strstr(json, "\"resources\":{\"nodes\":2,\"tasks\":4,\"threads_per_task\":3}"), "%s", json);
    cr_assert_eq(parse(&t, json, field, &err), 0, "%s", err.msg);
    cr_assert_eq(t.resources.tasks, 4);
    free(json);
    spq_jobspec_free(&s);
    spq_jobspec_free(&t);
    expect_error("{\"model\":\"m\",\"resources\":{\"gpus\":1}}", "resources.gpus", "unknown field");
    expect_error("{\"model\":\"m\",\"resources\":{\"tasks\":-1}}", "resources.tasks", "must be in [0");
    expect_error("{\"model\":\"m\",\"resources\":{\"nodes\":\"2\"}}", "resources.nodes", "must be an integer");
    expect_error("{\"model\":\"m\",\"resources\":3}", "resources", "must be an object");
    expect_error("{\"model\":\"m\",\"resources\":{\"nodes\":3,\"tasks\":2}}", "resources.tasks",
                 "must be at least resources.nodes (3)");
}
