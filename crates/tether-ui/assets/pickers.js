// Secret pickers: choose a secret of this scope or above (`x`, `org.x`,
// `account.x`), or create one in place without leaving the form.
'use strict';
(function () {
  const T = window.Tether;
  const { el, $, $$ } = T;

  /** Secrets a connector here may reference, grouped by scope. */
  T.loadSecretGroups = async function () {
    const groups = [];
    for (const s of T.coveringScopes()) {
      const r = await T.api('GET', s.api + '/secrets?limit=1000', { absolute: true });
      if (r.ok) groups.push({ label: s.label, prefix: s.prefix, items: r.data.items });
    }
    return groups;
  };

  function fill(select, groups) {
    const keep = select.value;
    const required = select.closest('[data-required]')?.dataset.required === 'true';
    const opts = [el('option', { value: '' }, required ? 'Select a secret…' : 'None')];
    let found = !keep;
    for (const g of groups) {
      if (!g.items.length) continue;
      opts.push(el('optgroup', { label: g.label }, g.items.map((s) => {
        const ref = g.prefix + s.identifier;
        if (ref === keep) found = true;
        return el('option', { value: ref }, s.name + ' (' + ref + ')');
      })));
    }
    if (!found) opts.push(el('option', { value: keep }, keep + ' — not visible to you or missing'));
    select.replaceChildren(...opts);
    select.value = keep;
  }

  T.fillPickers = function (root, groups) {
    for (const s of $$('select.secret-picker', root)) fill(s, groups);
  };

  /** Wires every picker under `root`. `afterCreate()` reloads groups for all pickers. */
  T.initPickers = function (root) {
    let groups = [];
    const reload = async () => {
      groups = await T.loadSecretGroups();
      T.fillPickers(root, groups);
    };
    for (const field of $$('.secret-field', root)) {
      const select = $('select.secret-picker', field);
      const open = $('.create-secret', field);
      const panel = $('.inline-secret', field);
      const name = $('.ns-name', panel);
      const idOut = $('.ns-id', panel);
      const value = $('.ns-value', panel);
      const formError = $('.form-error', panel);
      const close = () => {
        panel.hidden = true;
        open.setAttribute('aria-expanded', 'false');
        T.clearErrors(panel);
      };
      open.addEventListener('click', () => {
        const show = panel.hidden;
        if (!show) { close(); return; }
        panel.hidden = false;
        open.setAttribute('aria-expanded', 'true');
        const label = $('label', field).firstChild.textContent.trim();
        if (!name.value) name.value = label;
        idOut.textContent = T.deriveIdentifier(name.value, 'secret');
        name.focus();
        name.select();
      });
      name.addEventListener('input', () => {
        idOut.textContent = T.deriveIdentifier(name.value, 'secret');
        const msg = T.validateName(name.value);
        const f = name.closest('[data-field]');
        if (msg && name.value) T.setFieldError(f, msg); else T.clearFieldError(f);
      });
      $('.ns-cancel', panel).addEventListener('click', () => { close(); open.focus(); });
      const create = async () => {
        T.clearErrors(panel);
        const payload = { name: name.value.trim(), identifier: T.deriveIdentifier(name.value, 'secret'), value: value.value };
        const nameMsg = T.validateName(payload.name);
        if (nameMsg) { T.setFieldError(name.closest('[data-field]'), nameMsg); name.focus(); return; }
        if (!payload.value) { T.setFieldError(value.closest('[data-field]'), 'enter the secret value'); value.focus(); return; }
        const btn = $('.ns-create', panel);
        btn.disabled = true;
        const r = await T.api('POST', '/secrets', { json: payload });
        btn.disabled = false;
        if (!r.ok) { T.showErrors(panel, r.error, formError); return; }
        value.value = '';
        name.value = '';
        close();
        await reload();
        select.value = r.data.identifier;
        select.dispatchEvent(new Event('change', { bubbles: true }));
        T.clearFieldError(field);
        T.toast('Secret “' + r.data.name + '” created. Its value will not be shown again.');
        select.focus();
      };
      $('.ns-create', panel).addEventListener('click', create);
      panel.addEventListener('keydown', (e) => {
        if (e.key === 'Escape') { e.preventDefault(); close(); open.focus(); }
        if (e.key === 'Enter' && e.target === name) { e.preventDefault(); value.focus(); }
      });
    }
    return reload;
  };
})();
