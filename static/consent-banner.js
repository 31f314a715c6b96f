/*
 * amniotic.studio: consent banner and audience measurement.
 *
 * WHAT THIS SCRIPT SENDS, AND WHEN
 * Only to the collector this file was loaded from (or the one named in data-collector).
 * Nothing at all is sent before you make a choice in the banner. (Loading this file is an
 * ordinary request to the collector's web server, like loading any image or font.)
 *
 * 1. When you choose ("Accept all", "Refuse all" or "Save my choices"), once:
 *    POST /api/consent with your three yes/no choices (audience measurement, location,
 *    marketing), the policy version, the banner language and the button you used. If you
 *    allowed audience measurement, it also sends a random visitor id (32 hex characters,
 *    kept in the amn_vid cookie). If you refused audience measurement and such an id exists
 *    from an earlier "yes", that id is sent one last time so the earlier consent is marked
 *    as withdrawn, then the cookie is deleted. A choice the collector could not record
 *    grants nothing (and the banner asks again on the next page).
 * 2. Only if you allowed audience measurement and the collector recorded that consent:
 *    - a "pageview" for the page you are on when you accept, then for each page you open
 *      (also in-page navigations of single-page sites): page address, previous page
 *      address (referrer), page title, visitor id, consent id and a random event id;
 *    - an "engagement" when you hide or leave the page (or navigate in-page): the same ids
 *      and addresses plus how many milliseconds the page was visible on screen so far.
 *    The collector also sees what every web request carries: your IP address and browser
 *    (User-Agent). From these it derives the reverse-DNS name, the organisation, the browser
 *    and, only if you allowed location, the country and city. Nothing else is collected:
 *    no fingerprinting, no screen size, no keystrokes, no mouse movements.
 * 3. Only when you click "See my data" / "Delete my data": POST /api/me/export or
 *    /api/me/erase with your visitor id.
 *
 * Cookies (on this site, path=/, SameSite=Lax, Secure on https):
 *   amn_consent  consent_id|policy_version|flags|issued (6 months), remembers your choice;
 *   amn_vid      visitor id, only with audience measurement (13 months).
 * The banner asks again after 6 months or when the privacy policy changes.
 *
 * Global Privacy Control: when the browser sends GPC (navigator.globalPrivacyControl),
 * marketing is refused and its switch is locked off. "Accept all" then grants audience
 * measurement and location only: GPC is a standing opt-out that a one-click "accept all"
 * does not override. Turn GPC off in the browser to allow marketing.
 *
 * Embedding: <script src="https://COLLECTOR/static/consent-banner.js" defer></script>
 * Optional attributes: data-collector, data-lang (fr|en), data-policy-version,
 * data-privacy-url. Scripts written as <script type="text/plain" data-consent="marketing">
 * run only once that purpose is granted. API: window.amniotic.consent.open(), .close(),
 * .get(). Every decision fires a document event "amniotic:consent".
 */
(() => {
  'use strict';
  const w = window, d = document, nav = navigator, loc = location;
  const AMN = w.amniotic = w.amniotic || {};
  if (AMN.consent) return; // loaded twice

  // ---- configuration, from the <script> tag ----
  const me = d.currentScript ||
    [...d.scripts].reverse().find(s => /consent-banner\.js([?#]|$)/.test(s.src)) || {};
  const ds = me.dataset || {};
  const API = (ds.collector || (me.src ? new URL(me.src).origin : loc.origin)).replace(/\/+$/, '');
  const lang = ds.lang || d.documentElement.lang;
  const L = !lang || /^fr/i.test(lang) ? 'fr' : 'en'; // the studio is French
  const VER = ds.policyVersion || '__POLICY_VERSION__'; // filled in by the collector
  const GPC = nav.globalPrivacyControl === true;
  const DAY = 86400, HEX = /^[0-9a-f]{32}$/, PURPOSES = ['analytics', 'location', 'marketing'];

  // Purposes are [title, what they cover]; the banner text lists them all.
  const TXT = L === 'fr' ? {
    title: 'Cookies et mesure d’audience',
    intro: 'Avec votre accord : ',
    outro: '. Les cookies nécessaires (retenir ce choix) sont toujours actifs. ',
    policy: 'Politique de confidentialité',
    analytics: ['Mesure d’audience', 'visites, pages, temps, adresse IP, nom DNS inverse, ' +
      'organisation, navigateur'],
    location: ['Localisation', 'pays et ville d’après l’IP, avec la mesure d’audience'],
    marketing: ['Marketing', 'publicité ciblée, scripts marketing'],
    gpc: ' — refusé par le signal Global Privacy Control',
    accept: 'Tout accepter', refuse: 'Tout refuser', customize: 'Personnaliser',
    save: 'Enregistrer mes choix', export: 'Voir mes données', erase: 'Supprimer mes données',
    'open-settings': 'Gestion des cookies',
    confirm: 'Supprimer mes données ?', erased: 'Données supprimées.', err: 'Erreur.'
  } : {
    title: 'Cookies and audience measurement',
    intro: 'With your consent: ',
    outro: '. Necessary cookies (remembering this choice) are always on. ',
    policy: 'Privacy policy',
    analytics: ['Audience measurement', 'visits, pages, time, IP address, reverse-DNS name, ' +
      'organisation, browser'],
    location: ['Location', 'country and city from the IP, with audience measurement'],
    marketing: ['Marketing', 'targeted advertising, marketing scripts'],
    gpc: ' — refused by the Global Privacy Control signal',
    accept: 'Accept all', refuse: 'Refuse all', customize: 'Customize',
    save: 'Save my choices', export: 'See my data', erase: 'Delete my data',
    'open-settings': 'Cookie settings',
    confirm: 'Delete my data?', erased: 'Data deleted.', err: 'Error.'
  };
  if (GPC) TXT.marketing[1] += TXT.gpc;

  // ---- helpers ----
  const now = Date.now;
  const on = (target, type, fn) => target.addEventListener(type, fn);
  const hex = () => Array.from(crypto.getRandomValues(new Uint8Array(16)),
    b => (b + 256).toString(16).slice(1)).join('');
  const getC = n => (d.cookie.match(new RegExp(`(?:^|;\\s*)${n}="?([^;"]*)`)) || [])[1];
  const setC = (n, v, days) => {
    d.cookie = `${n}=${v};Path=/;Max-Age=${days * DAY};SameSite=Lax` +
      (loc.protocol === 'https:' ? ';Secure' : '');
  };
  const vidC = () => HEX.test(getC('amn_vid')) ? getC('amn_vid') : null;
  const post = (path, body) => fetch(API + path, { method: 'POST', credentials: 'include',
    headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
  const h = (tag, attrs, kids = []) => { // an element; strings become text nodes
    const e = d.createElement(tag);
    for (const k in attrs) e.setAttribute(k, attrs[k]);
    e.append(...kids);
    return e;
  };
  // Google Consent Mode v2, denied until a decision.
  const gtag = (type, a, m) => typeof w.gtag === 'function' && w.gtag('consent', type,
    { analytics_storage: a, ad_storage: m, ad_user_data: m, ad_personalization: m });
  gtag('default', 'denied', 'denied');

  // ---- measurement: only while T is set ----
  let T = null;  // {vid, cid} while measuring
  let pv = null; // current pageview: the beacon as sent
  let shown = 0, since = 0, sent = 0; // visible ms, visible since (0: hidden), last sent
  let curKey = loc.pathname + loc.search, curUrl = loc.href, curRef = d.referrer;
  const visible = () => d.visibilityState === 'visible';

  const send = o => {
    if (!T) return;
    Object.assign(o, { event_id: hex(), visitor_id: T.vid, consent_id: T.cid });
    const url = API + '/api/collect', body = JSON.stringify(o);
    try {
      if (nav.sendBeacon(url, new Blob([body], { type: 'text/plain' }))) return;
    } catch (e) { /* no sendBeacon: fall back to fetch */ }
    fetch(url, { method: 'POST', body, keepalive: true, credentials: 'omit',
      headers: { 'Content-Type': 'text/plain' } }).catch(() => {});
  };
  const pageview = () => {
    shown = sent = 0;
    since = visible() && now();
    send(pv = { type: 'pageview', url: loc.href.slice(0, 2048),
      referrer: curRef.slice(0, 2048), title: d.title.slice(0, 300) });
  };
  const engagement = () => { // cumulative visible time of the current pageview
    const ms = Math.min(Math.round(shown + (since && now() - since)), 864e5);
    if (T && pv && ms > sent) {
      send({ type: 'engagement', url: pv.url, referrer: pv.referrer, title: pv.title,
        pageview_id: pv.event_id, engaged_ms: sent = ms });
    }
  };
  const stop = () => { T = pv = null; };

  on(d, 'visibilitychange', () => {
    if (since) shown += now() - since;
    since = visible() && now();
    if (!since) engagement();
  });
  on(w, 'pagehide', engagement);

  // Client-side navigation: a new pageview when the path or query changes.
  const navigated = () => {
    const k = loc.pathname + loc.search;
    if (k === curKey) return;
    engagement(); // of the page being left
    curKey = k;
    curRef = curUrl;
    curUrl = loc.href;
    if (T) pageview();
  };
  for (const m of ['pushState', 'replaceState']) {
    const orig = history[m];
    history[m] = function () {
      const r = orig.apply(this, arguments);
      navigated();
      return r;
    };
  }
  on(w, 'popstate', navigated);

  // ---- consent state ----
  let state = null; // {c: {analytics, location, marketing}, id: consent_id or null}
  let seq = 0;

  const norm = c => ({ // location needs analytics; GPC refuses marketing
    analytics: !!c.analytics,
    location: !!(c.analytics && c.location),
    marketing: !GPC && !!c.marketing
  });
  const stored = () => {
    const [id, ver, f, at] = (getC('amn_consent') || '').split('|');
    if (HEX.test(id) && ver === VER && /^[01]{3}$/.test(f) && now() / 1e3 - at < 182 * DAY) {
      return { id, c: norm({ analytics: +f[0], location: +f[1], marketing: +f[2] }) };
    }
  };
  // Make the current state effective: measurement, gated scripts, Consent Mode, event.
  const apply = vid => {
    const c = state ? state.c : norm({}), id = state && state.id;
    if (c.analytics && id && vid) {
      const first = !T;
      T = { vid, cid: id };
      if (first) pageview();
    } else stop();
    // <script type="text/plain" data-consent="purpose ..."> becomes a real script, once.
    for (const s of d.querySelectorAll('script[type="text/plain"][data-consent]')) {
      if (!s.dataset.consent.trim().split(/\s+/).every(p => c[p] === true)) continue;
      const n = d.createElement('script');
      for (const a of s.attributes) {
        if (!/^(type|data-consent)$/.test(a.name)) n.setAttribute(a.name, a.value);
      }
      n.nonce = s.nonce;
      if (!s.src) n.text = s.text;
      else if (!s.async) n.async = false; // keep the document order
      s.replaceWith(n);
    }
    const g = b => b ? 'granted' : 'denied';
    gtag('update', g(c.analytics), g(c.marketing));
    d.dispatchEvent(new CustomEvent('amniotic:consent',
      { detail: Object.assign({ consent_id: id }, c) }));
  };

  const decide = (choices, method) => {
    const c = norm(choices), mine = ++seq, old = vidC();
    const vid = c.analytics ? old || hex() : old; // on refusal: the old id, to withdraw it
    setC('amn_consent', '', 0); // a failed request must not leave an older decision behind
    if (!c.analytics) {
      stop();
      setC('amn_vid', '', 0);
    }
    state = { c, id: null };
    close();
    post('/api/consent', { visitor_id: vid, choices: c, policy_version: VER, lang: L, method })
      .then(r => r.ok ? r.json() : {}).catch(() => ({}))
      .then(j => {
        if (mine !== seq) return; // a newer decision was made meanwhile
        if (HEX.test(j.consent_id)) {
          state.id = j.consent_id;
          setC('amn_consent', [j.consent_id, VER, PURPOSES.map(p => +c[p]).join(''),
            Math.floor(now() / 1e3)].join('|'), 182);
          if (c.analytics) setC('amn_vid', vid, 395);
        } else state.c = norm({}); // not recorded, so nothing granted (asked again next time)
        apply(vid);
      });
  };

  // ---- user interface, built on first use ----
  let box, root, panel, tools, msg, fab, back;
  const sw = {}, btns = {};
  const CSS = '.amn{font:14px/1.4 system-ui,sans-serif;color:#111}' +
    '.amn-cb{position:fixed;inset:auto 1em 1em;z-index:99999;max-width:44em;' +
    'max-height:90vh;overflow:auto;margin:auto;padding:1em;background:#fff;border:1px solid;' +
    'border-radius:8px;box-shadow:0 4px 24px #0004}.amn h2{margin:0 0 .4em;font-size:1.1em}' +
    '.amn p,.amn small{display:block;margin:0 0 .8em}.amn label{font-weight:600}' +
    '.amn input{margin:0 .5em 0 0}' +
    '.amn-btns{display:grid;grid:auto-flow 1fr/repeat(auto-fit,minmax(9em,1fr));gap:.5em}' +
    '.amn button{font:inherit;padding:.3em .6em;margin-right:.5em;border:1px solid;' +
    'border-radius:6px;background:#fff;color:#111;cursor:pointer}' +
    '.amn .amn-b{font-weight:600;padding:.6em;margin:0;border:2px solid #111;' +
    'background:#111;color:#fff}.amn-fab{position:fixed;left:1em;bottom:1em;' +
    'z-index:99998;font-size:12px!important}' +
    '.amn :focus-visible{outline:3px solid #1d4ed8;outline-offset:2px}.amn-cb:focus{outline:0}' +
    '.amn [hidden]{display:none!important}';

  const btn = (action, cls = '') => btns[action] =
    h('button', { type: 'button', class: cls, 'data-action': action }, [TXT[action]]);
  // One purpose: switch and title, then its description.
  const option = (k, input) => h('div', {}, [h('label', {}, [input, TXT[k][0]]),
    h('small', { id: `amn-${k}-d` }, [TXT[k][1]])]);
  const build = () => {
    if (box) return;
    panel = h('div', { hidden: '' }, [
      ...PURPOSES.map(k => option(k, sw[k] = h('input', { type: 'checkbox', role: 'switch',
        name: k, 'aria-describedby': `amn-${k}-d` }))),
      tools = h('p', {}, [btn('export'), btn('erase')]),
      msg = h('p', { role: 'status' })
    ]);
    root = h('div', { class: 'amn-cb', role: 'dialog', 'aria-modal': 'false',
      'aria-labelledby': 'amn-t', 'aria-describedby': 'amn-d', tabindex: -1, hidden: '' }, [
      h('h2', { id: 'amn-t' }, [TXT.title]),
      h('p', { id: 'amn-d' }, [TXT.intro + PURPOSES.map(k => `${TXT[k][0]} (${TXT[k][1]})`)
        .join(', ') + TXT.outro, h('a', { href: ds.privacyUrl || '/privacy' },
        [TXT.policy])]),
      panel,
      h('div', { class: 'amn-btns' }, ['accept', 'refuse', 'customize', 'save']
        .map(a => btn(a, 'amn-b')))
    ]);
    fab = btn('open-settings', 'amn-fab');
    fab.hidden = true;
    box = h('div', { class: 'amn', lang: L }, [h('style', {}, [CSS]), root, fab]);
    (d.body || d.documentElement).append(box);
    sw.analytics.onchange = sync;
    root.onkeydown = e => {
      if (e.key === 'Escape') close();
    };
    box.onclick = e => {
      const b = e.target.closest('[data-action]');
      const act = b && {
        accept: () => decide({ analytics: 1, location: 1, marketing: 1 }, 'accept_all'),
        refuse: () => decide({}, 'refuse_all'),
        customize: settings,
        save: () => decide({ analytics: sw.analytics.checked, location: sw.location.checked,
          marketing: sw.marketing.checked }, 'custom'),
        export: () => selfService('export', blob => { // download as my-data.json
          const a = h('a', { href: URL.createObjectURL(blob), download: 'my-data.json' });
          a.click();
          setTimeout(() => URL.revokeObjectURL(a.href), 6e4);
        }),
        erase: () => w.confirm(TXT.confirm) && selfService('erase', () => {
          setC('amn_vid', '', 0);
          setC('amn_consent', '', 0);
          state = null; // no decision any more: the banner will ask again
          apply();
          settings();
          msg.textContent = TXT.erased;
        }),
        'open-settings': open
      }[b.dataset.action];
      if (act) act();
    };
  };
  const selfService = (what, then) => post('/api/me/' + what, { visitor_id: vidC() })
    .then(r => { if (!r.ok) throw r; return r.blob(); })
    .then(then).catch(() => { msg.textContent = TXT.err; });
  const sync = () => { // location only with analytics; GPC locks marketing off
    const a = sw.analytics.checked;
    sw.location.disabled = !a;
    sw.location.checked = a && sw.location.checked;
    sw.marketing.disabled = GPC;
  };
  const show = () => { // the short banner
    build();
    back = d.activeElement;
    panel.hidden = btns.save.hidden = fab.hidden = true;
    root.hidden = btns.customize.hidden = false;
    root.focus({ preventScroll: true });
  };
  const settings = () => { // the settings panel, reflecting the current choice
    const c = state ? state.c : norm({});
    for (const k of PURPOSES) sw[k].checked = c[k];
    sync();
    tools.hidden = !vidC();
    msg.textContent = '';
    panel.hidden = btns.save.hidden = false;
    btns.customize.hidden = true;
  };
  const open = () => {
    if (!root || root.hidden) show();
    settings();
  };
  const close = () => { // only once a decision exists
    if (!root || root.hidden || !state) return;
    root.hidden = true;
    fab.hidden = false;
    if (back && back !== d.body && back.isConnected) back.focus();
  };

  // ---- public API, then start ----
  AMN.consent = { open, close, get: () => state && Object.assign({}, state.c) };
  on(d, 'click', e => {
    if (e.target.closest && e.target.closest('[data-amniotic-consent-open]')) {
      e.preventDefault();
      open();
    }
  });

  // After the deferred scripts ran, so that their listeners see the first event.
  let started;
  const start = () => {
    if (started) return;
    started = 1;
    const vid = vidC();
    state = stored() || null;
    if (state && state.c.analytics && !vid) state = null; // visitor id lost: ask again
    if (!state) return show();
    build();
    fab.hidden = false;
    apply(vid);
  };
  if (d.readyState === 'complete') start();
  else {
    on(d, 'DOMContentLoaded', start);
    on(w, 'load', start);
  }
})();
