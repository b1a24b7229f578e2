// isoworld's page: sign in, edit and upload code, watch the console live and type console
// commands, see CPU and Memory plotted per tick, and watch the player's room live (its
// terrain and objects: the room:<NAME> channel's snapshot, then its diffs merged here). Plain JavaScript, no framework; it
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
    room: {
      name: null, // the room shown
      mine: [], // the player's rooms
      status: null, // world-status: empty | normal | lost
      terrain: null, // 2500 digits (0 plain, 1 wall, 2 swamp, 3 swamp wall)
      objects: null, // id -> object, as the channel's snapshot and diffs make it
      users: {},
      gameTime: null,
      live: false, // a snapshot of this subscription arrived: diffs apply
      drawn: {}, // what the last drawing showed: {total, spawn, creep, ...}
    },
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
    Object.assign(state.room, { name: null, mine: [], status: null, terrain: null, objects: null, users: {}, live: false });
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
    initRoom().catch((err) => { $('room-readout').textContent = `no room view: ${err.message}`; });
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
      state.room.live = false; // a new subscription starts with a snapshot
      if (state.room.name) ws.send(`subscribe room:${state.room.name}`);
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
    if (channel.startsWith('room:')) {
      onRoom(channel.slice(5), data);
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

  // ------------------------------------------------------------------ room

  // The room view: the terrain (room-terrain, encoded) drawn once into a 50×50 image, and
  // the objects of the room:<NAME> channel on top, redrawn on every tick's frame. The
  // channel sends a full snapshot first (it has "info"), then diffs: changed keys of
  // changed objects, null for removed keys and objects; they are merged here.

  const roomCanvas = $('room-canvas');
  const TERRAIN_RGB = { plain: [44, 48, 57], wall: [16, 17, 21], swamp: [40, 58, 30] };
  let terrainImage = null; // a 50×50 canvas
  let roomDrawPending = false;

  async function initRoom() {
    const size = await api('GET', '/api/game/world-size');
    const [start, status, mine] = await Promise.all([
      api('GET', '/api/user/world-start-room'),
      api('GET', '/api/user/world-status'),
      api('GET', `/api/user/rooms?id=${encodeURIComponent(state.me._id)}`),
    ]);
    state.room.status = status.status;
    state.room.mine = mine.rooms || [];
    const sel = $('room-pick');
    sel.textContent = '';
    for (let x = 1; x <= size.width; x++) {
      for (let y = 1; y <= size.height; y++) {
        const name = `W${x}N${y}`;
        const o = document.createElement('option');
        o.value = name;
        o.textContent = name + (state.room.mine.includes(name) ? ' (yours)' : '');
        sel.appendChild(o);
      }
    }
    await selectRoom(state.room.mine[0] || start.room[0]);
  }

  $('room-pick').addEventListener('change', (e) => {
    selectRoom(e.target.value).catch((err) => sys(`cannot show room ${e.target.value}: ${err.message}`, 'err'));
  });

  // Shows `name`: its terrain now, its objects from the channel (an HTTP read fills the
  // view until the channel's snapshot arrives).
  async function selectRoom(name) {
    const r = state.room;
    if (!name || name === r.name) return;
    const ws = state.ws && state.ws.readyState === WebSocket.OPEN ? state.ws : null;
    if (ws && r.name) ws.send(`unsubscribe room:${r.name}`);
    Object.assign(r, { name, terrain: null, objects: null, users: {}, gameTime: null, live: false });
    $('room-pick').value = name;
    roomCanvas.dataset.room = name;
    terrainImage = null;
    if (ws && $('ws-state').classList.contains('on')) ws.send(`subscribe room:${name}`);
    const [t, objs] = await Promise.all([
      api('GET', `/api/game/room-terrain?room=${encodeURIComponent(name)}&encoded=1`),
      api('GET', `/api/game/room-objects?room=${encodeURIComponent(name)}`),
    ]);
    if (r.name !== name) return; // another room was chosen meanwhile
    r.terrain = t.terrain[0].terrain;
    terrainImage = renderTerrain(r.terrain);
    if (!r.live) {
      r.objects = {};
      for (const o of objs.objects) r.objects[o._id] = o;
      r.users = objs.users || {};
    }
    scheduleRoomDraw();
  }

  function isPlain(v) {
    return v !== null && typeof v === 'object' && !Array.isArray(v);
  }

  // Merges a diff into target: null removes a key, objects merge key by key, anything
  // else (numbers, strings, arrays) replaces.
  function merge(target, diff) {
    for (const [k, v] of Object.entries(diff)) {
      if (v === null) delete target[k];
      else if (isPlain(v) && isPlain(target[k])) merge(target[k], v);
      else target[k] = v;
    }
  }

  function onRoom(name, data) {
    const r = state.room;
    if (name !== r.name || !isPlain(data)) return;
    if (data.info) { // a snapshot: the whole room
      r.objects = data.objects || {};
      r.users = data.users || {};
      r.live = true;
    } else if (r.live) {
      merge(r.objects, data.objects || {});
      if (data.users) merge(r.users, data.users);
    } else {
      return; // a diff to a snapshot this page did not get
    }
    if (data.gameTime !== undefined) r.gameTime = data.gameTime;
    scheduleRoomDraw();
  }

  function renderTerrain(t) {
    const c = document.createElement('canvas');
    c.width = 50;
    c.height = 50;
    const ctx = c.getContext('2d');
    const img = ctx.createImageData(50, 50);
    for (let i = 0; i < 2500; i++) {
      const v = t.charCodeAt(i) - 48;
      const rgb = v & 1 ? TERRAIN_RGB.wall : v & 2 ? TERRAIN_RGB.swamp : TERRAIN_RGB.plain;
      // a faint checker on the open tiles, so that distances can be counted
      const d = v & 1 ? 0 : ((i % 50) + Math.floor(i / 50)) % 2 ? 3 : 0;
      img.data.set([rgb[0] + d, rgb[1] + d, rgb[2] + d, 255], i * 4);
    }
    ctx.putImageData(img, 0, 0);
    return c;
  }

  function scheduleRoomDraw() {
    if (roomDrawPending) return;
    roomDrawPending = true;
    requestAnimationFrame(() => {
      roomDrawPending = false;
      drawRoom();
    });
  }

  // A colour per owner, stable across pages and reloads.
  function userColor(id) {
    let h = 2166136261;
    for (const ch of String(id)) h = Math.imul(h ^ ch.charCodeAt(0), 16777619);
    return `hsl(${(h >>> 0) % 360}, 75%, 62%)`;
  }

  // The canvas: a square as wide as the panel, leaving room below for the creep list;
  // a whole number of pixels per tile.
  function resizeRoom() {
    const panel = $('room');
    const head = panel.querySelector('.panel-head').offsetHeight;
    const w = panel.clientWidth - 12;
    const h = panel.clientHeight - head - $('room-readout').offsetHeight - $('room-hover').offsetHeight - 12 - 130;
    const size = Math.max(100, Math.floor(Math.min(w, h) / 50) * 50);
    const dpr = window.devicePixelRatio || 1;
    roomCanvas.style.width = `${size}px`;
    roomCanvas.style.height = `${size}px`;
    roomCanvas.width = Math.round(size * dpr);
    roomCanvas.height = Math.round(size * dpr);
    drawRoom();
  }
  new ResizeObserver(resizeRoom).observe($('room'));

  const DRAW_ORDER = ['road', 'constructedWall', 'container', 'constructionSite', 'source', 'controller',
    'extension', 'tower', 'spawn', 'energy', 'creep'];

  function drawRoom() {
    const r = state.room;
    const ctx = roomCanvas.getContext('2d');
    const dpr = window.devicePixelRatio || 1;
    const S = roomCanvas.width / dpr;
    const T = S / 50; // one tile
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, S, S);
    if (terrainImage) {
      ctx.imageSmoothingEnabled = false;
      ctx.drawImage(terrainImage, 0, 0, S, S);
    } else {
      ctx.fillStyle = '#1a1d23';
      ctx.fillRect(0, 0, S, S);
    }
    const drawn = { total: 0 };
    const objs = r.objects ? Object.values(r.objects) : [];
    const rank = (o) => { const i = DRAW_ORDER.indexOf(o.type); return i < 0 ? DRAW_ORDER.length : i; };
    objs.sort((a, b) => rank(a) - rank(b));
    const roads = new Set(objs.filter((o) => o.type === 'road').map((o) => o.y * 50 + o.x));
    const cx = (o) => (o.x + 0.5) * T;
    const cy = (o) => (o.y + 0.5) * T;
    const circle = (o, rad, fill, stroke, lw) => {
      ctx.beginPath();
      ctx.arc(cx(o), cy(o), rad * T, 0, Math.PI * 2);
      if (fill) { ctx.fillStyle = fill; ctx.fill(); }
      if (stroke) { ctx.strokeStyle = stroke; ctx.lineWidth = (lw || 0.1) * T; ctx.stroke(); }
    };
    const energyOf = (o) => (o.store && o.store.energy) || 0;
    const capOf = (o) => (o.storeCapacityResource && o.storeCapacityResource.energy) || o.storeCapacity || 0;
    const says = [];
    for (const o of objs) {
      if (typeof o.x !== 'number' || typeof o.y !== 'number') continue;
      const own = o.user ? userColor(o.user) : '#9aa0ad';
      switch (o.type) {
        case 'road':
          ctx.strokeStyle = '#5d6270';
          ctx.lineWidth = 0.22 * T;
          ctx.lineCap = 'round';
          for (const [dx, dy] of [[1, 0], [0, 1], [1, 1], [1, -1]]) {
            if (!roads.has((o.y + dy) * 50 + o.x + dx)) continue;
            ctx.beginPath();
            ctx.moveTo(cx(o), cy(o));
            ctx.lineTo(cx(o) + dx * T, cy(o) + dy * T);
            ctx.stroke();
          }
          circle(o, 0.15, '#5d6270');
          break;
        case 'constructedWall':
          ctx.fillStyle = '#4b4f5a';
          ctx.fillRect(o.x * T, o.y * T, T, T);
          break;
        case 'container':
          ctx.fillStyle = '#4a3f2a';
          ctx.strokeStyle = '#a08a58';
          ctx.lineWidth = 0.08 * T;
          ctx.fillRect((o.x + 0.22) * T, (o.y + 0.2) * T, 0.56 * T, 0.6 * T);
          ctx.strokeRect((o.x + 0.22) * T, (o.y + 0.2) * T, 0.56 * T, 0.6 * T);
          break;
        case 'constructionSite': {
          circle(o, 0.32, 'rgba(0,0,0,0.35)', '#7fd38f', 0.08);
          const p = o.progressTotal ? Math.min(1, o.progress / o.progressTotal) : 0;
          if (p > 0) {
            ctx.beginPath();
            ctx.moveTo(cx(o), cy(o));
            ctx.arc(cx(o), cy(o), 0.24 * T, -Math.PI / 2, -Math.PI / 2 + p * Math.PI * 2);
            ctx.closePath();
            ctx.fillStyle = '#7fd38f';
            ctx.fill();
          }
          break;
        }
        case 'source': {
          const f = o.energyCapacity ? o.energy / o.energyCapacity : 1;
          ctx.fillStyle = `rgba(240, 192, 90, ${0.3 + 0.7 * f})`;
          ctx.strokeStyle = '#f0c05a';
          ctx.lineWidth = 0.08 * T;
          ctx.beginPath();
          ctx.roundRect ? ctx.roundRect((o.x + 0.1) * T, (o.y + 0.1) * T, 0.8 * T, 0.8 * T, 0.2 * T)
            : ctx.rect((o.x + 0.1) * T, (o.y + 0.1) * T, 0.8 * T, 0.8 * T);
          ctx.fill();
          ctx.stroke();
          break;
        }
        case 'controller': {
          circle(o, 0.62, '#0d0f13', o.user ? own : '#6b7080', 0.12);
          const p = o.progressTotal ? Math.min(1, o.progress / o.progressTotal) : 0;
          if (p > 0) {
            ctx.beginPath();
            ctx.arc(cx(o), cy(o), 0.45 * T, -Math.PI / 2, -Math.PI / 2 + p * Math.PI * 2);
            ctx.strokeStyle = '#d8dbe2';
            ctx.lineWidth = 0.1 * T;
            ctx.stroke();
          }
          if (T >= 6) {
            ctx.fillStyle = '#d8dbe2';
            ctx.font = `600 ${Math.round(0.7 * T)}px system-ui, sans-serif`;
            ctx.textAlign = 'center';
            ctx.textBaseline = 'middle';
            ctx.fillText(String(o.level || 0), cx(o), cy(o) + 0.04 * T);
          }
          break;
        }
        case 'extension':
        case 'spawn':
        case 'tower': {
          const big = o.type === 'spawn' ? 0.5 : 0.34;
          circle(o, big, '#0d0f13', own, o.type === 'spawn' ? 0.14 : 0.1);
          const cap = capOf(o);
          const f = cap ? Math.min(1, energyOf(o) / cap) : 0;
          if (f > 0) circle(o, (big - 0.14) * Math.sqrt(f), '#f0c05a');
          if (o.type === 'tower') {
            ctx.fillStyle = own;
            ctx.fillRect(cx(o) - 0.08 * T, cy(o) - 0.45 * T, 0.16 * T, 0.4 * T);
          }
          if (o.type === 'spawn' && o.spawning) circle(o, big + 0.14, null, 'rgba(255,255,255,0.55)', 0.06);
          break;
        }
        case 'energy':
          circle(o, 0.1 + 0.2 * Math.min(1, (o.energy || 0) / 500), '#f0c05a');
          break;
        case 'creep': {
          ctx.globalAlpha = o.spawning ? 0.45 : 1;
          circle(o, 0.4, own, '#0d0f13', 0.08);
          const cap = o.storeCapacity || 0;
          const f = cap ? Math.min(1, energyOf(o) / cap) : 0;
          if (f > 0) circle(o, 0.25 * Math.sqrt(f), '#f0c05a');
          ctx.globalAlpha = 1;
          const say = o.actionLog && o.actionLog.say && o.actionLog.say.message;
          if (say && !o.spawning) says.push([o, String(say)]);
          break;
        }
        default:
          circle(o, 0.2, '#c88cff');
      }
      drawn.total++;
      drawn[o.type] = (drawn[o.type] || 0) + 1;
    }
    // speech bubbles last, above everything
    if (T >= 6) {
      ctx.font = `${Math.max(9, Math.round(0.75 * T))}px system-ui, sans-serif`;
      ctx.textAlign = 'center';
      ctx.textBaseline = 'bottom';
      for (const [o, text] of says) {
        const w = ctx.measureText(text).width + 6;
        ctx.fillStyle = 'rgba(13,15,19,0.8)';
        ctx.fillRect(cx(o) - w / 2, cy(o) - 1.55 * T, w, 0.95 * T);
        ctx.fillStyle = '#eef0f4';
        ctx.fillText(text, cx(o), cy(o) - 0.65 * T);
      }
    }
    r.drawn = drawn;
    roomCanvas.dataset.objects = String(drawn.total);
    roomCanvas.dataset.spawns = String(drawn.spawn || 0);
    roomCanvas.dataset.creeps = String(drawn.creep || 0);
    roomCanvas.dataset.gameTime = r.gameTime === null ? '' : String(r.gameTime);
    roomCanvas.dataset.terrain = terrainImage ? 'yes' : 'no';
    roomReadout();
    creepList(objs);
  }

  // The creeps of the room, one line each: owner, name, position, energy, ticks to live.
  function creepList(objs) {
    const list = $('room-list');
    const r = state.room;
    const creeps = objs.filter((o) => o.type === 'creep').sort((a, b) => String(a.name).localeCompare(String(b.name)));
    list.textContent = '';
    for (const c of creeps.slice(0, 100)) {
      const row = document.createElement('div');
      const dot = document.createElement('i');
      dot.style.background = userColor(c.user);
      row.appendChild(dot);
      const ttl = c.spawning ? 'spawning' : c.ageTime && r.gameTime !== null ? `ttl ${c.ageTime - r.gameTime}` : '';
      const say = c.actionLog && c.actionLog.say ? c.actionLog.say.message : '';
      for (const [text, cls] of [[c.name, ''], [`${c.x},${c.y}`, ''], [`energy ${(c.store && c.store.energy) || 0}/${c.storeCapacity || 0}`, ''],
        [say ? `"${say}"` : ttl, say ? 'say' : '']]) {
        const span = document.createElement('span');
        span.textContent = text;
        if (cls) span.className = cls;
        row.appendChild(span);
      }
      list.appendChild(row);
    }
    if (!creeps.length) list.innerHTML = '<div class="muted"><span></span><span>no creeps here</span></div>';
  }

  function roomReadout() {
    const r = state.room;
    if (!r.name) return;
    const objs = r.objects ? Object.values(r.objects) : [];
    const ctl = objs.find((o) => o.type === 'controller');
    const parts = [r.name];
    if (r.gameTime !== null) parts.push(`tick ${r.gameTime}`);
    if (ctl) {
      const owner = ctl.user && r.users[ctl.user] ? r.users[ctl.user].username : null;
      parts.push(owner ? `controller level ${ctl.level} (${ctl.progress}/${ctl.progressTotal}) of ${owner}` : 'controller unowned');
    }
    const n = (t) => objs.filter((o) => o.type === t).length;
    parts.push(`${n('creep')} creeps`);
    const stores = objs.filter((o) => o.type === 'spawn' || o.type === 'extension');
    if (stores.length) {
      const e = stores.reduce((s, o) => s + ((o.store && o.store.energy) || 0), 0);
      const c = stores.reduce((s, o) => s + ((o.storeCapacityResource && o.storeCapacityResource.energy) || 0), 0);
      parts.push(`energy ${e}/${c}`);
    }
    if (n('constructionSite')) parts.push(`${n('constructionSite')} sites`);
    if (!r.live) parts.push(state.ws ? 'waiting for the live feed…' : 'offline');
    if (r.status === 'empty' && !r.mine.length) parts.push('you have no room: click a free tile to place your spawn');
    $('room-readout').textContent = parts.join(' · ');
    const legend = $('room-users');
    legend.textContent = '';
    for (const [id, u] of Object.entries(r.users)) {
      const i = document.createElement('i');
      i.style.background = userColor(id);
      legend.appendChild(i);
      legend.appendChild(document.createTextNode(u.username));
    }
  }

  // The tile under the pointer and what is on it.
  function tileAt(e) {
    const rect = roomCanvas.getBoundingClientRect();
    const x = Math.floor(((e.clientX - rect.left) / rect.width) * 50);
    const y = Math.floor(((e.clientY - rect.top) / rect.height) * 50);
    return x >= 0 && x < 50 && y >= 0 && y < 50 ? { x, y } : null;
  }

  roomCanvas.addEventListener('mousemove', (e) => {
    const r = state.room;
    const t = tileAt(e);
    if (!t || !r.terrain) return;
    const v = r.terrain.charCodeAt(t.y * 50 + t.x) - 48;
    const what = [`${r.name} ${t.x},${t.y}: ${v & 1 ? 'wall' : v & 2 ? 'swamp' : 'plain'}`];
    for (const o of Object.values(r.objects || {})) {
      if (o.x !== t.x || o.y !== t.y) continue;
      let d = o.type === 'constructionSite' ? `site of ${o.structureType} ${o.progress}/${o.progressTotal}` : o.type;
      if (o.name) d += ` ${o.name}`;
      if (o.type === 'source') d += ` ${o.energy}/${o.energyCapacity}`;
      if (o.store && o.store.energy !== undefined) d += ` (energy ${o.store.energy})`;
      if (o.user && r.users[o.user]) d += ` of ${r.users[o.user].username}`;
      what.push(d);
    }
    $('room-hover').textContent = what.join(' · ');
  });

  // A player without a room places their first spawn by clicking a tile.
  roomCanvas.addEventListener('click', async (e) => {
    const r = state.room;
    const t = tileAt(e);
    if (!t || r.status !== 'empty' || r.mine.length) return;
    if (!window.confirm(`Place your first spawn, Spawn1, in ${r.name} at ${t.x},${t.y}?`)) return;
    try {
      await api('POST', '/api/game/place-spawn', { room: r.name, x: t.x, y: t.y, name: 'Spawn1' });
      sys(`Spawn1 placed in ${r.name} at ${t.x},${t.y}`);
      const name = r.name;
      r.name = null; // reload the room list and the room
      await initRoom();
      if (!r.name) await selectRoom(name);
    } catch (err) {
      sys(`the spawn could not be placed: ${err.message}`, 'err');
    }
  });

  // ------------------------------------------------------------------ boot

  window.isoworld = { state, editor, upload, selectRoom, drawRoom }; // for tests and the curious
  if (state.token) {
    start().catch(() => signOut());
  } else {
    $('login-user').focus();
  }
})();
