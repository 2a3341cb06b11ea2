// Orgs and projects: list and create them (the API decides who may), each
// project leading to its Project Setup.
'use strict';
(function () {
  const T = window.Tether;
  const { el, $ } = T;

  /**
   * A "new org / new project" form: the id follows the name until edited.
   * `post(body)` sends it; `done(created)` runs after a success.
   */
  function containerForm(p, fallback, post, done) {
    const form = $('#' + p + '-form');
    const name = $('#' + p + '-name');
    const identifier = $('#' + p + '-identifier');
    const description = $('#' + p + '-description');
    const field = (i) => i.closest('[data-field]');
    let idEdited = false;
    name.addEventListener('input', () => {
      if (!idEdited) identifier.value = name.value.trim() ? T.deriveIdentifier(name.value, fallback) : '';
      const msg = name.value ? T.validateName(name.value) : null;
      if (msg) T.setFieldError(field(name), msg); else T.clearFieldError(field(name));
    });
    identifier.addEventListener('input', () => {
      idEdited = identifier.value !== '';
      const msg = identifier.value ? T.validateIdentifier(identifier.value) : null;
      if (msg) T.setFieldError(field(identifier), msg); else T.clearFieldError(field(identifier));
    });
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      T.clearErrors(form);
      const body = { name: name.value.trim(), identifier: identifier.value.trim() };
      if (description.value.trim()) body.description = description.value.trim();
      let bad = false;
      const nm = T.validateName(body.name);
      if (nm) { T.setFieldError(field(name), nm); bad = true; }
      const im = T.validateIdentifier(body.identifier);
      if (im) { T.setFieldError(field(identifier), im); bad = true; }
      if (bad) { const f = form.querySelector('[aria-invalid="true"]'); if (f) f.focus(); return; }
      const r = await post(body);
      if (!r.ok) { T.showErrors(form, r.error, $('#' + p + '-error')); return; }
      form.reset();
      idEdited = false;
      done(r.data);
      name.focus();
    });
  }

  function emptyRow(cols, text) {
    return el('tr', {}, el('td', { colspan: String(cols), class: 'muted' }, text));
  }

  T.pages.orgs = function () {
    const tbody = $('#orgs-body');
    async function load() {
      const r = await T.api('GET', '/api/v1/orgs', { absolute: true });
      if (!r.ok) { T.showFormError($('#ol-error'), r.error.message); return; }
      if (!r.data.length) { tbody.replaceChildren(emptyRow(4, 'No orgs yet: create the first one.')); return; }
      tbody.replaceChildren(...r.data.map((o) => el('tr', { 'data-id': o.identifier },
        el('td', { class: 'name' }, el('a', { href: '/orgs/' + T.enc(o.identifier) + '/projects', title: o.name }, o.name)),
        el('td', {}, el('code', { class: 'id', title: o.identifier }, o.identifier)),
        el('td', { class: 'muted' }, o.description || ''),
        el('td', {}, T.time(o.createdAt)))));
    }
    containerForm('org', 'org',
      (body) => T.api('POST', '/api/v1/orgs', { absolute: true, json: body }),
      (o) => { T.toast('Org “' + o.name + '” created. Open it to add projects.'); load(); });
    load();
  };

  T.pages.projects = function () {
    const tbody = $('#projects-body');
    const base = '/api/v1/orgs/' + T.enc(T.org) + '/projects';
    async function load() {
      const r = await T.api('GET', base, { absolute: true });
      if (!r.ok) { T.showFormError($('#pl-error'), r.error.message); return; }
      if (!r.data.length) { tbody.replaceChildren(emptyRow(5, 'No projects in this org yet: create the first one.')); return; }
      tbody.replaceChildren(...r.data.map((p) => {
        const ui = '/orgs/' + T.enc(T.org) + '/projects/' + T.enc(p.identifier);
        return el('tr', { 'data-id': p.identifier },
          el('td', { class: 'name' }, el('a', { href: ui + '/setup', title: p.name }, p.name)),
          el('td', {}, el('code', { class: 'id', title: p.identifier }, p.identifier)),
          el('td', { class: 'muted' }, p.description || ''),
          el('td', {}, T.time(p.createdAt)),
          el('td', {}, el('a', { class: 'project-setup', href: ui + '/setup' }, 'Project Setup'), ' · ',
            el('a', { href: ui + '/connectors' }, 'Connectors')));
      }));
    }
    containerForm('project', 'project',
      (body) => T.api('POST', base, { absolute: true, json: body }),
      (p) => { T.toast('Project “' + p.name + '” created. Its Project Setup leads to its connectors.'); load(); });
    load();
  };

  T.pages.setup = function () {};
})();
