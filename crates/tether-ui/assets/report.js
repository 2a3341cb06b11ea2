// The connection test report: status, diagnosis, hints, stages, identity,
// permissions table and missing permissions.
'use strict';
(function () {
  const T = window.Tether;
  const { el } = T;
  const STAGES = [
    ['url', 'URL'], ['dns', 'DNS'], ['tcp', 'TCP'], ['tls', 'TLS'],
    ['token', 'Cloud token'],
    ['authentication', 'Authentication'], ['authorization', 'Authorization'],
  ];
  // The cloud token stage is only in the reports of EKS, GKE and AKS connectors.
  const OPTIONAL_STAGES = ['token'];
  const stageLabel = (n) => (STAGES.find((s) => s[0] === n) || [n, n])[1];
  const ICON = { passed: '✓', failed: '✕', skipped: '–', waiting: '…' };
  const SOURCES = {
    selfSubjectReview: 'confirmed by the API server',
    forbiddenResponse: "named in the API server's 403 answer",
    tokenClaims: "read from the token's claims (not verified)",
    clientCertificate: "read from the client certificate's subject",
    oidcIdToken: "read from the OIDC ID token's claims",
    basicAuthUsername: 'the basic-auth username',
    delegateLabel: "the delegate's identity",
    cloudIdentity: 'the cloud identity the token was made for',
  };

  /**
   * Text for people: `code` spans as code. A text with several lines is prose
   * on its first line and a block (a manifest, a command) after it, shown as
   * preformatted lines with a copy button.
   */
  T.rich = function (text) {
    const s = String(text === undefined || text === null ? '' : text);
    const nl = s.indexOf('\n');
    if (nl >= 0 && s.slice(nl + 1).trim()) {
      return [...T.inlineCode(s.slice(0, nl)), T.codeBlock(s.slice(nl + 1).replace(/\s+$/, '') + '\n')];
    }
    return T.inlineCode(s);
  };

  /** Splits on backticks: odd parts are code; an unmatched backtick stays text. */
  T.inlineCode = function (text) {
    const parts = String(text).split('`');
    const out = [];
    parts.forEach((p, i) => {
      const last = i === parts.length - 1;
      if (i % 2 === 1 && !last) out.push(el('code', {}, p));
      else out.push((i % 2 === 1 ? '`' : '') + p);
    });
    return out.filter((p) => p !== '');
  };

  /** Preformatted lines with a copy button that copies them as they are. */
  T.codeBlock = function (text, label) {
    const code = el('code', {}, text);
    return el('div', { class: 'code-block' },
      el('button', { type: 'button', class: 'secondary small', onclick: (e) => T.copy(text, e.currentTarget) }, label || 'Copy'),
      el('pre', { tabindex: '0' }, code));
  };

  /** The delegate that ran a test: its name, the id on hover (the id when the name is unknown). */
  T.delegateRef = function (name, id) {
    if (!id && !name) return null;
    return name ? el('span', { class: 'delegate-ref', title: 'delegate id ' + id }, name) : el('code', { title: 'delegate id' }, id);
  };

  /** While the test runs: every stage waiting, an elapsed-time counter. */
  T.renderRunning = function (container, message) {
    const started = Date.now();
    const counter = el('span', {}, '0 s');
    container.replaceChildren(
      el('div', { class: 'report-head', role: 'status', 'aria-live': 'polite' },
        el('span', { class: 'badge badge-pending' }, 'TESTING'),
        el('span', {}, el('span', { class: 'spinner', 'aria-hidden': 'true' }),
          message || 'A delegate is testing the connection… ', counter)),
      el('ol', { class: 'stages', 'aria-label': 'Stages' },
        STAGES.filter(([n]) => !OPTIONAL_STAGES.includes(n)).map(([, label]) => el('li', { class: 'stage-waiting' },
          el('span', { class: 'stage-icon', 'aria-hidden': 'true' }, ICON.waiting),
          el('span', { class: 'stage-name' }, label),
          el('span', { class: 'stage-time' }, ''),
          el('span', { class: 'stage-detail muted' }, 'waiting')))),
    );
    const timer = setInterval(() => { counter.textContent = Math.round((Date.now() - started) / 1000) + ' s'; }, 500);
    return () => clearInterval(timer);
  };

  /** An API error instead of a report (e.g. the connector is missing). */
  T.renderReportError = function (container, error) {
    container.replaceChildren(
      el('div', { class: 'callout bad', role: 'alert' },
        el('p', { class: 'diagnosis' }, 'The test could not run: ', T.inlineCode(error.message)),
        (error.considered && error.considered.length)
          ? el('ul', {}, error.considered.map((c) => el('li', {}, c.name + ': ' + (c.ineligible ? JSON.stringify(c.ineligible) : 'eligible'))))
          : null));
  };

  T.renderReport = function (container, r) {
    const parts = [];
    const status = String(r.status || 'UNKNOWN').toUpperCase();
    const via = r.delegateId ? [' through delegate ', T.delegateRef(r.delegateName, r.delegateId)] : '';
    parts.push(el('div', { class: 'report-head', role: 'status' },
      T.badge(status),
      el('span', {}, 'Tested ', T.time(r.testedAt), via, r.durationMs !== undefined ? ' in ' + T.duration(r.durationMs) : ''),
      r.serverVersion ? el('span', { class: 'tag' }, 'Kubernetes ' + r.serverVersion) : null));
    if (r.errorSummary) {
      parts.push(el('p', { class: 'diagnosis', id: 'report-diagnosis' }, T.inlineCode(r.errorSummary)));
    } else if (status === 'SUCCESS') {
      parts.push(el('p', { class: 'diagnosis' }, 'The delegate reached the cluster, authenticated and has every permission checked.'));
    }
    const errors = r.errors || [];
    if (errors.length === 1 && r.errorSummary && r.errorSummary.includes(errors[0].message)) {
      // The summary already says it: name the reason only.
      parts.push(el('p', { class: 'muted small' }, 'Reason ', el('code', {}, errors[0].reason), errors[0].code ? ' · code ' + errors[0].code : ''));
    } else if (errors.length) {
      parts.push(el('ul', { class: 'error-list', 'aria-label': 'Errors' },
        errors.map((e) => el('li', {}, el('code', {}, e.reason), e.code ? ' (' + e.code + ')' : '', ': ', T.inlineCode(e.message)))));
    }
    if (r.hints && r.hints.length) {
      parts.push(el('h3', {}, status === 'SUCCESS' ? 'Notes' : 'How to fix it'));
      parts.push(el('ul', { class: 'hints', id: 'report-hints' }, r.hints.map((h) => el('li', {}, T.rich(h)))));
    }
    parts.push(el('h3', {}, 'Stages'));
    const byName = {};
    for (const s of r.stages || []) byName[s.name] = s;
    parts.push(el('ol', { class: 'stages', 'aria-label': 'Stages', id: 'report-stages' },
      STAGES.filter(([n]) => byName[n] || !OPTIONAL_STAGES.includes(n)).map(([name]) => {
        const s = byName[name] || { name, status: 'skipped', detail: 'not reached' };
        return el('li', { class: 'stage-' + s.status, 'data-stage': name, 'data-status': s.status },
          el('span', { class: 'stage-icon', 'aria-hidden': 'true' }, ICON[s.status] || '?'),
          el('span', { class: 'stage-name' }, stageLabel(name), el('span', { class: 'visually-hidden' }, ': ' + s.status)),
          el('span', { class: 'stage-time' }, s.status === 'skipped' ? '' : T.duration(s.durationMs)),
          el('span', { class: 'stage-detail' + (s.status === 'skipped' ? ' muted' : '') }, T.inlineCode(s.detail || (s.status === 'skipped' ? 'skipped: an earlier stage failed' : ''))));
      })));
    if (r.identity) {
      const i = r.identity;
      parts.push(el('p', {}, 'Identity: ', el('code', {}, i.user),
        (i.groups && i.groups.length) ? ' in ' + i.groups.join(', ') : '',
        el('span', { class: 'muted' }, ' — ' + (SOURCES[i.source] || i.source) + (i.label ? ' (' + i.label + ')' : ''))));
    }
    if (r.permissions && r.permissions.length) {
      // One row per resource and namespace, its verbs as allowed/denied marks.
      const rows = [];
      const byKey = {};
      for (const p of r.permissions) {
        const key = p.group + '/' + p.resource + '/' + p.namespace;
        if (!byKey[key]) { byKey[key] = { group: p.group, resource: p.resource, namespace: p.namespace, verbs: [] }; rows.push(byKey[key]); }
        byKey[key].verbs.push(p);
      }
      const reasons = [...new Set(r.permissions.map((p) => p.reason).filter(Boolean))];
      const denied = r.permissions.filter((p) => !p.allowed).length;
      parts.push(el('h3', {}, 'Permissions'));
      parts.push(el('p', { class: 'muted' }, r.permissions.length + ' checked, ' + (denied ? denied + ' denied.' : 'all allowed.'),
        reasons.length === 1 ? ' ' + reasons[0] + '.' : ''));
      parts.push(el('div', { class: 'table-wrap' }, el('table', { class: 'data', id: 'report-permissions' },
        el('caption', { class: 'visually-hidden' }, 'Permissions checked'),
        el('thead', {}, el('tr', {}, ['Resource', 'Namespace', 'Verbs'].map((h) => el('th', { scope: 'col' }, h)))),
        el('tbody', {}, rows.map((row) => el('tr', {},
          el('td', {}, el('code', {}, row.group ? row.resource + '.' + row.group : row.resource)),
          el('td', {}, row.namespace || el('span', { class: 'muted' }, 'all')),
          el('td', {}, el('div', { class: 'verbs' }, row.verbs.map((p) => el('span', {
            class: 'verb ' + (p.allowed ? 'allowed-yes' : 'allowed-no'),
            title: (p.allowed ? 'allowed' : 'denied') + (p.reason && reasons.length > 1 ? ': ' + p.reason : ''),
          }, (p.allowed ? '✓ ' : '✕ ') + p.verb, el('span', { class: 'visually-hidden' }, p.allowed ? ' allowed' : ' denied')))))))))));
    }
    if (r.missing && r.missing.length) {
      parts.push(el('h3', {}, 'Missing permissions'));
      parts.push(el('p', {}, 'Add these rules to a Role in the namespace (or a ClusterRole), bind it to the identity, then check with the command:'));
      for (const m of r.missing) {
        parts.push(el('div', { class: 'missing' },
          el('p', {}, el('code', {}, m.verb + ' ' + (m.group ? m.resource + '.' + m.group : m.resource)), ' in ', el('code', {}, m.namespace || 'all namespaces')),
          T.codeBlock(m.rule, 'Copy rule'),
          T.codeBlock(m.verifyCommand, 'Copy command')));
      }
    }
    container.replaceChildren(...parts);
  };
})();
