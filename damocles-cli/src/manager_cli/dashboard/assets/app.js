// The dashboard's page: polls the fragment of the current view every 1.5 s, shows it,
// and sends the actions its buttons name. The token, when one is needed, is entered once
// per tab (sessionStorage) and sent as a bearer header, never in a URL or a cookie.
'use strict';
(() => {
  const POLL_MS = 1500;
  const view = document.getElementById('view');
  const title = document.getElementById('title');
  const status = document.getElementById('status');
  const message = document.getElementById('message');
  const tokenForm = document.getElementById('token-form');
  const tokenInput = document.getElementById('token');
  const zone = Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC';
  let token = sessionStorage.getItem('damocles-token') || '';
  let failingSince = null;
  let inFlight = false;
  let shownRoute = null;

  function authHeaders(extra) {
    const headers = Object.assign({}, extra);
    if (token) headers.Authorization = 'Bearer ' + token;
    return headers;
  }

  function route() {
    const parts = location.hash.replace(/^#\/?/, '').split('/').map(decodeURIComponent);
    const q = encodeURIComponent;
    switch (parts[0]) {
      case 'workers': return { title: 'Workers', path: 'workers' };
      case 'worker': return { title: 'Worker ' + parts[1], path: 'worker?name=' + q(parts[1] || '') };
      case 'events': return {
        title: 'History of thread ' + parts[2] + ' of ' + parts[1],
        path: 'events?name=' + q(parts[1] || '') + '&index=' + q(parts[2] || '') + '&tz=' + q(zone),
      };
      case 'sectors': return { title: 'Sectors', path: 'sectors' };
      case 'jobs': return { title: 'Rebuild and unseal jobs', path: 'jobs' };
      case 'wdpost': return { title: 'WindowPoSt', path: 'wdpost' };
      default: return { title: 'Overview', path: 'overview' };
    }
  }

  function setStatus(text, isError) {
    status.textContent = text;
    status.classList.toggle('error', Boolean(isError));
  }

  function showMessage(text, isError) {
    message.textContent = text;
    message.classList.toggle('error', Boolean(isError));
    message.hidden = false;
  }

  // The choices made in the view's selects, kept across refreshes.
  function chosen() {
    const values = {};
    for (const select of view.querySelectorAll('select[id]')) values[select.id] = select.value;
    return values;
  }

  function restore(values, focusedId) {
    for (const [id, value] of Object.entries(values)) {
      const select = document.getElementById(id);
      if (select) select.value = value;
    }
    if (focusedId) {
      const again = document.getElementById(focusedId);
      if (again) again.focus();
    }
  }

  async function refresh() {
    const active = document.activeElement;
    // A select being chosen from is not replaced under the operator's hand.
    if (inFlight || (active && active.tagName === 'SELECT' && view.contains(active))) return;
    inFlight = true;
    const current = route();
    const sentToken = token;
    if (shownRoute !== location.hash) {
      title.textContent = current.title;
      document.title = current.title + ' - damocles fleet';
    }
    try {
      const response = await fetch('f/' + current.path, { headers: authHeaders(), cache: 'no-store' });
      const body = await response.text();
      if (failingSince) failingSince = null;
      if (response.status === 401) {
        // Asked with the token entered since, the next poll tells.
        if (sentToken === token) {
          tokenForm.hidden = false;
          view.replaceChildren();
          setStatus(token ? 'this token is refused: ' + body : body, true);
        }
      } else if (!response.ok) {
        const error = document.createElement('p');
        error.className = 'error';
        error.textContent = body;
        view.replaceChildren(error);
        setStatus('updated ' + new Date().toLocaleTimeString(), false);
      } else {
        const values = chosen();
        const focusedId = active && view.contains(active) && active.id ? active.id : null;
        view.innerHTML = body;
        restore(values, focusedId);
        setStatus('updated ' + new Date().toLocaleTimeString(), false);
      }
      shownRoute = location.hash;
    } catch (e) {
      if (!failingSince) failingSince = new Date();
      setStatus('the manager cannot be reached since ' + failingSince.toLocaleTimeString() + '; retrying', true);
    } finally {
      inFlight = false;
    }
  }

  async function act(button) {
    const data = button.dataset;
    const action = { action: data.action };
    if (data.worker !== undefined) action.worker = data.worker;
    if (data.index !== undefined) action.index = Number(data.index);
    if (data.sector !== undefined) action.sector = data.sector;
    if (data.with) {
      const value = document.getElementById(data.with).value;
      if (data.action === 'resume') action.state = value || null;
      if (data.action === 'unseal') {
        if (!value) { showMessage('choose a piece to unseal first', true); return; }
        action.piece = value;
      }
    }
    if ((action.action === 'stop' || action.action === 'remove') &&
        !window.confirm(action.action + ' worker ' + action.worker + '?')) return;
    button.disabled = true;
    try {
      const response = await fetch('act', {
        method: 'POST',
        headers: authHeaders({ 'Content-Type': 'application/json' }),
        body: JSON.stringify(action),
      });
      showMessage(await response.text(), !response.ok);
    } catch (e) {
      showMessage('the manager cannot be reached: ' + e, true);
    } finally {
      button.disabled = false;
    }
    refresh();
  }

  view.addEventListener('click', (event) => {
    const button = event.target.closest('button[data-action]');
    if (button) act(button);
  });
  tokenForm.addEventListener('submit', (event) => {
    event.preventDefault();
    token = tokenInput.value.trim();
    tokenInput.value = '';
    if (token) sessionStorage.setItem('damocles-token', token);
    tokenForm.hidden = true;
    refresh();
  });
  document.getElementById('token-forget').addEventListener('click', () => {
    token = '';
    sessionStorage.removeItem('damocles-token');
    refresh();
  });
  document.getElementById('token-toggle').addEventListener('click', () => {
    tokenForm.hidden = !tokenForm.hidden;
    if (!tokenForm.hidden) tokenInput.focus();
  });
  window.addEventListener('hashchange', () => {
    message.hidden = true;
    refresh().then(() => title.focus());
  });
  refresh();
  setInterval(refresh, POLL_MS);
})();
