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

  // What the operator is doing in the view, kept across a refresh: the choices in its
  // selects, the element with the focus (found again by what it does), and how far each
  // table is scrolled sideways.
  function keyOf(element) {
    if (!element || !view.contains(element)) return null;
    if (element.id) return '#' + CSS.escape(element.id);
    if (element.tagName === 'A') return 'a[href="' + CSS.escape(element.getAttribute('href')) + '"]';
    if (element.dataset && element.dataset.action) {
      let key = 'button[data-action="' + CSS.escape(element.dataset.action) + '"]';
      for (const name of ['worker', 'index', 'sector']) {
        if (element.dataset[name] !== undefined) {
          key += '[data-' + name + '="' + CSS.escape(element.dataset[name]) + '"]';
        }
      }
      return key;
    }
    return null;
  }

  function replaceView(html) {
    const values = {};
    for (const select of view.querySelectorAll('select[id]')) values[select.id] = select.value;
    const focused = keyOf(document.activeElement);
    const scrolled = Array.from(view.querySelectorAll('table'), (t) => t.scrollLeft);
    view.innerHTML = html;
    for (const [id, value] of Object.entries(values)) {
      const select = document.getElementById(id);
      if (select) select.value = value;
    }
    view.querySelectorAll('table').forEach((t, i) => { if (scrolled[i]) t.scrollLeft = scrolled[i]; });
    if (focused) {
      const again = view.querySelector(focused);
      if (again) again.focus({ preventScroll: true });
    }
  }

  function clock() {
    return new Date().toLocaleTimeString([], { hour12: false });
  }

  // A refresh of the view the address names; one that a newer view replaced is dropped.
  let generation = 0;
  let pending = null;
  let pressed = false;
  view.addEventListener('pointerdown', () => { pressed = true; });
  window.addEventListener('pointerup', () => { pressed = false; });
  window.addEventListener('pointercancel', () => { pressed = false; });

  async function refresh() {
    const active = document.activeElement;
    // Nothing is replaced under the operator's hand: a select being chosen from, a press.
    if (pending || pressed || (active && active.tagName === 'SELECT' && view.contains(active))) return;
    const mine = generation;
    const current = route();
    const sentToken = token;
    const controller = new AbortController();
    pending = controller;
    try {
      const response = await fetch('f/' + current.path, {
        headers: authHeaders(), cache: 'no-store', signal: controller.signal,
      });
      const body = await response.text();
      if (mine !== generation) return;
      failingSince = null;
      view.classList.remove('stale');
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
        setStatus('updated ' + clock(), false);
      } else {
        replaceView(body);
        setStatus('updated ' + clock(), false);
      }
    } catch (e) {
      if (mine !== generation || controller.signal.aborted) return;
      if (!failingSince) failingSince = new Date();
      // What is shown is as it was when the manager was last reached: no action on it.
      view.classList.add('stale');
      setStatus('the manager cannot be reached since ' + failingSince.toLocaleTimeString([], { hour12: false }) +
        '; what is shown is from then; retrying', true);
    } finally {
      if (pending === controller) pending = null;
    }
  }

  // A new view: its title at once, the old view's fetch dropped, the new one asked for.
  function showRoute() {
    generation += 1;
    if (pending) pending.abort();
    pending = null;
    const current = route();
    title.textContent = current.title;
    document.title = current.title + ' - damocles fleet';
    view.replaceChildren();
    setStatus('loading…', false);
    message.hidden = true;
    return refresh();
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
    showRoute().then(() => title.focus());
  });
  showRoute();
  setInterval(refresh, POLL_MS);
})();
