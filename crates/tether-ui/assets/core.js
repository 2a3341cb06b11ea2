// tether web UI: shared helpers. Plain JavaScript, no build step. Every call goes
// to the REST API with the session cookie; mutations carry the CSRF token.
'use strict';
(function () {
  const T = (window.Tether = window.Tether || { pages: {} });
  const body = document.body;
  T.apiBase = body.dataset.apiBase || '/api/v1';
  T.uiBase = body.dataset.uiBase || '';
  T.org = body.dataset.org || null;
  T.project = body.dataset.project || null;
  T.identifier = body.dataset.identifier || null;
  T.tokenOrg = body.dataset.tokenOrg || null;
  T.tokenProject = body.dataset.tokenProject || null;
  const meta = document.querySelector('meta[name="csrf-token"]');
  T.csrf = meta ? meta.content : '';

  T.$ = (sel, root) => (root || document).querySelector(sel);
  T.$$ = (sel, root) => Array.from((root || document).querySelectorAll(sel));

  /** Builds an element: T.el('a', {href: '/x', class: 'y'}, 'text', child). */
  T.el = function (tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === 'class') e.className = v;
      else if (k === 'text') e.textContent = v;
      else if (k.startsWith('on') && typeof v === 'function') e.addEventListener(k.slice(2), v);
      else if (v === true) e.setAttribute(k, '');
      else e.setAttribute(k, String(v));
    }
    for (const c of children.flat()) {
      if (c === null || c === undefined || c === false) continue;
      e.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return e;
  };

  /** Calls the REST API. Resolves to {ok, status, data} or {ok: false, status, error}. */
  T.api = async function (method, path, opts) {
    opts = opts || {};
    const headers = { Accept: opts.accept || 'application/json' };
    let reqBody;
    if (opts.json !== undefined) {
      headers['Content-Type'] = 'application/json';
      reqBody = JSON.stringify(opts.json);
    } else if (opts.yaml !== undefined) {
      headers['Content-Type'] = 'application/yaml';
      reqBody = opts.yaml;
    }
    if (method !== 'GET' && method !== 'HEAD') headers['X-CSRF-Token'] = T.csrf;
    const url = opts.absolute ? path : T.apiBase + path;
    let res;
    try {
      res = await fetch(url, { method, headers, body: reqBody, credentials: 'same-origin', cache: 'no-store' });
    } catch (e) {
      return { ok: false, status: 0, error: { code: 'NETWORK', message: 'The manager did not answer (' + e.message + '). Check that it is running, then try again.' } };
    }
    if (res.status === 401 && !opts.allow401) {
      // The session ended (expired, signed out elsewhere, token revoked).
      location.assign('/login?next=' + encodeURIComponent(location.pathname + location.search));
      return new Promise(() => {});
    }
    const text = await res.text();
    let data = null;
    if (text) {
      const ct = res.headers.get('content-type') || '';
      if (ct.includes('json')) {
        try { data = JSON.parse(text); } catch (_) { data = text; }
      } else {
        data = text;
      }
    }
    if (res.ok) return { ok: true, status: res.status, data };
    const error = data && typeof data === 'object' && data.message
      ? data
      : { code: 'HTTP_' + res.status, message: (typeof data === 'string' && data) || res.statusText || ('HTTP ' + res.status) };
    return { ok: false, status: res.status, error };
  };

  T.enc = encodeURIComponent;

  /**
   * Follows a task's live events (GET /api/v1/tasks/{id}/events, Server-Sent
   * Events): `onEvent` gets each `{kind, message, atMs, ...}` as the manager
   * stores it. Resolves with the `end` event (`{taskId, state, error}`). The
   * browser reconnects by itself after a dropped connection, with
   * `Last-Event-ID`, so nothing is shown twice; a stream closed for good (the
   * session ended) resolves with `streamFailed: true`. `close()` on the
   * returned promise stops following (it then never resolves).
   */
  T.followTask = function (taskId, onEvent) {
    let es;
    const done = new Promise((resolve) => {
      es = new EventSource('/api/v1/tasks/' + T.enc(taskId) + '/events', { withCredentials: true });
      es.addEventListener('task', (m) => {
        let e = null;
        try { e = JSON.parse(m.data); } catch (_) { return; }
        onEvent(e);
      });
      es.addEventListener('end', (m) => {
        es.close();
        let end = { taskId, state: 'unknown' };
        try { end = JSON.parse(m.data); } catch (_) { /* keep unknown */ }
        resolve(end);
      });
      es.addEventListener('error', () => {
        // Closed for good, not a reconnect in progress.
        if (es.readyState === EventSource.CLOSED) {
          resolve({ taskId, state: 'unknown', streamFailed: true, error: 'The live events stopped (the session may have ended). Reload the page to see how the task ended.' });
        }
      });
    });
    done.close = () => es.close();
    return done;
  };

  /** Whether `el` is shown, ignoring the wizard's hidden steps. */
  function placeable(el, root) {
    for (let p = el; p && p !== root; p = p.parentElement) {
      if (p.hidden && !p.classList.contains('step')) return false;
    }
    return true;
  }

  /** The [data-field] element for an API field path, walking up the path. */
  T.findField = function (root, field) {
    let f = String(field || '').replace(/^connector\./, '');
    while (f) {
      const cands = T.$$('[data-field="' + CSS.escape(f) + '"]', root).filter((e) => placeable(e, root));
      if (cands.length) return cands[0];
      const stripped = f.replace(/\[\d+\]$/, '');
      if (stripped !== f) { f = stripped; continue; }
      const dot = f.lastIndexOf('.');
      if (dot < 0) break;
      f = f.slice(0, dot);
    }
    return null;
  };

  function errorSlot(fieldEl) {
    for (const c of fieldEl.querySelectorAll('.field-error')) {
      // The field's own slot, not one of a nested field (inline secret form).
      if (c.closest('[data-field]') === fieldEl) return c;
    }
    return fieldEl.querySelector('.field-error');
  }

  function control(fieldEl) {
    return fieldEl.querySelector('input:not([type=hidden]):not([type=radio]), select, textarea') ||
      fieldEl.querySelector('input[type=radio]');
  }

  T.setFieldError = function (fieldEl, message) {
    const slot = errorSlot(fieldEl);
    if (slot) { slot.textContent = message; slot.hidden = false; }
    const c = control(fieldEl);
    if (c) c.setAttribute('aria-invalid', 'true');
  };

  T.clearFieldError = function (fieldEl) {
    const slot = errorSlot(fieldEl);
    if (slot) { slot.textContent = ''; slot.hidden = true; }
    const c = control(fieldEl);
    if (c) c.removeAttribute('aria-invalid');
  };

  T.clearErrors = function (root) {
    for (const e of T.$$('.field-error, .form-error', root)) { e.textContent = ''; e.hidden = true; }
    for (const e of T.$$('[aria-invalid="true"]', root)) e.removeAttribute('aria-invalid');
  };

  T.showFormError = function (el, message) {
    if (!el) { T.toast(message); return; }
    el.textContent = message;
    el.hidden = false;
  };

  /**
   * Shows an API error next to the fields it names (`field`, `errors[]`); what
   * names no field on the page goes to `formError`. Returns the first field element.
   */
  T.showErrors = function (root, error, formError) {
    T.clearErrors(root);
    const list = (error.errors && error.errors.length)
      ? error.errors
      : (error.field ? [{ field: error.field, message: error.message }] : []);
    let first = null;
    const unplaced = [];
    for (const e of list) {
      const target = T.findField(root, e.field);
      if (target) {
        T.setFieldError(target, e.message);
        if (!first) first = target;
      } else {
        unplaced.push(e.field + ': ' + e.message);
      }
    }
    if (!list.length) T.showFormError(formError, error.message);
    else if (unplaced.length) T.showFormError(formError, unplaced.join(' · '));
    if (first) {
      const c = control(first);
      if (c && !c.closest('.step[hidden]')) c.focus();
    } else if (formError && !formError.hidden) {
      formError.scrollIntoView({ block: 'nearest' });
    }
    return first;
  };

  // Times ------------------------------------------------------------------
  T.ago = function (ms) {
    if (!ms) return 'never';
    const s = Math.round((Date.now() - ms) / 1000);
    if (s < 0) return 'in the future';
    if (s < 10) return 'just now';
    if (s < 60) return s + ' s ago';
    const m = Math.round(s / 60);
    if (m < 60) return m + ' min ago';
    const h = Math.round(m / 60);
    if (h < 48) return h + ' h ago';
    return Math.round(h / 24) + ' days ago';
  };
  T.when = (ms) => (ms ? new Date(ms).toLocaleString() : '—');
  T.time = function (ms) {
    if (!ms) return T.el('span', { class: 'muted' }, 'never');
    return T.el('time', { datetime: new Date(ms).toISOString(), title: T.when(ms) }, T.ago(ms));
  };
  T.duration = (ms) => (ms === undefined || ms === null ? '' : ms < 1000 ? ms + ' ms' : (ms / 1000).toFixed(1) + ' s');

  T.badge = function (status) {
    const s = String(status || 'UNKNOWN').toUpperCase();
    return T.el('span', { class: 'badge badge-' + s.toLowerCase() }, s);
  };

  T.toast = function (message) {
    const t = T.$('#toast');
    if (!t) return;
    t.textContent = message;
    clearTimeout(T._toastTimer);
    T._toastTimer = setTimeout(() => { t.textContent = ''; }, 6000);
  };

  T.copy = async function (text, button) {
    let done = false;
    try {
      if (navigator.clipboard && window.isSecureContext) {
        await navigator.clipboard.writeText(text);
        done = true;
      }
    } catch (_) { /* fall back below */ }
    if (!done) {
      const ta = T.el('textarea', { class: 'visually-hidden' });
      ta.value = text;
      document.body.append(ta);
      ta.select();
      try { done = document.execCommand('copy'); } catch (_) { done = false; }
      ta.remove();
    }
    if (button) {
      const old = button.textContent;
      button.textContent = done ? 'Copied' : 'Select and copy';
      setTimeout(() => { button.textContent = old; }, 2000);
    }
  };

  T.debounce = function (fn, ms) {
    let t;
    return function (...args) { clearTimeout(t); t = setTimeout(() => fn.apply(this, args), ms); };
  };

  // Identifiers and names: the rules of tether_domain::identifier, ported.
  T.MAX_LEN = 128;
  T.RESERVED = ['or', 'and', 'eq', 'ne', 'lt', 'gt', 'le', 'ge', 'div', 'mod', 'not', 'null', 'true',
    'false', 'new', 'var', 'return', 'step', 'parallel', 'stepGroup', 'org', 'account', 'class'];
  // Rust's str::trim removes Unicode White_Space: JS's \s without U+FEFF, plus U+0085.
  const rustTrim = (s) => String(s).replace(/^(?:[^\S\uFEFF]|\u0085)+|(?:[^\S\uFEFF]|\u0085)+$/gu, '');
  const isReserved = (id) => T.RESERVED.some((w) => w.toLowerCase() === id.toLowerCase());

  /** derive_identifier(name, fallback, |_| false) */
  T.deriveIdentifier = function (name, fallback) {
    let base = '';
    let inSpace = false;
    for (const c of rustTrim(name)) {
      if (c === ' ') { inSpace = true; continue; }
      if (!/^[0-9A-Za-z_$]$/.test(c)) continue;
      if (inSpace && base.length) base += '_';
      inSpace = false;
      base += c;
    }
    if (!base) base = fallback || 'connector';
    if (/^[0-9$]/.test(base)) base = '_' + base;
    base = base.slice(0, T.MAX_LEN);
    if (isReserved(base)) base += '_1';
    return base;
  };

  /** validate_identifier: null when valid, else the message. */
  T.validateIdentifier = function (id) {
    if (!id) return 'identifier must not be empty';
    if (id.length > T.MAX_LEN) return 'identifier is ' + id.length + ' characters long; at most ' + T.MAX_LEN + ' are allowed';
    const first = [...id][0];
    if (!/^[A-Za-z_]$/.test(first)) return "identifier '" + id + "' must start with a letter or '_', not '" + first + "'";
    const bad = [...id].find((c) => !/^[0-9A-Za-z_$]$/.test(c));
    if (bad !== undefined) return "identifier '" + id + "' contains '" + bad + "'; only letters, digits, '_' and '$' are allowed";
    if (isReserved(id)) return "'" + id + "' is a reserved word and cannot be used as an identifier; try '" + id + "_1'";
    return null;
  };

  /** validate_name: null when valid, else the message. */
  T.validateName = function (name) {
    if (!rustTrim(name)) return 'name must not be blank';
    const chars = [...name];
    if (chars.length > T.MAX_LEN) return 'name is ' + chars.length + ' characters long; at most ' + T.MAX_LEN + ' are allowed';
    const bad = chars.find((c) => !/^[\p{Alphabetic}\p{N} \-_./]$/u.test(c));
    if (bad !== undefined) return "name contains '" + bad + "'; only letters, digits, spaces and - _ . / are allowed";
    return null;
  };

  /** "a:b, c" -> {a: "b", c: ""} */
  T.parseTags = function (text) {
    const out = {};
    for (const part of String(text || '').split(',')) {
      const p = part.trim();
      if (!p) continue;
      const i = p.indexOf(':');
      if (i < 0) out[p] = '';
      else out[p.slice(0, i).trim()] = p.slice(i + 1).trim();
    }
    return out;
  };
  T.formatTags = (tags) => Object.entries(tags || {}).map(([k, v]) => (v ? k + ':' + v : k)).join(', ');

  /** The scopes whose secrets and delegates a connector here may use, nearest first. */
  T.coveringScopes = function () {
    const out = [];
    if (T.project) out.push({ prefix: '', api: '/api/v1/orgs/' + T.enc(T.org) + '/projects/' + T.enc(T.project), label: 'Project ' + T.project });
    if (T.org) out.push({ prefix: T.project ? 'org.' : '', api: '/api/v1/orgs/' + T.enc(T.org), label: 'Org ' + T.org });
    out.push({ prefix: (T.org ? 'account.' : ''), api: '/api/v1', label: 'Account' });
    return out;
  };

  /** Every delegate that could serve this scope (own, org, account), with its scope label. */
  T.loadDelegates = async function () {
    const all = [];
    let error = null;
    for (const s of T.coveringScopes()) {
      const r = await T.api('GET', s.api + '/delegates', { absolute: true });
      if (r.ok) for (const d of r.data) all.push(Object.assign({ scopeLabel: s.label }, d));
      else if (r.status !== 403) error = r.error;
    }
    return { delegates: all, error };
  };

  // Accessible tabs (arrow keys move between tabs).
  T.tabs = function (root, onShow) {
    const tabs = T.$$('[role="tab"]', root);
    const show = (tab, focus) => {
      for (const t of tabs) {
        const sel = t === tab;
        t.setAttribute('aria-selected', sel ? 'true' : 'false');
        t.tabIndex = sel ? 0 : -1;
        T.$('#' + t.getAttribute('aria-controls')).hidden = !sel;
      }
      if (focus) tab.focus();
      if (onShow) onShow(tab.id.replace(/^tab-/, ''));
    };
    tabs.forEach((t, i) => {
      t.addEventListener('click', () => show(t, false));
      t.addEventListener('keydown', (e) => {
        let j = null;
        if (e.key === 'ArrowRight') j = (i + 1) % tabs.length;
        else if (e.key === 'ArrowLeft') j = (i - 1 + tabs.length) % tabs.length;
        else if (e.key === 'Home') j = 0;
        else if (e.key === 'End') j = tabs.length - 1;
        if (j !== null) { e.preventDefault(); show(tabs[j], true); }
      });
    });
    return (key) => { const t = T.$('#tab-' + key, root); if (t) show(t, false); };
  };

  // Org / project switcher ---------------------------------------------------
  function pageKind() {
    const p = body.dataset.page;
    return p === 'delegates' || p === 'secrets' || p === 'setup' ? p : 'connectors';
  }
  function scopeUrl(org, project) {
    let u = '';
    if (org) u += '/orgs/' + T.enc(org);
    if (org && project) u += '/projects/' + T.enc(project);
    return u + '/' + pageKind();
  }
  async function initScopeSwitcher() {
    const orgSel = T.$('#scope-org');
    const projSel = T.$('#scope-project');
    if (!orgSel || !projSel) return;
    const current = (sel, value, label) => {
      sel.replaceChildren(T.el('option', { value, selected: true }, label));
    };
    // Orgs the token may reach.
    if (T.tokenOrg) {
      current(orgSel, T.tokenOrg, T.tokenOrg);
      orgSel.disabled = true;
    } else {
      const r = await T.api('GET', '/api/v1/orgs', { absolute: true });
      orgSel.replaceChildren(T.el('option', { value: '' }, 'Account (all orgs)'));
      const orgs = r.ok ? r.data : [];
      if (T.org && !orgs.some((o) => o.identifier === T.org)) orgs.push({ identifier: T.org, name: T.org });
      for (const o of orgs) orgSel.append(T.el('option', { value: o.identifier, title: o.identifier }, o.name));
      orgSel.value = T.org || '';
      if (body.dataset.role === 'admin') orgSel.append(T.el('option', { value: '__new__' }, '+ New org…'));
    }
    if (T.tokenProject) {
      current(projSel, T.tokenProject, T.tokenProject);
      projSel.disabled = true;
    } else if (!T.org) {
      current(projSel, '', '— pick an org —');
      projSel.disabled = true;
    } else {
      const r = await T.api('GET', '/api/v1/orgs/' + T.enc(T.org) + '/projects', { absolute: true });
      projSel.replaceChildren(T.el('option', { value: '' }, '— none (org level) —'));
      for (const p of (r.ok ? r.data : [])) projSel.append(T.el('option', { value: p.identifier, title: p.identifier }, p.name));
      projSel.value = T.project || '';
      if (body.dataset.role === 'admin') projSel.append(T.el('option', { value: '__new__' }, '+ New project…'));
    }
    orgSel.addEventListener('change', () => location.assign(orgSel.value === '__new__' ? '/orgs' : scopeUrl(orgSel.value, null)));
    projSel.addEventListener('change', () => location.assign(projSel.value === '__new__'
      ? '/orgs/' + T.enc(T.org) + '/projects' : scopeUrl(T.org, projSel.value)));
  }

  document.addEventListener('DOMContentLoaded', () => {
    initScopeSwitcher();
    const page = body.dataset.page;
    if (page && T.pages[page]) T.pages[page]();
  });
})();
