// Connectors: the list (search, status filter, pages) and the detail page
// (status, test, history, builds, deploy (deploy.js), Kubernetes API, YAML, delete).
'use strict';
(function () {
  const T = window.Tether;
  const { el, $ } = T;

  const AUTH_LABELS = {
    ServiceAccount: 'Service account token',
    UsernamePassword: 'Username and password',
    ClientKeyCert: 'Client key and certificate',
    OpenIdConnect: 'OpenID Connect',
  };

  T.describeCredential = function (c) {
    const cred = c.spec.credential;
    if (cred.type === 'InheritFromDelegate') return { kind: 'Inherit from delegate', auth: null, url: null };
    return { kind: 'Master URL', auth: AUTH_LABELS[cred.spec.auth.type] || cred.spec.auth.type, url: cred.spec.masterUrl };
  };

  /** A status summary in at most 90 characters, without the code quotes. */
  function summaryLine(text) {
    const t = String(text).replace(/`/g, '');
    return t.length > 90 ? t.slice(0, 90) + '…' : t;
  }

  T.pages.connectors = function () {
    const limit = 20;
    const params = new URLSearchParams(location.search);
    let page = Math.max(0, parseInt(params.get('page') || '0', 10) || 0);
    const search = $('#f-search');
    const status = $('#f-status');
    const tbody = $('#connectors-body');
    const listError = $('#list-error');
    search.value = params.get('search') || '';
    status.value = (params.get('status') || '').toUpperCase();
    let seq = 0;

    async function load() {
      const mine = ++seq;
      const q = new URLSearchParams({ page: String(page), limit: String(limit) });
      const shown = new URLSearchParams();
      if (search.value.trim()) { q.set('search', search.value.trim()); shown.set('search', search.value.trim()); }
      if (status.value) { q.set('status', status.value); shown.set('status', status.value); }
      if (page) shown.set('page', String(page));
      history.replaceState(null, '', location.pathname + (shown.toString() ? '?' + shown : ''));
      const r = await T.api('GET', '/connectors?' + q);
      if (mine !== seq) return; // a newer query is on its way
      listError.hidden = true;
      if (!r.ok) { T.showFormError(listError, r.error.message); tbody.replaceChildren(); return; }
      const { items, total } = r.data;
      if (!items.length) {
        const filtered = search.value.trim() || status.value;
        tbody.replaceChildren(el('tr', {}, el('td', { colspan: '6', class: 'muted' },
          filtered ? 'No connector matches these filters.' : 'No connectors yet. ',
          filtered ? null : el('a', { href: T.uiBase + '/connectors/new' }, 'Create the first one.'))));
      } else {
        tbody.replaceChildren(...items.map((it) => {
          const c = it.connector;
          const d = T.describeCredential(c);
          const st = it.status || {};
          return el('tr', { 'data-id': c.identifier },
            el('td', { class: 'name' },
              el('a', { href: T.uiBase + '/connectors/' + T.enc(c.identifier), title: c.name }, c.name),
              c.description ? el('div', { class: 'muted small' }, c.description) : null),
            el('td', {}, el('code', { class: 'id', title: c.identifier }, c.identifier)),
            el('td', {}, el('div', {}, d.kind + (d.auth ? ' · ' + d.auth : '')),
              d.url ? el('div', { class: 'muted small url' }, d.url) : null,
              (c.spec.delegateSelectors || []).length ? el('div', { class: 'small' }, 'Delegates: ', c.spec.delegateSelectors.map((s) => el('span', { class: 'tag' }, s))) : null),
            el('td', {}, T.badge(st.status),
              st.errorSummary ? el('div', { class: 'muted small', title: st.errorSummary.replace(/`/g, '') }, summaryLine(st.errorSummary)) : null),
            el('td', {}, T.time(st.testedAt)),
            el('td', {}, T.time(st.lastConnectedAt)));
        }));
      }
      const from = total ? page * limit + 1 : 0;
      const to = Math.min(total, (page + 1) * limit);
      $('#page-info').textContent = total ? from + '–' + to + ' of ' + total : '';
      $('#page-prev').disabled = page === 0;
      $('#page-next').disabled = (page + 1) * limit >= total;
    }

    search.addEventListener('input', T.debounce(() => { page = 0; load(); }, 250));
    status.addEventListener('change', () => { page = 0; load(); });
    $('#connector-filters').addEventListener('submit', (e) => { e.preventDefault(); page = 0; load(); });
    $('#page-prev').addEventListener('click', () => { page = Math.max(0, page - 1); load(); });
    $('#page-next').addEventListener('click', () => { page += 1; load(); });
    load();
  };

  // Connector detail -----------------------------------------------------------
  T.pages.connector = function () {
    const id = T.identifier;
    const path = '/connectors/' + T.enc(id);
    const errorBox = $('#d-error');
    let historyLoaded = false;
    let yamlText = null;
    const deployTab = T.deployTab(id, path);
    const showTab = T.tabs($('.tabs'), (key) => {
      if (key === 'history' && !historyLoaded) loadHistory();
      if (key === 'yaml' && yamlText === null) loadYaml();
      if (key === 'builds') loadBuilds();
      if (key === 'deploy') deployTab.load();
      if (key === 'kube') loadAudit();
    });
    for (const b of T.$$('[data-copy]')) {
      b.addEventListener('click', (e) => T.copy($('#' + b.dataset.copy).textContent, e.currentTarget));
    }

    function row(label, ...value) {
      return [el('dt', {}, label), el('dd', {}, ...value)];
    }

    /** Deleted meanwhile (another tab, the CLI): say so and offer nothing to do. */
    function showDeleted() {
      for (const b of ['#d-test', '#d-edit', '#d-delete']) $(b).hidden = true;
      $('#d-status').replaceWith(el('span', { id: 'd-status', class: 'badge badge-unknown' }, 'DELETED'));
      $('.tabs').hidden = true;
      errorBox.replaceChildren('The connector “' + id + '” was deleted (or never existed): it can no longer be tested or edited. ',
        el('a', { href: T.uiBase + '/connectors' }, 'Go to the connectors'));
      errorBox.hidden = false;
    }

    /** The newest stored result (the background test's, or the last one run here). */
    let latest = null;
    const TRIGGERS = { api: 'a test run on request', change: 'the test after the last change', schedule: 'the periodic re-test' };
    async function loadLatest() {
      const r = await T.api('GET', path + '/test-history?limit=1');
      const items = r.ok ? (r.data.items || []) : [];
      latest = items[0] || null;
      return latest;
    }
    function showLatest(pending) {
      const report = $('#d-report');
      if (report.dataset.fresh) return; // a test run on this page is showing
      if (!latest || !latest.report) {
        report.replaceChildren(el('p', { class: 'muted' }, pending
          ? 'The manager is testing this connector in the background; its result appears here and in Overview. Press Test connection to run one now.'
          : 'No connection test has run yet. Press Test connection to run one.'));
        return;
      }
      T.renderReport(report, Object.assign({ delegateId: latest.delegateId, delegateName: latest.delegateName }, latest.report));
      report.prepend(el('p', { class: 'muted small', id: 'd-report-stored' },
        'The latest stored result, from ' + (TRIGGERS[latest.trigger] || latest.trigger) + '. Press Test connection to run a new test.'));
    }

    async function load() {
      const [r] = await Promise.all([T.api('GET', path), loadLatest()]);
      if (!r.ok) {
        if (r.status === 404) showDeleted();
        else T.showFormError(errorBox, r.error.message);
        return null;
      }
      const c = r.data.connector;
      const st = r.data.status || {};
      document.title = c.name + ' · tether';
      $('#d-name').textContent = c.name;
      $('#d-name').title = c.name;
      $('#d-status').replaceWith(Object.assign(T.badge(st.status), { id: 'd-status' }));
      const d = T.describeCredential(c);
      $('#d-cred').textContent = d.kind + (d.auth ? ' · ' + d.auth : '');
      const cred = c.spec.credential;
      const refs = [];
      if (cred.type === 'ManualConfig') {
        for (const [k, v] of Object.entries(cred.spec.auth.spec || {})) {
          if (k.endsWith('Ref')) refs.push(el('div', {}, el('span', { class: 'muted' }, k + ': '), el('code', {}, v)));
          else refs.push(el('div', {}, el('span', { class: 'muted' }, k + ': '), Array.isArray(v) ? v.join(', ') : String(v)));
        }
      }
      const sel = c.spec.delegateSelectors || [];
      $('#d-summary').replaceChildren(
        ...row('Status', T.badge(st.status), st.errorSummary ? el('p', { class: 'diagnosis' }, T.inlineCode(st.errorSummary)) : null),
        ...row('Last tested', T.time(st.testedAt), st.testedAt ? el('span', { class: 'muted' }, ' (' + T.when(st.testedAt) + ')') : null),
        ...row('Last connected', T.time(st.lastConnectedAt)),
        ...(st.delegateId ? row('Tested by delegate', T.delegateRef(latest && latest.delegateId === st.delegateId ? latest.delegateName : null, st.delegateId)) : []),
        ...row('Name', c.name),
        ...row('Id', el('code', {}, c.identifier)),
        ...(c.description ? row('Description', c.description) : []),
        ...(Object.keys(c.tags || {}).length ? row('Tags', Object.entries(c.tags).map(([k, v]) => el('span', { class: 'tag' }, v ? k + ':' + v : k))) : []),
        ...row('Credentials', d.kind === 'Master URL' ? 'Specified master URL and credentials' : 'Credentials of the delegate that runs the task'),
        ...(d.url ? row('Master URL', el('code', {}, d.url)) : []),
        ...(d.auth ? row('Authentication', d.auth, ...refs) : []),
        ...row('Delegates', sel.length ? ['Only delegates with all of: ', ...sel.map((s) => el('span', { class: 'tag' }, s))] : 'Any available delegate'),
        ...row('Created', T.when(r.data.createdAt)),
        ...row('Last modified', T.when(r.data.lastModifiedAt)));
      showLatest(st.status === 'PENDING');
      const mode = (c.spec.proxy && c.spec.proxy.mode) || 'Connector';
      $('#d-kube-mode').textContent = 'Mode ' + mode + ': ' + (MODES[mode] || '');
      return r.data;
    }

    $('#d-test').addEventListener('click', async (e) => {
      const btn = e.currentTarget;
      btn.disabled = true;
      showTab('test');
      const report = $('#d-report');
      const stop = T.renderRunning(report);
      report.dataset.fresh = 'true';
      const r = await T.api('POST', path + '/test');
      stop();
      btn.disabled = false;
      if (r.ok) T.renderReport(report, r.data);
      else if (r.status === 404) { showDeleted(); return; }
      else T.renderReportError(report, r.error);
      historyLoaded = false;
      load();
    });

    // History (GET .../test-history).
    async function loadHistory() {
      historyLoaded = true;
      const tbody = $('#d-history-body');
      const r = await T.api('GET', path + '/test-history?limit=50');
      if (!r.ok) {
        tbody.replaceChildren(el('tr', {}, el('td', { colspan: '7', class: 'muted' }, 'The history could not be read: ' + r.error.message)));
        return;
      }
      const items = Array.isArray(r.data) ? r.data : (r.data.items || []);
      if (!items.length) {
        tbody.replaceChildren(el('tr', {}, el('td', { colspan: '7', class: 'muted' }, 'No connection test yet. Press Test connection.')));
        return;
      }
      tbody.replaceChildren(...items.map((h) => {
        const rep = h.report || {};
        return el('tr', {},
          el('td', {}, T.time(h.testedAt || rep.testedAt)),
          el('td', {}, T.badge(h.status || rep.status)),
          el('td', {}, T.duration(h.durationMs !== undefined ? h.durationMs : rep.durationMs)),
          el('td', {}, h.trigger || ''),
          el('td', {}, h.delegateId ? T.delegateRef(h.delegateName, h.delegateId) : el('span', { class: 'muted' }, '—')),
          el('td', { class: 'small' }, rep.errorSummary ? T.inlineCode(rep.errorSummary) : (String(h.status || rep.status).toUpperCase() === 'SUCCESS' ? 'Connected' : '')),
          el('td', {}, h.report ? el('button', {
            type: 'button', class: 'small',
            onclick: () => { T.renderReport($('#d-history-report'), Object.assign({ delegateId: h.delegateId, delegateName: h.delegateName }, rep)); $('#d-history-report').scrollIntoView({ block: 'nearest' }); },
          }, 'View report') : null));
      }));
    }

    // Builds (GET .../builds; a build's log from its task events, followed
    // live while it runs).
    let logSource = null;
    async function loadBuilds() {
      const tbody = $('#d-builds-body');
      const r = await T.api('GET', path + '/builds');
      if (!r.ok) {
        tbody.replaceChildren(el('tr', {}, el('td', { colspan: '7', class: 'muted' }, 'The builds could not be read: ' + r.error.message)));
        return;
      }
      const items = r.data.items || [];
      if (!items.length) {
        tbody.replaceChildren(el('tr', {}, el('td', { colspan: '7', class: 'muted' }, 'No build yet. Run one with tether build run --connector ' + id + '.')));
        return;
      }
      tbody.replaceChildren(...items.map((b) => {
        const status = b.outcome || (b.state === 'assigned' ? 'running' : b.state);
        return el('tr', { 'data-task': b.taskId },
          el('td', {}, T.time(b.createdAt)),
          el('td', {}, T.badge(status)),
          el('td', {}, T.duration(b.durationMs)),
          el('td', {}, b.exitCode === null || b.exitCode === undefined ? el('span', { class: 'muted' }, '—') : String(b.exitCode)),
          el('td', {}, el('code', {}, b.image || '')),
          el('td', { class: 'small' }, b.summary ? T.inlineCode(b.summary) : ''),
          el('td', {}, el('button', { type: 'button', class: 'small', onclick: () => showLog(b.taskId) }, 'View log')));
      }));
    }
    // The task's events, live (T.followTask): every event so far, then each
    // as the delegate sends it, until the end.
    function showLog(taskId) {
      const out = $('#d-build-log');
      if (logSource) logSource.close();
      out.hidden = false;
      out.textContent = '';
      out.dataset.task = taskId;
      out.dataset.state = 'following';
      const add = (text) => { out.append(text + '\n'); out.scrollTop = out.scrollHeight; };
      const follow = T.followTask(taskId, (e) => {
        if (e.kind === 'log') add(e.message);
        else if (e.kind) add('# ' + e.kind + ': ' + e.message);
      });
      logSource = follow;
      follow.then((end) => {
        if (logSource !== follow) return;
        logSource = null;
        if (end.streamFailed) {
          out.dataset.state = 'failed';
          add('# the log could not be read; reload the page to try again');
          return;
        }
        out.dataset.state = 'ended';
        loadBuilds();
      });
    }

    // Kubernetes API: the mode, and the recent audit entries (GET .../audit, admins only).
    const MODES = {
      Connector: 'Requests run as the connector\'s own account. Impersonate-* headers (kubectl --as) are refused.',
      Impersonate: 'Requests run as tether:<token name> with groups tether:authenticated and tether:project:… so the cluster\'s RBAC decides per caller. Impersonate-* headers (kubectl --as) are refused.',
    };
    async function loadAudit() {
      const tbody = $('#d-audit-body');
      const cols = 9;
      const note = (text) => tbody.replaceChildren(el('tr', {}, el('td', { colspan: String(cols), class: 'muted' }, text)));
      const r = await T.api('GET', '/audit?connector=' + T.enc(id) + '&limit=25');
      if (!r.ok) {
        note(r.status === 403
          ? 'Only admins of this scope see the audit log (tether audit list --connector ' + id + ').'
          : 'The audit log could not be read: ' + r.error.message);
        return;
      }
      const items = r.data.items || [];
      if (!items.length) { note('No request has gone through this connector yet.'); return; }
      tbody.replaceChildren(...items.map((a) => el('tr', {},
        el('td', {}, T.time(a.startedAt)),
        el('td', {}, a.caller),
        el('td', {}, a.session ? a.verb + ' (' + a.session + ' session)' : a.verb),
        el('td', {}, el('code', {}, a.resource || a.path)),
        el('td', {}, [a.namespace, a.name, a.container, a.program, a.ports && 'ports ' + a.ports].filter(Boolean).join(' / ') || el('span', { class: 'muted' }, '—')),
        el('td', {}, String(a.status), a.error ? el('div', { class: 'small diagnosis' }, a.error) : null),
        el('td', {}, T.duration(a.durationMs)),
        el('td', {}, a.bytesIn + ' / ' + a.bytesOut),
        el('td', {}, a.delegateId ? T.delegateRef(null, a.delegateId) : el('span', { class: 'muted' }, '—')))));
    }

    // YAML view and edit.
    const yamlArea = $('#d-yaml');
    async function loadYaml() {
      const r = await T.api('GET', path, { accept: 'application/yaml' });
      if (!r.ok) { T.setFieldError(yamlArea.closest('[data-field]'), r.error.message); return; }
      // The API answers with the connector plus its status; edit only the document.
      yamlText = toDocument(r.data);
      yamlArea.value = yamlText;
    }
    /** `connector:` envelope from the response's YAML (drop createdAt/status...). */
    function toDocument(text) {
      const lines = String(text).split('\n');
      const out = [];
      let inConnector = false;
      for (const line of lines) {
        if (/^connector:\s*$/.test(line)) { inConnector = true; out.push(line); continue; }
        if (/^\S/.test(line)) inConnector = false;
        if (inConnector) out.push(line);
      }
      return out.join('\n').replace(/\s+$/, '') + '\n';
    }
    $('#d-yaml-save').addEventListener('click', async (e) => {
      const btn = e.currentTarget;
      const field = yamlArea.closest('[data-field]');
      T.clearFieldError(field);
      $('#d-yaml-errors').replaceChildren();
      btn.disabled = true;
      const r = await T.api('PUT', path, { yaml: yamlArea.value });
      btn.disabled = false;
      if (!r.ok) {
        T.setFieldError(field, r.error.message);
        const list = (r.error.errors || []).filter((x) => x.message !== r.error.message || (r.error.errors || []).length > 1);
        $('#d-yaml-errors').replaceChildren(...list.map((x) => el('li', {}, el('code', {}, x.field), ': ', x.message)));
        yamlArea.focus();
        return;
      }
      T.toast('Saved. Run a connection test to check the new settings.');
      yamlText = null;
      await loadYaml();
      load();
    });
    $('#d-yaml-reset').addEventListener('click', () => {
      if (yamlText !== null) yamlArea.value = yamlText;
      T.clearFieldError(yamlArea.closest('[data-field]'));
      $('#d-yaml-errors').replaceChildren();
    });

    // Delete, with the API's explanation when it refuses (409).
    const dialog = $('#d-delete-dialog');
    $('#d-delete').addEventListener('click', () => {
      $('#d-delete-error').hidden = true;
      dialog.showModal();
      $('#d-delete-cancel').focus();
    });
    $('#d-delete-cancel').addEventListener('click', () => dialog.close());
    $('#d-delete-confirm').addEventListener('click', async (e) => {
      const btn = e.currentTarget;
      btn.disabled = true;
      const r = await T.api('DELETE', path);
      btn.disabled = false;
      if (r.ok || r.status === 404) { location.assign(T.uiBase + '/connectors'); return; }
      T.showFormError($('#d-delete-error'), (r.status === 409 ? 'Not deleted: ' : '') + r.error.message);
    });

    load();
  };
})();
