// The connector page's Deploy tab: manifests pasted or uploaded, the deploy's
// live events and its report, the release history with a rollback per earlier
// revision. The API decides who may deploy (editors); viewers get no form.
'use strict';
(function () {
  const T = window.Tether;
  const { el, $ } = T;

  const OUTCOMES = {
    deployed: ['success', 'DEPLOYED', 'Deployed and steady.'],
    dryRun: ['success', 'DRY RUN PASSED', 'Pre-flight passed; nothing was changed.'],
    refused: ['partial', 'REFUSED', 'Refused by pre-flight; nothing was changed.'],
    failed: ['failure', 'FAILED', 'The deploy failed.'],
  };
  const clock = (ms) => new Date(ms).toLocaleTimeString();
  const plural = (n, one) => n + ' ' + one + (n === 1 ? '' : 's');

  /** Where a problem is: `source#document (line N)` as the CLI prints it (documents count from 0), and the object. */
  function where(p) {
    const at = [];
    if (p.source) at.push(p.source + '#' + (p.document || 0) + (p.line ? ' (line ' + p.line + ')' : ''));
    if (p.object) at.push(p.object);
    return at.join(' · ');
  }

  /** A deploy report: outcome, summary, every problem with its fix (and rule), objects, release. */
  T.renderDeployReport = function (container, r) {
    const [cls, label, fallback] = OUTCOMES[r.outcome] || ['unknown', String(r.outcome || 'UNKNOWN').toUpperCase(), ''];
    const parts = [el('div', { class: 'report-head', role: 'status' },
      el('span', { class: 'badge badge-' + cls, 'data-outcome': r.outcome || '' }, label),
      el('span', {}, r.durationMs !== undefined ? 'in ' + T.duration(r.durationMs) : ''))];
    parts.push(el('p', { class: 'diagnosis', id: 'dp-summary' }, T.inlineCode(r.summary || fallback)));
    const problems = r.problems || [];
    if (problems.length) {
      parts.push(el('h3', {}, r.outcome === 'refused' ? 'What pre-flight found' : 'What went wrong and how to fix it'));
      parts.push(el('ol', { class: 'problems', id: 'dp-problems' }, problems.map((p) => el('li', { 'data-reason': p.reason },
        where(p) ? el('div', { class: 'where' }, where(p)) : null,
        el('div', {}, el('code', {}, p.reason), ': ', T.inlineCode(p.message)),
        p.fix ? el('div', {}, el('strong', {}, 'Fix: '), T.rich(p.fix)) : null,
        p.rule ? T.codeBlock(p.rule, 'Copy rule') : null))));
    }
    const objects = r.objects || [];
    if (objects.length) {
      parts.push(el('h3', {}, 'Objects'));
      parts.push(el('div', { class: 'table-wrap' }, el('table', { class: 'data', id: 'dp-objects' },
        el('thead', {}, el('tr', {}, ['Kind', 'Namespace / name', 'Status', 'Detail'].map((h) => el('th', { scope: 'col' }, h)))),
        el('tbody', {}, objects.map((o) => el('tr', {},
          el('td', {}, o.kind),
          el('td', {}, el('code', {}, (o.namespace ? o.namespace + '/' : '') + o.name)),
          el('td', {}, o.status),
          el('td', { class: 'small' }, o.detail ? T.inlineCode(o.detail) : '')))))));
    }
    if (r.release) {
      const rel = r.release;
      parts.push(el('p', { class: 'muted', id: 'dp-release-line' }, 'Release ', el('code', {}, rel.name), ' revision ' + rel.revision + ' in ',
        el('code', {}, rel.namespace), ': ' + rel.status + (rel.pruned && rel.pruned.length ? '; pruned ' + rel.pruned.join(', ') : '')));
    }
    container.replaceChildren(...parts);
  };

  T.deployTab = function (connectorId, path) {
    const form = $('#dp-form');
    const run = $('#dp-run');
    const mayDeploy = !!form;
    let uploaded = [];
    let running = false;

    /** Runs a deploy request: the live events as they arrive, then the report. */
    async function deploy(body, title) {
      running = true;
      for (const b of T.$$('#dp-submit, .dp-rollback')) b.disabled = true;
      run.hidden = false;
      const events = el('ol', { class: 'deploy-events', id: 'dp-events', 'aria-label': 'Live events', 'aria-live': 'polite' });
      const head = el('div', { class: 'report-head', role: 'status' },
        el('span', { class: 'badge badge-pending', id: 'dp-state' }, 'QUEUED'),
        el('span', {}, el('span', { class: 'spinner', 'aria-hidden': 'true' }), title));
      const result = el('div', { id: 'dp-result' });
      run.replaceChildren(head, events, result);
      run.scrollIntoView({ block: 'nearest' });
      try {
        const r = await T.api('POST', path + '/deploy', { json: body });
        if (!r.ok) {
          head.remove();
          events.remove();
          if (form) T.showErrors(form, r.error, $('#dp-form-error'));
          result.append(el('div', { class: 'callout bad', role: 'alert', id: 'dp-api-error' },
            el('p', { class: 'diagnosis' }, 'The deploy was not queued: ', T.inlineCode(r.error.message)),
            (r.error.considered && r.error.considered.length)
              ? el('ul', {}, r.error.considered.map((c) => el('li', {}, c.name + ': ' + (c.ineligible ? JSON.stringify(c.ineligible) : 'eligible'))))
              : null));
          return;
        }
        const taskId = r.data.id;
        head.lastChild.append(' (task ', el('code', {}, taskId), ')');
        const end = await T.followTask(taskId, (e) => {
          $('#dp-state').textContent = 'RUNNING';
          events.append(el('li', { class: 'ev-' + e.kind, 'data-kind': e.kind },
            el('span', { class: 'ev-time' }, clock(e.atMs)),
            el('span', { class: 'ev-kind' }, e.kind),
            el('span', { class: 'ev-message' }, T.inlineCode(e.message))));
          events.scrollTop = events.scrollHeight;
        });
        head.remove();
        const task = await T.api('GET', '/api/v1/tasks/' + T.enc(taskId), { absolute: true });
        if (end.state === 'succeeded' && task.ok && task.data.output) {
          T.renderDeployReport(result, task.data.output);
        } else {
          const why = (task.ok && task.data.error) || end.error || 'see tether task get ' + taskId;
          result.replaceChildren(el('div', { class: 'callout bad', role: 'alert', id: 'dp-task-error' },
            el('p', { class: 'diagnosis' }, 'The deploy task ' + (end.state || 'ended') + ': ', T.inlineCode(why))));
        }
      } finally {
        running = false;
        for (const b of T.$$('#dp-submit, .dp-rollback')) b.disabled = false;
        loadReleases();
      }
    }

    if (mayDeploy) {
      $('#dp-files').addEventListener('change', async (e) => {
        uploaded = await Promise.all([...e.target.files].map(async (f) => ({ source: f.name, text: await f.text() })));
        $('#dp-files-list').textContent = uploaded.length ? plural(uploaded.length, 'file') + ': ' + uploaded.map((u) => u.source).join(', ') : '';
      });
      form.addEventListener('submit', (e) => {
        e.preventDefault();
        if (running) return;
        T.clearErrors(form);
        const manifests = [...uploaded];
        const pasted = $('#dp-yaml').value;
        if (pasted.trim()) manifests.push({ source: 'pasted', text: pasted });
        if (!manifests.length) {
          T.setFieldError(form.querySelector('[data-field="manifests"]'), 'Paste the manifests or add files to deploy.');
          $('#dp-yaml').focus();
          return;
        }
        const opt = (sel) => $(sel).value.trim() || undefined;
        const body = {
          manifests,
          namespace: opt('#dp-namespace'),
          release: opt('#dp-release'),
          prune: $('#dp-prune').checked,
          dryRun: $('#dp-dry-run').checked,
          forceConflicts: $('#dp-force').checked,
        };
        deploy(body, body.dryRun ? 'Pre-flight (dry run)… ' : 'Deploying… ');
      });
    }

    // Rollback: confirm, then the same live view.
    const dialog = $('#dp-rollback-dialog');
    let pending = null;
    $('#dp-rollback-cancel').addEventListener('click', () => dialog.close());
    $('#dp-rollback-confirm').addEventListener('click', () => {
      dialog.close();
      const rel = pending;
      if (!rel || running) return;
      deploy({ namespace: rel.namespace, release: rel.name, rollbackTo: rel.revision },
        'Rolling ' + rel.name + ' back to revision ' + rel.revision + '… ');
    });
    function askRollback(rel, latest) {
      pending = rel;
      $('#dp-rollback-text').replaceChildren('Deploy the manifests of ', el('code', {}, rel.name), ' revision ' + rel.revision +
        ' again, in ', el('code', {}, rel.namespace), '? It becomes revision ' + (latest + 1) + '; what revision ' + rel.revision +
        ' lacks stays unless it is pruned in a later deploy.');
      dialog.showModal();
      $('#dp-rollback-cancel').focus();
    }

    async function loadReleases() {
      const tbody = $('#dp-releases-body');
      const cols = mayDeploy ? 8 : 7;
      const note = (text) => tbody.replaceChildren(el('tr', {}, el('td', { colspan: String(cols), class: 'muted' }, text)));
      const r = await T.api('GET', path + '/releases');
      if (!r.ok) { note('The releases could not be read: ' + r.error.message); return; }
      const items = r.data.items || [];
      if (!items.length) { note('No release yet.' + (mayDeploy ? ' Deploy one above, or with tether deploy apply --connector ' + connectorId + '.' : '')); return; }
      const latest = {};
      for (const it of items) latest[it.namespace + '/' + it.name] = Math.max(latest[it.namespace + '/' + it.name] || 0, it.revision);
      tbody.replaceChildren(...items.map((it) => {
        const s = it.summary || {};
        const objects = s.objects || [];
        const newest = latest[it.namespace + '/' + it.name];
        const [cls] = OUTCOMES[s.outcome] || ['unknown'];
        return el('tr', { 'data-release': it.name, 'data-revision': String(it.revision) },
          el('td', {}, el('code', {}, it.name), el('div', { class: 'muted small' }, it.namespace)),
          el('td', {}, String(it.revision), s.rollbackTo !== undefined && s.rollbackTo !== null
            ? el('div', { class: 'muted small' }, 'rollback' + (s.rollbackTo ? ' to ' + s.rollbackTo : '')) : null),
          el('td', {}, T.time(it.createdAt)),
          el('td', {}, s.requestedBy || el('span', { class: 'muted' }, '—')),
          el('td', {}, el('span', { class: 'badge badge-' + cls }, it.status)),
          el('td', {}, objects.length
            ? el('details', {}, el('summary', {}, plural(objects.length, 'object')),
              el('ul', { class: 'small' }, objects.map((o) => el('li', {}, o.kind + ' ', el('code', {}, (o.namespace ? o.namespace + '/' : '') + o.name), ': ' + o.status))))
            : el('span', { class: 'muted' }, '—')),
          el('td', { class: 'small' }, s.summary ? T.inlineCode(s.summary) : ''),
          mayDeploy ? el('td', {}, it.revision < newest
            ? el('button', { type: 'button', class: 'small secondary dp-rollback', disabled: running, onclick: () => askRollback(it, newest) }, 'Roll back to ' + it.revision)
            : null) : null);
      }));
    }

    return { load: loadReleases };
  };
})();
