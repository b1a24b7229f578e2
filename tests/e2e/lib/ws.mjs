// Websocket helpers for the end-to-end tests: a raw client (the `ws` package) that keeps
// every message it receives and lets a test wait for the one it wants.
import WebSocket from 'ws';
import zlib from 'node:zlib';

// Opens ws://127.0.0.1:<port><path> and resolves once open. The returned object has
// messages (every text message, in order, gz: frames inflated), send(text),
// next(pred, ms) (the first message after `from` matching pred), close().
export function openSocket(port, path = '/socket/websocket', { inflate = true } = {}) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}${path}`);
    const s = {
      ws,
      messages: [],
      raw: [],
      waiters: [],
      closed: false,
      send(text) { ws.send(text); },
      close() { ws.terminate(); },
      // Resolves with the first message (index >= from) for which pred(msg) is truthy.
      next(pred, ms = 10000, from = 0) {
        const i = s.messages.findIndex((m, k) => k >= from && pred(m));
        if (i >= 0) return Promise.resolve(s.messages[i]);
        return new Promise((res, rej) => {
          const w = { pred, res, from };
          w.timer = setTimeout(() => {
            s.waiters.splice(s.waiters.indexOf(w), 1);
            rej(new Error(`no matching websocket message in ${ms} ms; got:\n${s.messages.slice(-10).join('\n').slice(0, 2000)}`));
          }, ms);
          s.waiters.push(w);
        });
      },
      // Events of a channel: the parsed payloads of ["<channel>", payload] frames.
      events(channel) {
        return s.messages.filter((m) => m.startsWith('[')).map((m) => JSON.parse(m))
          .filter((m) => m[0] === channel).map((m) => m[1]);
      },
    };
    ws.on('message', (data) => {
      let text = data.toString();
      s.raw.push(text);
      if (inflate && text.startsWith('gz:')) text = zlib.inflateSync(Buffer.from(text.slice(3), 'base64')).toString();
      s.messages.push(text);
      const k = s.messages.length - 1;
      for (const w of [...s.waiters]) {
        if (k >= w.from && w.pred(text)) {
          clearTimeout(w.timer);
          s.waiters.splice(s.waiters.indexOf(w), 1);
          w.res(text);
        }
      }
    });
    ws.on('close', () => { s.closed = true; });
    ws.on('open', () => resolve(s));
    ws.on('error', reject);
  });
}

// A predicate for event frames of `channel` whose payload satisfies fn (default: any).
export function onChannel(channel, fn = () => true) {
  return (m) => {
    if (!m.startsWith('[')) return false;
    const [c, p] = JSON.parse(m);
    return c === channel && fn(p);
  };
}

// Waits for `auth ok <token>` after sending `auth <token>`; resolves with the new token.
export async function authSocket(s, token) {
  const from = s.messages.length;
  s.send(`auth ${token}`);
  const m = await s.next((x) => x.startsWith('auth '), 10000, from);
  if (!m.startsWith('auth ok ')) throw new Error(`socket auth failed: ${m}`);
  return m.slice(8);
}
