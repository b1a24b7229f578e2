// isoworld's page: sign in, edit and upload code, watch the console live and type console
// commands, and see CPU and Memory plotted per tick. Plain JavaScript, no framework; it
// talks to the server it was loaded from: the Screeps HTTP API (/api/...) and the
// websocket at /socket/websocket (PROTOCOL.md). The editor is CodeMirror 5 when the build
// put it next to the page, a text area otherwise.
'use strict';

(() => {
  const $ = (id) => document.getElementById(id);
  const TOKEN_KEY = 'isoworld.token';
  const MAX_CONSOLE = 2000; // lines kept in the page
  const MAX_POINTS = 240; // ticks in the plot

  const state = {
    token: sessionStorage.getItem(TOKEN_KEY),
    me: null,
    branch: null,
    branches: [],
    modules: {}, // name -> {text} | {binary}
    current: null, // module shown in the editor
    docs: {}, // name -> CodeMirror.Doc
    ws: null,
    wsTries: 0,
    lastHash: null,
    points: [], // {cpu, memory, at}
    history: [],
    historyPos: 0,
    registering: false,
  };

  // ------------------------------------------------------------------ HTTP

  function setToken(t) {
    if (!t) return;
    state.token = t;
    sessionStorage.setItem(TOKEN_KEY, t);
  }

  // Calls the API with the token; adopts the fresh token every answer carries.
  async function api(method, path, body) {
    const headers = {};
    if (state.token) headers['X-Token'] = state.token;
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    setToken(res.headers.get('X-Token'));
    if (res.status === 401) {
      signOut('Your session ended: please sign in again.');
      throw new Error('unauthorized');
    }
    const data = await res.json().catch(() => ({}));
    if (data.error) throw new Error(data.error);
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    return data;
  }

  // ------------------------------------------------------------------ sign in

  $('register-toggle').addEventListener('click', () => {
    state.registering = !state.registering;
    $('email-row').hidden = !state.registering;
    $('login-submit').textContent = state.registering ? 'Register and sign in' : 'Sign in';
    $('register-toggle').textContent = state.registering ? 'I have an account' : 'new player? register';
    $('login-user').previousSibling.textContent = state.registering ? 'Username ' : 'Username or email ';
  });

  $('login-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    const user = $('login-user').value.trim();
    const password = $('login-pass').value;
    $('login-error').textContent = '';
    $('login-submit').disabled = true;
    try {
      if (state.registering) {
        const r = await fetch('/api/register/submit', {
          method: 'POST',
          headers: { 'Content-Type': 'application/json' },
          body: JSON.stringify({ username: user, email: $('login-email').value.trim() || undefined, password }),
        }).then((x) => x.json());
        if (r.error) throw new Error(r.error);
      }
      const res = await fetch('/api/auth/signin', {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ email: user, password }),
      });
      const data = await res.json().catch(() => ({}));
      if (res.status === 401) throw new Error('wrong username or password');
      if (!data.token) throw new Error(data.error || `HTTP ${res.status}`);
      setToken(data.token);
      $('login-pass').value = '';
      await start();
    } catch (err) {
      $('login-error').textContent = err.message;
    } finally {
      $('login-submit').disabled = false;
    }
  });

  $('signout').addEventListener('click', () => signOut());

  function signOut(message) {
    state.me = null;
    state.token = null;
    sessionStorage.removeItem(TOKEN_KEY);
    if (state.ws) state.ws.close();
    $('app').hidden = true;
    $('login').hidden = false;
    $('signout').hidden = true;
    $('who').textContent = '';
    $('login-error').textContent = message || '';
  }

  async function start() {
    const me = await api('GET', '/api/auth/me');
    state.me = me;
    $('who').textContent = me.username;
    $('signout').hidden = false;
    $('login').hidden = true;
    $('app').hidden = false;
    if (editor.refresh) editor.refresh();
    await loadBranches();
    await loadCode(state.branch);
    connect();
    resizePlot();
    sys(`signed in as ${me.username}; the console shows what your code logs, tick by tick`);
  }

  // ------------------------------------------------------------------ code

  const hasCodeMirror = typeof window.CodeMirror === 'function';
  const editor = (() => {
    if (hasCodeMirror) {
      return window.CodeMirror($('editor'), {
        mode: 'javascript',
        lineNumbers: true,
        indentUnit: 2,
        tabSize: 2,
        matchBrackets: true,
        extraKeys: { 'Ctrl-S': () => upload(), 'Cmd-S': () => upload(), 'Ctrl-Enter': () => upload() },
      });
    }
    const ta = document.createElement('textarea');
    ta.id = 'code-fallback';
    ta.spellcheck = false;
    $('editor').appendChild(ta);
    ta.addEventListener('keydown', (e) => {
      if ((e.ctrlKey || e.metaKey) && (e.key === 's' || e.key === 'Enter')) {
        e.preventDefault();
        upload();
      }
    });
    return { textarea: ta };
  })();

  function editorText() {
    return hasCodeMirror ? editor.getValue() : editor.textarea.value;
  }

  // Keeps what the editor shows in state.modules before switching or uploading.
  function saveCurrent() {
    const m = state.current && state.modules[state.current];
    if (m && m.text !== undefined) m.text = editorText();
  }

  function show(name) {
    saveCurrent();
    state.current = name;
    const m = state.modules[name];
    const binary = m.binary !== undefined;
    const text = binary ? `// "${name}" is a binary module (${Math.round(m.binary.length * 0.75)} bytes): kept as it is on upload` : m.text;
    if (hasCodeMirror) {
      if (!state.docs[name]) state.docs[name] = window.CodeMirror.Doc(text, 'javascript');
      editor.swapDoc(state.docs[name]);
      editor.setOption('readOnly', binary);
    } else {
      editor.textarea.value = text;
      editor.textarea.readOnly = binary;
    }
    renderTabs();
  }

  function renderTabs() {
    const tabs = $('tabs');
    tabs.textContent = '';
    const names = Object.keys(state.modules).sort((a, b) => (a === 'main' ? -1 : b === 'main' ? 1 : a.localeCompare(b)));
    for (const name of names) {
      const b = document.createElement('button');
      b.type = 'button';
      b.textContent = name;
      b.setAttribute('role', 'tab');
      b.setAttribute('aria-selected', String(name === state.current));
      b.addEventListener('click', () => show(name));
      tabs.appendChild(b);
    }
    $('remove-module').disabled = state.current === 'main';
  }

  async function loadBranches() {
    const r = await api('GET', '/api/user/branches');
    state.branches = r.list;
    const active = r.list.find((b) => b.activeWorld) || r.list[0];
    if (!state.branch || !r.list.some((b) => b.branch === state.branch)) state.branch = active ? active.branch : 'default';
    const sel = $('branch');
    sel.textContent = '';
    for (const b of r.list) {
      const o = document.createElement('option');
      o.value = b.branch;
      o.textContent = b.branch + (b.activeWorld ? ' (running)' : '');
      sel.appendChild(o);
    }
    sel.value = state.branch;
  }

  async function loadCode(branch) {
    const r = await api('GET', `/api/user/code?branch=${encodeURIComponent(branch)}`);
    state.modules = {};
    state.docs = {};
    state.current = null;
    for (const [name, v] of Object.entries(r.modules)) {
      state.modules[name] = typeof v === 'string' ? { text: v } : { binary: v.binary };
    }
    if (!state.modules.main) state.modules.main = { text: '' };
    $('code-notice').hidden = true;
    show('main');
    $('code-status').textContent = `branch ${branch}`;
  }

  $('branch').addEventListener('change', async (e) => {
    state.branch = e.target.value;
    await loadCode(state.branch).catch((err) => sys(`cannot load branch ${state.branch}: ${err.message}`, 'err'));
  });

  $('add-module').addEventListener('click', () => {
    $('new-module').hidden = !$('new-module').hidden;
    if (!$('new-module').hidden) $('new-module-name').focus();
  });

  $('new-module').addEventListener('submit', (e) => {
    e.preventDefault();
    const name = $('new-module-name').value.trim().replace(/\.js$/, '');
    if (!name) return;
    if (!state.modules[name]) state.modules[name] = { text: `// ${name}\nmodule.exports = {};\n` };
    $('new-module-name').value = '';
    $('new-module').hidden = true;
    show(name);
  });

  $('remove-module').addEventListener('click', () => {
    const name = state.current;
    if (!name || name === 'main') return;
    delete state.modules[name];
    delete state.docs[name];
    state.current = null;
    show('main');
    $('code-status').textContent = `"${name}" removed: upload to apply`;
  });

  async function upload() {
    saveCurrent();
    const modules = {};
    for (const [name, m] of Object.entries(state.modules)) modules[name] = m.binary !== undefined ? { binary: m.binary } : m.text;
    const hash = Date.now();
    state.lastHash = hash;
    $('upload').disabled = true;
    $('code-status').textContent = 'uploading…';
    try {
      await api('POST', '/api/user/code', { branch: state.branch, modules, _hash: hash });
      const running = state.branches.some((b) => b.branch === state.branch && b.activeWorld);
      $('code-status').textContent = `uploaded ${clock()}`;
      sys(`code uploaded to branch ${state.branch} (${Object.keys(modules).join(', ')})` +
        (running ? ': it runs from the next tick, on a fresh global' : ''));
    } catch (err) {
      $('code-status').textContent = 'upload failed';
      sys(`upload failed: ${err.message}`, 'err');
    } finally {
      $('upload').disabled = false;
    }
  }
  $('upload').addEventListener('click', () => upload());

  // ------------------------------------------------------------------ console

  const out = $('console-output');

  function clock() {
    return new Date().toTimeString().slice(0, 8);
  }

  // Adds a console line. html: text the server already escaped (console output), else
  // plain text.
  function line(content, cls, { html = false, first = false } = {}) {
    const follow = $('autoscroll').checked;
    const div = document.createElement('div');
    if (cls) div.className = cls;
    if (first) div.classList.add('tick');
    const t = document.createElement('span');
    t.className = 't';
    t.textContent = clock();
    div.appendChild(t);
    const body = document.createElement('span');
    if (html) body.innerHTML = content; // the server escapes console output (logUnsafe is the player's own raw HTML)
    else body.textContent = content;
    div.appendChild(body);
    out.appendChild(div);
    while (out.childElementCount > MAX_CONSOLE) out.firstElementChild.remove();
    if (follow) out.scrollTop = out.scrollHeight;
  }

  function sys(text, cls = 'sys') {
    line(text, cls);
  }

  $('clear-console').addEventListener('click', () => { out.textContent = ''; });

  $('console-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    const input = $('console-input');
    const expression = input.value;
    if (!expression.trim()) return;
    state.history.push(expression);
    state.historyPos = state.history.length;
    input.value = '';
    line(`> ${expression}`, 'cmd');
    try {
      await api('POST', '/api/user/console', { expression });
    } catch (err) {
      sys(`the command was not accepted: ${err.message}`, 'err');
    }
  });

  $('console-input').addEventListener('keydown', (e) => {
    if (e.key !== 'ArrowUp' && e.key !== 'ArrowDown') return;
    e.preventDefault();
    state.historyPos = Math.max(0, Math.min(state.history.length, state.historyPos + (e.key === 'ArrowUp' ? -1 : 1)));
    e.target.value = state.history[state.historyPos] || '';
  });

  function onConsole(data) {
    if (data.error !== undefined) {
      line(data.error, 'err', { html: true, first: true });
      return;
    }
    const m = data.messages || {};
    let first = true;
    for (const l of m.log || []) {
      line(l, '', { html: true, first });
      first = false;
    }
    for (const r of m.results || []) {
      line(r, 'result', { html: true, first });
      first = false;
    }
  }

  function onCode(data) {
    if (data.hash === state.lastHash || data.branch !== state.branch) return;
    const n = $('code-notice');
    n.textContent = `The code of branch ${data.branch} was changed elsewhere (${Object.keys(data.modules).join(', ')}).`;
    const b = document.createElement('button');
    b.className = 'small';
    b.textContent = 'load it';
    b.addEventListener('click', () => loadCode(data.branch));
    n.appendChild(b);
    n.hidden = false;
  }

  // ------------------------------------------------------------------ websocket

  function setWsState(s, text) {
    const el = $('ws-state');
    el.className = `dot ${s}`;
    el.textContent = text;
  }

  // Inflates a "gz:" frame (zlib deflate, base64) in the browser.
  async function decode(text) {
    if (!text.startsWith('gz:')) return text;
    const bytes = Uint8Array.from(atob(text.slice(3)), (c) => c.charCodeAt(0));
    const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream('deflate'));
    return new Response(stream).text();
  }

  function connect() {
    if (!state.me) return;
    const ws = new WebSocket(`${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/socket/websocket`);
    state.ws = ws;
    setWsState('wait', 'connecting');
    let chain = Promise.resolve(); // frames are handled in order, also when some need inflating
    ws.onopen = () => ws.send(`auth ${state.token}`);
    ws.onmessage = (e) => {
      chain = chain.then(() => decode(e.data)).then((text) => onFrame(ws, text))
        .catch((err) => sys(`bad frame: ${err.message}`, 'err'));
    };
    ws.onclose = () => {
      if (state.ws !== ws) return;
      state.ws = null;
      setWsState('off', 'offline');
      if (!state.me) return;
      const wait = Math.min(10000, 500 * 2 ** state.wsTries++);
      setTimeout(connect, wait);
    };
  }

  function onFrame(ws, text) {
    if (text.startsWith('auth ok ')) {
      setToken(text.slice(8));
      state.wsTries = 0;
      const id = state.me._id;
      ws.send('gzip on');
      for (const c of ['console', 'cpu', 'code']) ws.send(`subscribe user:${id}/${c}`);
      ws.send('subscribe server-message');
      setWsState('on', 'live');
      return;
    }
    if (text === 'auth failed') {
      sys('the websocket refused the session: sign in again', 'err');
      ws.close();
      return;
    }
    if (text.startsWith('dropped ')) {
      sys(`${text.slice(8)} messages were dropped: this page could not keep up`);
      return;
    }
    if (text[0] !== '[') return; // time, protocol
    const [channel, data] = JSON.parse(text);
    if (channel === 'server-message') {
      sys(`server: ${typeof data === 'string' ? data : JSON.stringify(data)}`);
      return;
    }
    const kind = channel.slice(channel.indexOf('/') + 1);
    if (kind === 'console') onConsole(data);
    else if (kind === 'cpu') onCpu(data);
    else if (kind === 'code') onCode(data);
  }

  // ------------------------------------------------------------------ game time

  async function pollTime() {
    try {
      const r = await fetch('/api/game/time').then((x) => x.json());
      if (r.ok) $('game-time').textContent = `tick ${r.time}`;
    } catch { /* offline: the next poll tries again */ }
  }
  setInterval(pollTime, 1000);
  pollTime();

  // ------------------------------------------------------------------ plot

  const canvas = $('plot');

  function onCpu(d) {
    state.points.push({ cpu: d.cpu, memory: d.memory, at: Date.now() });
    if (state.points.length > MAX_POINTS) state.points.shift();
    draw();
  }

  function resizePlot() {
    const r = canvas.getBoundingClientRect();
    const dpr = window.devicePixelRatio || 1;
    canvas.width = Math.max(1, Math.round(r.width * dpr));
    canvas.height = Math.max(1, Math.round(r.height * dpr));
    draw();
  }
  new ResizeObserver(resizePlot).observe(canvas);

  function niceMax(v) {
    if (v <= 0) return 1;
    const p = 10 ** Math.floor(Math.log10(v));
    for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
    return 10 * p;
  }

  function fmtKB(bytes) {
    return bytes < 1024 ? `${bytes} B` : bytes < 1048576 ? `${(bytes / 1024).toFixed(1)} KB` : `${(bytes / 1048576).toFixed(2)} MB`;
  }

  function draw() {
    const ctx = canvas.getContext('2d');
    const dpr = window.devicePixelRatio || 1;
    const W = canvas.width / dpr;
    const H = canvas.height / dpr;
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, W, H);
    const css = getComputedStyle(document.documentElement);
    const col = (n) => css.getPropertyValue(n).trim();
    const pad = { l: 44, r: 58, t: 10, b: 20 };
    const pw = W - pad.l - pad.r;
    const ph = H - pad.t - pad.b;
    if (pw <= 10 || ph <= 10) return;
    const pts = state.points;
    const limit = state.me ? state.me.cpu : 100;
    // scaled to the data; the limit line shows when the data comes near it
    const peak = Math.max(0, ...pts.map((p) => p.cpu));
    const cpuMax = niceMax(Math.max(5, peak * 1.25, peak > limit * 0.5 ? limit * 1.1 : 0));
    const memMax = niceMax(Math.max(64, ...pts.map((p) => p.memory)) * 1.25);
    const slots = Math.max(60, pts.length); // the line spans the width as ticks accumulate
    ctx.font = '11px system-ui, sans-serif';
    ctx.lineWidth = 1;
    // grid and axes
    for (let i = 0; i <= 4; i++) {
      const y = pad.t + ph - (ph * i) / 4;
      ctx.strokeStyle = '#262a34';
      ctx.beginPath();
      ctx.moveTo(pad.l, Math.round(y) + 0.5);
      ctx.lineTo(pad.l + pw, Math.round(y) + 0.5);
      ctx.stroke();
      ctx.fillStyle = col('--cpu');
      ctx.textAlign = 'right';
      ctx.fillText(`${+((cpuMax * i) / 4).toFixed(1)}`, pad.l - 6, y + 4);
      ctx.fillStyle = col('--mem');
      ctx.textAlign = 'left';
      ctx.fillText(fmtKB((memMax * i) / 4), pad.l + pw + 6, y + 4);
    }
    ctx.fillStyle = col('--muted');
    ctx.textAlign = 'center';
    ctx.fillText(pts.length ? `last ${pts.length} ticks →` : 'waiting for the first tick…', pad.l + pw / 2, H - 5);
    const x = (i) => pad.l + pw - ((pts.length - 1 - i) * pw) / (slots - 1);
    const yc = (v) => pad.t + ph - (ph * v) / cpuMax;
    const ym = (v) => pad.t + ph - (ph * v) / memMax;
    // the CPU limit, when it is on the scale
    if (limit <= cpuMax) {
      ctx.strokeStyle = col('--warn');
      ctx.setLineDash([4, 3]);
      ctx.beginPath();
      ctx.moveTo(pad.l, yc(limit));
      ctx.lineTo(pad.l + pw, yc(limit));
      ctx.stroke();
      ctx.setLineDash([]);
    }
    if (!pts.length) return;
    // CPU: area and line
    ctx.beginPath();
    ctx.moveTo(x(0), yc(0));
    pts.forEach((p, i) => ctx.lineTo(x(i), yc(p.cpu)));
    ctx.lineTo(x(pts.length - 1), yc(0));
    ctx.closePath();
    ctx.fillStyle = 'rgba(111,179,255,0.18)';
    ctx.fill();
    ctx.strokeStyle = col('--cpu');
    ctx.lineWidth = 1.5;
    ctx.beginPath();
    pts.forEach((p, i) => (i ? ctx.lineTo(x(i), yc(p.cpu)) : ctx.moveTo(x(i), yc(p.cpu))));
    ctx.stroke();
    // Memory
    ctx.strokeStyle = col('--mem');
    ctx.beginPath();
    pts.forEach((p, i) => (i ? ctx.lineTo(x(i), ym(p.memory)) : ctx.moveTo(x(i), ym(p.memory))));
    ctx.stroke();
    const last = pts[pts.length - 1];
    const avg = pts.reduce((s, p) => s + p.cpu, 0) / pts.length;
    $('plot-readout').textContent = `CPU ${last.cpu} ms of ${limit} (mean ${avg.toFixed(1)}) · Memory ${fmtKB(last.memory)}`;
  }

  // ------------------------------------------------------------------ boot

  window.isoworld = { state, editor, upload }; // for tests and the curious
  if (state.token) {
    start().catch(() => signOut());
  } else {
    $('login-user').focus();
  }
})();
