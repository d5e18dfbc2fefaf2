// connkit's management page. Plain DOM, no framework, no build step.
// Every value shown comes from users of the API, so text goes in with
// textContent and form values, never as HTML.

const api = '../'; // the page is at <api>/ui/

const $ = (id) => document.getElementById(id);

const state = {
  conns: new Map(), // id -> Info, as the API answers
  rows: new Map(), // id -> <tr>
  types: [], // [{type, schema: {props: [...]}}]
  listing: null, // the list in flight, if any
  pending: [], // events that came while listing
  filter: '',
  inbox: [], // events not yet taken
  flushing: 0, // the timer that takes them
  deferred: null, // while taking them: id -> what its row showed
};

// el builds an element: el('td', {class: 'x'}, 'text', child...).
function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') e.className = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? '' : String(v));
  }
  for (const k of kids) {
    if (k === undefined || k === null || k === false) continue;
    e.append(k instanceof Node ? k : String(k));
  }
  return e;
}

// call does one API request and returns {ok, status, body, etag, link}; a
// network failure becomes status 0 with a problem-shaped body.
async function call(method, path, {body, headers} = {}) {
  const init = {method, headers: {Accept: 'application/json', ...headers}};
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers['Content-Type'] = 'application/json';
  }
  let res;
  try {
    res = await fetch(api + path, init);
  } catch (e) {
    return {ok: false, status: 0, body: {detail: `the server did not answer (${e.message}); try again`}};
  }
  let data = null;
  const text = await res.text();
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = {detail: text.slice(0, 300)};
    }
  }
  return {ok: res.ok, status: res.status, body: data, etag: res.headers.get('ETag'), link: res.headers.get('Link') || ''};
}

const enc = encodeURIComponent;

function notice(msg, bad) {
  const n = $('notice');
  n.textContent = msg;
  n.classList.toggle('bad', !!bad);
}

function problem(r) {
  return (r.body && (r.body.detail || r.body.error)) || `HTTP ${r.status}`;
}

// ---- times ----

// ago says how long ago iso was ("12 s ago"), or how long until it is
// ("in 3 s"); a due time that has passed is "now".
function ago(iso, due) {
  const t = Date.parse(iso);
  if (!iso || isNaN(t) || t <= 0) return '';
  let s = Math.round((Date.now() - t) / 1000);
  if (due && s >= 0) return 'now';
  const future = s < 0;
  s = Math.abs(s);
  let txt;
  if (s < 60) txt = `${s} s`;
  else if (s < 3600) txt = `${Math.floor(s / 60)} min`;
  else if (s < 86400) txt = `${Math.floor(s / 3600)} h`;
  else txt = `${Math.floor(s / 86400)} d`;
  return future ? `in ${txt}` : `${txt} ago`;
}

// One formatter for every time shown: making one per call is slow.
const dateFmt = new Intl.DateTimeFormat(undefined, {dateStyle: 'medium', timeStyle: 'medium'});

function timeEl(iso, prefix, due) {
  if (!iso || Date.parse(iso) <= 0) return el('span', {class: 'none'}, '—');
  const t = el('time', {datetime: iso, title: dateFmt.format(new Date(iso)), 'data-prefix': prefix || '', 'data-due': due ? '1' : null});
  t.textContent = (prefix || '') + ago(iso, due);
  return t;
}

function tick() {
  // Only the texts that change: each change costs a layout of the table.
  for (const t of document.querySelectorAll('time[data-prefix]')) {
    const txt = (t.dataset.prefix || '') + ago(t.getAttribute('datetime'), !!t.dataset.due);
    if (t.textContent !== txt) t.textContent = txt;
  }
}

// ---- the list ----

function statusCell(c) {
  const td = el('td', {class: 'status', 'data-label': 'Status'});
  const st = c.status || 'unknown';
  td.append(el('span', {class: `badge s-${st}`, 'data-status': st}, st), ' ', timeEl(c.statusSince));
  if (c.err) td.append(el('div', {class: 'err', title: c.err}, c.err));
  if (c.permanent) td.append(el('div', {class: 'hint'}, 'will not pass by retrying: fix the connection'));
  else if (c.nextAttemptAt) {
    const failed = c.attempts ? `${c.attempts} failed ${c.attempts === 1 ? 'dial' : 'dials'}; ` : '';
    td.append(el('div', {class: 'hint'}, timeEl(c.nextAttemptAt, failed + 'next ', true)));
  }
  return td;
}

function refsCell(c) {
  const td = el('td', {class: 'refs', 'data-label': 'Refs'});
  const refs = c.refs || [];
  if (!refs.length) {
    td.append(String(c.refCount || 0));
    return td;
  }
  const d = el('details', {}, el('summary', {}, `${c.refCount} `, el('span', {class: 'sr'}, `refs of ${c.id}`)));
  d.append(el('ul', {}, ...refs.map((r) => el('li', {}, r))));
  td.append(d);
  return td;
}

// The row actions: one listener on the table (see start) serves the
// buttons of every row, which are clones of one cell.
const actions = {
  edit: (id) => openEdit(id),
  check: (id) => checkStored(id),
  reconnect: (id) => reconnect(id),
  history: (id) => history(id),
  delete: (id) => askDelete(id),
};
let actionsProto = null;

function actionsCell(c) {
  if (!actionsProto) {
    const b = (label, what, cls) => el('button', {type: 'button', class: cls, 'data-action': what}, label);
    actionsProto = el('td', {class: 'actions-cell', 'data-label': 'Actions'},
      b('Edit', 'edit'), b('Check', 'check'), b('Reconnect', 'reconnect'), b('History', 'history'), b('Delete', 'delete', 'danger'));
  }
  const td = actionsProto.cloneNode(true);
  for (const b of td.children) b.setAttribute('aria-label', `${b.textContent} ${c.id}`);
  return td;
}

function fillRow(tr, c) {
  tr.replaceChildren(
    el('th', {scope: 'row', class: 'id', 'data-label': 'ID'}, c.id),
    el('td', {'data-label': 'Type'}, c.typ),
    statusCell(c),
    refsCell(c),
    el('td', {class: 'num', 'data-label': 'Version'}, String(c.version)),
    el('td', {'data-label': 'Last activity'}, timeEl(c.lastActivityAt)),
    actionsCell(c));
  tr.dataset.status = c.status;
  applyFilter(tr, c);
}

// A row's cells but the actions are rebuilt in place, so that keyboard
// focus on its buttons survives a status change.
function updateRow(tr, c, old) {
  if (!tr.firstChild) return fillRow(tr, c);
  const cells = tr.children;
  cells[2].replaceWith(statusCell(c));
  if (!old || old.refCount !== c.refCount || String(old.refs) !== String(c.refs)) {
    // An open list stays open, and focus in it stays in the cell.
    const prev = cells[3];
    const open = !!prev.querySelector('details[open]');
    const focused = prev.contains(document.activeElement);
    const cell = refsCell(c);
    prev.replaceWith(cell);
    const d = cell.querySelector('details');
    if (d && open) d.open = true;
    if (focused) (cell.querySelector('summary') || tr.querySelector('button')).focus();
  }
  cells[4].textContent = String(c.version);
  cells[5].replaceChildren(timeEl(c.lastActivityAt));
  tr.dataset.status = c.status;
  applyFilter(tr, c);
}

function applyFilter(tr, c) {
  const f = state.filter;
  tr.hidden = !!f && ![c.id, c.typ, c.status].some((s) => (s || '').toLowerCase().includes(f));
}

function upsert(c) {
  const old = state.conns.get(c.id);
  state.conns.set(c.id, c);
  if (state.deferred) {
    // In a batch of events: the row is drawn once, at its end.
    if (!state.deferred.has(c.id)) state.deferred.set(c.id, old);
    return;
  }
  render(c.id, old);
  counted();
}

// render draws the row of id as it now is; old is what it showed.
function render(id, old) {
  const c = state.conns.get(id);
  if (!c) return;
  let tr = state.rows.get(id);
  if (tr) {
    updateRow(tr, c, old);
    return;
  }
  tr = el('tr', {'data-id': id});
  fillRow(tr, c);
  state.rows.set(id, tr);
  // Keep the rows sorted by id, as the API lists them. A list comes in
  // order, so a new row most often goes last.
  const body = $('rows');
  const last = body.lastElementChild;
  let next = null;
  if (last && last.dataset.id > id) {
    for (const row of body.children) {
      if (row.dataset.id > id) {
        next = row;
        break;
      }
    }
  }
  body.insertBefore(tr, next);
}

function remove(id) {
  reads.set(id, (reads.get(id) || 0) + 1); // a read in flight is stale now
  state.conns.delete(id);
  const tr = state.rows.get(id);
  if (tr) tr.remove();
  state.rows.delete(id);
  counted();
}

function counted() {
  const n = state.conns.size;
  $('count').textContent = `(${n})`;
  $('empty').hidden = n > 0;
}

// list reads every connection, page by page, and makes the table match.
async function list() {
  if (state.listing) return state.listing;
  state.listing = (async () => {
    // Every page first, then the table once: drawing between the pages
    // would lay out a growing table again and again.
    const all = [];
    let after = '';
    for (;;) {
      // Pages of the server's size; a Link rel="next" says there is more.
      const r = await call('GET', 'connections' + (after ? '?after=' + enc(after) : ''));
      if (!r.ok) {
        notice(`Could not list the connections: ${problem(r)}`, true);
        return false;
      }
      all.push(...r.body);
      if (!/rel="next"/.test(r.link) || !r.body.length) break;
      after = r.body[r.body.length - 1].id;
    }
    const seen = new Set(all.map((c) => c.id));
    for (const id of [...state.conns.keys()]) if (!seen.has(id)) remove(id);
    for (const c of all) {
      const old = state.conns.get(c.id);
      state.conns.set(c.id, c);
      if (!old || JSON.stringify(old) !== JSON.stringify(c)) render(c.id, old);
    }
    counted();
    return true;
  })();
  try {
    return await state.listing;
  } finally {
    state.listing = null;
    const evs = state.pending;
    state.pending = [];
    for (const ev of evs) onEvent(ev, true);
  }
}

// refetch reads one connection again, once for a burst of its events.
// Only the answer to the latest read of an id counts, and none that a
// delete overtook: answers can arrive out of order.
const refetching = new Set();
const reads = new Map(); // id -> number of the latest read
function refetch(id) {
  if (refetching.has(id)) return;
  refetching.add(id);
  setTimeout(async () => {
    refetching.delete(id);
    const n = (reads.get(id) || 0) + 1;
    reads.set(id, n);
    const r = await call('GET', 'connections/' + enc(id));
    if (reads.get(id) !== n) return;
    if (r.ok) upsert(keepNewerStatus(r.body));
    else if (r.status === 404) remove(id);
  }, 50);
}

// keepNewerStatus keeps the status shown if a status event brought a
// newer one than c, read before it.
function keepNewerStatus(c) {
  const cur = state.conns.get(c.id);
  if (!cur || !(Date.parse(cur.statusSince) > Date.parse(c.statusSince))) return c;
  const out = {...c};
  for (const k of ['status', 'err', 'permanent', 'statusSince', 'attempts', 'nextAttemptAt']) {
    if (k in cur) out[k] = cur[k];
    else delete out[k];
  }
  return out;
}

// ---- live updates ----

let backoff = 1000;

function streamState(s, text) {
  const p = $('stream');
  p.dataset.state = s;
  p.textContent = 'Live updates: ' + text;
}

function openStream() {
  // After a drop, EventSource reconnects by itself and sends the id of
  // the last event it got as Last-Event-ID: the server replays what was
  // missed, or answers reset when it cannot, and we list again. A
  // stream that never got an event has no id to resume from, so its
  // reconnect lists again too.
  const es = new EventSource(api + 'events');
  let opened = false;
  let lastId = '';
  es.onopen = () => {
    backoff = 1000;
    streamState('live', 'on');
    if (!opened || !lastId) list();
    opened = true;
  };
  es.onerror = () => {
    if (es.readyState === EventSource.CLOSED) {
      // The browser gave up (the server answered an error): open a new
      // stream later, which lists again.
      streamState('down', `off, retrying in ${Math.round(backoff / 1000)} s`);
      setTimeout(openStream, backoff);
      backoff = Math.min(backoff * 2, 30000);
    } else {
      streamState('connecting', 'reconnecting');
    }
  };
  for (const kind of ['created', 'updated', 'deleted', 'status', 'attached', 'detached', 'lagged', 'reset']) {
    es.addEventListener(kind, (m) => {
      lastId = m.lastEventId;
      let ev;
      try {
        ev = JSON.parse(m.data);
      } catch {
        return;
      }
      // Events come in bursts (a broker down drops every connection on
      // it): take them in batches, so that the table is laid out once
      // per batch rather than once per event.
      state.inbox.push(ev);
      if (!state.flushing) state.flushing = setTimeout(flush, 30);
    });
  }
}

function flush() {
  state.flushing = 0;
  const evs = state.inbox;
  state.inbox = [];
  state.deferred = new Map();
  try {
    for (const ev of evs) {
      try {
        onEvent(ev, false);
      } catch (e) {
        notice(`An event could not be shown (${e.message}); Refresh reads the list again.`, true);
      }
    }
  } finally {
    const drawn = state.deferred;
    state.deferred = null;
    for (const [id, old] of drawn) render(id, old);
    counted();
  }
}

function onEvent(ev, replayed) {
  if (state.listing && !replayed) {
    if (ev.kind === 'lagged' || ev.kind === 'reset') state.pending = [];
    state.pending.push(ev);
    return;
  }
  switch (ev.kind) {
    case 'status': {
      const c = state.conns.get(ev.id);
      if (!c || !ev.status) return refetch(ev.id);
      // An event queued while listing may be older than the list.
      if (replayed && Date.parse(ev.status.statusSince) < Date.parse(c.statusSince)) return;
      const next = {...c, ...ev.status};
      for (const k of ['permanent', 'attempts', 'nextAttemptAt']) if (!(k in ev.status)) delete next[k];
      upsert(next);
      return;
    }
    case 'deleted':
      return remove(ev.id);
    case 'created':
    case 'updated':
    case 'attached':
    case 'detached':
      return refetch(ev.id);
    case 'lagged':
    case 'reset':
      return list();
  }
}

// ---- the form ----

const form = {mode: 'create', id: '', etag: '', checks: 0};

// ui.gen changes when a dialog opens, closes or shows something else, and
// when an action that will open one starts: the answer to an action of
// before updates the list and the notice, never a dialog the user has
// moved on to.
const ui = {gen: 0};

// closeDialog closes the dialog id at once: the close event comes later,
// maybe after the user opened another.
function closeDialog(id) {
  ui.gen++;
  if (id === 'edit') formClosed();
  $(id).close();
}

// formClosed forgets the form: what was typed into secret fields leaves
// the page with it.
function formClosed() {
  form.checks++;
  $('props').replaceChildren(el('legend', {}, 'Properties'));
  $('f-check-result').replaceChildren();
}

function typeSchema(typ) {
  const t = state.types.find((t) => t.type === typ);
  return t ? t.schema.props : [];
}

async function loadTypes() {
  const r = await call('GET', 'metadata/connections');
  if (!r.ok) {
    notice(`Could not read the connection types: ${problem(r)}`, true);
    return false;
  }
  state.types = r.body;
  const sel = $('f-typ');
  sel.replaceChildren(el('option', {value: ''}, 'choose a type'), ...r.body.map((t) => el('option', {value: t.type}, t.type)));
  return true;
}

function fieldId(name) {
  return 'p-' + name.replace(/[^A-Za-z0-9_-]/g, '_');
}

function secretToggle(input, name) {
  const b = el('button', {type: 'button', class: 'toggle', 'aria-pressed': 'false', 'aria-label': `Show ${name}`}, 'Show');
  b.addEventListener('click', () => {
    const show = input.type === 'password';
    input.type = show ? 'text' : 'password';
    b.setAttribute('aria-pressed', String(show));
    b.textContent = show ? 'Hide' : 'Show';
  });
  return b;
}

function propField(p, value) {
  const id = fieldId(p.name);
  const sentence = (s) => (s && !/[.!?]$/.test(s) ? s + '.' : s);
  const help = [sentence(p.doc), p.kind === 'stringList' ? 'One per line.' : '', p.default !== undefined ? `Default: ${typeof p.default === 'string' ? p.default : JSON.stringify(p.default)}.` : '',
    p.secret ? 'Secret: the server shows it masked; leave the mask to keep it.' : '']
    .filter(Boolean).join(' ');
  const errId = id + '-err';
  const helpId = id + '-help';
  const described = `${helpId} ${errId}`;
  const wrap = el('div', {class: 'field', 'data-prop': p.name});
  const label = el('label', {for: id}, p.name, p.required ? el('span', {class: 'req', 'aria-hidden': 'true'}, ' *') : null);
  let input;
  if (p.kind === 'map') {
    wrap.append(mapField(p, value, described, errId, helpId, help));
    return wrap;
  }
  if (p.allowed && p.allowed.length) {
    input = el('select', {id, 'aria-describedby': described, 'data-field': p.name},
      el('option', {value: ''}, p.default !== undefined ? `default (${p.default})` : p.required ? 'choose' : 'none'),
      ...p.allowed.map((a) => el('option', {value: String(a)}, String(a))));
    input.value = value === undefined ? '' : String(value);
  } else if (p.kind === 'bool') {
    input = el('input', {id, type: 'checkbox', 'aria-describedby': described, 'data-field': p.name});
    input.checked = value === undefined ? p.default === true : value === true || value === 'true';
    wrap.classList.add('check');
  } else if (p.kind === 'stringList') {
    input = el('textarea', {id, rows: 3, spellcheck: 'false', 'aria-describedby': described, 'data-field': p.name});
    input.value = Array.isArray(value) ? value.join('\n') : value === undefined || value === null ? '' : String(value);
  } else {
    input = el('input', {id, type: p.secret ? 'password' : 'text', autocomplete: p.secret ? 'new-password' : 'off',
      spellcheck: 'false', 'aria-describedby': described, 'data-field': p.name,
      inputmode: {int: 'numeric', float: 'decimal', url: 'url'}[p.kind] || null,
      placeholder: p.default !== undefined ? String(p.default) : null});
    input.value = value === undefined || value === null ? '' : String(value);
  }
  if (p.required) input.setAttribute('aria-required', 'true');
  input.dataset.kind = p.kind;
  wrap.append(label, input);
  if (p.secret && input.tagName === 'INPUT') wrap.append(secretToggle(input, p.name));
  wrap.append(el('small', {id: helpId, class: 'help'}, help), el('p', {id: errId, class: 'field-error', 'data-error-for': p.name}));
  return wrap;
}

// mapField is a map prop as rows of key and value; values of the
// schema's secret keys are password inputs.
function mapField(p, value, described, errId, helpId, help) {
  const secretKeys = (p.secretKeys || []).map((k) => k.toLowerCase());
  const allSecret = secretKeys.includes('*');
  const fs = el('fieldset', {class: 'map', 'data-field': p.name, 'aria-describedby': described, 'data-kind': 'map'},
    el('legend', {}, p.name));
  const rows = el('div', {class: 'map-rows'});
  let n = 0;
  const addRow = (k, v) => {
    const i = n++;
    const kid = `${fieldId(p.name)}-k${i}`;
    const vid = `${fieldId(p.name)}-v${i}`;
    const key = el('input', {id: kid, class: 'map-key', autocomplete: 'off', spellcheck: 'false'});
    const val = el('input', {id: vid, class: 'map-value', autocomplete: 'off', spellcheck: 'false'});
    key.value = k;
    // A value that is not a string (null too) is shown as JSON and sent
    // back as such.
    val.value = v === undefined ? '' : typeof v === 'string' ? v : JSON.stringify(v);
    val.dataset.json = typeof v !== 'string' && v !== undefined ? '1' : '';
    const secret = () => {
      const s = allSecret || secretKeys.includes(key.value.trim().toLowerCase());
      val.type = s ? 'password' : 'text';
      val.autocomplete = s ? 'new-password' : 'off';
    };
    key.addEventListener('input', secret);
    secret();
    const row = el('div', {class: 'map-row'},
      el('label', {for: kid, class: 'sr'}, `${p.name} key ${i + 1}`), key,
      el('label', {for: vid, class: 'sr'}, `${p.name} value ${i + 1}`), val,
      el('button', {type: 'button', 'aria-label': `Remove ${p.name} entry ${i + 1}`, onclick: () => {
        row.remove();
        add.focus();
      }}, 'Remove'));
    rows.append(row);
    return key;
  };
  for (const [k, v] of Object.entries(value && typeof value === 'object' ? value : {})) addRow(k, v);
  const add = el('button', {type: 'button', class: 'add', onclick: () => addRow('', '').focus()}, `Add ${p.name} entry`);
  fs.append(rows, add, el('small', {id: helpId, class: 'help'}, help), el('p', {id: errId, class: 'field-error', 'data-error-for': p.name}));
  return fs;
}

function renderProps(typ, props) {
  const box = $('props');
  box.replaceChildren(el('legend', {}, 'Properties'));
  const schema = typeSchema(typ);
  if (!schema.length) {
    box.append(el('p', {class: 'hint'}, typ ? 'This type has no properties.' : 'Choose a type to see its properties.'));
    return;
  }
  for (const p of schema) box.append(propField(p, props ? props[p.name] : undefined));
}

// collect reads the form into props as the API takes them. A value that
// does not parse is sent as typed, so that the API names the field. With
// nulls, a prop left empty is sent as null rather than left out: a check
// of an edit lays the form over the stored props, and null says "not
// this one" where leaving it out would let the stored value through.
function collect(nulls) {
  const props = {};
  const none = (name) => {
    if (nulls) props[name] = null;
  };
  for (const p of typeSchema($('f-typ').value)) {
    if (p.kind === 'map') {
      const fs = $('props').querySelector(`fieldset[data-field="${CSS.escape(p.name)}"]`);
      const m = {};
      let any = false;
      for (const row of fs.querySelectorAll('.map-row')) {
        const k = row.querySelector('.map-key').value;
        const vi = row.querySelector('.map-value');
        if (!k.trim()) continue;
        let v = vi.value;
        if (vi.dataset.json) {
          try {
            v = JSON.parse(v);
          } catch {
            // keep the text
          }
        }
        m[k] = v;
        any = true;
      }
      if (any) props[p.name] = m;
      else none(p.name);
      continue;
    }
    const input = $(fieldId(p.name));
    if (!input) continue;
    if (p.kind === 'bool' && !(p.allowed && p.allowed.length)) {
      if (input.checked !== (p.default === true)) props[p.name] = input.checked;
      else none(p.name);
      continue;
    }
    const v = input.value;
    if (v === '') {
      none(p.name);
      continue;
    }
    const t = v.trim();
    if (p.kind === 'int') props[p.name] = /^-?\d+$/.test(t) ? Number(t) : v;
    else if (p.kind === 'float') props[p.name] = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(t) ? Number(t) : v;
    // One per line, as typed; a textarea's last newline is no entry.
    else if (p.kind === 'stringList') props[p.name] = v.replace(/\n$/, '').split('\n');
    else props[p.name] = v;
  }
  return props;
}

function clearErrors() {
  $('form-error').hidden = true;
  $('form-error').replaceChildren();
  for (const e of $('form').querySelectorAll('[data-error-for]')) e.textContent = '';
  for (const e of $('form').querySelectorAll('[aria-invalid]')) e.removeAttribute('aria-invalid');
}

// showErrors puts each of the API's field errors beside its field, and
// the rest (with the detail) at the top of the form.
function showErrors(r) {
  const b = r.body || {};
  const top = $('form-error');
  const loose = [];
  let first = null;
  for (const f of b.fields || []) {
    const slot = $('form').querySelector(`[data-error-for="${CSS.escape(f.field)}"]`);
    if (!slot) {
      loose.push(`${f.field}: ${f.message}`);
      continue;
    }
    slot.textContent = slot.textContent ? `${slot.textContent}; ${f.message}` : f.message;
    const input = $('form').querySelector(`[data-field="${CSS.escape(f.field)}"]`);
    if (input) {
      input.setAttribute('aria-invalid', 'true');
      first = first || input;
    }
  }
  const kids = [el('p', {}, (b.fields && b.fields.length && !loose.length) ? 'Fix the fields marked below.' : problem(r))];
  for (const l of loose) kids.push(el('p', {}, l));
  if (b.refs && b.refs.length) kids.push(el('p', {}, 'Held by: '), el('ul', {}, ...b.refs.map((x) => el('li', {}, x))));
  top.replaceChildren(...kids);
  top.hidden = false;
  const focus = first && first.tagName === 'FIELDSET' ? first.querySelector('input,button') : first;
  (focus || top).focus?.();
}

function showConflict(r) {
  const top = $('form-error');
  const btn = el('button', {type: 'button', id: 'f-reload'}, 'Reload it (drops your changes)');
  btn.addEventListener('click', () => openEdit(form.id));
  top.replaceChildren(
    el('p', {}, 'Someone else changed this connection since you opened it. ', problem(r)),
    btn);
  top.hidden = false;
  btn.focus();
}

function openForm(mode, c) {
  form.mode = mode;
  form.id = c ? c.id : '';
  // The version, not the ETag header as received: a proxy that
  // compresses may have weakened it, and a weak tag never matches.
  form.etag = c ? `"${c.incarnation}-${c.version}"` : '';
  clearErrors();
  $('f-check-result').replaceChildren();
  $('edit-title').textContent = mode === 'create' ? 'New connection' : `Edit ${c.id}`;
  $('f-id').value = c ? c.id : '';
  $('f-id').readOnly = mode === 'edit';
  $('f-typ').value = c ? c.typ : '';
  $('f-typ').disabled = mode === 'edit';
  renderProps($('f-typ').value, c ? c.props : null);
  ui.gen++;
  const d = $('edit');
  if (!d.open) d.showModal();
  (mode === 'create' ? $('f-id') : $('props').querySelector('input,select') || $('f-save')).focus();
}

async function openNew() {
  const tok = ++ui.gen;
  if (!state.types.length && !(await loadTypes())) return;
  if (tok === ui.gen) openForm('create', null);
}

async function openEdit(id) {
  const tok = ++ui.gen;
  if (!state.types.length && !(await loadTypes())) return;
  const r = await call('GET', 'connections/' + enc(id));
  if (!r.ok) {
    if (r.status === 404) remove(id);
    notice(`Could not read ${id}: ${problem(r)}`, true);
    return;
  }
  upsert(r.body);
  if (tok === ui.gen) openForm('edit', r.body);
}

async function save(e) {
  e.preventDefault();
  clearErrors();
  const body = {id: $('f-id').value, typ: $('f-typ').value, props: collect()};
  const tok = ui.gen;
  const id = form.mode === 'create' ? body.id : form.id;
  const btn = $('f-save');
  btn.disabled = true;
  let r;
  try {
    if (form.mode === 'create') {
      r = await call('POST', 'connections', {body});
    } else {
      r = await call('PUT', 'connections/' + enc(form.id), {body, headers: form.etag ? {'If-Match': form.etag} : {}});
    }
  } finally {
    btn.disabled = false;
  }
  if (tok !== ui.gen) {
    // The form was closed, or is another one now.
    if (r.ok) upsert(r.body);
    notice(r.ok ? `Saved ${id}.` : `${id} was not saved: ${problem(r)}`, !r.ok);
    return;
  }
  if (r.ok) {
    upsert(r.body);
    closeDialog('edit');
    notice(`${form.mode === 'create' ? 'Created' : 'Saved'} ${r.body.id}.`);
    state.rows.get(r.body.id)?.querySelector('button')?.focus();
    return;
  }
  if (r.status === 412) return showConflict(r);
  showErrors(r);
}

function stepsList(steps) {
  if (!steps || !steps.length) return null;
  return el('ol', {class: 'steps'}, ...steps.map((s) =>
    el('li', {class: s.ok ? 'ok' : 'fail'},
      el('span', {class: 'mark'}, s.ok ? 'passed' : 'failed'), ' ', el('strong', {}, s.name),
      ` (${Number(s.ms).toFixed(1)} ms)`, s.error ? el('div', {class: 'err'}, s.error) : null)));
}

function checkReport(r) {
  const b = r.body || {};
  const head = r.ok
    ? el('p', {class: 'ok-line'}, `Check passed in ${b.latencyMs} ms.`)
    : el('p', {class: 'fail-line'}, `Check failed${b.reason ? ` (${b.reason})` : ''}: ${problem(r)}`);
  return [head, stepsList(b.steps)];
}

async function checkForm() {
  clearErrors();
  const typ = $('f-typ').value;
  const out = $('f-check-result');
  if (!typ) {
    $('f-typ-err').textContent = 'choose a type';
    $('f-typ').setAttribute('aria-invalid', 'true');
    $('f-typ').focus();
    return;
  }
  // On an edit, the stored secrets stand behind the masks; every other
  // prop is the form's, null where it is empty.
  const body = collect(form.mode === 'edit');
  if (form.mode === 'edit') body.connectionSelector = form.id;
  out.replaceChildren(el('p', {}, 'Checking…'));
  const role = $('f-role').value;
  const tok = ++form.checks;
  const gen = ui.gen;
  const r = await call('POST', `metadata/${role}s/connection/${enc(typ)}`, {body});
  // The form was closed, or checked again, meanwhile.
  if (tok !== form.checks || gen !== ui.gen) return;
  out.replaceChildren(...checkReport(r));
  if (r.status === 400 && r.body && r.body.fields) showErrors(r);
}

// ---- row actions ----

function showInfo(title, ...kids) {
  ui.gen++;
  $('info-title').textContent = title;
  $('info-body').replaceChildren(...kids);
  const d = $('info');
  if (!d.open) d.showModal();
  $('info-close').focus();
}

async function checkStored(id) {
  showInfo(`Check ${id}`, el('p', {}, 'Checking…'));
  const tok = ui.gen;
  const r = await call('POST', `connections/${enc(id)}/check`);
  if (tok !== ui.gen) return;
  showInfo(`Check ${id}`, ...checkReport(r));
}

async function reconnect(id) {
  const r = await call('POST', `connections/${enc(id)}/reconnect`);
  if (r.ok) notice(`Reconnecting ${id}.`);
  else notice(`Could not reconnect ${id}: ${problem(r)}`, true);
}

async function history(id) {
  const tok = ++ui.gen;
  const r = await call('GET', `connections/${enc(id)}/history`);
  if (tok !== ui.gen) return;
  if (!r.ok) return showInfo(`History of ${id}`, el('p', {class: 'fail-line'}, problem(r)));
  const items = [...r.body].reverse();
  if (!items.length) return showInfo(`History of ${id}`, el('p', {}, 'No status changes recorded yet.'));
  showInfo(`History of ${id}`, el('table', {class: 'history'},
    el('caption', {}, `The last ${items.length} status changes, newest first`),
    el('thead', {}, el('tr', {}, el('th', {scope: 'col'}, 'Since'), el('th', {scope: 'col'}, 'Status'), el('th', {scope: 'col'}, 'Error'))),
    el('tbody', {}, ...items.map((h) => el('tr', {},
      el('td', {}, el('time', {datetime: h.since}, dateFmt.format(new Date(h.since)))),
      el('td', {}, el('span', {class: `badge s-${h.state}`}, h.state)),
      el('td', {class: 'err'}, h.err || ''))))));
}

let deleting = '';

function askDelete(id) {
  deleting = id;
  const c = state.conns.get(id);
  $('confirm-title').textContent = `Delete ${id}?`;
  $('confirm-body').replaceChildren(el('p', {}, `The connection ${id}${c ? ` (${c.typ})` : ''} is removed and its live client closed.`));
  $('confirm-yes').hidden = false;
  $('confirm-no').textContent = 'Cancel';
  ui.gen++;
  $('confirm').showModal();
  $('confirm-no').focus();
}

async function doDelete() {
  const id = deleting;
  const tok = ui.gen;
  $('confirm-yes').disabled = true;
  let r;
  try {
    r = await call('DELETE', 'connections/' + enc(id));
  } finally {
    $('confirm-yes').disabled = false;
  }
  if (tok !== ui.gen) {
    // The dialog was closed, or asks about another one now.
    if (r.ok || r.status === 404) remove(id);
    notice(r.ok || r.status === 404 ? `Deleted ${id}.` : `${id} was not deleted: ${problem(r)}`, !(r.ok || r.status === 404));
    return;
  }
  if (r.ok || r.status === 404) {
    remove(id);
    closeDialog('confirm');
    notice(`Deleted ${id}.`);
    $('new').focus();
    return;
  }
  const kids = [el('p', {class: 'fail-line'}, `${id} was not deleted: ${problem(r)}`)];
  const refs = (r.body && r.body.refs) || [];
  if (refs.length) kids.push(el('p', {}, 'Rules hold it; detach these first:'), el('ul', {class: 'refs-list'}, ...refs.map((x) => el('li', {}, x))));
  $('confirm-body').replaceChildren(...kids);
  $('confirm-yes').hidden = true;
  $('confirm-no').textContent = 'Close';
  $('confirm-no').focus();
}

// ---- wiring ----

function start() {
  $('new').addEventListener('click', openNew);
  $('rows').addEventListener('click', (e) => {
    const b = e.target.closest('button[data-action]');
    const tr = b && b.closest('tr[data-id]');
    if (tr) actions[b.dataset.action](tr.dataset.id);
  });
  $('refresh').addEventListener('click', () => list());
  $('form').addEventListener('submit', save);
  $('f-cancel').addEventListener('click', () => closeDialog('edit'));
  // Escape: its cancel event comes at once, the close event later, maybe
  // after the user started something else.
  for (const d of ['edit', 'confirm', 'info']) $(d).addEventListener('cancel', () => ui.gen++);
  $('edit').addEventListener('cancel', formClosed);
  $('f-check').addEventListener('click', checkForm);
  $('f-typ').addEventListener('change', () => {
    clearErrors();
    renderProps($('f-typ').value, null);
  });
  $('confirm-yes').addEventListener('click', doDelete);
  $('confirm-no').addEventListener('click', () => closeDialog('confirm'));
  $('info-close').addEventListener('click', () => closeDialog('info'));
  $('filter').addEventListener('input', (e) => {
    state.filter = e.target.value.trim().toLowerCase();
    for (const [id, tr] of state.rows) applyFilter(tr, state.conns.get(id));
  });
  setInterval(tick, 1000);
  // Last activity is not an event: read the list again now and then.
  setInterval(() => {
    if (document.visibilityState === 'visible') list();
  }, 30000);
  loadTypes();
  openStream();
}

start();
