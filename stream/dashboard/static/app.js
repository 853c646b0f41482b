// ccstream dashboard: one page, four views (overview, sessions, session, tools) routed by the URL hash.
// No framework and no chart library: the charts are SVG drawn here. Everything comes from the worker's
// JSON endpoints (openapi.json); the page polls api/version and redraws when the sink stored something.
'use strict';

const COLORS = ['#3b5bdb', '#f08c00', '#2f9e44', '#c2255c', '#7048e8', '#1098ad', '#e8590c', '#5c940d',
                '#862e9c', '#d6336c', '#0b7285', '#495057'];
const RANGE_KEYS = ['since', 'until', 'project'];
let lastVersion = null;
let rendering = false;
let again = false;
const sortState = { key: 'started_at', dir: 'desc' };

// ---- helpers ---------------------------------------------------------------------------------------

function h(tag, attrs, ...kids) {
  const svg = ['svg', 'rect', 'g', 'line', 'text', 'path', 'circle', 'title', 'polyline'].includes(tag);
  const el = svg ? document.createElementNS('http://www.w3.org/2000/svg', tag) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === 'class') el.setAttribute('class', v);
    else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'style') Object.assign(el.style, v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const kid of kids.flat(Infinity)) {
    if (kid === null || kid === undefined || kid === false) continue;
    el.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
  }
  return el;
}

const num = v => (v === null || v === undefined || v === '' ? null : Number(v));
const fmt = {
  int: v => (num(v) === null ? '' : Math.round(num(v)).toLocaleString('en-US')),
  money: v => (num(v) === null ? '' : '$' + num(v).toLocaleString('en-US', { minimumFractionDigits: 2, maximumFractionDigits: 2 })),
  pct: v => (num(v) === null ? '' : (num(v) * 100).toFixed(1) + '%'),
  ms: v => (num(v) === null ? '' : (num(v) / 1000).toLocaleString('en-US', { minimumFractionDigits: 1, maximumFractionDigits: 1 }) + 's'),
  dur: v => {
    if (num(v) === null) return '';
    const s = Math.floor(num(v));
    return s >= 3600 ? `${Math.floor(s / 3600)}h${String(Math.floor(s % 3600 / 60)).padStart(2, '0')}m`
                     : `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  },
  time: v => String(v || '').slice(0, 16).replace('T', ' '),
  str: v => (Array.isArray(v) ? v.join(', ') : (v === null || v === undefined ? '' : String(v))),
  short: v => String(v || '').slice(0, 8),
  tail: v => String(v || '').split('/').filter(Boolean).slice(-2).join('/'),
  models: v => (v || []).map(m => m.replace(/^claude-|-\d{8}$/g, '')).join(', '),
};

function route() {
  const raw = location.hash.replace(/^#\/?/, '');
  const [path, query] = raw.split('?');
  const parts = path.split('/').filter(Boolean);
  return { view: parts[0] || 'overview', arg: parts.slice(1).map(decodeURIComponent).join('/'),
           params: new URLSearchParams(query || '') };
}

function go(view, arg, params) {
  const q = params.toString();
  location.hash = '#/' + view + (arg ? '/' + encodeURIComponent(arg) : '') + (q ? '?' + q : '');
}

function rangeParams(params) {
  const out = new URLSearchParams();
  for (const k of RANGE_KEYS) if (params.get(k)) out.set(k, params.get(k));
  return out;
}

async function getJSON(path, params) {
  const q = params && params.toString();
  const resp = await fetch('api/' + path + (q ? '?' + q : ''), { credentials: 'same-origin', cache: 'no-store' });
  let body = null;
  try { body = await resp.json(); } catch (e) { body = null; }
  if (!resp.ok) throw new Error((body && body.error) || `${resp.status} ${resp.statusText}`);
  return body;
}

function card(label, value, fig, raw, cls) {
  return h('div', { class: 'card' + (cls ? ' ' + cls : '') },
    h('div', { class: 'k' }, label),
    h('div', { class: 'v', 'data-fig': fig, 'data-value': raw === undefined ? '' : raw }, value));
}

function linkCard(el, onclick) {
  el.classList.add('link');
  el.title = 'open';
  el.addEventListener('click', onclick);
  return el;
}

// a table: columns [key, header, formatter, numeric]; rows keyed by `keyOf` for the tests and links
function table(columns, rows, opts) {
  opts = opts || {};
  const head = h('tr', {}, columns.map(([key, label, , numeric]) => {
    const th = h('th', { class: (numeric ? 'num' : '') + (opts.sortable ? ' sortable' : ''), 'data-sort': key }, label);
    if (opts.sortable && sortState.key === key) th.classList.add(sortState.dir);
    if (opts.sortable) th.addEventListener('click', () => opts.onSort(key));
    return th;
  }));
  const body = rows.map(r => h('tr', {
    class: opts.onRow ? 'link' : '', 'data-key': opts.keyOf ? opts.keyOf(r) : null,
    onclick: opts.onRow ? () => opts.onRow(r) : null,
  }, columns.map(([key, , f, numeric]) => {
    const v = r[key];
    const bad = opts.errorCols && opts.errorCols.includes(key) && num(v) > 0;
    const wrap = ['models', 'project', 'description'].includes(key) ? ' wrap' : '';
    return h('td', { class: (numeric ? 'num' : '') + (bad ? ' err' : '') + wrap, 'data-fig': key,
                     'data-value': Array.isArray(v) ? v.join(',') : (v === null || v === undefined ? '' : v) },
             (f || fmt.str)(v));
  })));
  return h('table', { 'data-table': opts.name || null }, h('thead', {}, head), h('tbody', {}, body));
}

const tip = h('div', { class: 'tip' });
function showTip(ev, text) {
  tip.textContent = text; tip.style.display = 'block';
  tip.style.left = (ev.clientX + 12) + 'px'; tip.style.top = (ev.clientY + 12) + 'px';
}
function hideTip() { tip.style.display = 'none'; }

// ---- charts (SVG) ----------------------------------------------------------------------------------

function niceMax(v) {
  if (v <= 0) return 1;
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

// rows of tokens by day×model → bars per day, stacked by model
function stackedBars(rows, valueKey, format) {
  // every day of the span, so a quiet day shows as a gap (categorical only when the span is very long)
  let days = [...new Set(rows.map(r => r.day))].sort();
  if (days.length > 1) {
    const first = Date.parse(days[0] + 'T00:00:00Z'), last = Date.parse(days[days.length - 1] + 'T00:00:00Z');
    const span = Math.round((last - first) / 86400000) + 1;
    if (span <= 400) days = Array.from({ length: span }, (_, i) => isoDay(new Date(first + i * 86400000)));
  }
  const models = [...new Set(rows.map(r => r.model))].sort();
  const color = m => COLORS[models.indexOf(m) % COLORS.length];
  const W = 960, H = 260, L = 64, B = 34, T = 10, R = 8;
  const totals = days.map(d => rows.filter(r => r.day === d).reduce((s, r) => s + num(r[valueKey]), 0));
  const max = niceMax(Math.max(0, ...totals));
  const pw = W - L - R, ph = H - T - B;
  const bw = days.length ? pw / days.length : pw;
  const svg = h('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', 'data-chart': 'by_day_model' });
  for (let i = 0; i <= 4; i++) {
    const y = T + ph - ph * i / 4;
    svg.append(h('line', { x1: L, x2: W - R, y1: y, y2: y, stroke: '#e3e6ec' }),
               h('text', { x: L - 6, y: y + 4, 'text-anchor': 'end', 'font-size': 11, fill: '#6b7385' }, format(max * i / 4)));
  }
  const every = Math.max(1, Math.ceil(days.length / 12));
  days.forEach((d, i) => {
    let y = T + ph;
    for (const m of models) {
      const r = rows.find(x => x.day === d && x.model === m);
      if (!r || !num(r[valueKey])) continue;
      const hgt = ph * num(r[valueKey]) / max;
      y -= hgt;
      const rect = h('rect', { x: L + i * bw + bw * 0.1, y, width: Math.max(1, bw * 0.8), height: Math.max(0.5, hgt),
                               fill: color(m), 'data-day': d, 'data-model': m, 'data-value': r[valueKey] });
      rect.addEventListener('mousemove', ev => showTip(ev, `${d}\n${m || '(none)'}\n${format(r[valueKey])}`));
      rect.addEventListener('mouseleave', hideTip);
      svg.append(rect);
    }
    if (i % every === 0) {
      svg.append(h('text', { x: L + i * bw + bw / 2, y: H - B + 16, 'text-anchor': 'middle', 'font-size': 11,
                             fill: '#6b7385' }, d.slice(5)));
    }
  });
  if (!days.length) svg.append(h('text', { x: W / 2, y: H / 2, 'text-anchor': 'middle', fill: '#6b7385' }, 'no usage in this range'));
  const legend = h('div', { class: 'legend' }, models.map(m => h('span', {}, h('i', { style: { background: color(m) } }), m || '(none)')));
  return h('div', { class: 'chart' }, svg, legend);
}

// points [{timestamp, cost_usd}] → a step line of the running cost
function costLine(points) {
  const W = 960, H = 200, L = 64, B = 30, T = 10, R = 10;
  const svg = h('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', 'data-chart': 'cost_over_time' });
  if (!points.length) {
    svg.append(h('text', { x: W / 2, y: H / 2, 'text-anchor': 'middle', fill: '#6b7385' }, 'no priced responses'));
    return h('div', { class: 'chart' }, svg);
  }
  const ts = points.map(p => Date.parse(p.timestamp));
  const t0 = Math.min(...ts), t1 = Math.max(...ts, t0 + 1);
  const max = niceMax(num(points[points.length - 1].cost_usd));
  const pw = W - L - R, ph = H - T - B;
  const x = t => L + pw * (t - t0) / (t1 - t0), y = v => T + ph - ph * v / max;
  for (let i = 0; i <= 4; i++) {
    svg.append(h('line', { x1: L, x2: W - R, y1: y(max * i / 4), y2: y(max * i / 4), stroke: '#e3e6ec' }),
               h('text', { x: L - 6, y: y(max * i / 4) + 4, 'text-anchor': 'end', 'font-size': 11, fill: '#6b7385' }, fmt.money(max * i / 4)));
  }
  let d = `M ${x(ts[0])} ${y(0)}`;
  points.forEach((p, i) => { d += ` H ${x(ts[i])} V ${y(num(p.cost_usd))}`; });
  svg.append(h('path', { d, fill: 'none', stroke: '#3b5bdb', 'stroke-width': 2 }));
  for (const [t, label] of [[t0, points[0].timestamp], [t1, points[points.length - 1].timestamp]]) {
    svg.append(h('text', { x: x(t), y: H - 8, 'text-anchor': t === t0 ? 'start' : 'end', 'font-size': 11, fill: '#6b7385' },
                 fmt.time(label)));
  }
  return h('div', { class: 'chart' }, svg);
}

// ---- views ----------------------------------------------------------------------------------------

const TOKEN_COLS = [
  ['total_tokens', 'tokens', fmt.int, true], ['input_tokens', 'input', fmt.int, true],
  ['output_tokens', 'output', fmt.int, true], ['cache_creation_input_tokens', 'cache write', fmt.int, true],
  ['cache_read_input_tokens', 'cache read', fmt.int, true], ['cost_usd', 'cost', fmt.money, true],
];

async function viewOverview(r) {
  const params = rangeParams(r.params);
  const [doc, pipe] = await Promise.all([getJSON('overview', params), getJSON('pipeline').catch(e => ({ error: e.message }))]);
  const t = doc.totals || {};
  const s = doc.sessions || {};
  const metric = r.params.get('metric') === 'tokens' ? 'total_tokens' : 'cost_usd';
  const toggle = h('span', { class: 'filters' }, 'chart:',
    ...[['cost_usd', 'cost'], ['total_tokens', 'tokens']].map(([k, label]) => h('button', {
      class: 'btn' + (metric === k ? ' on' : ''), type: 'button', 'data-metric': k,
      onclick: () => { const p = new URLSearchParams(r.params); p.set('metric', k === 'cost_usd' ? 'cost' : 'tokens'); go('overview', '', p); },
    }, label)));
  const byKey = (keys) => (row) => keys.map(k => row[k]).join('|');
  return [
    h('h2', {}, 'Spend ', h('span', { class: 'muted' }, rangeLabel(doc.filters), ` · prices of ${doc.pricing.date}`)),
    h('div', { class: 'cards' },
      card('cost', fmt.money(t.cost_usd), 'totals.cost_usd', t.cost_usd),
      card('tokens', fmt.int(t.total_tokens), 'totals.total_tokens', t.total_tokens),
      card('input', fmt.int(t.input_tokens), 'totals.input_tokens', t.input_tokens),
      card('output', fmt.int(t.output_tokens), 'totals.output_tokens', t.output_tokens),
      card('cache write', fmt.int(t.cache_creation_input_tokens), 'totals.cache_creation_input_tokens', t.cache_creation_input_tokens),
      card('cache read', fmt.int(t.cache_read_input_tokens), 'totals.cache_read_input_tokens', t.cache_read_input_tokens),
      card('cache-read share', fmt.pct(doc.cache_read_share), 'cache_read_share', doc.cache_read_share),
      card('API responses', fmt.int(t.responses), 'totals.responses', t.responses),
      card('sessions', fmt.int(s.count), 'sessions.count', s.count),
      linkCard(card('sessions with tool errors', fmt.int(s.with_tool_errors), 'sessions.with_tool_errors', s.with_tool_errors,
           s.with_tool_errors ? 'bad' : ''), () => { sortState.key = 'tool_errors'; sortState.dir = 'desc'; go('sessions', '', rangeParams(r.params)); }),
      card('tool calls / errors', `${fmt.int(s.tool_calls)} / ${fmt.int(s.tool_errors)}`, 'sessions.tool_errors', s.tool_errors),
    ),
    h('h2', {}, metric === 'cost_usd' ? 'Cost per day, by model' : 'Tokens per day, by model', ' ', toggle),
    h('div', { class: 'panel' }, stackedBars(doc.by_day_model, metric, metric === 'cost_usd' ? fmt.money : fmt.int)),
    h('div', { class: 'grid2' },
      h('div', {}, h('h2', {}, 'By model'), h('div', { class: 'panel' },
        table([['model', 'model', fmt.str], ['responses', 'responses', fmt.int, true], ...TOKEN_COLS], doc.by_model,
              { name: 'by_model', keyOf: byKey(['model']) }))),
      h('div', {}, h('h2', {}, 'By host and user'), h('div', { class: 'panel' },
        table([['host', 'host', fmt.str], ['user', 'user', fmt.str], ...TOKEN_COLS], doc.by_host_user,
              { name: 'by_host_user', keyOf: byKey(['host', 'user']) })))),
    h('h2', {}, 'By project'),
    h('div', { class: 'panel' }, table([['project', 'project', fmt.str], ['models', 'models', fmt.models], ...TOKEN_COLS],
      doc.by_project, { name: 'by_project', keyOf: byKey(['project']),
                        onRow: row => { const p = rangeParams(r.params); p.set('project', row.project); go('sessions', '', p); } })),
    h('h2', {}, 'Pipeline'),
    pipelinePanel(pipe),
  ];
}

function rangeLabel(f) {
  const parts = [];
  parts.push(f.since || f.until ? `${f.since || '…'} to ${f.until || 'today'}` : 'all time');
  if (f.project) parts.push(`projects matching “${f.project}”`);
  return parts.join(' · ');
}

function pipelinePanel(p) {
  if (p.error) return h('div', { class: 'error-banner' }, 'pipeline: ' + p.error);
  const unknown = p.unknown_price_models || [];
  return h('div', { class: 'cards', 'data-panel': 'pipeline' },
    card('state', p.state, 'pipeline.state', p.state, p.lagging_files ? '' : 'good'),
    card('followed files', fmt.int(p.followed_files), 'pipeline.followed_files', p.followed_files),
    card('lag', p.lagging_files ? `${fmt.int(p.lagging_files)} files, ${fmt.int(p.bytes_behind)} B` : 'none', 'pipeline.lag', p.bytes_behind),
    card('last insert', fmt.time(p.last_insert) || '—', 'pipeline.last_insert', p.last_insert),
    card('stored lines', fmt.int(p.store && p.store.rows), 'pipeline.rows', p.store && p.store.rows),
    card('dead letters', fmt.str(p.dead_letters), 'pipeline.dead_letters', p.dead_letters, num(p.dead_letters) ? 'bad' : ''),
    card('models without a price', unknown.length ? unknown.join(', ') : 'none', 'pipeline.unknown_price_models', unknown.join(','),
         unknown.length ? 'bad' : ''));
}

const SESSION_COLS = [
  ['started_at', 'started (UTC)', fmt.time], ['session_id', 'session', fmt.short], ['project', 'project', fmt.tail],
  ['host', 'host', fmt.str], ['models', 'models', fmt.models], ['duration_s', 'duration', fmt.dur, true],
  ['turns', 'turns', fmt.int, true], ['tool_calls', 'tool calls', fmt.int, true],
  ['tool_errors', 'tool errors', fmt.int, true], ['api_errors', 'API errors', fmt.int, true],
  ['subagents', 'subagents', fmt.int, true], ['compactions', 'compactions', fmt.int, true],
  ['total_tokens', 'tokens', fmt.int, true], ['cost_usd', 'cost', fmt.money, true],
];

function sortRows(rows) {
  const { key, dir } = sortState;
  const sign = dir === 'asc' ? 1 : -1;
  return [...rows].sort((a, b) => {
    let x = a[key], y = b[key];
    if (Array.isArray(x)) x = x.join(','); if (Array.isArray(y)) y = y.join(',');
    const nx = num(x), ny = num(y);
    const c = (typeof x === 'number' || typeof y === 'number') ? (nx ?? -Infinity) - (ny ?? -Infinity)
                                                               : String(x ?? '').localeCompare(String(y ?? ''));
    return c * sign || String(a.session_id).localeCompare(String(b.session_id));
  });
}

async function viewSessions(r) {
  const params = rangeParams(r.params);
  for (const k of ['model', 'host']) if (r.params.get(k)) params.set(k, r.params.get(k));
  const doc = await getJSON('sessions', params);
  const holder = h('div', { class: 'panel' });
  const draw = () => {
    holder.replaceChildren(table(SESSION_COLS, sortRows(doc.rows), {
      name: 'sessions', sortable: true, keyOf: row => row.session_id, errorCols: ['tool_errors', 'api_errors'],
      onSort: key => {
        sortState.dir = sortState.key === key ? (sortState.dir === 'asc' ? 'desc' : 'asc') : (key === 'project' || key === 'host' ? 'asc' : 'desc');
        sortState.key = key;
        draw();
      },
      onRow: row => go('session', row.session_id, rangeParams(r.params)),
    }));
  };
  draw();
  const select = (name, values) => h('select', {
    name, 'data-filter': name,
    onchange: ev => { const p = new URLSearchParams(r.params); if (ev.target.value) p.set(name, ev.target.value); else p.delete(name); go('sessions', '', p); },
  }, h('option', { value: '' }, `any ${name}`), values.map(v => h('option', { value: v, selected: v === r.params.get(name) }, v || '(none)')));
  const total = doc.rows.reduce((s, x) => s + num(x.cost_usd || 0), 0);
  return [
    h('h2', {}, 'Sessions ', h('span', { class: 'muted' }, `${doc.rows.length} sessions · ${fmt.money(total)} · ${rangeLabel(doc.filters)}`)),
    h('div', { class: 'filters' }, select('model', doc.facets.models), select('host', doc.facets.hosts),
      h('span', { class: 'muted' }, 'click a column to sort, a row to open the session')),
    holder,
  ];
}

async function viewSession(r) {
  const doc = await getJSON('sessions/' + encodeURIComponent(r.arg));
  const s = doc.summary || {};
  const replay = h('div', { class: 'replay panel', 'data-panel': 'replay' });
  for (const t of doc.turns) {
    const pad = { paddingLeft: (t.depth * 22) + 'px' };
    const lines = t.text ? t.text.split('\n') : ['(no text)'];  // a whitespace-only block, said as such
    const chips = t.tool_uses.map(u => h('span', { class: 'chip' + (u.is_error ? ' err' : ''), 'data-tool-use': u.id },
      u.name, u.duration_ms !== null && u.duration_ms !== undefined ? ` ${fmt.ms(u.duration_ms)}` : '',
      u.is_error ? ' error' : '', u.has_result ? '' : ' (no result)'));
    replay.append(h('div', { class: `turn k-${t.kind}` + (t.depth ? ' nested' : ''), 'data-depth': t.depth,
                             'data-agent': t.agent_id, 'data-uuid': t.uuid, style: pad },
      h('span', { class: 'when' }, String(t.timestamp || '').slice(11, 19)),
      h('span', { class: 'kind' }, t.kind.replace('_', ' ')),
      h('span', { class: 'body' }, lines.slice(0, 6).join('\n') + (lines.length > 6 ? '\n…' : ''), chips.length ? h('div', {}, chips) : null)));
    for (const th of t.subagents) {
      replay.append(h('div', { class: 'subagent-head', 'data-subagent': th.agent_id, 'data-depth': t.depth,
                               style: { paddingLeft: (t.depth * 22 + 72) + 'px' } },
        `┌ subagent ${th.agent_id} (${th.subagent_type || th.link}${th.description ? ': ' + th.description : ''})`));
    }
  }
  const tree = h('div', { class: 'tree panel', 'data-panel': 'subagents' },
    doc.subagents.length ? doc.subagents.map(a => h('div', { style: { paddingLeft: (a.depth * 20) + 'px' }, 'data-agent': a.agent_id },
      `${a.depth ? '└ ' : ''}${a.agent_id} `, h('span', { class: 'muted' }, `${a.subagent_type || a.link}${a.description ? ': ' + a.description : ''} · ${fmt.int(a.lines)} lines`),
      num(a.task_is_error) ? h('span', { class: 'err' }, ' failed') : ''))
      : h('span', { class: 'muted' }, 'no subagents'));
  return [
    h('h2', {}, 'Session ', h('code', {}, doc.session_id), ' ', h('span', { class: 'muted' }, fmt.tail(s.project))),
    h('div', { class: 'cards' },
      card('cost', fmt.money(s.cost_usd), 'session.cost_usd', s.cost_usd),
      card('tokens', fmt.int(s.total_tokens), 'session.total_tokens', s.total_tokens),
      card('started', fmt.time(s.started_at), 'session.started_at', s.started_at),
      card('duration', fmt.dur(s.duration_s), 'session.duration_s', s.duration_s),
      card('turns', fmt.int(s.turns), 'session.turns', s.turns),
      card('tool calls', fmt.int(s.tool_calls), 'session.tool_calls', s.tool_calls),
      card('tool errors', fmt.int(s.tool_errors), 'session.tool_errors', s.tool_errors, num(s.tool_errors) ? 'bad' : ''),
      card('subagents', fmt.int(s.subagents), 'session.subagents', s.subagents),
      card('compactions', fmt.int(s.compactions), 'session.compactions', s.compactions),
      card('models', fmt.models(s.models), 'session.models', (s.models || []).join(','))),
    h('h2', {}, 'Cost over time'), h('div', { class: 'panel' }, costLine(doc.cost_over_time)),
    h('h2', {}, 'Subagents'), tree,
    h('h2', {}, `Conversation `, h('span', { class: 'muted' }, `${doc.turns.length} turns, subagents nested under the Task that started them`)),
    replay,
  ];
}

async function viewTools(r) {
  const doc = await getJSON('tools', rangeParams(r.params));
  const open = row => go('session', row.session_id, rangeParams(r.params));
  const callCols = [['started_at', 'at (UTC)', fmt.time], ['tool_name', 'tool', fmt.str], ['duration_ms', 'duration', fmt.ms, true],
                    ['session_id', 'session', fmt.short], ['project', 'project', fmt.tail], ['description', 'description', fmt.str]];
  return [
    h('h2', {}, 'Tools ', h('span', { class: 'muted' }, rangeLabel(doc.filters))),
    h('div', { class: 'panel' }, table([
      ['tool_name', 'tool', fmt.str], ['calls', 'calls', fmt.int, true], ['errors', 'errors', fmt.int, true],
      ['error_rate', 'error rate', fmt.pct, true], ['unanswered', 'no result', fmt.int, true],
      ['sessions', 'sessions', fmt.int, true], ['p50_ms', 'p50', fmt.ms, true], ['p95_ms', 'p95', fmt.ms, true],
      ['avg_ms', 'mean', fmt.ms, true]], doc.tools, { name: 'tools', keyOf: x => x.tool_name, errorCols: ['errors'] })),
    h('h2', {}, 'MCP servers'),
    h('div', { class: 'panel' }, doc.mcp_servers.length ? table([
      ['server', 'server', fmt.str], ['tools', 'tools', fmt.int, true], ['calls', 'calls', fmt.int, true],
      ['errors', 'errors', fmt.int, true], ['error_rate', 'error rate', fmt.pct, true],
      ['p50_ms', 'p50', fmt.ms, true], ['p95_ms', 'p95', fmt.ms, true]], doc.mcp_servers,
      { name: 'mcp_servers', keyOf: x => x.server, errorCols: ['errors'] }) : h('span', { class: 'muted' }, 'no MCP calls in this range')),
    h('div', { class: 'grid2' },
      h('div', {}, h('h2', {}, 'Failing calls (newest first)'), h('div', { class: 'panel' },
        table(callCols, doc.failing, { name: 'failing', keyOf: x => x.tool_use_id, onRow: open }))),
      h('div', {}, h('h2', {}, 'Slowest calls'), h('div', { class: 'panel' },
        table(callCols, doc.slowest, { name: 'slowest', keyOf: x => x.tool_use_id, onRow: open })))),
  ];
}

const VIEWS = { overview: viewOverview, sessions: viewSessions, session: viewSession, tools: viewTools };

async function render() {
  if (rendering) { again = true; return; }
  rendering = true;
  try {
    const r = route();
    document.querySelectorAll('[data-nav]').forEach(a => a.classList.toggle('active', a.dataset.nav === r.view || (r.view === 'session' && a.dataset.nav === 'sessions')));
    for (const k of RANGE_KEYS) { const el = document.getElementById(k); if (el !== document.activeElement) el.value = r.params.get(k) || ''; }
    const view = VIEWS[r.view] || viewOverview;
    let content;
    try {
      content = await view(r);
    } catch (e) {
      content = [h('div', { class: 'error-banner', 'data-error': '1' }, e.message)];
    }
    if (route().view === r.view) {
      const y = window.scrollY;
      document.getElementById('main').replaceChildren(...content);
      window.scrollTo(0, y);
      document.body.dataset.rendered = String(Date.now());
      document.body.dataset.view = r.view;
    }
  } finally {
    rendering = false;
    if (again) { again = false; render(); }
  }
}

// ---- the range bar, live updates ---------------------------------------------------------------------

function setRange(values) {
  const r = route();
  const p = new URLSearchParams(r.params);
  for (const [k, v] of Object.entries(values)) { if (v) p.set(k, v); else p.delete(k); }
  go(r.view, r.arg, p);
}

function isoDay(d) { return d.toISOString().slice(0, 10); }

function initRange() {
  const form = document.getElementById('range');
  form.addEventListener('change', () => setRange({ since: form.since.value, until: form.until.value, project: form.project.value.trim() }));
  form.addEventListener('submit', ev => { ev.preventDefault(); setRange({ project: form.project.value.trim() }); });
  form.querySelectorAll('[data-preset]').forEach(b => b.addEventListener('click', () => {
    const now = new Date(); const preset = b.dataset.preset;
    if (preset === 'all') return setRange({ since: '', until: '' });
    const from = new Date(now);
    if (preset === 'week') from.setUTCDate(now.getUTCDate() - ((now.getUTCDay() + 6) % 7));
    else from.setUTCDate(now.getUTCDate() - Number(preset) + 1);
    setRange({ since: isoDay(from), until: isoDay(now) });
  }));
}

async function poll() {
  const live = document.getElementById('live');
  try {
    const resp = await fetch('api/version', { credentials: 'same-origin', cache: 'no-store' });
    if (!resp.ok) throw new Error(String(resp.status));
    const { version } = await resp.json();
    live.className = 'ok';
    live.title = 'live: updated ' + new Date().toLocaleTimeString();
    if (lastVersion !== null && version !== lastVersion) { live.className = 'flash'; render(); }
    lastVersion = version;
  } catch (e) {
    live.className = 'down';
    live.title = 'the worker does not answer; retrying';
  }
}

document.addEventListener('DOMContentLoaded', () => {
  document.body.append(tip);
  initRange();
  window.addEventListener('hashchange', render);
  render();
  poll();
  setInterval(poll, 200);
});
