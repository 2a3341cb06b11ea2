// The New Kubernetes cluster connector wizard (also "Edit"): Overview ->
// Details -> Delegates -> Save and Continue -> Connection test.
'use strict';
(function () {
  const T = window.Tether;
  const { el, $, $$ } = T;
  const AUTH = 'spec.credential.spec.auth.spec';

  T.pages.wizard = function () {
    const editing = !!T.identifier;
    const state = { step: 1, reached: 1, idEdited: editing, savedId: editing ? T.identifier : null, original: null, selectors: [] };
    const body = $('.wizard-body');
    const steps = [1, 2, 3, 4].map((n) => $('#step-' + n));
    const stepButtons = $$('.stepper [data-goto]');
    const wizardError = $('#wizard-error');
    const name = $('#c-name');
    const identifier = $('#c-identifier');
    const description = $('#c-description');
    const tags = $('#c-tags');
    const field = (input) => input.closest('[data-field]');

    function go(n, focus) {
      state.step = n;
      state.reached = Math.max(state.reached, n);
      steps.forEach((s, i) => { s.hidden = i + 1 !== n; });
      for (const b of stepButtons) {
        const k = Number(b.dataset.goto);
        b.disabled = k > state.reached || (k === 4 && !state.savedId);
        if (k === n) b.setAttribute('aria-current', 'step'); else b.removeAttribute('aria-current');
        b.classList.toggle('done', k < n);
      }
      wizardError.hidden = true;
      if (focus !== false) {
        const h = $('h2', steps[n - 1]);
        h.tabIndex = -1;
        h.focus();
      }
      if (n === 3) refreshMatches();
    }
    stepButtons.forEach((b) => b.addEventListener('click', () => go(Number(b.dataset.goto))));
    $$('.back', body).forEach((b) => b.addEventListener('click', () => go(state.step - 1)));

    // 1. Overview -------------------------------------------------------------
    let checkSeq = 0;
    async function identifierFree(id) {
      const r = await T.api('GET', '/connectors/' + T.enc(id));
      if (r.ok) return { free: false, name: r.data.connector.name };
      return { free: r.status === 404 };
    }
    /** Taken ids get _2, _3, ... like the server's derivation. */
    const checkIdentifier = T.debounce(async () => {
      if (editing) return;
      const mine = ++checkSeq;
      let id = identifier.value;
      if (T.validateIdentifier(id)) return;
      let r = await identifierFree(id);
      if (!state.idEdited) {
        const base = id;
        for (let n = 2; !r.free && n < 50 && mine === checkSeq; n++) {
          id = base.slice(0, T.MAX_LEN - String(n).length - 1) + '_' + n;
          r = await identifierFree(id);
        }
        if (mine === checkSeq && r.free) identifier.value = id;
        return;
      }
      if (mine === checkSeq && !r.free) {
        T.setFieldError(field(identifier), "a connector with the id '" + id + "' already exists here" + (r.name ? ' (“' + r.name + '”)' : '') + '; choose another id');
      }
    }, 300);

    function validateName(live) {
      const msg = T.validateName(name.value);
      if (msg && (!live || name.value)) { T.setFieldError(field(name), msg); return false; }
      T.clearFieldError(field(name));
      return !msg;
    }
    function validateIdentifier() {
      const msg = T.validateIdentifier(identifier.value);
      if (msg) { T.setFieldError(field(identifier), msg); return false; }
      T.clearFieldError(field(identifier));
      return true;
    }
    name.addEventListener('input', () => {
      if (!state.idEdited) identifier.value = name.value.trim() ? T.deriveIdentifier(name.value, 'connector') : '';
      validateName(true);
      if (identifier.value) { validateIdentifier(); checkIdentifier(); }
    });
    identifier.addEventListener('input', () => {
      state.idEdited = identifier.value !== '' && identifier.value !== T.deriveIdentifier(name.value, 'connector');
      if (validateIdentifier()) checkIdentifier();
    });
    $('#step-1').addEventListener('submit', (e) => {
      e.preventDefault();
      const ok = [validateName(false), validateIdentifier()].every(Boolean);
      const taken = !!$('[data-field="identifier"] .field-error:not([hidden])');
      if (!ok || taken) {
        const bad = $('#step-1 [aria-invalid="true"]');
        if (bad) bad.focus();
        return;
      }
      go(2);
    });

    // 2. Details ----------------------------------------------------------------
    const credential = () => $('input[name="credential"]:checked').value;
    const authType = $('#c-auth-type');
    function syncCredential() {
      const manual = credential() === 'ManualConfig';
      $('#manual-fields').hidden = !manual;
      $('#inherit-fields').hidden = manual;
    }
    function syncAuth() {
      for (const g of $$('.auth-group')) g.hidden = g.dataset.auth !== authType.value;
    }
    function syncUsernameKind(prefix) {
      const kind = $('input[name="' + prefix + '-username-kind"]:checked').value;
      $('.' + prefix + '-username-text').hidden = kind !== 'text';
      $('.' + prefix + '-username-secret').hidden = kind !== 'secret';
    }
    $$('input[name="credential"]').forEach((r) => r.addEventListener('change', syncCredential));
    authType.addEventListener('change', syncAuth);
    for (const p of ['up', 'oidc']) {
      $$('input[name="' + p + '-username-kind"]').forEach((r) => r.addEventListener('change', () => syncUsernameKind(p)));
    }
    const reloadPickers = T.initPickers($('#step-2'));
    const pickersReady = reloadPickers();
    $('#step-2').addEventListener('change', (e) => {
      const f = e.target.closest('[data-field]');
      if (f && e.target.value) T.clearFieldError(f);
    });

    const v = (id) => $('#' + id).value.trim();
    const opt = (obj, key, value) => { if (value) obj[key] = value; };
    function visible(elm) {
      for (let p = elm; p && p !== body; p = p.parentElement) if (p.hidden && !p.classList.contains('step')) return false;
      return true;
    }
    function validateDetails() {
      T.clearErrors($('#step-2'));
      if (credential() !== 'ManualConfig') return true;
      let ok = true;
      if (!v('c-master-url')) {
        T.setFieldError(field($('#c-master-url')), 'enter the API server URL, e.g. https://10.0.0.1:6443 (`kubectl cluster-info` prints it)');
        ok = false;
      }
      for (const f of $$('.secret-field[data-required="true"]', $('#step-2'))) {
        if (!visible(f)) continue;
        if (!$('select', f).value) {
          T.setFieldError(f, 'select a secret, or create a new one');
          ok = false;
        }
      }
      for (const p of ['up', 'oidc']) {
        const text = $('.' + p + '-username-text');
        if (visible(text) && !v(p + '-username')) {
          T.setFieldError(field($('#' + p + '-username')), 'enter the username, or take it from a secret');
          ok = false;
        }
      }
      if (authType.value === 'OpenIdConnect' && !v('oidc-issuer')) {
        T.setFieldError(field($('#oidc-issuer')), 'enter the issuer URL');
        ok = false;
      }
      const required = {
        EKS: [['eks-region', 'enter the AWS region, e.g. eu-west-1'], ['eks-cluster', 'enter the EKS cluster name, as aws eks list-clusters prints it']],
        AKS: [['aks-tenant', 'enter the Entra ID tenant id']],
      }[authType.value] || [];
      for (const [id, msg] of required) {
        if (!v(id)) { T.setFieldError(field($('#' + id)), msg); ok = false; }
      }
      if (!ok) {
        const bad = $('#step-2 [aria-invalid="true"]');
        if (bad) bad.focus();
      }
      return ok;
    }
    $('#step-2').addEventListener('submit', (e) => {
      e.preventDefault();
      if (validateDetails()) go(3);
    });

    function authSpec() {
      const s = {};
      switch (authType.value) {
        case 'ServiceAccount':
          s.serviceAccountTokenRef = v('sa-token');
          opt(s, 'caCertRef', v('sa-ca'));
          break;
        case 'UsernamePassword':
          if ($('input[name="up-username-kind"]:checked').value === 'text') s.username = v('up-username');
          else s.usernameRef = v('up-username-ref');
          s.passwordRef = v('up-password');
          opt(s, 'caCertRef', v('up-ca'));
          break;
        case 'ClientKeyCert':
          s.clientCertRef = v('ck-cert');
          s.clientKeyRef = v('ck-key');
          opt(s, 'caCertRef', v('ck-ca'));
          opt(s, 'clientKeyPassphraseRef', v('ck-pass'));
          opt(s, 'clientKeyAlgo', v('ck-algo'));
          break;
        case 'OpenIdConnect':
          s.oidcIssuerUrl = v('oidc-issuer');
          s.oidcClientIdRef = v('oidc-client-id');
          s.oidcPasswordRef = v('oidc-password');
          if ($('input[name="oidc-username-kind"]:checked').value === 'text') s.oidcUsername = v('oidc-username');
          else s.oidcUsernameRef = v('oidc-username-ref');
          opt(s, 'oidcSecretRef', v('oidc-client-secret'));
          { const scopes = v('oidc-scopes').split(/[\s,]+/).filter(Boolean); if (scopes.length) s.oidcScopes = scopes; }
          opt(s, 'caCertRef', v('oidc-ca'));
          break;
        case 'EKS':
          s.region = v('eks-region');
          s.clusterName = v('eks-cluster');
          opt(s, 'accessKeyIdRef', v('eks-key-id'));
          opt(s, 'secretAccessKeyRef', v('eks-secret-key'));
          opt(s, 'sessionTokenRef', v('eks-session'));
          opt(s, 'roleArn', v('eks-role'));
          opt(s, 'externalId', v('eks-external-id'));
          opt(s, 'stsEndpoint', v('eks-sts'));
          opt(s, 'eksEndpoint', v('eks-api'));
          opt(s, 'caCertRef', v('eks-ca'));
          break;
        case 'GKE':
          opt(s, 'serviceAccountKeyRef', v('gke-key'));
          opt(s, 'caCertRef', v('gke-ca'));
          break;
        case 'AKS':
          s.tenantId = v('aks-tenant');
          opt(s, 'clientId', v('aks-client-id'));
          opt(s, 'clientIdRef', v('aks-client-id-ref'));
          opt(s, 'clientSecretRef', v('aks-secret'));
          opt(s, 'authorityHost', v('aks-authority'));
          opt(s, 'caCertRef', v('aks-ca'));
          break;
      }
      return s;
    }

    // 3. Delegates --------------------------------------------------------------
    const mode = () => $('input[name="delegates"]:checked').value;
    const chipList = $('#c-selectors');
    const selInput = $('#c-selector-input');
    let delegates = [];
    function renderChips() {
      chipList.replaceChildren(...state.selectors.map((t) => el('li', {}, t,
        el('button', {
          type: 'button', 'aria-label': 'Remove tag ' + t, title: 'Remove',
          onclick: () => { state.selectors = state.selectors.filter((x) => x !== t); renderChips(); renderMatches(); selInput.focus(); },
        }, '×'))));
    }
    function addSelector() {
      const t = selInput.value.trim();
      const f = $('[data-field="spec.delegateSelectors"]');
      if (!t) return;
      if (t.includes(',')) { T.setFieldError(f, 'add one tag at a time (no commas)'); return; }
      T.clearFieldError(f);
      if (!state.selectors.includes(t)) state.selectors.push(t);
      selInput.value = '';
      renderChips();
      renderMatches();
    }
    $('#c-selector-add').addEventListener('click', addSelector);
    selInput.addEventListener('keydown', (e) => { if (e.key === 'Enter') { e.preventDefault(); addSelector(); } });
    function syncMode() {
      $('#selector-fields').hidden = mode() !== 'tags';
      renderMatches();
    }
    $$('input[name="delegates"]').forEach((r) => r.addEventListener('change', syncMode));

    async function refreshMatches() {
      const r = await T.loadDelegates();
      delegates = r.delegates;
      const known = new Set();
      for (const d of delegates) for (const t of d.tags) known.add(t);
      $('#known-tags').replaceChildren(...[...known].sort().map((t) => el('option', { value: t })));
      renderMatches(r.error);
    }
    function renderMatches(error) {
      const out = $('#matches-body');
      const wanted = mode() === 'tags' ? state.selectors : [];
      const connected = delegates.filter((d) => d.connected && !d.draining);
      const matching = connected.filter((d) => wanted.every((t) => d.tags.includes(t)));
      const others = connected.filter((d) => !matching.includes(d));
      const describe = (d) => el('li', {}, el('strong', {}, d.name), ' ', el('span', { class: 'muted' }, '(' + d.scopeLabel + ', ' + (d.hostname || 'unknown host') + ')'), ' ',
        d.tags.length ? d.tags.map((t) => el('span', { class: 'tag' }, t)) : el('span', { class: 'muted' }, 'no tags'));
      const parts = [];
      if (error) parts.push(el('p', { class: 'form-error' }, error.message));
      if (matching.length) {
        parts.push(el('p', { class: 'ok-line' }, '✓ ' + matching.length + ' connected delegate' + (matching.length > 1 ? 's match' : ' matches') + ' right now:'));
        parts.push(el('ul', { id: 'matching-delegates' }, matching.map(describe)));
      } else {
        parts.push(el('div', { class: 'callout warn', id: 'no-matching-delegate' },
          el('p', {}, connected.length
            ? 'No connected delegate has all of the tags ' + wanted.join(', ') + '. The connection test will fail until one connects.'
            : 'No delegate is connected. The connection test needs one: install a delegate below, and this page will show it when it connects.')));
      }
      if (others.length) {
        parts.push(el('p', { class: 'muted' }, 'Connected, but lacking a tag:'));
        parts.push(el('ul', {}, others.map((d) => el('li', {}, d.name + ' — missing ' + wanted.filter((t) => !d.tags.includes(t)).join(', ')))));
      }
      out.replaceChildren(...parts);
    }
    T.initInstall($('[data-install="wz"]'), {
      tags: () => (mode() === 'tags' ? state.selectors : []),
      onConnected: () => refreshMatches(),
    });

    function buildDocument() {
      const c = {
        name: name.value.trim(),
        identifier: identifier.value.trim(),
        tags: T.parseTags(tags.value),
        type: 'K8sCluster',
        spec: {
          delegateSelectors: mode() === 'tags' ? state.selectors.slice() : [],
          credential: credential() === 'ManualConfig'
            ? { type: 'ManualConfig', spec: { masterUrl: v('c-master-url'), auth: { type: authType.value, spec: authSpec() } } }
            : { type: 'InheritFromDelegate' },
        },
      };
      if (description.value.trim()) c.description = description.value.trim();
      if (state.original && state.original.spec.connectionTest) c.spec.connectionTest = state.original.spec.connectionTest;
      return { connector: c };
    }

    /** Shows an API error on the step holding its first field. */
    function showApiError(error) {
      const list = (error.errors && error.errors.length) ? error.errors : (error.field ? [{ field: error.field }] : []);
      let step = null;
      for (const e of list) {
        const target = T.findField(body, e.field);
        const s = target && target.closest('.step');
        if (s) { step = Number(s.dataset.step); break; }
      }
      if (step && step !== state.step) go(step, false);
      T.showErrors(body, error, wizardError);
    }

    $('#step-3').addEventListener('submit', async (e) => {
      e.preventDefault();
      T.clearErrors($('#step-3'));
      if (mode() === 'tags' && !state.selectors.length) {
        T.setFieldError($('[data-field="spec.delegateSelectors"]'), 'add at least one tag, or use any available delegate');
        selInput.focus();
        return;
      }
      if (credential() === 'InheritFromDelegate' && mode() !== 'tags') {
        T.setFieldError($('[data-field="spec.delegateSelectors"]'), 'with the credentials of a delegate, choose which delegates by tag (the one running in the cluster)');
        return;
      }
      const btn = $('#save-continue');
      btn.disabled = true;
      const doc = buildDocument();
      const r = state.savedId
        ? await T.api('PUT', '/connectors/' + T.enc(state.savedId), { json: doc })
        : await T.api('POST', '/connectors', { json: doc });
      btn.disabled = false;
      if (!r.ok) { showApiError(r.error); return; }
      state.savedId = r.data.connector.identifier;
      identifier.readOnly = true;
      $('#c-identifier-help').textContent = 'Saved; the id of a connector cannot change.';
      $('#finish').href = T.uiBase + '/connectors/' + T.enc(state.savedId);
      go(4);
      // The manager tests every create and update in the background (the
      // connector is PENDING meanwhile): show that test's result instead of
      // running a second one. Without it (--test-on-change=false), run one.
      if (r.data.status && r.data.status.status === 'PENDING') awaitBackgroundTest();
      else runTest();
    });

    // 4. Connection test ------------------------------------------------------
    /** Asks every second until the background test's result is stored, then shows it. */
    async function awaitBackgroundTest() {
      const report = $('#test-report');
      const retest = $('#retest');
      retest.disabled = true;
      const path = '/connectors/' + T.enc(state.savedId);
      const stop = T.renderRunning(report, 'The manager is testing the saved connector on a delegate… ');
      const deadline = Date.now() + 5 * 60 * 1000;
      let c = null;
      while (Date.now() < deadline) {
        c = await T.api('GET', path);
        if (!c.ok || (c.data.status && c.data.status.status !== 'PENDING')) break;
        await new Promise((res) => setTimeout(res, 1000));
      }
      const h = c && c.ok ? await T.api('GET', path + '/test-history?limit=1') : null;
      stop();
      retest.disabled = false;
      const entry = h && h.ok ? (h.data.items || [])[0] : null;
      if (c && !c.ok) T.renderReportError(report, c.error);
      else if (entry && entry.report && c.data.status.status !== 'PENDING') {
        T.renderReport(report, Object.assign({ delegateId: entry.delegateId, delegateName: entry.delegateName }, entry.report));
      } else {
        report.replaceChildren(el('p', { class: 'callout warn' }, 'The background test has not finished after 5 minutes. Press Test again to run one now, or see the result later on the connector’s page.'));
      }
      $('#finish').focus();
    }

    async function runTest() {
      const report = $('#test-report');
      const retest = $('#retest');
      retest.disabled = true;
      const stop = T.renderRunning(report);
      const r = await T.api('POST', '/connectors/' + T.enc(state.savedId) + '/test');
      stop();
      retest.disabled = false;
      if (r.ok) T.renderReport(report, r.data); else T.renderReportError(report, r.error);
      $('#finish').focus();
    }
    $('#retest').addEventListener('click', runTest);

    // Edit: fill the form from the stored connector ------------------------------
    function setPicker(id, value) {
      const s = $('#' + id);
      if (!value) { s.value = ''; return; }
      if (![...s.options].some((o) => o.value === value)) s.append(el('option', { value }, value + ' — not visible to you or missing'));
      s.value = value;
    }
    async function fill(c) {
      await pickersReady;
      name.value = c.name;
      identifier.value = c.identifier;
      description.value = c.description || '';
      tags.value = T.formatTags(c.tags);
      const cred = c.spec.credential;
      $('input[name="credential"][value="' + cred.type + '"]').checked = true;
      if (cred.type === 'ManualConfig') {
        $('#c-master-url').value = cred.spec.masterUrl;
        authType.value = cred.spec.auth.type;
        const s = cred.spec.auth.spec || {};
        switch (cred.spec.auth.type) {
          case 'ServiceAccount':
            setPicker('sa-token', s.serviceAccountTokenRef); setPicker('sa-ca', s.caCertRef); break;
          case 'UsernamePassword':
            $('input[name="up-username-kind"][value="' + (s.usernameRef ? 'secret' : 'text') + '"]').checked = true;
            $('#up-username').value = s.username || '';
            setPicker('up-username-ref', s.usernameRef); setPicker('up-password', s.passwordRef); setPicker('up-ca', s.caCertRef); break;
          case 'ClientKeyCert':
            setPicker('ck-cert', s.clientCertRef); setPicker('ck-key', s.clientKeyRef); setPicker('ck-ca', s.caCertRef);
            setPicker('ck-pass', s.clientKeyPassphraseRef); $('#ck-algo').value = s.clientKeyAlgo || ''; break;
          case 'OpenIdConnect':
            $('#oidc-issuer').value = s.oidcIssuerUrl || '';
            setPicker('oidc-client-id', s.oidcClientIdRef); setPicker('oidc-password', s.oidcPasswordRef);
            $('input[name="oidc-username-kind"][value="' + (s.oidcUsernameRef ? 'secret' : 'text') + '"]').checked = true;
            $('#oidc-username').value = s.oidcUsername || '';
            setPicker('oidc-username-ref', s.oidcUsernameRef); setPicker('oidc-client-secret', s.oidcSecretRef);
            $('#oidc-scopes').value = [].concat(s.oidcScopes || []).join(', '); setPicker('oidc-ca', s.caCertRef); break;
          case 'EKS':
            $('#eks-region').value = s.region || ''; $('#eks-cluster').value = s.clusterName || '';
            setPicker('eks-key-id', s.accessKeyIdRef); setPicker('eks-secret-key', s.secretAccessKeyRef);
            setPicker('eks-session', s.sessionTokenRef); $('#eks-role').value = s.roleArn || '';
            $('#eks-external-id').value = s.externalId || ''; $('#eks-sts').value = s.stsEndpoint || '';
            $('#eks-api').value = s.eksEndpoint || ''; setPicker('eks-ca', s.caCertRef); break;
          case 'GKE':
            setPicker('gke-key', s.serviceAccountKeyRef); setPicker('gke-ca', s.caCertRef); break;
          case 'AKS':
            $('#aks-tenant').value = s.tenantId || ''; $('#aks-client-id').value = s.clientId || '';
            setPicker('aks-client-id-ref', s.clientIdRef); setPicker('aks-secret', s.clientSecretRef);
            $('#aks-authority').value = s.authorityHost || ''; setPicker('aks-ca', s.caCertRef); break;
        }
      }
      state.selectors = (c.spec.delegateSelectors || []).slice();
      $('input[name="delegates"][value="' + (state.selectors.length ? 'tags' : 'any') + '"]').checked = true;
      renderChips();
      syncCredential(); syncAuth(); syncUsernameKind('up'); syncUsernameKind('oidc'); syncMode();
      state.reached = 3;
      go(1, false);
    }

    syncCredential(); syncAuth(); syncUsernameKind('up'); syncUsernameKind('oidc'); syncMode();
    go(1, false);
    if (editing) {
      T.api('GET', '/connectors/' + T.enc(T.identifier)).then((r) => {
        if (!r.ok) { T.showFormError(wizardError, r.error.message); return; }
        state.original = r.data.connector;
        $('#finish').href = T.uiBase + '/connectors/' + T.enc(T.identifier);
        fill(r.data.connector);
      });
    } else {
      name.focus();
    }
  };
})();
