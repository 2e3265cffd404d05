// rng.mjs - mulberry32: a small seedable PRNG, identical in every JS engine,
// so that generated test inputs are the same on every run and a failure can
// be replayed from its seed. rng(seed) returns a function giving [0, 1).
export function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
