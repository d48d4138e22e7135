// Redaction in the page: see jobs/media/redact.py for what it does and why. __CONFIG__ is replaced by the job's
// selectors and patterns ({binding, selectors, patterns: [{source, js}]}). Runs in every frame before the
// page's own scripts (Playwright's add_init_script).
(() => {
  'use strict';
  const CONFIG = __CONFIG__;
  // Elements whose content is not text on the page: their subtrees are not read as text.
  const SKIP = new Set(['script', 'style', 'noscript', 'template', 'head', 'title', 'textarea', 'select', 'iframe',
    'object', 'embed', 'video', 'audio', 'canvas', 'img', 'input']);
  // Elements that start a new line: text is read across inline elements (a <b>, a <span>, React's
  // {user}@{domain} as three text nodes) up to these, as a reader sees it.
  const BLOCK = new Set(['address', 'article', 'aside', 'blockquote', 'body', 'br', 'button', 'caption', 'center',
    'dd', 'details', 'dialog', 'div', 'dl', 'dt', 'fieldset', 'figcaption', 'figure', 'footer', 'form', 'h1', 'h2',
    'h3', 'h4', 'h5', 'h6', 'header', 'hgroup', 'hr', 'html', 'legend', 'li', 'main', 'menu', 'nav', 'ol', 'optgroup',
    'option', 'p', 'pre', 'section', 'summary', 'table', 'tbody', 'td', 'tfoot', 'th', 'thead', 'tr', 'ul', 'svg',
    'text', 'foreignObject']);
  const FIELDS = new Set(['input', 'textarea', 'select']);
  const NO_TEXT_INPUTS = new Set(['checkbox', 'radio', 'hidden', 'file', 'range', 'color']);
  const ATTRIBUTES = ['placeholder', 'title', 'alt', 'aria-label', 'aria-description', 'label'];
  const FIELD = 1, ATTRIBUTE = 2, PSEUDO = 4, TYPED = 8;
  const OVERLAY_CSS = `
    .layer { position: absolute; left: 0; top: 0; width: 0; height: 0; }
    .fixed { position: fixed; }
    .cover { position: fixed; left: 0; top: 0; width: 100vw; height: 100vh; background: Canvas;
             color-scheme: light dark; }
    .mask { position: absolute; box-sizing: border-box; border-radius: 3px; color-scheme: light dark;
            background: linear-gradient(var(--fill), var(--fill)), Canvas; }`;
  const HOST_STYLE = ['all: initial', 'position: absolute', 'top: 0', 'left: 0', 'width: 0', 'height: 0', 'margin: 0',
    'padding: 0', 'border: 0', 'display: block', 'overflow: visible', 'visibility: visible', 'opacity: 1',
    'z-index: 2147483647', 'pointer-events: none', 'contain: none', 'transform: none', 'filter: none']
    .map((d) => d + ' !important').join('; ');
  const hasOwn = (o, k) => Object.prototype.hasOwnProperty.call(o, k);
  const OPAQUE = /^rgb\(|^rgba\([^)]*,\s*1\)$/; // a computed background colour that hides what is behind

  // Client patterns, checked once: V8 must be able to run each in linear time (the `l` flag), so that
  // the backtracking engine, which is faster on ordinary text, hands any match that backtracks too much
  // over to the linear engine (--enable-experimental-regexp-engine-on-excessive-backtracks).
  const errors = [];
  const patterns = [];
  for (const p of CONFIG.patterns) {
    try {
      new RegExp(p.js, 'l');
      patterns.push(new RegExp(p.js, 'g'));
    } catch (e) {
      errors.push('pattern ' + p.source + ': ' + (/linear/.test(e.message) ? 'cannot run in linear time'
        : e.message.slice(0, 120)));
    }
  }
  const exec = RegExp.prototype.exec;
  const apply = Reflect.apply;
  // Text equal to a secret the job types (jobs.media.secrets), found by a rolling hash (Rabin-Karp over UTF-16
  // code units, two moduli, bases drawn for each recording): the values themselves are never in the page, and
  // only documents on the secrets' own origins look for them.
  const SECRETS = CONFIG.secrets;
  const M1 = 1000003, M2 = 999983;
  const probes = SECRETS ? SECRETS.probes.filter((p) => p.origins.includes(location.origin)) : [];
  const secretSpans = (text, spans) => {
    for (const p of probes) {
      const L = p.length;
      if (text.length < L) continue;
      const [B1, B2] = SECRETS.bases;
      let h1 = 0, h2 = 0, found = 0;
      for (let i = 0; i < text.length && found < 1000; i++) {
        if (i >= L) {
          const o = text.charCodeAt(i - L);
          h1 = (h1 - (o * p.top1) % M1 + M1) % M1;
          h2 = (h2 - (o * p.top2) % M2 + M2) % M2;
        }
        const c = text.charCodeAt(i);
        h1 = (h1 * B1 + c) % M1;
        h2 = (h2 * B2 + c) % M2;
        if (i >= L - 1 && h1 === p.h1 && h2 === p.h2) {
          spans.push([i - L + 1, i + 1]);
          found++;
        }
      }
    }
  };
  const spansOf = (text) => {
    const spans = [];
    for (const re of patterns) {
      re.lastIndex = 0;
      for (let m, n = 0; n < 1000 && (m = apply(exec, re, [text])); n++) {
        if (m[0].length) spans.push([m.index, m.index + m[0].length]);
        else re.lastIndex++;
      }
    }
    if (probes.length) secretSpans(text, spans);
    return spans;
  };
  const matches = (text) => {
    if (!text) return false;
    for (const re of patterns) {
      re.lastIndex = 0;
      if (apply(exec, re, [text])) return true;
    }
    if (probes.length) {
      const spans = [];
      secretSpans(text, spans);
      if (spans.length) return true;
    }
    return false;
  };
  // CSS content, as declared ("a" attr(x) counter(n)) or computed (attr() already resolved): its strings,
  // and the attributes it shows.
  const CONTENT = /"((?:[^"\\]|\\.)*)"|'((?:[^'\\]|\\.)*)'|attr\(\s*([^\s,)]+)[^)]*\)/g;
  const unescapeCss = (s) => s.replace(/\\([0-9a-fA-F]{1,6})\s?|\\(.)/g,
    (_, hex, ch) => hex ? String.fromCodePoint(Math.min(parseInt(hex, 16), 0x10FFFF)) : ch);
  const parseContent = (value) => {
    const parts = [];
    for (const m of value.matchAll(CONTENT)) {
      if (m[3] !== undefined) parts.push({attr: m[3]});
      else parts.push(unescapeCss(m[1] !== undefined ? m[1] : m[2]));
    }
    return parts;
  };

  // Once per document (not per window: an iframe's first about:blank window is reused by the document that
  // replaces it, and that document needs its own copy).
  const install = (W) => {
    const D = W.document;
    if (hasOwn(D, '__srRedactBlur')) return;
    const DOCUMENT = Math.random().toString(36).slice(2); // each document reports its own counts
    const E = W.Element.prototype;
    const getRects = E.getClientRects, getBox = E.getBoundingClientRect, removeNode = E.remove;
    const rangeRects = W.Range.prototype.getClientRects;
    const computed = W.getComputedStyle;
    const style = (el, pseudo) => apply(computed, W, [el, pseudo || null]);
    const attachShadow = E.attachShadow;
    const showPopover = W.HTMLElement.prototype.showPopover, hidePopover = W.HTMLElement.prototype.hidePopover;
    const appendChild = W.Node.prototype.appendChild;
    const raf = W.requestAnimationFrame;
    const range = D.createRange();

    const selectors = [];
    for (const selector of CONFIG.selectors) {
      try { D.createDocumentFragment().querySelector(selector); selectors.push(selector); }
      catch (e) { errors.push('selector ' + selector + ': ' + e.message); }
    }

    // --- what is masked -------------------------------------------------------------------------------
    // Each thing masked is an entry that owns its mask elements: a match in a block's text ({span, at}), or
    // an element ({el, bits, selected}) hidden for its value, attributes or pseudo-elements, because the
    // recorder is about to type into it, or because a selector matches it.
    const roots = new Set([D]); // the document and every shadow root, open or closed
    const closedRoots = new WeakMap(); // host -> its shadow root, from attachShadow
    const blocks = new Map(); // block (element or shadow root) -> its entries
    const elements = new Map(); // element -> its entry
    const fields = new Map(); // input, textarea or select -> the value last checked
    const pending = new Set(); // entries to place at the next paint
    const selectorCounts = {};
    const counted = new WeakMap(); // block or element -> how many matches were counted for it
    let text = 0;
    // rulesDirty: a stylesheet's rules were edited; sheetsDirty: a stylesheet came or went (or loaded);
    // layoutDirty: anything may have moved, so every entry is placed again.
    let revealed = false, selectorsDirty = true, rulesDirty = false, sheetsDirty = false, layoutDirty = true;
    const dirtyBlocks = new Set();
    const moved = new Set(); // subtrees that moved without a layout (a transform animates, a box scrolls)

    const fail = (where, e) => {
      // A redaction that cannot be applied must not pass as one that was: the recorder fails the chunk.
      const message = 'internal (' + where + '): ' + (e && e.message ? e.message : String(e));
      if (!errors.includes(message)) errors.push(message);
      report();
    };
    const count = (key, n) => {
      const before = counted.get(key) || 0;
      if (n > before) { text += n - before; counted.set(key, n); later(); }
    };
    const drop = (entry) => {
      for (const m of entry.masks) apply(removeNode, m, []);
      entry.masks.length = 0;
      pending.delete(entry);
    };
    const elementEntry = (el, change) => {
      let entry = elements.get(el);
      if (!entry) entry = {el, bits: 0, selected: false, masks: []};
      const before = entry.bits || entry.selected;
      change(entry);
      const after = entry.bits || entry.selected;
      if (after && !before) { elements.set(el, entry); pending.add(entry); }
      else if (!after && before) { elements.delete(el); drop(entry); }
      else if (after) pending.add(entry);
    };
    const setMark = (el, bit, on) => {
      const was = (elements.get(el) || {bits: 0}).bits;
      const now = on ? was | bit : was & ~bit;
      if (now === was) return;
      elementEntry(el, (entry) => { entry.bits = now; });
      if (now && !was) count(el, 1);
    };
    const isBlock = (el) => BLOCK.has(el.localName) || !!el.shadowRoot || closedRoots.has(el);
    const blockOf = (node) => {
      for (let n = node; n; n = n.parentNode) {
        if (n.nodeType === 11 || n.nodeType === 9 || (n.nodeType === 1 && isBlock(n))) return n;
      }
      return null;
    };
    const elementOf = (node) => node.nodeType === 1 ? node : node.parentElement || (node.parentNode && node.parentNode.host);

    // The block's own text: its text nodes and those of inline elements inside it, in order, with a line
    // break where a nested block (matched on its own) or a non-text element sits.
    const scanBlock = (b) => {
      const old = blocks.get(b) || [];
      const spans = [];
      if (b.isConnected) {
        const nodes = [], starts = [];
        let all = '';
        const walk = (parent) => {
          for (let n = parent.firstChild; n; n = n.nextSibling) {
            if (n.nodeType === 3) { nodes.push(n); starts.push(all.length); all += n.data; }
            else if (n.nodeType === 1) {
              if (n === host || SKIP.has(n.localName) || isBlock(n)) all += '\n';
              else walk(n);
            }
          }
        };
        walk(b);
        const locate = (pos, end) => {
          let lo = 0, hi = starts.length - 1;
          while (lo < hi) { // the last node starting at or before pos (before it, for an end)
            const mid = (lo + hi + 1) >> 1;
            if (starts[mid] < pos || (!end && starts[mid] === pos)) lo = mid; else hi = mid - 1;
          }
          const node = nodes[lo], offset = pos - starts[lo];
          if (!end && offset >= node.length && lo + 1 < nodes.length) return [nodes[lo + 1], 0];
          return [node, Math.max(0, Math.min(offset, node.length))];
        };
        if (all.trim()) for (const [s, e] of spansOf(all)) spans.push([...locate(s, false), ...locate(e, true)]);
      }
      const same = old.length === spans.length && old.every((entry, i) => entry.span.every((v, j) => v === spans[i][j]));
      if (same) return;
      for (const entry of old) drop(entry);
      if (!spans.length) { blocks.delete(b); return; }
      const entries = spans.map((span) => ({span, at: elementOf(span[0]), masks: []}));
      for (const entry of entries) pending.add(entry);
      blocks.set(b, entries);
      count(b, spans.length);
    };

    const fieldText = (el) => {
      if (el.localName === 'select') return Array.from(el.selectedOptions || [], (o) => o.text).join(' ');
      if (el.localName === 'input' && NO_TEXT_INPUTS.has(el.type)) return '';
      return el.value;
    };
    const checkField = (el) => {
      const value = fieldText(el);
      fields.set(el, value);
      setMark(el, FIELD, matches(value));
    };

    // ::before and ::after. Computing every element's pseudo-element styles costs about 25 µs an element
    // (Chromium 156), so the page's stylesheets are read instead: only their rules that give a
    // pseudo-element content are kept (with content from attributes, or a text that matches), and elements
    // are tested against those. A stylesheet from another origin cannot be read: then every element's
    // computed content is read after all.
    const rulesByRoot = new Map(); // document or shadow root -> [{selector, parts}], or null when unreadable
    const splitSelectors = (list) => {
      const out = [];
      let depth = 0, start = 0, quote = '';
      for (let i = 0; i < list.length; i++) {
        const c = list[i];
        if (quote) { if (c === '\\') i++; else if (c === quote) quote = ''; }
        else if (c === '"' || c === "'") quote = c;
        else if (c === '(' || c === '[') depth++;
        else if (c === ')' || c === ']') depth--;
        else if (c === ',' && depth === 0) { out.push(list.slice(start, i)); start = i + 1; }
      }
      out.push(list.slice(start));
      return out.map((s) => s.trim()).filter(Boolean);
    };
    const PSEUDO_END = /::?(before|after)$/i;
    const DYNAMIC = /:(hover|active|focus-visible|focus-within|focus)(?![\w-])/gi;
    const walkRules = (list, parent, out) => {
      for (const rule of list) {
        if (rule.styleSheet) { walkRules(rule.styleSheet.cssRules, parent, out); continue; } // @import
        let selector = parent;
        if (typeof rule.selectorText === 'string') {
          selector = !parent ? rule.selectorText : rule.selectorText.includes('&')
            ? rule.selectorText.split('&').join(':is(' + parent + ')') : ':is(' + parent + ') ' + rule.selectorText;
          const content = rule.style ? rule.style.getPropertyValue('content') : '';
          if (content && content !== 'none' && content !== 'normal') {
            const parts = parseContent(content);
            // A rule whose content is only text that matches nothing can never show a match.
            if (parts.some((p) => typeof p !== 'string') || matches(parts.join(''))) {
              for (const one of splitSelectors(selector)) {
                if (!PSEUDO_END.test(one)) continue;
                // :hover and :focus are dropped: a tooltip is hidden before it is ever shown.
                const base = one.replace(PSEUDO_END, '').replace(DYNAMIC, '').trim() || '*';
                out.push({selector: /[>+~]$/.test(base) ? base + ' *' : base, parts});
              }
            }
          }
        }
        if (rule.cssRules) walkRules(rule.cssRules, selector, out);
      }
    };
    const rulesOf = (root) => {
      if (rulesByRoot.has(root)) return rulesByRoot.get(root);
      let rules = [];
      try {
        for (const sheet of [...root.styleSheets, ...(root.adoptedStyleSheets || [])]) {
          walkRules(sheet.cssRules, '', rules);
        }
      } catch (e) {
        rules = null; // another origin's stylesheet (SecurityError): read computed styles instead
      }
      rulesByRoot.set(root, rules);
      return rules;
    };
    const pseudoText = (el) => {
      const rules = rulesOf(el.getRootNode());
      let out = '';
      if (rules === null) {
        for (const which of ['::before', '::after']) {
          const content = style(el, which).content;
          if (content && content !== 'none' && content !== 'normal') out += parseContent(content).join('') + '\n';
        }
        return out;
      }
      for (const rule of rules) {
        let hit = false;
        try { hit = el.matches(rule.selector); } catch (e) { continue; }
        if (hit) out += rule.parts.map((p) => typeof p === 'string' ? p : el.getAttribute(p.attr) || '').join('') + '\n';
      }
      return out;
    };

    const checkElement = (el) => {
      if (el === host) return;
      if (FIELDS.has(el.localName)) checkField(el);
      let attribute = false;
      if (el.hasAttributes()) {
        for (const a of ATTRIBUTES) {
          if (matches(el.getAttribute(a))) { attribute = true; break; }
        }
      }
      setMark(el, ATTRIBUTE, attribute);
      setMark(el, PSEUDO, matches(pseudoText(el)));
      const root = el.shadowRoot || closedRoots.get(el);
      if (root) addRoot(root);
    };
    // Every element under node (and node): checked, and (unless only elements are asked for) every block in
    // it queued for a text scan.
    const scanSubtree = (node, elementsOnly) => {
      const walker = D.createTreeWalker(node, 1 /* SHOW_ELEMENT */);
      for (let el = node.nodeType === 1 ? node : walker.nextNode(); el; el = walker.nextNode()) {
        checkElement(el);
        if (!elementsOnly && isBlock(el)) dirtyBlocks.add(el);
      }
      if (elementsOnly) return;
      if (node.nodeType === 11) dirtyBlocks.add(node);
      const around = blockOf(node.nodeType === 1 ? node.parentNode : node);
      if (around) dirtyBlocks.add(around);
    };
    const recheckRules = () => {
      const sheets = sheetsDirty;
      rulesByRoot.clear();
      rulesDirty = sheetsDirty = false;
      for (const el of [...elements.keys()]) checkElement(el);
      for (const root of roots) {
        const rules = rulesOf(root);
        if (rules === null) {
          // Computed styles are read for every element checked anyway: all of them again only when a
          // stylesheet came or went, not at each rule a CSS-in-JS library inserts.
          if (sheets) scanSubtree(root.nodeType === 9 ? root.documentElement || root : root, true);
          continue;
        }
        for (const rule of rules) {
          let found = [];
          try { found = root.querySelectorAll(rule.selector); } catch (e) { continue; }
          for (const el of found) checkElement(el);
        }
      }
    };

    // --- shadow roots ---------------------------------------------------------------------------------
    const observer = new W.MutationObserver((records) => { try { onMutations(records); } catch (e) { fail('mutation', e); } });
    const observe = (root) => observer.observe(root, {subtree: true, childList: true, characterData: true, attributes: true});
    const addRoot = (root) => {
      if (roots.has(root)) return;
      roots.add(root);
      observe(root);
      rulesByRoot.delete(root);
      selectorsDirty = true;
      if (revealed) scanSubtree(root);
    };
    // Closed shadow roots are out of reach once attached: every root is kept as it is made.
    Object.defineProperty(E, 'attachShadow', {configurable: true, writable: true, value: function (...args) {
      const root = apply(attachShadow, this, args);
      try { closedRoots.set(this, root); addRoot(root); } catch (e) { fail('attachShadow', e); }
      return root;
    }});

    // Input values however they are set: typing fires `input`, but a script's `el.value = ...` (React's
    // controlled inputs) fires nothing and changes no attribute.
    for (const [C, names] of [[W.HTMLInputElement, ['value']], [W.HTMLTextAreaElement, ['value']],
      [W.HTMLSelectElement, ['value', 'selectedIndex']], [W.HTMLOptionElement, ['selected']]]) {
      for (const name of names) {
        const d = Object.getOwnPropertyDescriptor(C.prototype, name);
        if (!d || !d.set) continue;
        Object.defineProperty(C.prototype, name, {...d, set: function (v) {
          apply(d.set, this, [v]);
          try {
            const field = this.localName === 'option' ? this.closest('select') : this;
            if (field) { checkField(field); paint(); wake(); }
          } catch (e) { fail('value', e); }
        }});
      }
    }
    D.addEventListener('input', (e) => {
      try { if (e.target instanceof W.Element) { checkElement(e.target); layoutDirty = true; paint(); wake(); } } catch (err) { fail('input', err); }
    }, true);
    // Stylesheets changed outside the DOM (CSS-in-JS inserts rules; a <link> loads after it is added).
    for (const name of ['insertRule', 'deleteRule', 'replaceSync', 'replace', 'addRule']) {
      const d = Object.getOwnPropertyDescriptor(W.CSSStyleSheet.prototype, name);
      if (!d || typeof d.value !== 'function') continue;
      Object.defineProperty(W.CSSStyleSheet.prototype, name, {...d, value: function (...args) {
        rulesDirty = layoutDirty = true;
        wake();
        return apply(d.value, this, args);
      }});
    }
    for (const proto of [W.Document.prototype, W.ShadowRoot.prototype]) {
      const d = Object.getOwnPropertyDescriptor(proto, 'adoptedStyleSheets');
      if (d && d.set) {
        Object.defineProperty(proto, 'adoptedStyleSheets', {...d, set: function (v) {
          rulesDirty = layoutDirty = true;
          wake();
          apply(d.set, this, [v]);
        }});
      }
    }
    D.addEventListener('load', (e) => { if (e.target && e.target.localName === 'link') { sheetsDirty = true; wake(); } }, true);

    // What can move masked content without a change to the DOM: the page is placed again on the next frame.
    const relayout = () => { layoutDirty = true; wake(); };
    for (const type of ['pointerover', 'pointerout', 'focusin', 'focusout', 'change', 'toggle', 'load', 'error',
      'resize', 'reset', 'transitionrun', 'transitionend', 'transitioncancel', 'animationstart', 'animationend',
      'animationcancel']) {
      D.addEventListener(type, relayout, true);
    }
    W.addEventListener('resize', relayout, true);
    if (D.fonts) D.fonts.addEventListener('loadingdone', relayout);
    // A scroll of the document moves what is fixed or sticky in it; a box that scrolls moves its content.
    D.addEventListener('scroll', (e) => { if (e.target === D) layoutDirty = true; else moved.add(e.target); wake(); }, true);
    const animate = E.animate; // the Web Animations API starts animations without an event
    Object.defineProperty(E, 'animate', {configurable: true, writable: true, value: function (...args) {
      wake();
      return apply(animate, this, args);
    }});

    // --- the overlay: masks the page's CSS cannot reach ----------------------------------------------
    // A closed shadow root in the top layer (a manual popover above anything the page puts there; raised
    // again whenever the page opens a dialog or popover), with inline !important styles, which no
    // stylesheet of the page outranks. Masks over the document scroll with it on the compositor; masks over
    // fixed elements stay with the viewport.
    let host = null, layer = null, fixedLayer = null, cover = null;
    const makeHost = () => {
      host = D.createElement('sr-redaction-' + DOCUMENT);
      host.setAttribute('style', HOST_STYLE);
      host.setAttribute('popover', 'manual');
      const shadow = apply(attachShadow, host, [{mode: 'closed'}]);
      const css = D.createElement('style');
      css.textContent = OVERLAY_CSS;
      layer = D.createElement('div');
      layer.className = 'layer';
      fixedLayer = D.createElement('div');
      fixedLayer.className = 'layer fixed';
      cover = D.createElement('div');
      cover.className = 'cover';
      for (const n of [css, layer, fixedLayer, cover]) apply(appendChild, shadow, [n]);
    };
    const raise = () => {
      if (!host) return;
      if (!host.isConnected) {
        if (!D.documentElement) return;
        apply(appendChild, D.documentElement, [host]);
      }
      try {
        if (host.matches(':popover-open')) apply(hidePopover, host, []);
        apply(showPopover, host, []);
      } catch (e) { /* not in the top layer: the z-index still puts it over the page */ }
    };
    D.addEventListener('toggle', (e) => { if (e.target !== host && e.newState === 'open') raise(); }, true);
    D.addEventListener('fullscreenchange', raise, true);
    const showModal = W.HTMLDialogElement && W.HTMLDialogElement.prototype.showModal;
    if (showModal) {
      Object.defineProperty(W.HTMLDialogElement.prototype, 'showModal', {configurable: true, writable: true,
        value: function (...args) { const r = apply(showModal, this, args); raise(); return r; }});
    }

    // Where each thing masked sits: the scroll containers that clip it, whether it is fixed to the
    // viewport, its font size (masks grow with the text) and its colours (a mask is an opaque bar of the
    // text's colour faded into its background: a blur, even backdrop-filter's, does not grow with the
    // camera's zoom and left zoomed text legible). Worked out from the parent's (so elements share their
    // ancestors' work), kept two seconds, and again after a class or style changes (at most every 64 ms).
    const contexts = new WeakMap();
    const now = () => W.performance.now();
    let generation = 0, generationAt = -Infinity;
    const restyled = () => { if (now() - generationAt >= 64) { generation++; generationAt = now(); } };
    const parentOf = (el) => {
      const p = el.parentNode;
      return p && p.nodeType === 11 ? p.host : p && p.nodeType === 1 ? p : null;
    };
    const contextOf = (el, t) => {
      let c = contexts.get(el);
      if (c && c.generation === generation && t - c.at < 2000) return c;
      const s = style(el);
      const parent = parentOf(el);
      const up = parent ? contextOf(parent, t) : {clips: [], fixed: false, background: ''};
      const fixed = s.position === 'fixed';
      const clips = el !== D.documentElement && el !== D.body && (s.overflowX !== 'visible' || s.overflowY !== 'visible');
      c = {at: t, generation, fixed: fixed || up.fixed, font: parseFloat(s.fontSize) || 16,
        // A fixed element is not clipped by the scroll containers around it.
        clips: fixed ? (clips ? [el] : []) : clips ? [...up.clips, el] : up.clips,
        background: OPAQUE.test(s.backgroundColor) ? s.backgroundColor : up.background};
      c.fill = `color-mix(in srgb, ${s.color || 'CanvasText'} 30%, ${c.background || 'Canvas'})`;
      contexts.set(el, c);
      return c;
    };
    // A pseudo-element placed out of the element's box (a tooltip) has no box a script can ask for. When the
    // element is its containing block, its box is worked out from its computed offsets and size (and the
    // translation of its transform); otherwise the element's mask reaches as far as the pseudo-element is big.
    const px = (v) => parseFloat(v) || 0;
    const pseudoRects = (el, list) => {
      let reach = 0;
      const out = [...list];
      for (const which of ['::before', '::after']) {
        const s = style(el, which);
        if (s.content === 'none' || s.content === 'normal' || (s.position !== 'absolute' && s.position !== 'fixed')) continue;
        const w = px(s.width) + px(s.paddingLeft) + px(s.paddingRight) + px(s.borderLeftWidth) + px(s.borderRightWidth);
        const h = px(s.height) + px(s.paddingTop) + px(s.paddingBottom) + px(s.borderTopWidth) + px(s.borderBottomWidth);
        const own = style(el);
        if (s.position === 'absolute' && own.position !== 'static' && own.transform === 'none' && list.length === 1) {
          const box = list[0];
          const m = /matrix\(([^)]*)\)/.exec(s.transform || '');
          const [tx, ty] = m ? m[1].split(',').slice(4).map(px) : [0, 0];
          const left = box.left + px(own.borderLeftWidth) + px(s.left) + tx;
          const top = box.top + px(own.borderTopWidth) + px(s.top) + ty;
          out.push({left, top, right: left + w, bottom: top + h, width: w, height: h});
        } else reach = Math.max(reach, w + h + 8);
      }
      if (reach) {
        const b = apply(getBox, el, []);
        out.push({left: b.left - reach, top: b.top - reach, right: b.right + reach, bottom: b.bottom + reach,
          width: b.width + 2 * reach, height: b.height + 2 * reach});
      }
      return out;
    };
    // The entry's boxes now, padded and clipped by its scroll containers. Only reads: every entry is measured
    // before any mask moves (a write between two reads would lay the page out again for each entry).
    const measure = (entry) => {
      let list = [], at = entry.at || entry.el;
      if (entry.span) {
        const [sn, so, en, eo] = entry.span;
        if (sn.isConnected && en.isConnected) {
          try { range.setStart(sn, so); range.setEnd(en, eo); list = apply(rangeRects, range, []); } catch (e) { list = []; }
        }
      } else if (at.isConnected) {
        list = apply(getRects, at, []);
        if (!list.length) { range.selectNodeContents(at); list = apply(rangeRects, range, []); } // display: contents
        if (entry.bits & PSEUDO) list = pseudoRects(at, list);
      }
      const boxes = [];
      if (list.length) {
        const c = contextOf(at, now());
        let cl = -Infinity, ct = -Infinity, cr = Infinity, cb = Infinity;
        for (const el of c.clips) {
          const r = apply(getBox, el, []);
          cl = Math.max(cl, r.left); ct = Math.max(ct, r.top); cr = Math.min(cr, r.right); cb = Math.min(cb, r.bottom);
        }
        const pad = Math.max(2, c.font * 0.2);
        const sx = c.fixed ? 0 : W.scrollX, sy = c.fixed ? 0 : W.scrollY;
        for (const r of list) {
          if (!r.width && !r.height) continue;
          const l = Math.max(r.left - pad, cl), t = Math.max(r.top - pad, ct);
          const w = Math.min(r.right + pad, cr) - l, h = Math.min(r.bottom + pad, cb) - t;
          if (w > 0 && h > 0) boxes.push({x: l + sx, y: t + sy, w, h, fixed: c.fixed, fill: c.fill});
        }
      }
      return boxes;
    };
    const move = (entry, boxes) => {
      const masks = entry.masks;
      boxes.forEach((b, i) => {
        let m = masks[i];
        if (!m) { m = masks[i] = D.createElement('div'); m.className = 'mask'; m.__box = null; }
        const parent = b.fixed ? fixedLayer : layer;
        if (m.parentNode !== parent) apply(appendChild, parent, [m]);
        const p = m.__box;
        if (!p || p.x !== b.x || p.y !== b.y || p.w !== b.w || p.h !== b.h || p.fill !== b.fill) {
          m.__box = b;
          m.style.cssText = `left:${b.x}px;top:${b.y}px;width:${b.w}px;height:${b.h}px;--fill:${b.fill}`;
        }
      });
      while (masks.length > boxes.length) apply(removeNode, masks.pop(), []);
    };
    const within = (node, subtrees) => {
      for (let n = node; n; n = n.parentNode || n.host) if (subtrees.has(n)) return true;
      return false;
    };
    // Every entry after a layout; otherwise only new entries and those in subtrees that moved.
    const paint = () => {
      if (!host || !revealed) return;
      if (!host.isConnected) raise();
      const todo = new Set(pending);
      pending.clear();
      if (layoutDirty) {
        layoutDirty = false;
        moved.clear();
        for (const [b, entries] of blocks) {
          if (!b.isConnected) { for (const entry of entries) drop(entry); blocks.delete(b); continue; }
          for (const entry of entries) todo.add(entry);
        }
        for (const [el, entry] of elements) {
          if (!el.isConnected && !(entry.bits & TYPED)) { elements.delete(el); drop(entry); continue; }
          todo.add(entry);
        }
      } else if (moved.size) {
        for (const entries of blocks.values()) for (const entry of entries) if (within(entry.at, moved)) todo.add(entry);
        for (const entry of elements.values()) if (within(entry.el, moved)) todo.add(entry);
        moved.clear();
      }
      const measured = [];
      for (const entry of todo) measured.push(measure(entry));
      let i = 0;
      for (const entry of todo) move(entry, measured[i++]);
    };
    // Animations and transitions the page runs: one that moves only its element (a transform) moves the
    // masks in it; one that changes layout (a width, a margin) moves anything.
    const MOVES_ITSELF = new Set(['transform', 'translate', 'rotate', 'scale', 'offset', 'easing', 'composite',
      'computedOffset', 'opacity', 'color', 'backgroundColor', 'borderColor', 'boxShadow', 'outlineColor', 'fill',
      'stroke', 'filter', 'visibility']);
    const animated = new WeakMap(); // animation -> whether it changes layout
    const watchAnimations = () => {
      let running = false;
      if (!D.getAnimations) return running;
      for (const a of D.getAnimations()) {
        if (a.playState !== 'running' || !a.effect || !a.effect.target) continue;
        running = true;
        let layout = animated.get(a);
        if (layout === undefined) {
          layout = a.effect.getKeyframes().some((k) => Object.keys(k).some((p) => !MOVES_ITSELF.has(p)));
          animated.set(a, layout);
        }
        if (layout) layoutDirty = true; else moved.add(a.effect.target);
      }
      return running;
    };

    // --- keeping up with the page --------------------------------------------------------------------
    const querySelectors = () => {
      selectorsDirty = false;
      if (!selectors.length) return;
      const found = new Set();
      for (const selector of selectors) {
        let n = 0;
        for (const root of roots) {
          for (const el of root.querySelectorAll(selector)) { found.add(el); n++; }
        }
        selectorCounts[selector] = n;
      }
      for (const [el, entry] of [...elements]) if (entry.selected && !found.has(el)) elementEntry(el, (e) => { e.selected = false; });
      for (const el of found) if (!(elements.get(el) || {}).selected) elementEntry(el, (e) => { e.selected = true; });
    };
    const flush = () => {
      if (rulesDirty || sheetsDirty) recheckRules();
      for (const b of dirtyBlocks) scanBlock(b);
      dirtyBlocks.clear();
      if (selectorsDirty) querySelectors();
      paint();
      later();
    };
    const CURSOR = '__sr_cursor'; // the recorder's cursor (jobs.media.cursor) moves on every mouse move
    const onMutations = (records) => {
      if (!revealed) {
        if (!host && D.documentElement) makeHost();
        if (host && !host.isConnected) raise();
        return; // the whole document is read once it is parsed, under the cover
      }
      for (const r of records) {
        const target = r.target;
        if (r.type === 'attributes') {
          if (target === host || target.id === CURSOR) continue;
          checkElement(target);
          if (r.attributeName === 'class' || r.attributeName === 'style') restyled();
          if (target.localName === 'link' || target.localName === 'style') sheetsDirty = true;
        } else if (r.type === 'childList') {
          const b = blockOf(target);
          if (b) dirtyBlocks.add(b);
          for (const n of r.addedNodes) {
            if (n.nodeType === 1) { scanSubtree(n); if (n.localName === 'style' || n.localName === 'link') sheetsDirty = true; }
          }
          for (const n of r.removedNodes) if (n.localName === 'style' || n.localName === 'link') sheetsDirty = true;
        } else {
          const b = blockOf(target.parentNode);
          if (b) dirtyBlocks.add(b);
          if (target.parentNode && target.parentNode.localName === 'style') rulesDirty = true;
        }
        selectorsDirty = layoutDirty = true;
      }
      flush();
      wake();
    };
    // Frames are watched while something may move: for half a second after any change, while the page
    // animates, and while a field has the focus (its value is compared on every frame, whatever sets it).
    // A still page costs nothing.
    let scheduled = false, awakeUntil = 0;
    const wake = () => {
      awakeUntil = now() + 500;
      if (!scheduled && revealed) { scheduled = true; apply(raf, W, [frame]); }
    };
    const frame = () => {
      scheduled = false;
      try {
        for (const [el, value] of fields) {
          if (!el.isConnected) fields.delete(el);
          else if (fieldText(el) !== value) checkField(el);
        }
        const animating = watchAnimations();
        if (rulesDirty || sheetsDirty || selectorsDirty || dirtyBlocks.size) flush(); else paint();
        const active = D.activeElement;
        if (animating || now() < awakeUntil || (active && fields.has(active)) || pending.size || layoutDirty) {
          scheduled = true;
          apply(raf, W, [frame]);
        }
      } catch (e) { fail('frame', e); }
    };

    // --- reporting ------------------------------------------------------------------------------------
    let reportDue = null;
    const report = () => {
      reportDue = null;
      try { W[CONFIG.binding]({selectors: {...selectorCounts}, text, errors, document: DOCUMENT}); } catch (e) { /* no binding */ }
    };
    const later = () => { if (!reportDue) reportDue = setTimeout(report, 250); };
    // The recorder hides a field before typing into it text that matches (its first keys match nothing yet).
    Object.defineProperty(D, '__srRedactBlur', {value: (el) => { setMark(el, TYPED, true); paint(); wake(); }});

    // Selectors also blur through a stylesheet: the page's CSS can undo that, not the masks, but it
    // follows what overflows the element's box.
    try {
      const sheet = new W.CSSStyleSheet();
      sheet.replaceSync(selectors.map((s) => s + ' { filter: blur(0.5em) !important; }').join('\n'));
      D.adoptedStyleSheets = [...D.adoptedStyleSheets, sheet];
    } catch (e) { fail('stylesheet', e); }

    // --- start ----------------------------------------------------------------------------------------
    // The cover hides everything until the first complete scan, so the first paint is already redacted.
    const reveal = () => {
      try {
        if (!host) makeHost();
        raise();
        const attached = [...roots].filter((root) => root !== D); // shadow roots made while the page loaded
        rulesByRoot.clear();
        revealed = true; // from here a shadow root is read as soon as it is found
        scanSubtree(D.documentElement || D);
        for (const root of attached) scanSubtree(root);
        rulesDirty = sheetsDirty = false;
        flush();
        if (cover) apply(removeNode, cover, []);
        report();
        wake();
      } catch (e) { fail('reveal', e); }
    };
    observe(D);
    if (D.documentElement) { makeHost(); raise(); }
    if (D.readyState === 'loading') D.addEventListener('DOMContentLoaded', reveal, {once: true});
    else reveal();
  };
  install(window);
})();
