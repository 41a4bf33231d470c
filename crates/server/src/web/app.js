// The web page of `gongji serve`: clerks and auditors read the ledger in a browser.
//
// It reads only the service's API (/v1/...) with the token its user gives, kept in the tab's
// sessionStorage (gone when the tab closes); what a role may not read, the API refuses and the
// page says so. Everything shown is built as DOM nodes from the answers (never as HTML text), so
// nothing in the ledger's data can run as script. No request goes to another host.
'use strict';

const WORDS = {
  zh: {
    title: '共济 · 职工医保个人账户与统筹基金', login: '登录', token: '令牌', signIn: '登录',
    tokenHelp: '请输入运维人员为您签发的令牌（gongji token add）。', logout: '退出',
    home: '首页', funds: '统筹基金', audit: '审计', member: '参保人', find: '查询',
    memberId: '参保人编号', region: '统筹地区', regionCode: '地区编码', show: '显示',
    balance: '账户余额', state: '账户状态', regionSince: '所属地区及起始日期', scheme: '参保类型',
    enrolledOn: '参保日期', retiredOn: '退休日期', deceasedOn: '死亡日期', closedOn: '注销日期',
    creditedTotal: '累计划入', paidTotal: '累计支出', monthsCredited: '已划入月数',
    family: '家庭共济绑定', relative: '亲属', relation: '关系', since: '起始', until: '截止',
    yearlyLimit: '年度限额', none: '无', timeline: '账户时间线', chart: '余额变化（按发生日期）',
    position: '位置', ownDate: '发生日期', recordedAt: '记录时间', event: '事件', id: '单号',
    change: '账户变动', balanceAfter: '变动后余额', allYears: '全部年度', allKinds: '全部事件',
    years: '年度', inheritance: '继承', transfers: '转移接续', explain: '结算说明',
    asOf: '截至发生日期', recordedBefore: '记录时间早于', apply: '应用', now: '当前',
    asOfNote: '按所选时点显示：', year: '年度', policy: '政策版本', status: '人员类别',
    deductible: '起付线', deductibleUsed: '起付线已累计', annualLimit: '年度限额（普通门诊统筹）',
    ordinaryPaid: '统筹已支付', pooledPaid: '统筹基金支付', largePaid: '大额医疗支付',
    specialPaid: '特殊病支付', claims: '结算笔数', claimsOfYear: '本年度结算', date: '日期',
    eligible: '合规费用', fundPaid: '基金支付', accountPaid: '个人账户支付', cashPaid: '现金支付',
    noLimit: '无限额', steps: '结算步骤', before: '结算前', after: '结算后', limit: '限额',
    account: '个人账户', settlement: '结算结果', events: '相关事件', reversed: '已冲正',
    rules: '适用规则', capped: '起付线年度封顶决定了本次起付线', balanceOnDeath: '死亡日余额',
    afterDeath: '死亡后变动', inheritedOn: '继承日期', inheritedBalance: '继承金额', payouts: '继承支付',
    heir: '继承人', share: '份额', amount: '金额', fromRegion: '转出地区', toRegion: '转入地区',
    balanceMoved: '转移金额', balanceAsOfDate: '当日余额（按发生日期）', laterRecorded: '之后补记的变动',
    noTransfers: '没有转移记录。', pooled: '统筹基金', largeAmount: '大额医疗费用补助资金',
    accounts: '个人账户合计', inflow: '收入', outflow: '支出', fundBalance: '结余',
    byMonth: '按月收支（统筹基金）', month: '月份', accessLog: '访问记录（最近）', flags: '智能监控疑点',
    verify: '校验日志哈希链', verifying: '校验中…', records: '记录数', digest: '摘要', failure: '失败',
    who: '令牌', role: '角色', route: '接口', at: '时间', rule: '规则', decision: '审核结论',
    figures: '指标', undecided: '未审核', refused: '无权访问', notFound: '未找到', failed: '请求失败',
    loading: '加载中…', noEvents: '所选范围内没有事件。', openExplain: '说明', lang: 'English',
    fundRefusedHint: '此页面仅向审计人员开放。', unknownError: '未知错误', from: '起', to: '止', annualMax: '统筹基金年度最高支付限额',
  },
  en: {
    title: 'Gongji · employee medical insurance accounts and pooled funds', login: 'Log in',
    token: 'Token', signIn: 'Log in', tokenHelp: 'Enter the token an operator issued to you (gongji token add).',
    logout: 'Log out', home: 'Home', funds: 'Funds', audit: 'Audit', member: 'Member', find: 'Find',
    memberId: 'Member id', region: 'Region', regionCode: 'Region code', show: 'Show',
    balance: 'Account balance', state: 'State', regionSince: 'Region and since', scheme: 'Scheme',
    enrolledOn: 'Enrolled on', retiredOn: 'Retired on', deceasedOn: 'Deceased on', closedOn: 'Closed on',
    creditedTotal: 'Credited in total', paidTotal: 'Paid out in total', monthsCredited: 'Months credited',
    family: 'Family bindings', relative: 'Relative', relation: 'Relation', since: 'Since', until: 'Until',
    yearlyLimit: 'Yearly limit', none: 'none', timeline: 'Account timeline', chart: 'Balance over time (by own date)',
    position: 'Position', ownDate: 'Date', recordedAt: 'Recorded at', event: 'Event', id: 'Id',
    change: 'Change', balanceAfter: 'Balance after', allYears: 'All years', allKinds: 'All events',
    years: 'Years', inheritance: 'Inheritance', transfers: 'Transfers', explain: 'Explanation',
    asOf: 'As of (own date)', recordedBefore: 'Recorded before', apply: 'Apply', now: 'Now',
    asOfNote: 'Shown as of: ', year: 'Year', policy: 'Policy version', status: 'Status',
    deductible: 'Deductible', deductibleUsed: 'Deductible filled', annualLimit: 'Annual limit (outpatient pooling)',
    ordinaryPaid: 'Paid by pooling', pooledPaid: 'Pooled fund paid', largePaid: 'Large-amount fund paid',
    specialPaid: 'Special diseases paid', claims: 'Claims', claimsOfYear: 'Claims of the year', date: 'Date',
    eligible: 'Eligible cost', fundPaid: 'Fund paid', accountPaid: 'Account paid', cashPaid: 'Cash paid',
    noLimit: 'no limit', steps: 'Steps', before: 'Before', after: 'After', limit: 'Limit',
    account: 'Personal account', settlement: 'Settlement', events: 'Events', reversed: 'Reversed',
    rules: 'Rules applied', capped: 'The yearly deductible cap set this deductible', balanceOnDeath: 'Balance on death',
    afterDeath: 'Movements after death', inheritedOn: 'Inherited on', inheritedBalance: 'Inherited balance',
    payouts: 'Payouts', heir: 'Heir', share: 'Share', amount: 'Amount', fromRegion: 'From region',
    toRegion: 'To region', balanceMoved: 'Balance moved', balanceAsOfDate: 'Balance as of that date',
    laterRecorded: 'Recorded later', noTransfers: 'No transfers.', pooled: 'Pooled fund',
    largeAmount: 'Large-amount fund', accounts: 'Personal accounts', inflow: 'Inflow', outflow: 'Outflow',
    fundBalance: 'Balance', byMonth: 'Inflows and outflows by month (pooled fund)', month: 'Month',
    accessLog: 'Access log (latest)', flags: 'Monitoring flags', verify: 'Verify the hash chain',
    verifying: 'Verifying…', records: 'Records', digest: 'Digest', failure: 'Failure', who: 'Token',
    role: 'Role', route: 'Route', at: 'At', rule: 'Rule', decision: 'Decision', figures: 'Figures',
    undecided: 'undecided', refused: 'Not allowed', notFound: 'Not found', failed: 'Request failed',
    loading: 'Loading…', noEvents: 'No events in this selection.', openExplain: 'explain', lang: '中文',
    fundRefusedHint: 'This page is for auditors.', unknownError: 'unknown error', from: 'From', to: 'To', annualMax: 'Annual maximum (pooled fund)',
  },
};

// The codes of the answers with their Chinese names, as the command line shows them
// (/ui/words.json, from the server's own vocabularies); English shows the code itself.
let VOCABULARIES = {};

let lang = localStorage.getItem('gongji.lang') === 'en' ? 'en' : 'zh';
const t = (key) => WORDS[lang][key] ?? WORDS.zh[key] ?? key;
const word = (vocabulary, code) => {
  if (code === null || code === undefined) return '—';
  if (lang === 'zh') return VOCABULARIES[vocabulary]?.[code] ?? String(code);
  return String(code).replaceAll('_', ' ');
};

const session = {
  get token() { return sessionStorage.getItem('gongji.token'); },
  get me() { return JSON.parse(sessionStorage.getItem('gongji.me') || 'null'); },
  set(token, me) { sessionStorage.setItem('gongji.token', token); sessionStorage.setItem('gongji.me', JSON.stringify(me)); },
  clear() { sessionStorage.removeItem('gongji.token'); sessionStorage.removeItem('gongji.me'); },
};

// An error the API answered: its status, code and message.
// Each render of a page is numbered: an answer that arrives after a newer render began is
// dropped (the user moved on), so a slow answer never replaces the page of the current address.
let renders = 0;

class ApiError extends Error {
  constructor(status, code, message) { super(message); this.status = status; this.code = code; }
}

async function api(path, options = {}, token = session.token) {
  const headers = { Authorization: `Bearer ${token}`, ...(options.headers || {}) };
  const issued = renders;
  const response = await fetch(path, { ...options, headers });
  // The user moved on to another page meanwhile: this answer is not shown (see render).
  if (issued !== renders) throw new ApiError(0, 'stale', 'a newer page was asked for');
  if (!response.ok) {
    let body = {};
    try { body = await response.json(); } catch (_) { /* not JSON */ }
    const error = body.error || {};
    throw new ApiError(response.status, error.code || String(response.status), error.message || response.statusText);
  }
  const type = response.headers.get('content-type') || '';
  return type.includes('json') ? response.json() : response.text();
}

// An element: h('td', {class: 'num'}, 'text', child...). Text is always text, never HTML.
function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith('on')) element.addEventListener(name.slice(2), value);
    else element.setAttribute(name, value === true ? '' : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return element;
}

const SVG = 'http://www.w3.org/2000/svg';
function s(tag, attributes = {}, ...children) {
  const element = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) element.setAttribute(name, String(value));
  for (const child of children) element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  return element;
}

// Amounts are the API's decimal strings ("-1234.50"): grouped, never turned into floats for
// display.
function money(text) {
  if (text === null || text === undefined) return '—';
  const [whole, fraction = '00'] = String(text).split('.');
  const negative = whole.startsWith('-');
  const digits = negative ? whole.slice(1) : whole;
  const grouped = digits.replace(/\B(?=(\d{3})+(?!\d))/g, ',');
  const amount = `${negative ? '-' : ''}${grouped}.${fraction}`;
  return lang === 'zh' ? `${amount} 元` : `¥${amount}`;
}
// Fen from a decimal string, for charts and progress bars only.
const fen = (text) => {
  if (text === null || text === undefined) return 0;
  const [whole, fraction = '0'] = String(text).split('.');
  const sign = whole.startsWith('-') ? -1 : 1;
  return sign * (Math.abs(parseInt(whole, 10)) * 100 + parseInt((fraction + '00').slice(0, 2), 10));
};
const plainMoney = (f) => money(`${f < 0 ? '-' : ''}${Math.floor(Math.abs(f) / 100)}.${String(Math.abs(f) % 100).padStart(2, '0')}`);

// The zone the ledger reads and shows recorded times in ("+08:00"), as /v1/me says.
const zone = () => session.me?.time_zone || '+08:00';
function localTime(utc) {
  if (!utc) return '—';
  const date = new Date(utc);
  if (Number.isNaN(date.getTime())) return utc;
  const [, sign, hours, minutes] = /^([+-])(\d\d):(\d\d)$/.exec(zone()) || [null, '+', '08', '00'];
  const offset = (sign === '-' ? -1 : 1) * (Number(hours) * 60 + Number(minutes));
  const shifted = new Date(date.getTime() + offset * 60000).toISOString();
  return `${shifted.slice(0, 10)} ${shifted.slice(11, 19)} ${zone()}`;
}

const page = () => document.getElementById('page');
const present = (children) => children.filter((c) => c !== null && c !== undefined && c !== false);
function show(...children) { page().replaceChildren(...present(children)); }

function errorBox(error, auditorsPage = false) {
  let title = t('failed');
  if (error.status === 403 || error.status === 401) title = t('refused');
  else if (error.status === 404) title = t('notFound');
  const hint = error.status === 403 && auditorsPage ? h('p', {}, t('fundRefusedHint')) : null;
  return h('div', { class: 'error', 'data-status': error.status || '' },
    h('strong', {}, `${title} (${error.status || '—'} ${error.code || ''})`), h('p', {}, error.message || t('unknownError')), hint);
}

function figure(label, value, options = {}) {
  return h('div', { class: 'figure' }, h('div', { class: 'label' }, label),
    h('div', { class: `value${options.big ? ' big' : ''}`, id: options.id }, value));
}

function table(id, headers, rows) {
  return h('table', { id },
    h('thead', {}, h('tr', {}, headers.map(([label, num]) => h('th', { class: num ? 'num' : null }, label)))),
    h('tbody', {}, rows));
}

// --- routing -----------------------------------------------------------------------------

function route() {
  const [path, search = ''] = location.hash.replace(/^#/, '').split('?');
  return { parts: path.split('/').filter(Boolean).map(decodeURIComponent), query: new URLSearchParams(search) };
}
const go = (hash) => { location.hash = hash; };
const allowed = (path) => (session.me?.routes || []).some((r) => r.path === path);

function header() {
  const me = session.me;
  const nav = me ? [
    h('a', { href: '#/', id: 'nav-home' }, t('home')),
    allowed('/v1/funds/{region}') ? h('a', { href: '#/funds', id: 'nav-funds' }, t('funds')) : null,
    allowed('/v1/audit/verify') ? h('a', { href: '#/audit', id: 'nav-audit' }, t('audit')) : null,
  ] : [];
  document.getElementById('bar').replaceChildren(...present([
    h('a', { class: 'brand', href: '#/' }, lang === 'zh' ? '共济' : 'Gongji'),
    h('nav', {}, nav),
    me ? h('span', { class: 'who', id: 'who' }, `${me.name} · ${me.role}`) : null,
    h('button', { id: 'lang', onclick: () => { lang = lang === 'zh' ? 'en' : 'zh'; localStorage.setItem('gongji.lang', lang); document.documentElement.lang = lang === 'zh' ? 'zh-CN' : 'en'; render(); } }, t('lang')),
    me ? h('button', { id: 'logout', onclick: () => { session.clear(); go('#/login'); } }, t('logout')) : null,
  ]));
}


async function render() {
  const mine = ++renders;
  document.title = t('title');
  header();
  let parts = [];
  try {
    const asked = route();
    parts = asked.parts;
    const query = asked.query;
    if (!session.token && parts[0] !== 'login') return go('#/login');
    show(h('p', { class: 'note' }, t('loading')));
    switch (parts[0]) {
      case 'login': return loginPage();
      case 'member':
        if (parts[2] === 'year') return await yearPage(parts[1], parts[3], query);
        if (parts[2] === 'inheritance') return await inheritancePage(parts[1], query);
        if (parts[2] === 'transfers') return await transfersPage(parts[1], query);
        return await memberPage(parts[1], query);
      case 'claim': return await claimPage(parts[1]);
      case 'funds': return await fundsPage(parts[1], query);
      case 'audit': return await auditPage();
      default: return homePage();
    }
  } catch (error) {
    if (mine !== renders) return undefined;
    if (error.status === 401) { session.clear(); header(); }
    show(h('h1', {}, t('title')), errorBox(error, ['funds', 'audit'].includes(parts[0])));
  }
  return undefined;
}

// --- pages -------------------------------------------------------------------------------

function loginPage() {
  const input = h('input', { id: 'token', type: 'password', autocomplete: 'off', size: 50 });
  const problem = h('div');
  const submit = async (event) => {
    event.preventDefault();
    const token = input.value.trim();
    try {
      const me = await api('/v1/me', {}, token);
      session.set(token, me);
      go('#/');
    } catch (error) {
      problem.replaceChildren(errorBox(error));
    }
  };
  show(h('h1', {}, t('login')),
    h('form', { class: 'inline card', id: 'login-form', onsubmit: submit },
      h('label', {}, t('token'), input), h('button', { class: 'primary', id: 'login', type: 'submit' }, t('signIn'))),
    h('p', { class: 'note' }, t('tokenHelp')), problem);
}

function homePage() {
  const member = h('input', { id: 'member-id', required: true });
  const forms = [h('h1', {}, t('title')),
    h('form', { class: 'inline card', onsubmit: (e) => { e.preventDefault(); go(`#/member/${encodeURIComponent(member.value.trim())}`); } },
      h('label', {}, t('memberId'), member), h('button', { class: 'primary', id: 'find', type: 'submit' }, t('find')))];
  if (allowed('/v1/funds/{region}')) forms.push(regionForm(''));
  show(...forms);
}

function regionForm(current) {
  const region = h('input', { id: 'fund-region', value: current, required: true, pattern: '[0-9]{6}' });
  return h('form', { class: 'inline card', onsubmit: (e) => { e.preventDefault(); go(`#/funds/${encodeURIComponent(region.value.trim())}`); } },
    h('label', {}, `${t('funds')} · ${t('regionCode')}`, region), h('button', { class: 'primary', id: 'show-funds', type: 'submit' }, t('show')));
}

// The as-of question of a member page: own date, and recorded-before.
function asOfQuery(query) {
  const asked = new URLSearchParams();
  for (const name of ['as_of', 'recorded_before']) if (query.get(name)) asked.set(name, query.get(name));
  const text = asked.toString();
  return text ? `?${text}` : '';
}

function asOfBar(base, query) {
  const asOf = h('input', { id: 'as-of', type: 'date', value: query.get('as_of') || '' });
  const recorded = h('input', { id: 'recorded-before', type: 'datetime-local', step: 1, value: (query.get('recorded_before') || '').slice(0, 19) });
  const apply = (e) => {
    e.preventDefault();
    const asked = new URLSearchParams();
    if (asOf.value) asked.set('as_of', asOf.value);
    if (recorded.value) asked.set('recorded_before', recorded.value.length === 16 ? `${recorded.value}:00` : recorded.value);
    go(`${base}${asked.toString() ? `?${asked}` : ''}`);
  };
  const stated = asOfQuery(query);
  return h('form', { class: 'inline asof', id: 'as-of-form', onsubmit: apply },
    h('label', {}, t('asOf'), asOf), h('label', {}, `${t('recordedBefore')} (${zone()})`, recorded),
    h('button', { class: 'primary', id: 'apply-as-of', type: 'submit' }, t('apply')),
    h('button', { type: 'button', id: 'as-of-now', onclick: () => go(base) }, t('now')),
    stated ? h('span', { class: 'note', id: 'as-of-stated' }, t('asOfNote') + decodeURIComponent(stated.slice(1)).replaceAll('&', ' · ')) : null);
}

function memberLinks(id, years, query) {
  const q = asOfQuery(query);
  const base = `#/member/${encodeURIComponent(id)}`;
  return h('div', { class: 'links card' },
    h('a', { href: base + q }, t('timeline')),
    years.map((y) => h('a', { href: `${base}/year/${y}${q}`, class: 'year-link' }, `${t('year')} ${y}`)),
    h('a', { href: `${base}/inheritance${q}`, id: 'inheritance-link' }, t('inheritance')),
    h('a', { href: `${base}/transfers${q}`, id: 'transfers-link' }, t('transfers')));
}

const yearsOf = (timeline) => [...new Set(timeline.entries.map((e) => e.own_date.slice(0, 4)))].sort();

async function memberPage(id, query) {
  const q = asOfQuery(query);
  const path = `/v1/members/${encodeURIComponent(id)}`;
  const [account, timeline] = await Promise.all([api(path + q), api(`${path}/timeline${q}`)]);
  const family = account.family.length
    ? table('family', [[t('relative')], [t('relation')], [t('since')], [t('until')], [t('yearlyLimit'), true]],
      account.family.map((f) => h('tr', {}, h('td', {}, h('a', { href: `#/member/${encodeURIComponent(f.relative)}` }, f.relative)),
        h('td', {}, word('relation', f.relation)), h('td', {}, f.since), h('td', {}, f.until || '—'), h('td', { class: 'num' }, f.yearly_limit ? money(f.yearly_limit) : '—'))))
    : h('p', { class: 'note' }, t('none'));
  show(
    h('h1', {}, `${t('member')} ${account.member}`),
    asOfBar(`#/member/${encodeURIComponent(id)}`, query),
    h('div', { class: 'card figures' },
      figure(t('balance'), money(account.balance), { big: true, id: 'balance' }),
      figure(t('state'), word('state', account.state), { id: 'account-state' }),
      figure(t('regionSince'), `${account.region} · ${account.region_since}`, { id: 'account-region' }),
      figure(t('scheme'), word('scheme', account.scheme)),
      figure(t('enrolledOn'), account.enrolled_on),
      figure(t('retiredOn'), account.retired_on || '—'),
      account.deceased_on ? figure(t('deceasedOn'), account.deceased_on) : null,
      account.closed_on ? figure(t('closedOn'), account.closed_on) : null,
      figure(t('creditedTotal'), money(account.credited_total)),
      figure(t('paidTotal'), money(account.paid_total)),
      figure(t('monthsCredited'), account.months_credited)),
    memberLinks(id, yearsOf(timeline), query),
    h('h2', {}, t('family')), family,
    h('h2', {}, t('chart')), balanceChart(timeline.balance_by_day),
    h('h2', {}, t('timeline')), timelineTable(timeline, query));
}

// The id a timeline entry links to: a claim's explanation, or the payment's id.
function entryId(entry) {
  const e = entry.entry;
  const claim = e.settlement?.claim || e.claim;
  if (claim) return h('a', { href: `#/claim/${encodeURIComponent(claim)}`, class: 'claim-link' }, claim);
  return e.id || e.transfer || '—';
}

function timelineTable(timeline, query) {
  const years = yearsOf(timeline);
  const kinds = [...new Set(timeline.entries.map((e) => e.event))];
  const year = h('select', { id: 'filter-year' }, h('option', { value: '' }, t('allYears')), years.map((y) => h('option', { value: y }, y)));
  const kind = h('select', { id: 'filter-kind' }, h('option', { value: '' }, t('allKinds')), kinds.map((k) => h('option', { value: k }, word('event', k))));
  year.value = query.get('year') || '';
  kind.value = query.get('kind') || '';
  const body = h('tbody');
  const fill = () => {
    const rows = timeline.entries
      .filter((e) => (!year.value || e.own_date.startsWith(year.value)) && (!kind.value || e.event === kind.value))
      .map((e) => h('tr', { 'data-kind': e.event },
        h('td', { class: 'num' }, `#${e.position}`), h('td', {}, e.own_date), h('td', {}, localTime(e.recorded_at)),
        h('td', {}, word('event', e.event)), h('td', {}, entryId(e)),
        h('td', { class: `num ${fen(e.change) > 0 ? 'in' : fen(e.change) < 0 ? 'out' : ''}` }, fen(e.change) === 0 ? '' : money(e.change)),
        h('td', { class: 'num' }, money(e.balance_after))));
    body.replaceChildren(...(rows.length ? rows : [h('tr', {}, h('td', { colspan: 7, class: 'note' }, t('noEvents')))]));
  };
  year.addEventListener('change', fill);
  kind.addEventListener('change', fill);
  fill();
  return h('div', {},
    h('form', { class: 'inline', onsubmit: (e) => e.preventDefault() }, h('label', {}, t('year'), year), h('label', {}, t('event'), kind)),
    h('table', { id: 'timeline' },
      h('thead', {}, h('tr', {}, [[t('position'), true], [t('ownDate')], [t('recordedAt')], [t('event')], [t('id')], [t('change'), true], [t('balanceAfter'), true]]
        .map(([label, num]) => h('th', { class: num ? 'num' : null }, label)))),
      body));
}

// A step line of the balance by the events' own dates.
function balanceChart(points) {
  const width = 1000; const height = 260; const left = 90; const right = 20; const top = 15; const bottom = 30;
  const svg = s('svg', { class: 'chart', id: 'balance-chart', viewBox: `0 0 ${width} ${height}`, role: 'img' });
  if (!points.length) return svg;
  const days = points.map((p) => Date.parse(`${p.date}T00:00:00+08:00`));
  const values = points.map((p) => fen(p.balance));
  const first = days[0]; const last = Math.max(days[days.length - 1], first + 86400000);
  const low = Math.min(0, ...values); const high = Math.max(1, ...values);
  const x = (d) => left + ((d - first) / (last - first)) * (width - left - right);
  const y = (v) => top + (1 - (v - low) / (high - low)) * (height - top - bottom);
  let path = `M ${x(days[0])} ${y(values[0])}`;
  for (let i = 1; i < days.length; i += 1) path += ` H ${x(days[i])} V ${y(values[i])}`;
  svg.append(
    s('line', { class: 'axis', x1: left, y1: y(0), x2: width - right, y2: y(0) }),
    s('text', { x: left - 6, y: y(high) + 4, 'text-anchor': 'end' }, plainMoney(high)),
    s('text', { x: left - 6, y: y(low) + 4, 'text-anchor': 'end' }, plainMoney(low)),
    s('text', { x: left, y: height - 8 }, points[0].date),
    s('text', { x: width - right, y: height - 8, 'text-anchor': 'end' }, points[points.length - 1].date),
    s('path', { class: 'line', d: path }),
    s('title', {}, `${t('balance')}: ${money(points[points.length - 1].balance)}`));
  return svg;
}

function progress(id, label, used, whole) {
  const share = whole > 0 ? Math.min(1, used / whole) : 0;
  // Set through the style object: the page's Content-Security-Policy refuses style attributes.
  const filled = h('div');
  filled.style.width = `${(share * 100).toFixed(1)}%`;
  return h('div', { class: 'progress', id },
    h('div', { class: 'caption' }, h('span', {}, label), h('span', {}, whole > 0 ? `${plainMoney(used)} / ${plainMoney(whole)} (${Math.round(share * 100)}%)` : `${plainMoney(used)} · ${t('noLimit')}`)),
    h('div', { class: `bar${share >= 1 ? ' full' : ''}` }, filled));
}

async function yearPage(id, year, query) {
  const q = asOfQuery(query);
  const path = `/v1/members/${encodeURIComponent(id)}`;
  const [standing, timeline] = await Promise.all([api(`${path}/years/${encodeURIComponent(year)}${q}`), api(`${path}/timeline${q}`)]);
  const deductibleWhole = standing.deductible ?? standing.deductible_cap;
  // The claims the year's counters count: settled in the year in the region shown; a claim
  // reversed since is listed, marked, as the counters no longer hold it.
  const reversed = new Set(timeline.entries.filter((e) => e.event === 'claim_reversed').map((e) => e.entry.settlement.claim));
  const claims = timeline.entries.filter((e) => e.event === 'claim_settled' && String(e.entry.settlement.year) === String(year)
    && e.entry.settlement.region === standing.region);
  const rows = claims.map((e) => {
    const st = e.entry.settlement;
    return h('tr', { class: reversed.has(st.claim) ? 'reversed' : null },
      h('td', {}, h('a', { href: `#/claim/${encodeURIComponent(st.claim)}`, class: 'claim-link' }, st.claim), reversed.has(st.claim) ? ` (${t('reversed')})` : null),
      h('td', {}, st.date), h('td', { class: 'num' }, money(st.eligible)), h('td', { class: 'num' }, money(st.deductible_applied)),
      h('td', { class: 'num' }, money(st.pooled_paid)), h('td', { class: 'num' }, money(st.large_amount_paid)),
      h('td', { class: 'num' }, money(st.account_paid)), h('td', { class: 'num' }, money(st.cash_paid)));
  });
  show(
    h('h1', {}, `${t('member')} ${id} · ${t('year')} ${year}`),
    asOfBar(`#/member/${encodeURIComponent(id)}/year/${encodeURIComponent(year)}`, query),
    memberLinks(id, yearsOf(timeline), query),
    h('div', { class: 'card' },
      h('div', { class: 'figures' }, figure(t('region'), standing.region), figure(t('status'), word('status', standing.status)),
        figure(t('policy'), standing.policy || '—'), figure(t('claims'), standing.claims)),
      progress('deductible-bar', t('deductible'), fen(standing.deductible_used), fen(deductibleWhole)),
      progress('limit-bar', t('annualLimit'), fen(standing.ordinary_paid), fen(standing.ordinary_limit)),
      h('div', { class: 'figures' }, figure(t('pooledPaid'), money(standing.pooled_paid), { id: 'pooled-paid' }),
        figure(t('largePaid'), money(standing.large_amount_paid)), figure(t('specialPaid'), money(standing.special_paid)))),
    h('h2', {}, t('claimsOfYear')),
    table('year-claims', [[t('id')], [t('date')], [t('eligible'), true], [t('deductible'), true], [t('pooledPaid'), true], [t('largePaid'), true], [t('accountPaid'), true], [t('cashPaid'), true]], rows));
}

function positionRow(label, position) {
  if (!position) return null;
  const limit = 'limit' in position ? (position.limit === null ? t('noLimit') : money(position.limit)) : '';
  return h('tr', {}, h('td', {}, label), h('td', { class: 'num' }, limit), h('td', { class: 'num' }, money(position.before)), h('td', { class: 'num' }, money(position.after)));
}

async function claimPage(id) {
  const x = await api(`/v1/claims/${encodeURIComponent(id)}/explain`);
  const st = x.settlement;
  const rules = x.rules ? Object.entries(x.rules).filter(([, v]) => v).map(([k, v]) => h('li', {}, `${k}: ${v}`)) : [];
  show(
    h('h1', {}, `${t('explain')} · ${x.id}`),
    h('div', { class: 'card figures', id: 'explain' },
      figure(t('member'), h('a', { href: `#/member/${encodeURIComponent(x.member)}` }, x.member)),
      figure(t('date'), x.date), figure(t('region'), x.region), figure(t('policy'), x.policy, { id: 'explain-policy' }),
      figure(t('eligible'), money(st.eligible)), figure(t('deductible'), money(st.deductible_applied)),
      figure(t('pooledPaid'), money(st.pooled_paid)), figure(t('largePaid'), money(st.large_amount_paid)),
      figure(t('accountPaid'), money(st.account_paid)),
      figure(t('cashPaid'), money(st.cash_paid)),
      x.reversed ? figure(t('reversed'), `${x.reversed.date ?? ''} ${x.reversed.reason ?? ''}`) : null),
    x.deductible_capped ? h('p', { class: 'note' }, t('capped')) : null,
    rules.length ? h('div', {}, h('h2', {}, t('rules')), h('ul', {}, rules)) : null,
    h('h2', {}, t('steps')), h('ol', { class: 'steps', id: 'explain-steps' }, x.steps.map((step) => h('li', {}, step))),
    h('h2', {}, `${t('before')} / ${t('after')}`),
    table('explain-positions', [[''], [t('limit'), true], [t('before'), true], [t('after'), true]], [
      positionRow(t('deductibleUsed'), x.deductible), positionRow(t('annualLimit'), x.ordinary_limit),
      positionRow(t('annualMax'), x.annual_max), positionRow(t('account'), x.account)].filter(Boolean)),
    h('h2', {}, t('events')),
    table('explain-events', [[t('position'), true], [t('ownDate')], [t('recordedAt')], [t('event')]],
      x.events.map((e) => h('tr', {}, h('td', { class: 'num' }, `#${e.position}`), h('td', {}, e.own_date), h('td', {}, localTime(e.recorded_at)), h('td', {}, word('event', e.event))))));
}

function movements(id, list) {
  return table(id, [[t('event')], [t('id')], [t('date')], [t('amount'), true], [t('position'), true], [t('recordedAt')]],
    list.map((m) => h('tr', {}, h('td', {}, word('event', m.event)), h('td', {}, m.id || '—'), h('td', {}, m.date), h('td', { class: 'num' }, money(m.amount)), h('td', { class: 'num' }, `#${m.position}`), h('td', {}, localTime(m.recorded_at)))));
}

async function inheritancePage(id, query) {
  const q = asOfQuery(query);
  const [x, timeline] = await Promise.all([api(`/v1/members/${encodeURIComponent(id)}/inheritance${q}`), api(`/v1/members/${encodeURIComponent(id)}/timeline${q}`)]);
  show(
    h('h1', {}, `${t('inheritance')} · ${x.member}`),
    asOfBar(`#/member/${encodeURIComponent(id)}/inheritance`, query),
    memberLinks(id, yearsOf(timeline), query),
    h('div', { class: 'card figures', id: 'inheritance' },
      figure(t('state'), word('state', x.state)), figure(t('balance'), money(x.balance)),
      figure(t('deceasedOn'), x.deceased_on || '—'), figure(t('balanceOnDeath'), money(x.balance_on_death)),
      figure(t('inheritedOn'), x.inherited_on || '—'), figure(t('inheritedBalance'), money(x.inherited_balance), { id: 'inherited-balance' })),
    h('h2', {}, t('afterDeath')), movements('after-death', x.after_death),
    h('h2', {}, t('payouts')),
    table('payouts', [[t('heir')], [t('share'), true], [t('amount'), true]],
      x.payouts.map((p) => h('tr', {}, h('td', {}, p.heir), h('td', { class: 'num' }, p.share), h('td', { class: 'num' }, money(p.amount))))));
}

async function transfersPage(id, query) {
  const q = asOfQuery(query);
  const [x, timeline] = await Promise.all([api(`/v1/members/${encodeURIComponent(id)}/transfers${q}`), api(`/v1/members/${encodeURIComponent(id)}/timeline${q}`)]);
  show(
    h('h1', {}, `${t('transfers')} · ${x.member}`),
    asOfBar(`#/member/${encodeURIComponent(id)}/transfers`, query),
    memberLinks(id, yearsOf(timeline), query),
    h('div', { class: 'card figures' }, figure(t('regionSince'), `${x.region} · ${x.region_since}`)),
    x.transfers.length
      ? table('transfers', [[t('date')], [t('fromRegion')], [t('toRegion')], [t('balanceMoved'), true], [t('balanceAsOfDate'), true], [t('laterRecorded')]],
        x.transfers.map((m) => h('tr', {}, h('td', {}, m.date), h('td', {}, m.from_region), h('td', {}, m.to_region),
          h('td', { class: 'num' }, money(m.balance)), h('td', { class: 'num' }, money(m.balance_as_of_date)),
          h('td', {}, m.later_recorded.length ? movements(null, m.later_recorded) : '—'))))
      : h('p', { class: 'note', id: 'transfers' }, t('noTransfers')));
}

// A CSV file as the export writes it (UTF-8 with a byte-order mark, quoted where needed).
function parseCsv(text) {
  const rows = []; let row = []; let cell = ''; let quoted = false;
  const input = text.replace(/^\uFEFF/, '');
  for (let i = 0; i < input.length; i += 1) {
    const c = input[i];
    if (quoted) {
      if (c === '"' && input[i + 1] === '"') { cell += '"'; i += 1; } else if (c === '"') quoted = false; else cell += c;
    } else if (c === '"') quoted = true;
    else if (c === ',') { row.push(cell); cell = ''; } else if (c === '\n') { row.push(cell.replace(/\r$/, '')); rows.push(row); row = []; cell = ''; } else cell += c;
  }
  if (cell || row.length) { row.push(cell); rows.push(row); }
  const [names, ...records] = rows;
  return records.map((r) => Object.fromEntries(names.map((n, i) => [n, r[i]])));
}

function monthChart(months) {
  const width = 1000; const height = 260; const left = 90; const bottom = 30; const top = 15;
  const svg = s('svg', { class: 'chart', id: 'funds-chart', viewBox: `0 0 ${width} ${height}`, role: 'img' });
  if (!months.length) return svg;
  // A month of refunds has a negative outflow: the scale takes in what lies below zero too.
  const all = months.flatMap((m) => [fen(m.pooled_in), fen(m.pooled_out)]);
  const high = Math.max(1, ...all); const low = Math.min(0, ...all);
  const slot = (width - left - 20) / months.length; const bar = Math.max(2, slot * 0.38);
  const y = (v) => top + (1 - (v - low) / (high - low)) * (height - top - bottom);
  const rect = (kind, x, v, title) => s('rect', { class: kind, x, y: Math.min(y(0), y(v)), width: bar, height: Math.abs(y(0) - y(v)) }, s('title', {}, title));
  svg.append(s('line', { class: 'axis', x1: left, y1: y(0), x2: width - 20, y2: y(0) }),
    s('text', { x: left - 6, y: y(high) + 4, 'text-anchor': 'end' }, plainMoney(high)),
    s('text', { x: left - 6, y: y(0) + 4, 'text-anchor': 'end' }, '0'),
    low < 0 ? s('text', { x: left - 6, y: y(low) + 4, 'text-anchor': 'end' }, plainMoney(low)) : '');
  months.forEach((m, i) => {
    const x = left + i * slot + slot * 0.1;
    const inflow = fen(m.pooled_in); const outflow = fen(m.pooled_out);
    svg.append(rect('in', x, inflow, `${m.month.slice(0, 7)} ${t('inflow')} ${money(m.pooled_in)}`),
      rect('out', x + bar, outflow, `${m.month.slice(0, 7)} ${t('outflow')} ${money(m.pooled_out)}`));
    if (i % Math.ceil(months.length / 12) === 0) svg.append(s('text', { x: x + bar, y: height - 8, 'text-anchor': 'middle' }, m.month.slice(0, 7)));
  });
  return svg;
}

// The last day of the month whose first day is `first` ("2024-02-01" -> "2024-02-29").
function monthEnd(first) {
  const [year, month] = first.split('-').map(Number);
  const last = new Date(Date.UTC(year, month, 0)).getUTCDate();
  return `${first.slice(0, 8)}${String(last).padStart(2, '0')}`;
}

async function fundsPage(region, query) {
  if (!region) return show(h('h1', {}, t('funds')), regionForm(''));
  const asOf = h('input', { id: 'fund-as-of', type: 'date', value: query.get('as_of') || '' });
  const q = query.get('as_of') ? `?as_of=${encodeURIComponent(query.get('as_of'))}` : '';
  const [fund, csv] = await Promise.all([api(`/v1/funds/${encodeURIComponent(region)}${q}`),
    api(`/v1/export/funds?region=${encodeURIComponent(region)}&format=csv`)]);
  const months = parseCsv(csv).filter((m) => m.region === region)
    // As of a day: the months wholly before it ends (a month's flows are of all its days).
    .filter((m) => !query.get('as_of') || monthEnd(m.month) <= query.get('as_of'));
  const figures = (label, f, id) => h('div', { class: 'card', id },
    h('h2', {}, label), h('div', { class: 'figures' }, figure(t('inflow'), money(f.inflow)), figure(t('outflow'), money(f.outflow)),
      figure(t('fundBalance'), money(f.balance), { big: true })));
  show(
    h('h1', {}, `${t('funds')} · ${fund.region}`),
    h('form', { class: 'inline asof', onsubmit: (e) => { e.preventDefault(); go(`#/funds/${encodeURIComponent(region)}${asOf.value ? `?as_of=${asOf.value}` : ''}`); } },
      h('label', {}, t('asOf'), asOf), h('button', { class: 'primary', id: 'apply-fund-as-of', type: 'submit' }, t('apply')),
      h('button', { type: 'button', onclick: () => go(`#/funds/${encodeURIComponent(region)}`) }, t('now'))),
    figures(t('pooled'), fund.pooled, 'fund-pooled'), figures(t('largeAmount'), fund.large_amount, 'fund-large'),
    fund.accounts ? figures(t('accounts'), fund.accounts, 'fund-accounts') : null,
    h('h2', {}, t('byMonth')), monthChart(months),
    table('fund-months', [[t('month')], [`${t('pooled')} ${t('inflow')}`, true], [`${t('pooled')} ${t('outflow')}`, true], [`${t('pooled')} ${t('fundBalance')}`, true],
      [`${t('largeAmount')} ${t('inflow')}`, true], [`${t('largeAmount')} ${t('outflow')}`, true], [`${t('largeAmount')} ${t('fundBalance')}`, true]],
    months.map((m) => h('tr', {}, h('td', {}, m.month.slice(0, 7)), ...['pooled_in', 'pooled_out', 'pooled_balance', 'large_amount_in', 'large_amount_out', 'large_amount_balance']
      .map((k) => h('td', { class: 'num' }, money(m[k].replace(/^'/, ''))))))));
}

async function auditPage() {
  const [log, flags] = await Promise.all([api('/v1/access-log?last=50'), api('/v1/flags?limit=50')]);
  const result = h('div', { id: 'verify-result' });
  const verify = async () => {
    result.replaceChildren(h('p', { class: 'note' }, t('verifying')));
    try {
      const report = await api('/v1/audit/verify', { method: 'POST' });
      result.replaceChildren(h('div', { class: 'card figures' }, figure(t('records'), report.records),
        figure(t('digest'), report.digest || '—'), figure(t('failure'), report.failure ? JSON.stringify(report.failure) : t('none'))));
    } catch (error) { result.replaceChildren(errorBox(error)); }
  };
  const entries = log.entries.filter(Boolean).reverse();
  show(
    h('h1', {}, t('audit')),
    h('button', { class: 'primary', id: 'verify', onclick: verify }, t('verify')), result,
    h('h2', {}, `${t('flags')} (${flags.total})`),
    table('flags', [[t('rule')], [t('member')], [t('from')], [t('to')], [t('decision')]],
      flags.flags.map((f) => h('tr', {}, h('td', {}, f.rule), h('td', {}, f.member ? h('a', { href: `#/member/${encodeURIComponent(f.member)}` }, f.member) : (f.institution || '—')),
        h('td', {}, f.from), h('td', {}, f.to), h('td', {}, f.decision ? f.decision.decision : t('undecided'))))),
    h('h2', {}, t('accessLog')),
    table('access-log', [[t('at')], [t('who')], [t('role')], [t('route')], [t('member')], ['status', true]],
      entries.map((e) => h('tr', {}, h('td', {}, localTime(e.at)), h('td', {}, e.token), h('td', {}, e.role), h('td', {}, `${e.method} ${e.route}`),
        h('td', {}, e.member || e.claim || '—'), h('td', { class: 'num' }, e.status)))));
}

window.addEventListener('hashchange', render);
window.addEventListener('DOMContentLoaded', async () => {
  document.documentElement.lang = lang === 'zh' ? 'zh-CN' : 'en';
  try { VOCABULARIES = await (await fetch('/ui/words.json')).json(); } catch (_) { /* codes shown as they are */ }
  render();
});
