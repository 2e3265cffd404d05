/* test_proto_wire.c - the wire format does not move: every message, encoded
 * from the same values, gives the bytes the hand-written encoders of
 * proto/messages.c gave before the messages were described by field tables
 * (captured from that code, then pasted here as hex), and decoding those
 * bytes and encoding the result again gives them back. The decoders refuse
 * what they refused before with the same messages: every cut of each
 * payload (and one byte too many) gives the messages the old decoders gave
 * (their digest, captured alongside the bytes), and the checks beyond the
 * fields say what they said. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/messages.h"

typedef struct {
    const char *name;
    const char *hex;    /* the whole frame, header included */
    uint64_t refusals;  /* FNV-1a of the decoder's messages on every cut of the payload (see below) */
} wire_case;

static const wire_case cases[] = {
    {"hello",
        "5350515700020001000000290000000200000006686f73743a310000002a00000003746f6b0000000200000000000000"
        "0000000000",
        0x2c1b1ec66c9ae3deull},
    {"hello_null_token",
        "53505157000200010000002700000002000000076c6f63616c2d30fffffffe0000000000000000000000000000000000"
        "000000",
        0xf691e86d86fda601ull},
    {"welcome",
        "53505157000200020000000c010203040506070800001388",
        0x9de8d003b00c3bfbull},
    {"reject",
        "53505157000200030000000d0000000962616420746f6b656e",
        0x4c8329b9beeb4203ull},
    {"job",
        "53505157000200040000002e0000000000000007000000020000000d7b226d6f64656c223a226d227d00000000000000"
        "1e0000000501020300ff",
        0x60589c10133b2c50ull},
    {"job_fresh",
        "53505157000200040000001e000000000000000100000001000000027b7dffffffffffffffff00000000",
        0x5bd8fea9fbe611caull},
    {"cancel",
        "535051570002000500000008fedcba9876543210",
        0xb56dbffdfcfa7ea3ull},
    {"shutdown",
        "535051570002000600000000",
        0x67412c7f1e37387bull},
    {"ping",
        "5350515700020007000000080000000000000063",
        0xf5de53960aa4282bull},
    {"pong",
        "535051570002000800000008000000006553f100",
        0xf5de53960aa4282bull},
    {"stage",
        "5350515700020009000000140000000000000007000000087175616e74697a65",
        0x226d5f33135423cfull},
    {"metric",
        "535051570002000a000000200000000000000007000000046c6f7373000000000000000cbf647ae147ae147b",
        0x6b511bc812a54e8bull},
    {"metric_neg_step",
        "535051570002000a0000002800000000000000030000000c70706c2f77696b6974657874fffffffffffffffb7e37e43c"
        "8800759c",
        0x103200107b9c5498ull},
    {"progress",
        "535051570002000b000000200000000000000007000000046576616c00000000000000030000000000000009",
        0xbfeb031ad298ee5bull},
    {"log",
        "535051570002000c0000001c000000000000000700000004696e666f0000000868656c6c6f20c3a9",
        0xdc7f95f5626e584bull},
    {"checkpoint",
        "535051570002000d00000019000000000000000700000000000000280000000501020300ff",
        0x020cfd6046b3df08ull},
    {"artifact",
        "535051570002000e0000007600000000000000070000000c726573756c74732e6a736f6e000000000000000000000000"
        "000000050000000501020300ff0100000040616161616161616161616161616161616161616161616161616161616161"
        "61616161616161616161616161616161616161616161616161616161616161616161",
        0xcf5c120692c1593eull},
    {"artifact_chunk",
        "535051570002000e000000310000000000000007000000096d6f64656c2e737071000000000000040000000000000010"
        "00000000030203000000000000",
        0x5ba83ff0d8d1d84aull},
    {"done",
        "535051570002000f000000280000000000000007010000001b726f746174696f6e3a206e6f7420617661696c61626c65"
        "20796574",
        0x074bf1404db20442ull},
    {"done_ok",
        "535051570002000f0000000d00000000000000080000000000",
        0x34f8eeee7dee1cacull},
    {"hello_held",
        "5350515700020001000000240000000200000003773a3900000009000000017400000001010203040506070800000003",
        0x8922c4ea8434abf5ull},
    {"resumed",
        "53505157000200100000002900000000000000070100000000000000187b226d6f64656c2e737071223a7b2273697a65"
        "223a357d7d",
        0x72b175ede6b52f18ull},
    {"resumed_refused",
        "5350515700020010000000200000000000000007000000000d72756e203720697320646f6e65000000027b7d",
        0x831f7758e99be1dbull},
    {"want",
        "535051570002001100000010000000000b73746f726965733236304b",
        0x2b27b69fb466166full},
    {"manifest",
        "53505157000200120000003b0100000005742e747874000000295b7b2270617468223a22742e747874222c2273697a65"
        "223a332c22736861323536223a226162227d5d00000000",
        0xdacf3d6ca4563c8dull},
    {"fetch",
        "5350515700020013000000120100000005742e7478740000000000000001",
        0x8491c12016275354ull},
    {"file",
        "5350515700020014000000270100000005742e747874000000000000000100000000000000060000000501020300ff00"
        "000000",
        0xc55cdfcbec1e2d55ull},
    {"file_error",
        "53505157000200140000003800000000036d2f780000000000000000000000000000000000000000000000186d2f783a"
        "206e6f742061207265616461626c652066696c65",
        0xe5118f1cde7ef70dull},
};
enum { N_CASES = sizeof cases / sizeof cases[0] };

static const uint8_t ck[5] = {1, 2, 3, 0, 255};

/* Encodes case i with the values the bytes were captured from. */
static void encode_case(int i, proto_buf *b) {
    char sha[65];
    memset(sha, 'a', 64);
    sha[64] = 0;
    switch (i) {
    case 0: proto_enc_hello(b, &(proto_hello){PROTO_VERSION, "host:1", 42, "tok", 2, 0, 0, 0}); break;
    case 1: proto_enc_hello(b, &(proto_hello){PROTO_VERSION, "local-0", 0xfffffffe, NULL, 0, 0, 0, 0}); break;
    case 2: proto_enc_welcome(b, &(proto_welcome){0x0102030405060708ull, 5000}); break;
    case 3: proto_enc_reject(b, &(proto_reject){"bad token"}); break;
    case 4: proto_enc_job(b, &(proto_job){7, 2, "{\"model\":\"m\"}", 30, ck, 5}); break;
    case 5: proto_enc_job(b, &(proto_job){1, 1, "{}", -1, NULL, 0}); break;
    case 6: proto_enc_cancel(b, &(proto_run_ref){0xfedcba9876543210ull}); break;
    case 7: proto_enc_shutdown(b); break;
    case 8: proto_enc_ping(b, PROTO_PING, &(proto_ping){99}); break;
    case 9: proto_enc_ping(b, PROTO_PONG, &(proto_ping){1700000000}); break;
    case 10: proto_enc_stage(b, &(proto_stage){7, "quantize"}); break;
    case 11: proto_enc_metric(b, &(proto_metric){7, "loss", 12, -2.5e-3}); break;
    case 12: proto_enc_metric(b, &(proto_metric){3, "ppl/wikitext", -5, 1e300}); break;
    case 13: proto_enc_progress(b, &(proto_progress){7, "eval", 3, 9}); break;
    case 14: proto_enc_log(b, &(proto_log){7, "info", "hello \xc3\xa9"}); break;
    case 15: proto_enc_checkpoint(b, &(proto_checkpoint){7, 40, ck, 5}); break;
    case 16: proto_enc_artifact(b, &(proto_artifact){7, "results.json", 0, 5, ck, 5, 1, sha}); break;
    case 17: proto_enc_artifact(b, &(proto_artifact){7, "model.spq", 1024, 4096, ck + 1, 3, 0, ""}); break;
    case 18: proto_enc_done(b, &(proto_done){7, PROTO_OUT_FAILED, "rotation: not available yet"}); break;
    case 19: proto_enc_done(b, &(proto_done){8, PROTO_OUT_DONE, ""}); break;
    case 20: proto_enc_hello(b, &(proto_hello){PROTO_VERSION, "w:9", 9, "t", 1, 0x0102030405060708ull, 3, 0}); break;
    case 21: proto_enc_resumed(b, &(proto_resumed){7, 1, "", "{\"model.spq\":{\"size\":5}}"}); break;
    case 22: proto_enc_resumed(b, &(proto_resumed){7, 0, "run 7 is done", "{}"}); break;
    case 23: proto_enc_want(b, &(proto_want){PROTO_KIND_MODEL, "stories260K"}); break;
    case 24:
        proto_enc_manifest(b, &(proto_manifest){PROTO_KIND_DATASET, "t.txt",
                                                "[{\"path\":\"t.txt\",\"size\":3,\"sha256\":\"ab\"}]", ""});
        break;
    case 25: proto_enc_fetch(b, &(proto_fetch){PROTO_KIND_DATASET, "t.txt", 1}); break;
    case 26: proto_enc_file(b, &(proto_file){PROTO_KIND_DATASET, "t.txt", 1, 6, ck, 5, ""}); break;
    case 27: proto_enc_file(b, &(proto_file){PROTO_KIND_MODEL, "m/x", 0, 0, NULL, 0, "m/x: not a readable file"}); break;
    default: cr_assert_fail("no values for case %d", i);
    }
}

/* Decodes a payload with its type's decoder: 0 or -1 (err says why). When
 * again is not NULL, the decoded message is encoded into it (as a frame of
 * that type). */
static int decode(int type, const uint8_t *p, size_t n, spq_err *err, proto_buf *again) {
    int rc = -1;
    switch (type) {
#define D(T, S, free_it)                                                                                               \
    {                                                                                                                  \
        S m;                                                                                                           \
        rc = proto_dec_##T(&m, p, n, err);                                                                             \
        if (!rc && again) proto_enc_##T(again, &m);                                                                    \
        if (!rc) free_it;                                                                                              \
        break;                                                                                                         \
    }
    case PROTO_HELLO: D(hello, proto_hello, proto_free_hello(&m))
    case PROTO_REJECT: D(reject, proto_reject, proto_free_reject(&m))
    case PROTO_JOB: D(job, proto_job, proto_free_job(&m))
    case PROTO_STAGE: D(stage, proto_stage, proto_free_stage(&m))
    case PROTO_METRIC: D(metric, proto_metric, proto_free_metric(&m))
    case PROTO_PROGRESS: D(progress, proto_progress, proto_free_progress(&m))
    case PROTO_LOG: D(log, proto_log, proto_free_log(&m))
    case PROTO_ARTIFACT: D(artifact, proto_artifact, proto_free_artifact(&m))
    case PROTO_DONE: D(done, proto_done, proto_free_done(&m))
    case PROTO_RESUMED: D(resumed, proto_resumed, proto_free_resumed(&m))
    case PROTO_WANT: D(want, proto_want, proto_free_want(&m))
    case PROTO_MANIFEST: D(manifest, proto_manifest, proto_free_manifest(&m))
    case PROTO_FETCH: D(fetch, proto_fetch, proto_free_fetch(&m))
    case PROTO_FILE: D(file, proto_file, proto_free_file(&m))
    case PROTO_WELCOME: D(welcome, proto_welcome, (void)0)
    case PROTO_CANCEL: D(cancel, proto_run_ref, (void)0)
    case PROTO_CHECKPOINT: D(checkpoint, proto_checkpoint, (void)0)
#undef D
    case PROTO_PING:
    case PROTO_PONG: {
        proto_ping m;
        rc = proto_dec_ping(&m, p, n, err);
        if (!rc && again) proto_enc_ping(again, (proto_type)type, &m);
        break;
    }
    case PROTO_SHUTDOWN:
        rc = proto_dec_shutdown(p, n, err);
        if (!rc && again) proto_enc_shutdown(again);
        break;
    }
    return rc;
}

static char *hex_of(const proto_buf *b) {
    char *s = malloc(2 * b->len + 1);
    for (size_t i = 0; i < b->len; i++) sprintf(s + 2 * i, "%02x", b->data[i]);
    s[2 * b->len] = 0;
    return s;
}

static void from_hex(const char *hex, proto_buf *b) {
    size_t n = strlen(hex) / 2;
    proto_buf_reserve(b, n);
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        sscanf(hex + 2 * i, "%2x", &v);
        b->data[b->len++] = (uint8_t)v;
    }
}

Test(proto_wire, every_message_encodes_to_the_captured_bytes) {
    cr_assert_eq(N_CASES, 28);
    for (int i = 0; i < N_CASES; i++) {
        proto_buf b = {0};
        encode_case(i, &b);
        char *got = hex_of(&b);
        cr_assert_str_eq(got, cases[i].hex, "%s: the encoding changed", cases[i].name);
        free(got);
        proto_buf_free(&b);
    }
}

Test(proto_wire, the_captured_bytes_decode_and_encode_again_unchanged) {
    int seen[PROTO_TYPE_END] = {0};
    for (int i = 0; i < N_CASES; i++) {
        proto_buf in = {0}, out = {0};
        from_hex(cases[i].hex, &in);
        proto_frame f;
        spq_err err;
        cr_assert_eq(proto_frame_parse(&f, in.data, in.len, &err), 1, "%s: %s", cases[i].name, err.msg);
        seen[f.type] = 1;
        spq_err err2 = {{0}};
        cr_assert_eq(decode(f.type, f.payload, f.len, &err2, &out), 0, "%s: %s", cases[i].name, err2.msg);
        char *got = hex_of(&out);
        cr_assert_str_eq(got, cases[i].hex, "%s: decode then encode changed the bytes", cases[i].name);
        free(got);
        proto_buf_free(&in);
        proto_buf_free(&out);
    }
    for (int t = 1; t < PROTO_TYPE_END; t++) cr_assert(seen[t], "no captured frame of type %s", proto_type_name(t));
}

static uint64_t fnv(uint64_t h, const char *s) {
    for (; *s; s++) h = (h ^ (uint8_t)*s) * 1099511628211ull;
    return (h ^ '\n') * 1099511628211ull;
}

Test(proto_wire, every_cut_of_a_payload_is_refused_as_before) {
    for (int i = 0; i < N_CASES; i++) {
        proto_buf in = {0};
        from_hex(cases[i].hex, &in);
        proto_buf_reserve(&in, 1);
        in.data[in.len] = 0; /* the byte too many */
        uint64_t h = 1469598103934665603ull;
        for (size_t cut = 0; cut <= in.len - PROTO_HEADER + 1; cut++) {
            spq_err err = {{0}};
            int rc = decode(in.data[7], in.data + PROTO_HEADER, cut, &err, NULL);
            h = fnv(h, rc ? err.msg : "ok");
        }
        cr_assert_eq(h, cases[i].refusals, "%s: the decoder's refusals changed", cases[i].name);
        proto_buf_free(&in);
    }
}

/* Encodes a proto_T of those values, decodes it and expects the message. */
#define REFUSED(T, want, ...)                                                                                          \
    do {                                                                                                               \
        proto_buf b = {0};                                                                                             \
        spq_err err = {{0}};                                                                                           \
        proto_enc_##T(&b, &(proto_##T){__VA_ARGS__});                                                                  \
        cr_assert_eq(decode(b.data[7], b.data + PROTO_HEADER, b.len - PROTO_HEADER, &err, NULL), -1);                  \
        cr_assert_str_eq(err.msg, want);                                                                               \
        proto_buf_free(&b);                                                                                            \
    } while (0)

Test(proto_wire, the_checks_beyond_the_fields_say_what_they_said) {
    char long_key[202];
    memset(long_key, 'k', 201);
    long_key[201] = 0;
    REFUSED(metric, "metric.key: must be 1 to 200 bytes", 1, "", 0, 0);
    REFUSED(metric, "metric.key: must be 1 to 200 bytes", 1, long_key, 0, 0);
    REFUSED(job, "job.ckpt_step: -2 with 0 checkpoint bytes", 1, 1, "{}", -2, NULL, 0);
    REFUSED(job, "job.ckpt_step: -1 with 2 checkpoint bytes", 1, 1, "{}", -1, (const uint8_t *)"ab", 2);
    REFUSED(checkpoint, "checkpoint.step: negative", 1, -3, NULL, 0);
    REFUSED(artifact, "artifact.name: must be a plain file name (letters, digits, '.', '_', '-'; not starting with '.')",
            1, ".x", 0, 1, (const uint8_t *)"x", 1, 0, "");
    REFUSED(artifact, "artifact: chunk lies outside the file", 1, "f", 5, 4, (const uint8_t *)"x", 1, 0, "");
    REFUSED(artifact, "artifact.sha256: the final chunk must carry a 64-digit sha256", 1, "f", 0, 1,
            (const uint8_t *)"x", 1, 1, "abc");
    REFUSED(artifact, "artifact.sha256: the final chunk must carry a 64-digit sha256", 1, "f", 0, 1,
            (const uint8_t *)"x", 1, 2, "");
    REFUSED(done, "done.outcome: unknown value", 1, 4, "");
}
