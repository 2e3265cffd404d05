// tokenizer.test.js - spinq's tokenizers against the reference JS
// implementation (@lenml/tokenizers, a packaging of HF transformers.js) on the
// real LLaMA-2 and LLaMA-3 tokenizer.json files, and stories260K's
// tokenizer.json against its llama2.c tok512.bin.
//
// The sanitizer build (build/asan/spinq) runs the C side, so a memory error
// anywhere in the tokenizer fails these tests too; SPINQ_BIN overrides it.
// Texts come from tests/data/tok_corpus.mjs (deterministic, ~2,200 texts:
// TinyStories, code, numbers, Unicode, white space, special-token strings)
// and travel as JSON strings (spinq tokenize --jsonl), so newlines, tabs and
// any other character inside a text are covered.
//
// Like with like: the reference's encode(text) adds special tokens by default
// ({add_special_tokens: false} turns that off), spinq adds them unless
// --no-special. Decoding is compared with skip_special_tokens: true and
// clean_up_tokenization_spaces: false (LLaMA-3's config asks for the clean-up,
// which rewrites " ." to "." and so cannot round-trip; spinq never cleans up).
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, writeFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { TokenizerLoader } from "@lenml/tokenizers";
import { buildCorpus } from "../data/tok_corpus.mjs";

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, "../..");
const shared = path.resolve(process.env.SPINQ_SHARED ?? path.join(root, "../shared"));
const spinq = process.env.SPINQ_BIN ?? path.join(root, "build/asan/spinq");
const lenml = path.join(root, "tests/node_modules/@lenml");

const TOKENIZERS = {
  llama2: path.join(lenml, "tokenizer-llama2/models"),
  llama3: path.join(lenml, "tokenizer-llama3/models"),
  stories_hf: path.join(shared, "models/stories260K-hf"),
};
const STORIES_BIN = path.join(shared, "models/stories260K/tok512.bin");

const work = mkdtempSync(path.join(tmpdir(), "spinq-tok-"));
process.on("exit", () => rmSync(work, { recursive: true, force: true }));

const corpus = buildCorpus(shared);
const corpusFile = path.join(work, "corpus.jsonl");
writeFileSync(corpusFile, corpus.map((t) => JSON.stringify(t)).join("\n") + "\n");

function run(args) {
  const r = spawnSync(spinq, args, { encoding: "utf8", maxBuffer: 1 << 28 });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

// Runs spinq tokenize and returns one parsed JSON value per output line.
function spinqLines(args) {
  const r = run(["tokenize", ...args]);
  assert.equal(r.code, 0, `spinq tokenize ${args.join(" ")} failed:\n${r.err}`);
  assert.doesNotMatch(r.err, /ERROR: (Address|Leak)Sanitizer|runtime error/, r.err);
  return r.out.split("\n").filter((l) => l.length > 0).map((l) => JSON.parse(l));
}

function reference(dir) {
  const json = JSON.parse(readFileSync(path.join(dir, "tokenizer.json"), "utf8"));
  const cfgPath = path.join(dir, "tokenizer_config.json");
  const cfg = existsSync(cfgPath) ? JSON.parse(readFileSync(cfgPath, "utf8")) : {};
  return TokenizerLoader.fromPreTrained({ tokenizerJSON: json, tokenizerConfig: cfg });
}

function refDecode(tok, ids) {
  // the reference refuses an empty list; its text is ""
  return ids.length === 0 ? "" : tok.decode(ids, { skip_special_tokens: true, clean_up_tokenization_spaces: false });
}

// The reference's ByteFallback decoder turns each run of <0xNN> tokens into
// text with a TextDecoder made without ignoreBOM, so a U+FEFF at the start of
// a run disappears; HF's Rust tokenizers keep it, and so does spinq (it has to,
// to round-trip). Decoded texts are compared without U+FEFF; the round-trip
// checks show that spinq keeps it.
const noBOM = (s) => s.replaceAll("\uFEFF", "");

// Compares per-text results; prints the first mismatches with both sides.
function assertSame(what, texts, ours, theirs) {
  assert.equal(ours.length, theirs.length, `${what}: ${ours.length} results for ${theirs.length} texts`);
  const bad = [];
  for (let i = 0; i < texts.length; i++)
    if (JSON.stringify(ours[i]) !== JSON.stringify(theirs[i])) bad.push(i);
  for (const i of bad.slice(0, 8))
    console.log(`${what}: text ${i} ${JSON.stringify(texts[i])}\n  spinq:     ${JSON.stringify(ours[i])}\n  reference: ${JSON.stringify(theirs[i])}`);
  assert.equal(bad.length, 0, `${what}: ${bad.length} of ${texts.length} texts differ`);
}

const encoded = {};  // name -> { special: ids[][], plain: ids[][] } for the decode tests

for (const name of ["llama2", "llama3"]) {
  test(`${name}: encodings equal @lenml/tokenizers on ${corpus.length} texts, with and without special tokens`, () => {
    const ref = reference(TOKENIZERS[name]);
    const tokFile = path.join(TOKENIZERS[name], "tokenizer.json");
    const special = spinqLines(["--tokenizer", tokFile, "--jsonl", corpusFile]);
    assertSame(`${name} add_special`, corpus, special, corpus.map((t) => ref.encode(t)));
    const plain = spinqLines(["--tokenizer", tokFile, "--jsonl", corpusFile, "--no-special"]);
    assertSame(`${name} no special`, corpus, plain, corpus.map((t) => ref.encode(t, { add_special_tokens: false })));
    encoded[name] = { special, plain };
  });

  test(`${name}: decode(encode(text)) == text, and equals the reference's decode`, () => {
    const { special } = encoded[name] ?? assert.fail("the encoding test did not run");
    const ref = reference(TOKENIZERS[name]);
    const idsFile = path.join(work, `${name}.ids`);
    writeFileSync(idsFile, special.map((ids) => JSON.stringify(ids)).join("\n") + "\n");
    const tokFile = path.join(TOKENIZERS[name], "tokenizer.json");
    const decoded = spinqLines(["--tokenizer", tokFile, "--decode", "--lines", idsFile]);
    assertSame(`${name} decode vs reference`, corpus, decoded.map(noBOM), special.map((ids) => noBOM(refDecode(ref, ids))));
    // Round trip for every text but those holding special-token strings
    // (they become special ids, which decoding skips) and, for SentencePiece,
    // a literal "▁" (it is the same piece as " ", so it comes back as a
    // space, as with HF).
    const plainText = (t) => !ref.special_tokens.some((s) => t.includes(s)) && !(name === "llama2" && t.includes("▁"));
    const roundTrip = corpus.map((t, i) => (plainText(t) ? t : decoded[i]));
    assertSame(`${name} round trip`, corpus, decoded, roundTrip);
    assert.ok(corpus.filter(plainText).length > 1900, "the round trip covers most of the corpus");
  });
}

test("stories260K: tokenizer.json and tok512.bin encode identically, and as the reference does", () => {
  const ref = reference(TOKENIZERS.stories_hf);
  const fromJson = spinqLines(["--model", TOKENIZERS.stories_hf, "--jsonl", corpusFile]);
  const fromBin = spinqLines(["--tokenizer", STORIES_BIN, "--jsonl", corpusFile]);
  assertSame("stories260K json vs bin", corpus, fromBin, fromJson);
  assertSame("stories260K json vs reference", corpus, fromJson, corpus.map((t) => ref.encode(t)));
  const plainBin = spinqLines(["--tokenizer", STORIES_BIN, "--jsonl", corpusFile, "--no-special"]);
  assertSame("stories260K bin no special", corpus, plainBin, corpus.map((t) => ref.encode(t, { add_special_tokens: false })));
  // byte fallback is exercised: characters outside the 512-token vocabulary
  assert.ok(fromBin.some((ids) => ids.some((id) => id >= 3 && id <= 258)));

  const idsFile = path.join(work, "stories.ids");
  writeFileSync(idsFile, fromBin.map((ids) => JSON.stringify(ids)).join("\n") + "\n");
  const decoded = spinqLines(["--tokenizer", STORIES_BIN, "--decode", "--lines", idsFile]);
  const plainText = (t) => !ref.special_tokens.some((s) => t.includes(s));
  assertSame("stories260K bin decode", corpus, decoded, corpus.map((t, i) => (plainText(t) ? t.replaceAll("▁", " ") : decoded[i])));
  assertSame("stories260K bin decode vs reference", corpus, decoded.map(noBOM), fromBin.map((ids) => noBOM(refDecode(ref, ids))));
});

test("a long multi-line text as one string (SentencePiece has no pre-tokenizer) equals the reference", () => {
  // the first ~150 kB of the TinyStories test file, cut at a paragraph: the
  // reference takes ~5 s per 100k SentencePiece tokens, spinq milliseconds
  const story = readFileSync(path.join(shared, "data/tinystories/test.txt"), "utf8");
  const text = story.slice(0, story.indexOf("\n\n", 150000));
  const file = path.join(work, "long.txt");
  writeFileSync(file, text);
  for (const [name, tokArgs, refDir] of [
    ["stories260K bin", ["--tokenizer", STORIES_BIN], TOKENIZERS.stories_hf],
    ["llama2", ["--tokenizer", path.join(TOKENIZERS.llama2, "tokenizer.json")], TOKENIZERS.llama2],
    ["llama3", ["--tokenizer", path.join(TOKENIZERS.llama3, "tokenizer.json")], TOKENIZERS.llama3],
  ]) {
    const [ours] = spinqLines([...tokArgs, "--file", file]);
    const theirs = reference(refDir).encode(text);
    assert.equal(ours.length, theirs.length, `${name}: ${ours.length} tokens, reference ${theirs.length}`);
    const first = ours.findIndex((id, i) => id !== theirs[i]);
    assert.equal(first, -1, `${name}: first difference at token ${first}: ${ours[first]} vs ${theirs[first]}`);
  }
});

test("invalid UTF-8 in the input is an error naming the file and line", () => {
  const f = path.join(work, "bad.txt");
  writeFileSync(f, Buffer.concat([Buffer.from("fine\nab"), Buffer.from([0xc3, 0x28]), Buffer.from("\n")]));
  const r = run(["tokenize", "--tokenizer", STORIES_BIN, "--lines", f]);
  assert.equal(r.code, 1);
  assert.match(r.err, /bad\.txt:2: invalid UTF-8 at byte 2/);
  assert.match(r.out, /^\[1(,\d+)+\]\n$/);  // the first line was encoded, then it stopped
});

test("a missing or garbled tokenizer file is an error naming the file", () => {
  let r = run(["tokenize", "--tokenizer", path.join(work, "nope.json"), "--text", "hi"]);
  assert.equal(r.code, 1);
  assert.match(r.err, /nope\.json: cannot open/);
  const garbled = path.join(work, "tokenizer.json");
  writeFileSync(garbled, '{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": ["a b"]}}');
  r = run(["tokenize", "--tokenizer", garbled, "--text", "hi"]);
  assert.equal(r.code, 1);
  assert.match(r.err, /tokenizer\.json: model\.merges\[0\] \("a", "b"\): the right token is not in model\.vocab/);
  writeFileSync(garbled, '{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": [}');
  r = run(["tokenize", "--tokenizer", garbled, "--text", "hi"]);
  assert.equal(r.code, 1);
  assert.match(r.err, /tokenizer\.json: invalid JSON at line 1/);
});
