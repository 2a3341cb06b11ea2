// Delegates (status, tags, version, heartbeat, tasks; their tokens) and
// secrets (create, list, delete; values never shown after creation).
'use strict';
(function () {
  const T = window.Tether;
  const { el, $ } = T;

  T.pages.delegates = function () {
    const tbody = $('#delegates-body');
    async function loadDelegates() {
      const r = await T.api('GET', '/delegates');
      if (!r.ok) { T.showFormError($('#dl-error'), r.error.message); return; }
      $('#dl-error').hidden = true;
      if (!r.data.length) {
        tbody.replaceChildren(el('tr', {}, el('td', { colspan: '8', class: 'muted' }, 'No delegate has registered in this scope yet. Install one below.')));
        return;
      }
      tbody.replaceChildren(...r.data.map((d) => el('tr', { 'data-name': d.name },
        el('td', { class: 'name' }, el('strong', { title: d.name }, d.name), el('div', { class: 'muted small' }, el('code', { class: 'id', title: d.id }, d.id))),
        el('td', {}, d.connected
          ? el('span', { class: 'badge badge-success' }, d.draining ? 'DRAINING' : 'CONNECTED')
          : el('span', { class: 'badge badge-unknown' }, 'DISCONNECTED')),
        el('td', {}, d.tags.length ? d.tags.map((t) => el('span', { class: 'tag' }, t)) : el('span', { class: 'muted' }, 'none')),
        el('td', {}, d.version),
        el('td', {}, d.hostname, d.inCluster ? el('div', { class: 'muted small' }, 'in a cluster') : null),
        el('td', {}, T.time(d.lastHeartbeat)),
        el('td', {}, d.runningTasks + ' of ' + d.capacity),
        el('td', {}, d.connected ? T.time(d.connectedAt) : el('span', { class: 'muted' }, '—')))));
    }

    async function loadTokens() {
      const body = $('#tokens-body');
      const r = await T.api('GET', '/delegate-tokens');
      if (!r.ok) {
        body.replaceChildren(el('tr', {}, el('td', { colspan: '5', class: 'muted' }, r.error.message)));
        return;
      }
      if (!r.data.length) {
        body.replaceChildren(el('tr', {}, el('td', { colspan: '5', class: 'muted' }, 'No delegate tokens yet.')));
        return;
      }
      body.replaceChildren(...r.data.map((t) => el('tr', {},
        el('td', { class: 'name' }, el('span', { title: t.name }, t.name)),
        el('td', {}, el('code', { class: 'id', title: t.id }, t.id)),
        el('td', {}, T.time(t.createdAt)),
        el('td', {}, t.revokedAt ? el('span', { class: 'badge badge-unknown' }, 'REVOKED') : el('span', { class: 'badge badge-success' }, 'ACTIVE')),
        el('td', {}, t.revokedAt ? null : el('button', {
          type: 'button', class: 'danger small', 'aria-label': 'Revoke token ' + t.name,
          onclick: async (e) => {
            if (!window.confirm('Revoke the token “' + t.name + '”? Delegates using it disconnect at once.')) return;
            const btn = e.currentTarget;
            btn.disabled = true;
            const rr = await T.api('DELETE', '/api/v1/delegate-tokens/' + T.enc(t.id), { absolute: true });
            if (!rr.ok) { btn.disabled = false; T.showFormError($('#dt-error'), rr.error.message); return; }
            T.toast('Token “' + t.name + '” revoked.');
            loadTokens();
            loadDelegates();
          },
        }, 'Revoke')))));
    }

    $('#token-form').addEventListener('submit', async (e) => {
      e.preventDefault();
      const form = e.currentTarget;
      T.clearErrors(form);
      $('#dt-error').hidden = true;
      const name = $('#dt-name');
      if (!name.value.trim()) { T.setFieldError(name.closest('[data-field]'), 'give the token a name, e.g. the delegate it is for'); name.focus(); return; }
      const r = await T.api('POST', '/delegate-tokens', { json: { name: name.value.trim() } });
      if (!r.ok) { T.showErrors(form, r.error, $('#dt-error')); return; }
      $('#dt-value').textContent = r.data.value;
      $('#dt-created').hidden = false;
      name.value = '';
      loadTokens();
    });
    $('#dt-copy').addEventListener('click', (e) => T.copy($('#dt-value').textContent, e.currentTarget));

    T.initInstall($('[data-install="dp"]'), { onConnected: () => { loadDelegates(); loadTokens(); } });
    loadDelegates();
    loadTokens();
    // Heartbeats move on their own: refresh the table every 10 s while the page is visible.
    setInterval(() => { if (!document.hidden) loadDelegates(); }, 10000);
  };

  T.pages.secrets = function () {
    const limit = 20;
    let page = 0;
    const form = $('#secret-form');
    const name = $('#s-name');
    const identifier = $('#s-identifier');
    let idEdited = false;
    name.addEventListener('input', () => {
      if (!idEdited) identifier.value = name.value.trim() ? T.deriveIdentifier(name.value, 'secret') : '';
      const msg = name.value ? T.validateName(name.value) : null;
      if (msg) T.setFieldError(name.closest('[data-field]'), msg); else T.clearFieldError(name.closest('[data-field]'));
    });
    identifier.addEventListener('input', () => {
      idEdited = identifier.value !== '';
      const msg = identifier.value ? T.validateIdentifier(identifier.value) : null;
      if (msg) T.setFieldError(identifier.closest('[data-field]'), msg); else T.clearFieldError(identifier.closest('[data-field]'));
    });
    const refPrefix = T.coveringScopes()[0].prefix;

    async function load() {
      const q = new URLSearchParams({ page: String(page), limit: String(limit) });
      const s = $('#sf-search').value.trim();
      if (s) q.set('search', s);
      const r = await T.api('GET', '/secrets?' + q);
      const tbody = $('#secrets-body');
      if (!r.ok) { T.showFormError($('#sl-error'), r.error.message); return; }
      $('#sl-error').hidden = true;
      const { items, total } = r.data;
      if (!items.length) {
        tbody.replaceChildren(el('tr', {}, el('td', { colspan: '6', class: 'muted' }, s ? 'No secret matches.' : 'No secrets in this scope yet.')));
      } else {
        tbody.replaceChildren(...items.map((x) => el('tr', { 'data-id': x.identifier },
          el('td', { class: 'name' }, el('strong', { title: x.name }, x.name)),
          el('td', {}, el('code', { class: 'id', title: refPrefix + x.identifier }, refPrefix + x.identifier)),
          el('td', { class: 'muted' }, x.description || ''),
          el('td', { class: 'secret-use' }, ...useSummary(x)),
          el('td', {}, T.time(x.lastModifiedAt)),
          el('td', { class: 'actions' },
            el('button', { type: 'button', class: 'secondary small', 'aria-label': 'Who may use secret ' + x.name, onclick: () => editAccess(x) }, 'Access'),
            ' ',
            el('button', { type: 'button', class: 'danger small', 'aria-label': 'Delete secret ' + x.name, onclick: () => askDelete(x) }, 'Delete')))));
      }
      const from = total ? page * limit + 1 : 0;
      $('#s-page-info').textContent = total ? from + '–' + Math.min(total, (page + 1) * limit) + ' of ' + total : '';
      $('#s-prev').disabled = page === 0;
      $('#s-next').disabled = (page + 1) * limit >= total;
    }

    // "org/a, project/a/b" -> ['org/a', 'project/a/b']
    const words = (v) => v.split(/[\s,]+/).filter(Boolean);
    function useSummary(x) {
      const grants = x.usableFrom || [];
      const hosts = x.allowedHosts || [];
      return [
        el('div', {}, grants.length
          ? ['this scope and ', ...grants.flatMap((g, i) => [i ? ', ' : '', el('code', {}, g)])]
          : el('span', { class: 'muted' }, 'this scope only')),
        el('div', { class: 'muted' }, hosts.length
          ? ['sent only to ', ...hosts.flatMap((h, i) => [i ? ', ' : '', el('code', {}, h)])]
          : 'sent to any host'),
      ];
    }

    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      T.clearErrors(form);
      const value = $('#s-value');
      const body = { name: name.value.trim(), identifier: identifier.value.trim(), value: value.value };
      if ($('#s-description').value.trim()) body.description = $('#s-description').value.trim();
      const grants = words($('#s-usable-from').value);
      if (grants.length) body.usableFrom = grants;
      const hosts = words($('#s-allowed-hosts').value);
      if (hosts.length) body.allowedHosts = hosts;
      let bad = false;
      const nm = T.validateName(body.name);
      if (nm) { T.setFieldError(name.closest('[data-field]'), nm); bad = true; }
      const im = T.validateIdentifier(body.identifier);
      if (im) { T.setFieldError(identifier.closest('[data-field]'), im); bad = true; }
      if (!body.value) { T.setFieldError(value.closest('[data-field]'), 'enter the value to store'); bad = true; }
      if (bad) { const f = $('#secret-form [aria-invalid="true"]'); if (f) f.focus(); return; }
      const r = await T.api('POST', '/secrets', { json: body });
      if (!r.ok) { T.showErrors(form, r.error, $('#s-error')); return; }
      form.reset();
      idEdited = false;
      T.toast('Secret “' + r.data.name + '” created as ' + refPrefix + r.data.identifier + '. Its value will not be shown again.');
      page = 0;
      load();
      name.focus();
    });

    const accessDialog = $('#s-access-dialog');
    const accessForm = $('#s-access-form');
    let editing = null;
    function editAccess(x) {
      editing = x;
      T.clearErrors(accessForm);
      $('#s-access-id').textContent = refPrefix + x.identifier;
      $('#sa-usable-from').value = (x.usableFrom || []).join(', ');
      $('#sa-allowed-hosts').value = (x.allowedHosts || []).join(', ');
      accessDialog.showModal();
      $('#sa-usable-from').focus();
    }
    $('#sa-cancel').addEventListener('click', () => accessDialog.close());
    accessForm.addEventListener('submit', async (e) => {
      e.preventDefault();
      T.clearErrors(accessForm);
      // Name, description and tags as they are; the value is not sent, so it stays.
      const body = {
        name: editing.name,
        tags: editing.tags || {},
        usableFrom: words($('#sa-usable-from').value),
        allowedHosts: words($('#sa-allowed-hosts').value),
      };
      if (editing.description) body.description = editing.description;
      const btn = $('#sa-save');
      btn.disabled = true;
      const r = await T.api('PUT', '/secrets/' + T.enc(editing.identifier), { json: body });
      btn.disabled = false;
      if (!r.ok) { T.showErrors(accessForm, r.error, $('#sa-error')); return; }
      accessDialog.close();
      T.toast('Who may use “' + r.data.name + '” saved.');
      load();
    });

    const dialog = $('#s-delete-dialog');
    let deleting = null;
    function askDelete(x) {
      deleting = x;
      $('#s-delete-id').textContent = x.identifier;
      $('#s-delete-error').hidden = true;
      dialog.showModal();
      $('#s-delete-cancel').focus();
    }
    $('#s-delete-cancel').addEventListener('click', () => dialog.close());
    $('#s-delete-confirm').addEventListener('click', async (e) => {
      const btn = e.currentTarget;
      btn.disabled = true;
      const r = await T.api('DELETE', '/secrets/' + T.enc(deleting.identifier));
      btn.disabled = false;
      if (!r.ok) { T.showFormError($('#s-delete-error'), (r.status === 409 ? 'Not deleted: ' : '') + r.error.message); return; }
      dialog.close();
      T.toast('Secret “' + deleting.name + '” deleted.');
      load();
    });

    $('#sf-search').addEventListener('input', T.debounce(() => { page = 0; load(); }, 250));
    $('#secret-filters').addEventListener('submit', (e) => { e.preventDefault(); page = 0; load(); });
    $('#s-prev').addEventListener('click', () => { page = Math.max(0, page - 1); load(); });
    $('#s-next').addEventListener('click', () => { page += 1; load(); });
    load();
  };
})();
