// tok_corpus.mjs - the deterministic text corpus of the tokenizer parity
// tests: TinyStories lines and paragraphs, source code, numbers, Unicode
// (accents, combining marks, CJK, emoji, RTL), runs of white space, special
// token strings and random character soups. Everything but the TinyStories
// lines is written here; the random parts come from a seeded PRNG, so the
// corpus is the same on every machine.
//
//   import { buildCorpus } from "../data/tok_corpus.mjs";
//   const texts = buildCorpus(sharedDir);   // array of strings
//
// Or as a script: `node tests/data/tok_corpus.mjs SHARED_DIR > corpus.jsonl`
// writes one JSON string per line.
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { rng } from "./rng.mjs";

const CODE = [
  `#include <stdio.h>

int main(int argc, char **argv) {
\tfor (int i = 0; i < argc; i++) printf("%d: %s\\n", i, argv[i]);
\treturn 0;
}`,
  `def fib(n: int) -> int:
    """Return the n-th Fibonacci number."""
    a, b = 0, 1
    for _ in range(n):
        a, b = b, a + b
    return a

print([fib(k) for k in range(10)])  # [0, 1, 1, 2, 3, 5, 8, 13, 21, 34]`,
  `const xs = [3, 1, 2].toSorted((a, b) => a - b);
export async function load(url) {
  const res = await fetch(url, { headers: { "Accept": "application/json" } });
  if (!res.ok) throw new Error(\`HTTP \${res.status}\`);
  return res.json();
}`,
  `{"name": "spinq", "version": "0.1.0", "tags": ["w4a4", "kv4"], "nested": {"a": [1, 2.5e-3, null, true]}}`,
  `SELECT r.id, r.name, AVG(m.value) AS mean
  FROM runs r JOIN metrics m ON m.run_id = r.id
 WHERE r.state = 'done' AND m.key LIKE 'ppl%'
 GROUP BY r.id
 ORDER BY mean DESC
 LIMIT 10;`,
  `#!/usr/bin/env bash
set -euo pipefail
for f in "$@"; do
  [ -f "$f" ] || { echo "missing: $f" >&2; exit 1; }
  sha256sum -- "$f" | awk '{print $1}'
done`,
  `fn main() {
    let v: Vec<u32> = (1..=5).map(|x| x * x).collect();
    println!("{:?} {}", v, v.iter().sum::<u32>());
}`,
  `<html><body><p class="x">a &amp; b &lt; c</p><!-- comment --></body></html>`,
  `    if (x->n == 0 && y != NULL) { y->next = x; } else if (!p) return -1;   // trailing spaces    `,
  `matrix = [[1, 0, 0],\r\n          [0, 1, 0],\r\n          [0, 0, 1]]\r\n`,
  `\t\tcase 'a': case 'b':\n\t\t\tbreak;\n\t\tdefault:\n\t\t\tgoto fail;`,
  `x+=1;y-=2;z*=3;w/=4;u%=5;v<<=6;t>>=7;s&=8;r|=9;q^=10;p=~p;o=!o;n=a?b:c;m=a->b;l=a::b;`,
];

const UNICODE = [
  "Café, naïve, façade, jalapeño, Ångström, Øresund, Straße, Œuvre, Ærø",
  "Cafe\u0301 vs Café: e + combining acute, n\u0303, a\u0308\u0304, Z\u0335a\u0336l\u0337g\u0338o",
  "中文分词很难，因为没有空格。我们今天去公园散步吧！",
  "日本語のテキスト：ひらがな、カタカナ、漢字を混ぜて書きます。",
  "한국어 문장도 포함합니다. 안녕하세요, 반갑습니다!",
  "Emoji: 😀 😃 👍🏽 👨‍👩‍👧‍👦 🏳️‍🌈 🇯🇵 🇩🇪 ❤️ ✨ 🤖🧠",
  "العربية تكتب من اليمين إلى اليسار، مع أرقام ١٢٣٤٥.",
  "עברית: שלום עולם! מה שלומך היום?",
  "Mixed RTL: hello שלום world عالم 123",
  "Русский текст: съешь же ещё этих мягких французских булок, да выпей чаю.",
  "Ελληνικά: Γαζέες καὶ μυρτιὲς δὲν θὰ βρῶ πιὰ στὸ χρυσαφὶ ξέφωτο.",
  "हिन्दी पाठ: नमस्ते दुनिया, यह एक परीक्षण है।",
  "ไทย: สวัสดีครับ ภาษาไทยไม่มีช่องว่างระหว่างคำ",
  "Math: ∀x∈ℝ, ∃y: x² + y² ≥ 2xy; ∑ᵢ aᵢ ≤ ∞; √2 ≈ 1.41421356; π ≠ 3",
  "Symbols: © ® ™ § ¶ † ‡ • … ‰ ′ ″ ‹ › « » € £ ¥ ₹ ₿ ¢ ¤",
  "Spaces: no\u00a0break, thin\u2009space, em\u2003space, ideographic\u3000space, zero\u200bwidth, bom\ufeffhere",
  "Line separators: a\u2028b\u2029c and next-line \u0085 and vertical\u000btab and form\u000cfeed",
  "Fullwidth: ＡＢＣ１２３！？ and halfwidth ｶﾀｶﾅ",
  "Long s after apostrophe: it'ſ, IT'S, We'LL, they'Re, I'M, you'D, we'VE",
  "Contractions: don't, can't, won't, it's, I'm, you're, we've, they'll, she'd",
  "Old italic 𐌀𐌁𐌂, math bold 𝐀𝐁𝐂, musical 𝄞, cuneiform 𒀀",
  "Tibetan ཀ་ཁ་ག, Georgian ქართული, Armenian Հայերեն, Amharic አማርኛ",
  "Vietnamese: Tiếng Việt có nhiều dấu: ắ ằ ẳ ẵ ặ ế ề ể ễ ệ",
  "Control-ish: tab\there, bell\u0007, escape\u001b[31mred\u001b[0m, del\u007f",
];

const SPECIALS = [
  "<s>", "</s>", "<unk>", "<s>Hello</s>", "Hello <s> world </s> again",
  "<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>", "<|start_header_id|>user<|end_header_id|>\n\nHi there!<|eot_id|>",
  "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nYou are helpful.<|eot_id|>",
  "<|reserved_special_token_0|>x<|reserved_special_token_250|>", "<|begin_of_text", "begin_of_text|>", "<s", "s>", "<<s>>",
  "<</s>>", "<s><s><s>", " <s> ", "<s> leading", "trailing </s>", "<unk><unk>", "<|eot_id|><|eot_id|>",
  "Tags like <div> and <span> are not special", "<0x41> is a byte token's name", "▁ is the SentencePiece space",
  "▁▁double▁marker", "<|python_tag|>print(1)<|eom_id|>", "<|finetune_right_pad_id|>",
];

const WORDS = ("the a little girl named Lily loved to play outside in park One day she saw big red ball " +
  "wanted with it but was too high tree dog cat ran jumped happy sad mom dad friend").split(" ");

const ALPHABET = [
  ..."abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789",
  ..." \t\n\r   ",
  ..."!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~",
  ..."éüñçøåßœ", ..."中文日本語한국", ..."αβγдлж", ..."שלוםعرب", "\u0301", "\u0308", "😀", "👍🏽", "🇫🇷",
  "\u00a0", "\u3000", "\u200b", "\ufeff", "\u2028", "\u0085", "▁", "'s", "'LL", "'ſ", "<s>", "</s>", "<|eot_id|>",
];

function pick(r, xs) {
  return xs[Math.floor(r() * xs.length)];
}

function numberText(r) {
  const kind = Math.floor(r() * 10);
  const digits = (n) => Array.from({ length: n }, () => Math.floor(r() * 10)).join("");
  switch (kind) {
    case 0: return digits(1 + Math.floor(r() * 25));
    case 1: return `${digits(1 + Math.floor(r() * 6))}.${digits(1 + Math.floor(r() * 6))}`;
    case 2: return `-${digits(1 + Math.floor(r() * 4))},${digits(3)},${digits(3)}`;
    case 3: return `${2000 + Math.floor(r() * 30)}-${digits(2)}-${digits(2)}T${digits(2)}:${digits(2)}:${digits(2)}Z`;
    case 4: return `0x${Math.floor(r() * 2 ** 31).toString(16)} ${Math.floor(r() * 1e6).toString(2)}b`;
    case 5: return `${(r() * 1e6).toExponential(4)} and ${(r() * 1e-3).toExponential(2)}`;
    case 6: return `+1 (${digits(3)}) ${digits(3)}-${digits(4)}`;
    case 7: return `v${digits(1)}.${digits(2)}.${digits(1)}-rc${digits(1)} build ${digits(7)}`;
    case 8: return `${digits(1 + Math.floor(r() * 3))}% of ${digits(4)} items cost $${digits(3)}.${digits(2)}`;
    default: return `１２３ ٤٥٦ ७८९ ${digits(12)} ${"9".repeat(1 + Math.floor(r() * 40))}`;
  }
}

function whitespaceText(r) {
  const pieces = [" ", "  ", "   ", "\t", "\t\t", "\n", "\n\n", "\r\n", " \n ", "\u00a0", "    "];
  let s = "";
  const n = 1 + Math.floor(r() * 8);
  for (let i = 0; i < n; i++) {
    s += pick(r, pieces).repeat(1 + Math.floor(r() * 4));
    if (r() < 0.6) s += pick(r, WORDS);
  }
  return s;
}

function soup(r, n) {
  let s = "";
  for (let i = 0; i < n; i++) s += pick(r, ALPHABET);
  return s;
}

function mix(r) {
  const parts = [];
  const n = 2 + Math.floor(r() * 5);
  for (let i = 0; i < n; i++) {
    const k = Math.floor(r() * 5);
    if (k === 0) parts.push(pick(r, UNICODE));
    else if (k === 1) parts.push(numberText(r));
    else if (k === 2) parts.push(pick(r, SPECIALS));
    else if (k === 3) parts.push(pick(r, WORDS));
    else parts.push(soup(r, 1 + Math.floor(r() * 12)));
  }
  return parts.join(pick(r, [" ", "", "\n", "  ", "\t", ", "]));
}

export function buildCorpus(sharedDir) {
  const r = rng(20240531);
  const texts = [];
  const story = readFileSync(`${sharedDir}/data/tinystories/test.txt`, "utf8");
  const lines = story.split("\n").filter((l) => l.length > 0);
  // 800 TinyStories lines spread over the file, and 60 multi-line chunks
  for (let i = 0; i < 800; i++) texts.push(lines[Math.floor((i * lines.length) / 800)]);
  const paras = story.split("\n\n");
  for (let i = 0; i < 60; i++) texts.push(paras.slice(i * 7, i * 7 + 2 + (i % 3)).join("\n\n"));
  // source code: whole snippets, their lines, and their lines' indentation
  for (const c of CODE) {
    texts.push(c);
    for (const l of c.split("\n")) texts.push(l);
  }
  for (let i = 0; i < 80; i++) texts.push(pick(r, CODE).replaceAll("    ", "\t").slice(0, 20 + Math.floor(r() * 200)));
  for (let i = 0; i < 250; i++) texts.push(numberText(r));
  for (const u of UNICODE) texts.push(u, ` ${u}`, `${u}\n`);
  for (let i = 0; i < 200; i++) texts.push(whitespaceText(r));
  for (const s of SPECIALS) texts.push(s, `Hi ${s}`, `${s} there`);
  for (let i = 0; i < 300; i++) texts.push(mix(r));
  for (let i = 0; i < 250; i++) texts.push(soup(r, 1 + Math.floor(r() * 60)));
  // edge cases: empty, single characters, pure white space, one long line
  texts.push("", " ", "  ", "\n", "\t", "a", "I", "é", "中", "😀", "\u0301", " \u0301", "'", "'s", "1", "12", "123", "1234", "nul\u0000inside", "\u0000");
  texts.push(Array.from({ length: 400 }, (_, i) => WORDS[i % WORDS.length]).join(" ") + " " + numberText(r).repeat(20));
  texts.push("a".repeat(3000), " ".repeat(100), "\n".repeat(50), "ab".repeat(500), "😀".repeat(100));
  return texts;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const shared = process.argv[2] ?? process.env.SPINQ_SHARED ?? "../shared";
  for (const t of buildCorpus(shared)) process.stdout.write(JSON.stringify(t) + "\n");
}
