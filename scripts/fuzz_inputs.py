#!/usr/bin/env python3
"""fuzz_inputs.py - random mutations of the files spinq reads, run through the
sanitizer build; any run that dies from a signal or prints a sanitizer report
is kept under the work dir and printed. Not part of `make test` (it is open
ended); run it after changing a loader:

    make asan && scripts/fuzz_inputs.py [--iterations 300] [--seed 1] [KIND ...]

KIND: spq (packed model), rot (rotation file), hf (HF directory: safetensors,
config, tokenizer files), bin (llama2.c checkpoint and tokenizer.bin), task
(multiple-choice JSONL), gguf (a Q4_0 GGUF export with its tokenizer). Exit status 1 when anything crashed.
"""
import argparse, os, random, re, shutil, struct, subprocess, sys, tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.environ.get('SPINQ_SHARED', os.path.join(os.path.dirname(ROOT), 'shared'))
SPQ = os.path.join(ROOT, 'build/asan/spinq')
REL = os.path.join(ROOT, 'build/rel/spinq')
ENV = dict(os.environ, ASAN_OPTIONS='detect_leaks=0:abort_on_error=0',
           UBSAN_OPTIONS='halt_on_error=1:print_stacktrace=1', OPENBLAS_NUM_THREADS='1')
BIN = os.path.join(SHARED, 'models/stories260K/stories260K.bin')
HF = os.path.join(SHARED, 'models/stories260K-hf')


def mutate_safetensors(b):
    """One of: header bytes, truncation, a number in the header, the header
    length, random bytes anywhere."""
    b = bytearray(b)
    hl = struct.unpack('<Q', b[:8])[0] if len(b) >= 8 else 0
    r = random.random()
    if r < 0.25:
        for _ in range(random.randint(1, 4)):
            i = random.randint(0, min(len(b) - 1, 8 + hl))
            b[i] = random.randint(0, 255)
    elif r < 0.45:
        b = b[:random.randint(0, len(b))]
    elif r < 0.65:
        h = b[8:8 + hl].decode('utf-8', 'replace')
        nums = list(re.finditer(r'\d+', h))
        if nums:
            m = random.choice(nums)
            v = random.choice(['0', '1', '-1', '4294967296', '99999999999', '18446744073709551615',
                               str(int(m.group()) + random.randint(-3, 3))])
            hb = (h[:m.start()] + v + h[m.end():]).encode()
            b = bytearray(struct.pack('<Q', len(hb))) + hb + b[8 + hl:]
    elif r < 0.8:
        b[:8] = struct.pack('<Q', random.choice([0, 1, max(hl - 1, 0), hl + 1, len(b), 2**63, hl * 2]))
    else:
        b = mutate_bytes(b)
    return bytes(b)


def mutate_bytes(b):
    b = bytearray(b)
    if random.random() < 0.3:
        return bytes(b[:random.randint(0, len(b))])
    for _ in range(random.randint(1, 50)):
        if b:
            b[random.randint(0, len(b) - 1)] = random.randint(0, 255)
    return bytes(b)


def mutate_gguf(b, header):
    """One of: bytes of the metadata (keys, tokenizer, tensor infos),
    a boundary value written over a length or count there, truncation,
    random bytes anywhere."""
    b = bytearray(b)
    r = random.random()
    if r < 0.35:
        for _ in range(random.randint(1, 4)):
            b[random.randint(0, header - 1)] = random.randint(0, 255)
    elif r < 0.6:
        i = random.randint(0, header - 8)
        v = random.choice([0, 1, 2**31, 2**32 - 1, 2**63, 2**64 - 1, len(b), random.randint(0, 70000)])
        b[i:i + 8] = struct.pack('<Q', v)
    elif r < 0.8:
        b = b[:random.randint(0, len(b))]
    else:
        b = mutate_bytes(b)
    return bytes(b)


def mutate_json(b):
    b = bytearray(b)
    for _ in range(random.randint(1, 6)):
        if not b:
            break
        i = random.randint(0, len(b) - 1)
        op = random.random()
        if op < 0.4:
            b[i] = random.choice(b'{}[]",:0123456789-e.tfn \\')
        elif op < 0.7:
            del b[i:i + random.randint(1, 20)]
        else:
            b[i:i] = random.choice([b'1e308', b'-1', b'"x"', b'null', b'[]', b'\xff', b'99999999999'])
    return bytes(b)


def write(path, data):
    with open(path, 'wb') as f:
        f.write(data)


def case(kind, work, inputs):
    """Writes one mutated input under work; the commands that read it."""
    small = inputs['small']
    if kind == 'spq':
        f = os.path.join(work, 'm.spq')
        write(f, mutate_safetensors(open(inputs['spq'], 'rb').read()))
        return [[SPQ, 'info', f], [SPQ, 'generate', f, '-n', '3']]
    if kind == 'rot':
        f = os.path.join(work, 'R.safetensors')
        write(f, mutate_safetensors(open(inputs['rot'], 'rb').read()))
        return [[SPQ, 'ppl', BIN, '--data', small, '--seqlen', '64', '--rotation', f]]
    if kind == 'hf':
        d = os.path.join(work, 'hf')
        shutil.rmtree(d, ignore_errors=True)
        shutil.copytree(HF, d)
        name = random.choice(['model.safetensors', 'config.json', 'tokenizer.json', 'tokenizer_config.json'])
        src = open(os.path.join(d, name), 'rb').read()
        write(os.path.join(d, name), mutate_json(src) if name.endswith('.json') else mutate_safetensors(src))
        return [[SPQ, 'info', d], [SPQ, 'generate', d, '-n', '3', '-p', 'Once upon']]
    if kind == 'bin':
        d = os.path.join(work, 'bin')
        shutil.rmtree(d, ignore_errors=True)
        shutil.copytree(os.path.dirname(BIN), d)
        name = random.choice(['stories260K.bin', 'tok512.bin'])
        p = os.path.join(d, name)
        if os.path.exists(p):
            write(p, mutate_bytes(open(p, 'rb').read()))
        return [[SPQ, 'info', os.path.join(d, 'stories260K.bin')],
                [SPQ, 'generate', os.path.join(d, 'stories260K.bin'), '-n', '3']]
    if kind == 'gguf':
        f = os.path.join(work, 'm.gguf')
        write(f, mutate_gguf(inputs['gguf'], inputs['gguf_header']))
        return [[SPQ, 'info', f], [SPQ, 'generate', f, '-n', '3'], [SPQ, 'tokenize', '--model', f, '--text', 'Once upon']]
    if kind == 'task':
        f = os.path.join(work, 'task.jsonl')
        write(f, mutate_json(inputs['task']))
        return [[SPQ, 'eval', BIN, '--task', f'arc_easy={f}', '--limit', '5', '--skip-bad', '--seqlen', '128']]
    raise ValueError(kind)


def prepare(tmp):
    """Inputs to mutate: a short learned rotation, a packed model, a task file."""
    small = os.path.join(tmp, 'small.txt')
    write(small, open(os.path.join(SHARED, 'data/tinystories/test.txt'), 'rb').read()[:3000])
    rot, spq = os.path.join(tmp, 'R.safetensors'), os.path.join(tmp, 'm.spq')
    calib = os.path.join(SHARED, 'data/tinystories/calib.txt')
    subprocess.run([REL, 'rotate', BIN, '--calib', calib, '--out', rot, '--steps', '2', '--batch', '1',
                    '--seqlen', '64'], check=True, capture_output=True)
    subprocess.run([REL, 'quantize', BIN, '--rotation', rot, '--method', 'rtn', '--w-bits', '4', '--a-bits', '8',
                    '--kv-bits', '8', '--out', spq], check=True, capture_output=True)
    task = open(os.path.join(SHARED, 'data/eval/arc/ARC-Easy-Test.jsonl'), 'rb').read().split(b'\n')[:5]
    gguf = os.path.join(tmp, 'm.gguf')
    subprocess.run([REL, 'export-gguf', BIN, '--type', 'q4_0', '--out', gguf], check=True, capture_output=True)
    g = open(gguf, 'rb').read()
    header = g.find(b'output_norm.weight') + 64  # the tensor infos end soon after the last name
    return {'small': small, 'rot': rot, 'spq': spq, 'task': b'\n'.join(task) + b'\n', 'gguf': g,
            'gguf_header': header}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--iterations', type=int, default=300)
    ap.add_argument('--seed', type=int, default=1)
    ap.add_argument('kinds', nargs='*', default=['spq', 'rot', 'hf', 'bin', 'task', 'gguf'])
    a = ap.parse_args()
    random.seed(a.seed)
    tmp = tempfile.mkdtemp(prefix='spinq-fuzz-')
    inputs = prepare(tmp)
    crashed = 0
    for kind in a.kinds:
        work = os.path.join(tmp, kind)
        os.makedirs(work)
        for it in range(a.iterations):
            for cmd in case(kind, work, inputs):
                p = subprocess.run(cmd, env=ENV, capture_output=True, timeout=300)
                err = p.stderr.decode('utf-8', 'replace')
                if p.returncode < 0 or p.returncode >= 128 or 'Sanitizer' in err or 'runtime error' in err:
                    crashed += 1
                    keep = os.path.join(tmp, f'crash-{kind}-{it}')
                    shutil.copytree(work, keep)
                    print(f'CRASH {kind} #{it}: {" ".join(cmd)} (exit {p.returncode}); input kept in {keep}\n'
                          f'{err[-2000:]}', flush=True)
                    break
        print(f'{kind}: {a.iterations} mutated inputs, {crashed} crashes so far', flush=True)
    if not crashed:
        shutil.rmtree(tmp)
    return 1 if crashed else 0


if __name__ == '__main__':
    sys.exit(main())
