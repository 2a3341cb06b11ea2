// "Install new delegate": check the request, create a delegate token, show the
// manifest that installs a delegate with it, then wait live for that delegate
// to connect.
'use strict';
(function () {
  const T = window.Tether;
  const { $ } = T;
  const DNS_LABEL = /^[a-z0-9]([a-z0-9-]*[a-z0-9])?$/;

  /**
   * root: the [data-install] element. opts.tags(): tags to preset;
   * opts.onConnected(delegate): called once the delegate is connected.
   */
  T.initInstall = function (root, opts) {
    opts = opts || {};
    const p = root.dataset.install;
    const open = $('#' + p + '-open', root);
    const panel = $('#' + p + '-panel', root);
    const name = $('.in-name', panel);
    const namespace = $('.in-namespace', panel);
    const tags = $('.in-tags', panel);
    const permissions = $('.in-permissions', panel);
    const manager = $('.in-manager', panel);
    const result = $('.in-result', panel);
    const status = $('.in-status', panel);
    const formError = $('.form-error', panel);
    const loopbackWarning = $('.in-manager-warning', panel);
    let poll = null;

    /** A pod cannot dial a loopback address: say so while it is in the field. */
    function checkManager() {
      let host = '';
      try { host = new URL(manager.value.trim()).hostname.toLowerCase(); } catch (_) { host = ''; }
      host = host.replace(/^\[|\]$/g, '');
      const loopback = host === 'localhost' || host.endsWith('.localhost') || /^127\./.test(host) ||
        host === '::1' || host === '0.0.0.0' || host === '::' || host === '0:0:0:0:0:0:0:1';
      loopbackWarning.hidden = !loopback;
    }
    manager.addEventListener('input', () => { T.clearFieldError(manager.closest('[data-field]')); checkManager(); });
    namespace.addEventListener('input', () => T.clearFieldError(namespace.closest('[data-field]')));
    const stop = () => { if (poll) { clearTimeout(poll); poll = null; } };

    open.addEventListener('click', () => {
      if (!panel.hidden) { panel.hidden = true; open.setAttribute('aria-expanded', 'false'); stop(); return; }
      panel.hidden = false;
      open.setAttribute('aria-expanded', 'true');
      if (!manager.value) manager.value = location.origin;
      checkManager();
      if (opts.tags) tags.value = opts.tags().join(', ');
      if (!name.value) name.value = 'delegate-' + Math.random().toString(36).slice(2, 6);
      name.focus();
      name.select();
    });
    $('.in-close', panel).addEventListener('click', () => {
      panel.hidden = true;
      open.setAttribute('aria-expanded', 'false');
      stop();
      open.focus();
    });
    $('.in-copy', panel).addEventListener('click', (e) => T.copy($('.in-yaml', panel).textContent, e.currentTarget));

    async function waitFor(delegateName, started) {
      // No event tells the browser a delegate connected: ask the API every second.
      const r = await T.api('GET', '/delegates');
      const secs = Math.round((Date.now() - started) / 1000);
      const d = r.ok ? r.data.find((x) => x.name === delegateName) : null;
      if (d && d.connected) {
        status.classList.add('connected');
        status.replaceChildren('✓ Delegate “' + d.name + '” connected from ' + (d.hostname || 'its host') +
          ' (version ' + d.version + (d.tags.length ? ', tags ' + d.tags.join(', ') : '') + ').');
        poll = null;
        if (opts.onConnected) opts.onConnected(d);
        return;
      }
      status.classList.remove('connected');
      status.replaceChildren(T.el('span', { class: 'spinner', 'aria-hidden': 'true' }),
        'Waiting for delegate “' + delegateName + '” to connect… ' + secs + ' s (checking every second)');
      poll = setTimeout(() => waitFor(delegateName, started), 1000);
    }

    $('.in-generate', panel).addEventListener('click', async () => {
      T.clearErrors(panel);
      stop();
      const n = name.value.trim();
      if (!DNS_LABEL.test(n) || n.length > 47) {
        T.setFieldError(name.closest('[data-field]'), "lowercase letters, digits and '-', starting and ending with a letter or digit, at most 47 characters");
        name.focus();
        return;
      }
      const tagList = tags.value.split(',').map((t) => t.trim()).filter(Boolean);
      const btn = $('.in-generate', panel);
      btn.disabled = true;
      try {
        const request = { name: n, namespace: namespace.value.trim(), tags: tagList, permissions: permissions.value, managerUrl: manager.value.trim() };
        // Check the request first (no token: nothing is created), so that a
        // refused request leaves no unused delegate token behind.
        const check = await T.api('POST', '/ui/delegate-manifest', { absolute: true, json: request });
        if (!check.ok) { T.showErrors(panel, check.error, formError); return; }
        const tok = await T.api('POST', '/delegate-tokens', { json: { name: 'delegate ' + n } });
        if (!tok.ok) { T.showErrors(panel, tok.error, formError); return; }
        const m = await T.api('POST', '/ui/delegate-manifest', {
          absolute: true,
          json: Object.assign({ token: tok.data.value }, request),
        });
        if (!m.ok) { T.showErrors(panel, m.error, formError); return; }
        for (const f of panel.querySelectorAll('.in-file')) f.textContent = m.data.fileName;
        $('.in-yaml', panel).textContent = m.data.yaml;
        $('.in-docker', panel).textContent = m.data.docker;
        result.hidden = false;
        status.classList.remove('connected');
        waitFor(n, Date.now());
      } finally {
        btn.disabled = false;
      }
    });
    window.addEventListener('pagehide', stop);
  };
})();
