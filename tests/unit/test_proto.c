/* test_proto.c - the worker protocol: every message survives an
 * encode/decode round trip, frames are cut out of a stream fed byte by byte,
 * and malformed streams and payloads are refused (never crash). */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "common/base/util.h"
#include "proto/messages.h"

/* The single frame in b: checks its header and returns its payload. */
static proto_frame one_frame(const proto_buf *b, int type) {
    proto_frame f;
    spq_err err;
    cr_assert_eq(proto_frame_parse(&f, b->data, b->len, &err), 1, "%s", err.msg);
    cr_assert_eq(f.type, type);
    cr_assert_eq(PROTO_HEADER + f.len, b->len);
    return f;
}

Test(proto, every_message_round_trips) {
    proto_buf b = {0};
    spq_err err;

    proto_hello h = {PROTO_VERSION, "host:1", 42, "tok", 2, 77, 3, 0}, h2;
    proto_enc_hello(&b, &h);
    proto_frame f = one_frame(&b, PROTO_HELLO);
    cr_assert_eq(proto_dec_hello(&h2, f.payload, f.len, &err), 0, "%s", err.msg);
    cr_assert_str_eq(h2.name, "host:1");
    cr_assert_str_eq(h2.token, "tok");
    cr_assert_eq(h2.pid, 42);
    cr_assert_eq(h2.threads, 2);
    cr_assert_eq(h2.held_run, 77);
    cr_assert_eq(h2.held_attempt, 3);
    cr_assert_eq(h2.only_run, 0, "a hello without only_run (an older worker's) reads as 0");
    proto_free_hello(&h2);

    /* only_run is an optional tail: present only when set, 8 bytes more */
    size_t plain = f.len;
    b.len = 0;
    h.only_run = 0x0102030405060708ull;
    proto_enc_hello(&b, &h);
    f = one_frame(&b, PROTO_HELLO);
    cr_assert_eq(f.len, plain + 8);
    cr_assert_eq(proto_dec_hello(&h2, f.payload, f.len, &err), 0, "%s", err.msg);
    cr_assert_eq(h2.only_run, 0x0102030405060708ull);
    proto_free_hello(&h2);
    cr_assert_neq(proto_dec_hello(&h2, f.payload, f.len - 3, &err), 0, "a cut tail is refused");
    h.only_run = 0;

    b.len = 0;
    uint8_t ck[5] = {1, 2, 3, 0, 255};
    proto_job j = {7, 2, "{\"model\":\"m\"}", 30, ck, 5}, j2;
    proto_enc_job(&b, &j);
    f = one_frame(&b, PROTO_JOB);
    cr_assert_eq(proto_dec_job(&j2, f.payload, f.len, &err), 0, "%s", err.msg);
    cr_assert_eq(j2.run_id, 7);
    cr_assert_eq(j2.attempt, 2);
    cr_assert_str_eq(j2.spec, "{\"model\":\"m\"}");
    cr_assert_eq(j2.ckpt_step, 30);
    cr_assert_eq(j2.ckpt_len, 5);
    cr_assert_eq(memcmp(j2.ckpt, ck, 5), 0);
    proto_free_job(&j2);

    b.len = 0;
    proto_metric m = {7, "loss", 12, -2.5e-3}, m2;
    proto_enc_metric(&b, &m);
    f = one_frame(&b, PROTO_METRIC);
    cr_assert_eq(proto_dec_metric(&m2, f.payload, f.len, &err), 0, "%s", err.msg);
    cr_assert_str_eq(m2.key, "loss");
    cr_assert_eq(m2.step, 12);
    cr_assert_eq(m2.value, -2.5e-3, "doubles travel bit-exactly");
    proto_free_metric(&m2);

    b.len = 0;
    proto_checkpoint c = {7, 40, ck, 5}, c2;
    proto_enc_checkpoint(&b, &c);
    f = one_frame(&b, PROTO_CHECKPOINT);
    cr_assert_eq(proto_dec_checkpoint(&c2, f.payload, f.len, &err), 0, "%s", err.msg);
    cr_assert_eq(c2.step, 40);
    cr_assert_eq(memcmp(c2.data, ck, 5), 0);

    b.len = 0;
    char sha[65];
    memset(sha, 'a', 64);
    sha[64] = 0;
    proto_artifact a = {7, "results.json", 0, 5, ck, 5, 1, sha}, a2;
    proto_enc_artifact(&b, &a);
    f = one_frame(&b, PROTO_ARTIFACT);
    cr_assert_eq(proto_dec_artifact(&a2, f.payload, f.len, &err), 0, "%s", err.msg);
    cr_assert_str_eq(a2.name, "results.json");
    cr_assert_eq(a2.final, 1);
    cr_assert_str_eq(a2.sha256, sha);
    proto_free_artifact(&a2);

    b.len = 0;
    proto_done d = {7, PROTO_OUT_FAILED, "rotation: not available yet"}, d2;
    proto_enc_done(&b, &d);
    f = one_frame(&b, PROTO_DONE);
    cr_assert_eq(proto_dec_done(&d2, f.payload, f.len, &err), 0, "%s", err.msg);
    cr_assert_eq(d2.outcome, PROTO_OUT_FAILED);
    cr_assert_str_eq(d2.reason, "rotation: not available yet");
    proto_free_done(&d2);

    b.len = 0;
    proto_log l = {7, "info", "hello"}, l2;
    proto_enc_log(&b, &l);
    f = one_frame(&b, PROTO_LOG);
    cr_assert_eq(proto_dec_log(&l2, f.payload, f.len, &err), 0, "%s", err.msg);
    cr_assert_str_eq(l2.text, "hello");
    proto_free_log(&l2);

    b.len = 0;
    proto_progress p = {7, "eval", 3, 9}, p2;
    proto_enc_progress(&b, &p);
    f = one_frame(&b, PROTO_PROGRESS);
    cr_assert_eq(proto_dec_progress(&p2, f.payload, f.len, &err), 0, "%s", err.msg);
    cr_assert_eq(p2.done, 3);
    cr_assert_eq(p2.total, 9);
    proto_free_progress(&p2);

    b.len = 0;
    proto_enc_shutdown(&b);
    f = one_frame(&b, PROTO_SHUTDOWN);
    cr_assert_eq(proto_dec_shutdown(f.payload, f.len, &err), 0);
    proto_buf_free(&b);
}

Test(proto, frames_are_cut_from_a_stream_fed_byte_by_byte) {
    proto_buf out = {0}, in = {0};
    for (int i = 0; i < 20; i++) {
        proto_metric m = {1, "loss", i, i * 0.5};
        proto_enc_metric(&out, &m);
    }
    proto_ping ping = {99};
    proto_enc_ping(&out, PROTO_PING, &ping);
    int got = 0;
    spq_err err;
    for (size_t k = 0; k < out.len; k++) {
        proto_buf_reserve(&in, 1);
        in.data[in.len++] = out.data[k];
        proto_frame f;
        int rc;
        while ((rc = proto_frame_parse(&f, in.data, in.len, &err)) == 1) {
            if (got < 20) {
                proto_metric m;
                cr_assert_eq(proto_dec_metric(&m, f.payload, f.len, &err), 0, "%s", err.msg);
                cr_assert_eq(m.step, got);
                proto_free_metric(&m);
            } else {
                cr_assert_eq(f.type, PROTO_PING);
            }
            got++;
            proto_buf_consume(&in, PROTO_HEADER + f.len);
        }
        cr_assert_eq(rc, 0, "%s", err.msg);
    }
    cr_assert_eq(got, 21);
    cr_assert_eq(in.len, 0);
    proto_buf_free(&out);
    proto_buf_free(&in);
}

static void expect_bad_stream(const uint8_t *bytes, size_t n, const char *want) {
    proto_frame f;
    spq_err err = {{0}};
    cr_assert_eq(proto_frame_parse(&f, bytes, n, &err), -1);
    cr_assert(strstr(err.msg, want), "'%s' lacks '%s'", err.msg, want);
}

Test(proto, malformed_headers_are_refused) {
    uint8_t h[PROTO_HEADER] = {'S', 'P', 'Q', 'W', 0, PROTO_VERSION, 0, PROTO_PING, 0, 0, 0, 8};
    uint8_t bad[PROTO_HEADER];
    memcpy(bad, h, sizeof h);
    bad[0] = 'G'; /* an HTTP client on the worker port */
    expect_bad_stream(bad, 1, "magic");
    memcpy(bad, h, sizeof h);
    bad[5] = 9;
    expect_bad_stream(bad, sizeof bad, "version 9");
    memcpy(bad, h, sizeof h);
    bad[7] = 0;
    expect_bad_stream(bad, sizeof bad, "unknown frame type 0");
    bad[7] = PROTO_TYPE_END;
    expect_bad_stream(bad, sizeof bad, "unknown frame type");
    memcpy(bad, h, sizeof h);
    bad[8] = 0x7f; /* ~2 GiB */
    expect_bad_stream(bad, sizeof bad, "exceeds the limit");
    proto_frame f;
    spq_err err;
    cr_assert_eq(proto_frame_parse(&f, h, sizeof h, &err), 0, "a header without its payload waits for more");
}

Test(proto, the_transfer_messages_round_trip) {
    proto_buf b = {0};
    spq_err err;
    proto_resumed r = {9, 1, "", "{\"model.spq\":{\"size\":5}}"}, r2;
    proto_enc_resumed(&b, &r);
    proto_frame f = one_frame(&b, PROTO_RESUMED);
    cr_assert_eq(proto_dec_resumed(&r2, f.payload, f.len, &err), 0, "%s", err.msg);
    cr_assert_eq(r2.run_id, 9);
    cr_assert_eq(r2.accepted, 1);
    cr_assert_str_eq(r2.have, r.have);
    proto_free_resumed(&r2);

    b.len = 0;
    proto_want w = {PROTO_KIND_DATASET, "tinystories/test.txt"}, w2;
    proto_enc_want(&b, &w);
    f = one_frame(&b, PROTO_WANT);
    cr_assert_eq(proto_dec_want(&w2, f.payload, f.len, &err), 0, "%s", err.msg);
    cr_assert_eq(w2.kind, PROTO_KIND_DATASET);
    cr_assert_str_eq(w2.name, "tinystories/test.txt");
    proto_free_want(&w2);

    b.len = 0;
    proto_manifest m = {PROTO_KIND_MODEL, "m", "[]", "no such model"}, m2;
    proto_enc_manifest(&b, &m);
    f = one_frame(&b, PROTO_MANIFEST);
    cr_assert_eq(proto_dec_manifest(&m2, f.payload, f.len, &err), 0, "%s", err.msg);
    cr_assert_str_eq(m2.files, "[]");
    cr_assert_str_eq(m2.error, "no such model");
    proto_free_manifest(&m2);

    b.len = 0;
    proto_fetch q = {PROTO_KIND_MODEL, "m/a.bin", 1 << 20}, q2;
    proto_enc_fetch(&b, &q);
    f = one_frame(&b, PROTO_FETCH);
    cr_assert_eq(proto_dec_fetch(&q2, f.payload, f.len, &err), 0, "%s", err.msg);
    cr_assert_str_eq(q2.path, "m/a.bin");
    cr_assert_eq(q2.offset, 1 << 20);
    proto_free_fetch(&q2);

    b.len = 0;
    proto_file c = {PROTO_KIND_MODEL, "m/a.bin", 3, 8, (const uint8_t *)"abcde", 5, ""}, c2;
    proto_enc_file(&b, &c);
    f = one_frame(&b, PROTO_FILE);
    cr_assert_eq(proto_dec_file(&c2, f.payload, f.len, &err), 0, "%s", err.msg);
    cr_assert_eq(c2.offset, 3);
    cr_assert_eq(c2.total, 8);
    cr_assert_eq(c2.len, 5);
    cr_assert_eq(memcmp(c2.data, "abcde", 5), 0);
    proto_free_file(&c2);

    /* what a row cannot say */
    b.len = 0;
    proto_file outside = {PROTO_KIND_MODEL, "m/a.bin", 6, 8, (const uint8_t *)"abc", 3, ""};
    proto_enc_file(&b, &outside);
    cr_assert_eq(proto_dec_file(&c2, b.data + PROTO_HEADER, b.len - PROTO_HEADER, &err), -1);
    cr_assert_str_eq(err.msg, "file: chunk lies outside the file");
    b.len = 0;
    proto_enc_want(&b, &(proto_want){7, "x"});
    cr_assert_eq(proto_dec_want(&w2, b.data + PROTO_HEADER, b.len - PROTO_HEADER, &err), -1);
    cr_assert_str_eq(err.msg, "want.kind: must be 0 (model) or 1 (dataset)");
    b.len = 0;
    proto_enc_fetch(&b, &(proto_fetch){0, "", 0});
    cr_assert_eq(proto_dec_fetch(&q2, b.data + PROTO_HEADER, b.len - PROTO_HEADER, &err), -1);
    cr_assert_str_eq(err.msg, "fetch: the name must be 1 to 1024 bytes");
    proto_buf_free(&b);
}

/* HELLO and REJECT are cut from the stream whatever version their header
 * names, so that the two sides can say which versions they speak; every
 * other frame of another version is a malformed stream. */
Test(proto, handshake_frames_of_another_version_are_read) {
    proto_buf b = {0};
    proto_enc_reject(&b, &(proto_reject){"protocol version 2, the daemon speaks 3"});
    b.data[5] = 3; /* a REJECT from a newer daemon */
    proto_frame f;
    spq_err err;
    cr_assert_eq(proto_frame_parse(&f, b.data, b.len, &err), 1, "%s", err.msg);
    cr_assert_eq(f.version, 3);
    proto_reject r;
    cr_assert_eq(proto_dec_reject(&r, f.payload, f.len, &err), 0, "%s", err.msg);
    cr_assert_str_eq(r.reason, "protocol version 2, the daemon speaks 3");
    proto_free_reject(&r);
    b.len = 0;
    proto_enc_hello(&b, &(proto_hello){1, "old", 1, "", 1, 0, 0, 0});
    b.data[5] = 1; /* a HELLO from an older worker */
    cr_assert_eq(proto_frame_parse(&f, b.data, b.len, &err), 1, "%s", err.msg);
    cr_assert_eq(f.version, 1);
    b.len = 0;
    proto_enc_welcome(&b, &(proto_welcome){1, 1000});
    b.data[5] = 3;
    expect_bad_stream(b.data, b.len, "protocol version 3, this side speaks 2");
    proto_buf_free(&b);
}

Test(proto, malformed_payloads_are_refused) {
    proto_buf b = {0};
    spq_err err;
    proto_metric m = {1, "loss", 2, 3.0}, m2;
    proto_enc_metric(&b, &m);
    const uint8_t *p = b.data + PROTO_HEADER;
    size_t n = b.len - PROTO_HEADER;
    for (size_t cut = 0; cut < n; cut++)
        cr_assert_eq(proto_dec_metric(&m2, p, cut, &err), -1, "a payload cut at %zu was accepted", cut);
    uint8_t longer[256];
    memcpy(longer, p, n);
    longer[n] = 0;
    cr_assert_eq(proto_dec_metric(&m2, longer, n + 1, &err), -1);
    cr_assert(strstr(err.msg, "unexpected bytes"), "%s", err.msg);
    /* a string length that points past the end */
    memcpy(longer, p, n);
    longer[8] = 0x10;
    cr_assert_eq(proto_dec_metric(&m2, longer, n, &err), -1);
    /* a NUL inside a string */
    memcpy(longer, p, n);
    longer[12] = 0;
    cr_assert_eq(proto_dec_metric(&m2, longer, n, &err), -1);
    cr_assert(strstr(err.msg, "NUL"), "%s", err.msg);
    /* invalid UTF-8 */
    longer[12] = 0xff;
    cr_assert_eq(proto_dec_metric(&m2, longer, n, &err), -1);
    cr_assert(strstr(err.msg, "UTF-8"), "%s", err.msg);
    proto_buf_free(&b);

    /* an artifact name that would leave its directory */
    b = (proto_buf){0};
    proto_artifact a = {1, "../x", 0, 1, (const uint8_t *)"x", 1, 0, ""}, a2;
    proto_enc_artifact(&b, &a);
    cr_assert_eq(proto_dec_artifact(&a2, b.data + PROTO_HEADER, b.len - PROTO_HEADER, &err), -1);
    b.len = 0;
    proto_artifact a3 = {1, "f", 5, 4, (const uint8_t *)"x", 1, 0, ""};
    proto_enc_artifact(&b, &a3);
    cr_assert_eq(proto_dec_artifact(&a2, b.data + PROTO_HEADER, b.len - PROTO_HEADER, &err), -1);
    cr_assert(strstr(err.msg, "outside"), "%s", err.msg);
    b.len = 0;
    proto_done d = {1, 9, ""}, d2;
    proto_enc_done(&b, &d);
    cr_assert_eq(proto_dec_done(&d2, b.data + PROTO_HEADER, b.len - PROTO_HEADER, &err), -1);
    proto_buf_free(&b);
}

Test(proto, random_bytes_never_crash_a_decoder) {
    spq_rng rng;
    spq_rng_seed(&rng, 1234);
    uint8_t buf[300];
    spq_err err;
    for (int it = 0; it < 20000; it++) {
        size_t n = spq_rng_u64(&rng) % sizeof buf;
        for (size_t i = 0; i < n; i++) buf[i] = (uint8_t)spq_rng_u64(&rng);
        proto_frame f;
        (void)proto_frame_parse(&f, buf, n, &err);
        proto_hello h;
        if (!proto_dec_hello(&h, buf, n, &err)) proto_free_hello(&h);
        proto_job j;
        if (!proto_dec_job(&j, buf, n, &err)) proto_free_job(&j);
        proto_artifact a;
        if (!proto_dec_artifact(&a, buf, n, &err)) proto_free_artifact(&a);
        proto_log l;
        if (!proto_dec_log(&l, buf, n, &err)) proto_free_log(&l);
        proto_done d;
        if (!proto_dec_done(&d, buf, n, &err)) proto_free_done(&d);
    }
}
