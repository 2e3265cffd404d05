// proto.js - the daemon <-> worker protocol by hand (proto/frame.h,
// proto/messages.h) for tests that play a worker or a daemon: frames,
// the payload primitives, HELLO, and a protocol-level worker.
import net from 'node:net';

const PROTO_VERSION = 2;

// proto frames by hand: "SPQW", version, type, length, payload
function frame(type, payload = Buffer.alloc(0), { version = PROTO_VERSION, length } = {}) {
  const h = Buffer.alloc(12);
  h.write('SPQW', 0, 'latin1');
  h.writeUInt16BE(version, 4);
  h.writeUInt16BE(type, 6);
  h.writeUInt32BE(length ?? payload.length, 8);
  return Buffer.concat([h, payload]);
}
const u32 = (n) => { const b = Buffer.alloc(4); b.writeUInt32BE(n); return b; };
const str = (s) => Buffer.concat([u32(Buffer.byteLength(s)), Buffer.from(s)]);
const u64 = (n) => { const b = Buffer.alloc(8); b.writeBigUInt64BE(BigInt(n)); return b; };
const i64 = (n) => { const b = Buffer.alloc(8); b.writeBigInt64BE(BigInt(n)); return b; };
const f64 = (x) => { const b = Buffer.alloc(8); b.writeDoubleBE(x); return b; };
const bytes = (b) => Buffer.concat([u32(b.length), b]);
// HELLO: version, name, pid, token, threads, held_run, held_attempt
const hello = (name, { version = PROTO_VERSION, token = '', heldRun = 0, heldAttempt = 0 } = {}) =>
  frame(1, Buffer.concat([u32(version), str(name), u32(1), str(token), u32(1), u64(heldRun), u32(heldAttempt)]),
    { version });


// A protocol-level worker (the test is the worker): it says hello (with a
// held run when asked), and reads the daemon's frames by type.
class ProtoWorker {
  constructor(port, name, helloOpts = {}) {
    this.name = name;
    this.buf = Buffer.alloc(0);
    this.frames = [];
    this.waiters = [];
    this.sock = net.connect(port, helloOpts.host || '127.0.0.1');
    this.sock.on('error', () => {});
    this.sock.on('data', (d) => {
      this.buf = Buffer.concat([this.buf, d]);
      while (this.buf.length >= 12 && this.buf.length >= 12 + this.buf.readUInt32BE(8)) {
        const n = this.buf.readUInt32BE(8);
        this.frames.push({ type: this.buf.readUInt16BE(6), payload: this.buf.subarray(12, 12 + n) });
        this.buf = this.buf.subarray(12 + n);
      }
      this.waiters = this.waiters.filter((w) => !w());
    });
    this.sock.write(hello(name, helloOpts));
  }

  next(type, timeoutMs = 15000) {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no frame of type ${type}`)), timeoutMs);
      const check = () => {
        const i = this.frames.findIndex((f) => f.type === type);
        if (i < 0) return false;
        clearTimeout(timer);
        resolve(this.frames.splice(i, 1)[0].payload);
        return true;
      };
      if (!check()) this.waiters.push(check);
    });
  }

  async job() {
    const p = await this.next(4);
    let o = 0;
    const runId = Number(p.readBigUInt64BE(o)); o += 8;
    const attempt = p.readUInt32BE(o); o += 4;
    const specLen = p.readUInt32BE(o); o += 4;
    const spec = JSON.parse(p.subarray(o, o + specLen).toString()); o += specLen;
    const ckptStep = Number(p.readBigInt64BE(o)); o += 8;
    const ckptLen = p.readUInt32BE(o); o += 4;
    return { runId, attempt, spec, ckptStep, ckpt: Buffer.from(p.subarray(o, o + ckptLen)) };
  }

  send(type, ...parts) { this.sock.write(frame(type, Buffer.concat(parts))); }
}


// Reads a payload field by field: r.u8(), r.u32(), r.u64(), r.str(), r.bytes().
class Reader {
  constructor(p) { this.p = p; this.o = 0; }
  u8() { return this.p[this.o++]; }
  u32() { const v = this.p.readUInt32BE(this.o); this.o += 4; return v; }
  u64() { const v = Number(this.p.readBigUInt64BE(this.o)); this.o += 8; return v; }
  bytes() { const n = this.u32(); const b = this.p.subarray(this.o, this.o + n); this.o += n; return b; }
  str() { return this.bytes().toString(); }
}

export { PROTO_VERSION, frame, u32, u64, i64, f64, str, bytes, hello, ProtoWorker, Reader };
